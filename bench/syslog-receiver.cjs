'use strict';
// The bench's syslog receiver, in a process of its own (as receiver.cjs): counts the frames of a
// syslog stream over plain TCP on 127.0.0.1 and reports as receiver.cjs does.
//   node syslog-receiver.cjs --expect N --protocol tcp|relp
//   tcp   RFC 6587 octet counting: `LEN SP MSG`, frames counted
//   relp  RELP: answers `open` with its offers and every `syslog` frame with `rsp 6 200 OK`, as
//         rsyslog's imrelp does; frames counted
// stdout, one JSON object a line: {event:'listening',port}, {event:'done',...} when N frames have
// arrived, {event:'final',...} on SIGTERM (more than N means duplicates).
const net = require('node:net');

const argv = process.argv.slice(2);
const flag = (n) => (argv.includes(n) ? argv[argv.indexOf(n) + 1] : undefined);
const expect = Number(flag('--expect'));
const relp = flag('--protocol') === 'relp';

let records = 0,
  bytes = 0,
  requests = 0,
  firstAt = 0,
  lastAt = 0,
  reported = false,
  sample = null;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

function counted(n, now) {
  records += n;
  lastAt = now;
  if (!reported && records >= expect) {
    reported = true;
    const cpu = process.cpuUsage();
    out({
      event: 'done',
      records,
      requests,
      bytes,
      wireBytes: bytes,
      firstAt,
      lastAt,
      cpuS: (cpu.user + cpu.system) / 1e6,
      sample,
      latency: null,
    });
  }
}

/** Parses `DIGITS SP` at p; returns [value, index after the space] or null when incomplete. */
function number(buf, p) {
  let v = 0;
  let q = p;
  while (q < buf.length && buf[q] >= 0x30 && buf[q] <= 0x39) v = v * 10 + (buf[q++] - 0x30);
  if (q >= buf.length) return null;
  if (q === p) throw new Error(`not a number at byte ${p}: ${buf.toString('latin1', p, p + 20)}`);
  return [v, q];
}

const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  let buf = Buffer.alloc(0);
  sock.on('data', (chunk) => {
    const now = Date.now();
    if (!firstAt) firstAt = now;
    bytes += chunk.length;
    requests++;
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let p = 0;
    let n = 0;
    let answers = '';
    for (;;) {
      if (relp) {
        // TXNR SP COMMAND SP DATALEN [SP DATA] LF
        const t = number(buf, p);
        if (t === null) break;
        const sp = buf.indexOf(0x20, t[1] + 1);
        if (sp < 0) break;
        const command = buf.toString('latin1', t[1] + 1, sp);
        const l = number(buf, sp + 1);
        if (l === null) break;
        const dataStart = l[0] === 0 ? l[1] : l[1] + 1;
        const end = dataStart + l[0];
        if (end >= buf.length) break;
        if (command === 'syslog') {
          n++;
          if (sample === null) sample = buf.toString('utf8', dataStart, end);
          answers += `${t[0]} rsp 6 200 OK\n`;
        } else if (command === 'open') {
          const offers = '200 OK\nrelp_version=0\nrelp_software=guard-bench\ncommands=syslog';
          answers += `${t[0]} rsp ${offers.length} ${offers}\n`;
        } else if (command === 'close') {
          answers += `${t[0]} rsp 0\n`;
        }
        p = end + 1;
      } else {
        const l = number(buf, p);
        if (l === null) break;
        const end = l[1] + 1 + l[0];
        if (end > buf.length) break;
        n++;
        if (sample === null) sample = buf.toString('utf8', l[1] + 1, end);
        p = end;
      }
    }
    buf = p === buf.length ? Buffer.alloc(0) : buf.subarray(p);
    if (answers) sock.write(answers);
    if (n) counted(n, now);
  });
  sock.on('error', () => undefined);
});
server.listen(0, '127.0.0.1', () => out({ event: 'listening', port: server.address().port }));
process.once('SIGTERM', () => {
  out({ event: 'final', records, requests });
  process.exit(0);
});
