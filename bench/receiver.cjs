'use strict';
// The bench's log receiver, in a process of its own so its CPU is neither counted against the
// shipper under test nor competing with the bench driver's event loop. Plain HTTP, or HTTPS with
// the test CA's server certificate; gunzips when content-encoding is gzip; counts NDJSON records.
//   node receiver.cjs --expect N [--latency] [--cert server.pem --key server.key]
// stdout, one JSON object a line: {event:'listening',port}, then {event:'done',...} when N records
// have arrived, and {event:'final',...} on SIGTERM (more than N means duplicates).
// --latency: every record's message carries "bench-t=<ms since epoch>", and the receiver keeps
// arrival minus that, for percentiles.
const http = require('node:http');
const https = require('node:https');
const { readFileSync } = require('node:fs');
const { gunzipSync } = require('node:zlib');

const argv = process.argv.slice(2);
const flag = (n) => (argv.includes(n) ? argv[argv.indexOf(n) + 1] : undefined);
const expect = Number(flag('--expect'));
const latency = argv.includes('--latency');
const cert = flag('--cert');
const key = flag('--key');

let records = 0,
  bytes = 0,
  wireBytes = 0,
  requests = 0,
  firstAt = 0,
  lastAt = 0,
  reported = false,
  sample = null;
const latencies = [];
const stamp = /bench-t=(\d+)/;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

function handle(req, res) {
  const parts = [];
  req.on('data', (d) => parts.push(d));
  req.on('end', () => {
    const now = Date.now();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
    let body = Buffer.concat(parts);
    wireBytes += body.length;
    if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
    bytes += body.length;
    requests++;
    if (!firstAt) firstAt = now;
    let n = 0;
    for (let start = 0; start < body.length;) {
      let nl = body.indexOf(10, start);
      if (nl < 0) nl = body.length;
      if (nl > start) {
        n++;
        if (sample === null) sample = body.toString('utf8', start, nl);
        if (latency) {
          const m = stamp.exec(JSON.parse(body.toString('utf8', start, nl)).message);
          if (m) latencies.push(now - Number(m[1]));
        }
      }
      start = nl + 1;
    }
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
        wireBytes,
        firstAt,
        lastAt,
        cpuS: (cpu.user + cpu.system) / 1e6,
        sample,
        latency: latency ? percentiles(latencies) : null,
      });
    }
  });
}

function percentiles(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
  return { n: s.length, min: s[0], p50: at(50), p95: at(95), p99: at(99), max: s[s.length - 1] };
}

const server = cert
  ? https.createServer(
      { cert: readFileSync(cert), key: readFileSync(key), keepAliveTimeout: 60_000 },
      handle,
    )
  : http.createServer({ keepAliveTimeout: 60_000 }, handle);
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => out({ event: 'listening', port: server.address().port }));
process.once('SIGTERM', () => {
  out({ event: 'final', records, requests });
  process.exit(0);
});
