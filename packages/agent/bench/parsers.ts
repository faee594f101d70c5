// Micro-benchmark of the per-line steps owned by parsers/ and transforms/, on ~1M generated
// auth.log-style lines. Prints lines/s; nothing is asserted (the end-to-end target is ≥ 300k
// lines/s for the whole agent on 2 cores, so each step here should stay far above that).
//
//   node --import tsx packages/agent/bench/parsers.ts [lines]

import { decodeLine } from '../src/parsers/escape';
import { parseSyslog } from '../src/parsers/syslog';
import { parseJson } from '../src/parsers/json';
import { compileFilter } from '../src/transforms/filter';
import { compileRedactor } from '../src/transforms/redact';

const N = Number(process.argv[2] ?? 1_000_000);

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const HOSTS = ['web1', 'web2', 'db-primary'];
const USERS = ['alice', 'bob', 'root', 'deploy', 'admin'];

/** The message part (after the timestamp) of a typical Debian 12 auth.log line. */
function body(i: number): string {
  const host = HOSTS[i % HOSTS.length]!;
  const user = USERS[i % USERS.length]!;
  const pid = 1000 + (i % 30000);
  const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  switch (i % 8) {
    case 0: return `${host} sshd[${pid}]: Accepted publickey for ${user} from ${ip} port ${40000 + (i % 20000)} ssh2: ED25519 SHA256:Xb9v3kq0Qz3o1ZJ0xq2yYl7m4nC8aJtR5pWvK1sH2dE`;
    case 1: return `${host} sshd[${pid}]: Failed password for invalid user ${user} from ${ip} port ${40000 + (i % 20000)} ssh2`;
    case 2: return `${host} sudo:    ${user} : TTY=pts/0 ; PWD=/home/${user} ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx`;
    case 3: return `${host} sudo: pam_unix(sudo:session): session opened for user root(uid=0) by ${user}(uid=1000)`;
    case 4: return `${host} CRON[${pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)`;
    case 5: return `${host} systemd-logind[${pid}]: New session ${i % 5000} of user ${user}.`;
    case 6: return `${host} kernel: [${(i / 100).toFixed(6)}] audit: type=1400 audit(1700000000.${i % 1000}:${i}): apparmor="DENIED" operation="open"`;
    default: return `${host} sshd[${pid}]: pam_unix(sshd:session): session closed for user ${user}`;
  }
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** Lines as rsyslog writes them; about 20 lines share each second, as on a busy host. */
function generate(style: '3164' | '3339'): string[] {
  const lines: string[] = new Array(N);
  const start = Date.UTC(2026, 10, 24, 9, 0, 0);
  for (let i = 0; i < N; i++) {
    const d = new Date(start + Math.floor(i / 20) * 1000);
    let ts: string;
    if (style === '3164') {
      const day = d.getUTCDate();
      ts = `${MONTHS[d.getUTCMonth()]} ${day < 10 ? ` ${day}` : day} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`;
    } else {
      ts = `${d.toISOString().slice(0, 19)}.${String(i % 1_000_000).padStart(6, '0')}+00:00`;
    }
    lines[i] = `${ts} ${body(i)}`;
  }
  return lines;
}

function run(name: string, lines: number, fn: () => number): void {
  fn(); // warm-up
  const t0 = process.hrtime.bigint();
  const sink = fn();
  const ns = Number(process.hrtime.bigint() - t0);
  const rate = lines / (ns / 1e9);
  console.log(`${name.padEnd(56)} ${Math.round(rate).toLocaleString('en-US').padStart(12)} lines/s ` +
    `${(ns / lines).toFixed(0).padStart(5)} ns/line   (${sink})`);
}

const l3164 = generate('3164');
const l3339 = generate('3339');
const now = new Date(Date.UTC(2026, 10, 25));

// One buffer holding every line, as the reader sees the file.
const file = Buffer.from(l3339.join('\n') + '\n');
const ends: number[] = [];
for (let i = file.indexOf(10); i >= 0; i = file.indexOf(10, i + 1)) ends.push(i);
// The same with a UTF-8 user name in every 4th line and an escape sequence in every 100th.
const mixed = Buffer.from(l3339.map((l, i) =>
  i % 100 === 0 ? `${l} \x1b[31mred` : i % 4 === 0 ? l.replace('alice', 'zoë') : l).join('\n') + '\n');
const mixedEnds: number[] = [];
for (let i = mixed.indexOf(10); i >= 0; i = mixed.indexOf(10, i + 1)) mixedEnds.push(i);

console.log(`${N.toLocaleString('en-US')} lines, node ${process.version}, ${process.arch}`);

run('decodeLine (ASCII)', ends.length, () => {
  let n = 0, s = 0;
  for (const e of ends) { n += decodeLine(file, s, e).text.length; s = e + 1; }
  return n;
});
run('decodeLine (25% UTF-8, 1% escaped)', mixedEnds.length, () => {
  let n = 0, s = 0;
  for (const e of mixedEnds) { n += decodeLine(mixed, s, e).text.length; s = e + 1; }
  return n;
});
run('parseSyslog RFC 3164 (Nov 24 09:05:01)', N, () => {
  let n = 0;
  for (const l of l3164) if (parseSyslog(l, now).fields !== undefined) n++;
  return n;
});
run('parseSyslog RFC 3339 (2026-11-24T09:05:01.123456+00:00)', N, () => {
  let n = 0;
  for (const l of l3339) if (parseSyslog(l, now).fields !== undefined) n++;
  return n;
});
const json = l3339.slice(0, 200_000).map((l, i) => JSON.stringify({ time: l.slice(0, 32), level: 30, msg: l.slice(33), i }));
run('parseJson (200k lines)', json.length, () => {
  let n = 0;
  for (const l of json) if (parseJson(l, now).time !== undefined) n++;
  return n;
});

const redact = compileRedactor({ builtin: true, patterns: [], replacement: '[REDACTED]' })!;
run('redactor, built-ins (auth.log, no secrets)', N, () => {
  let n = 0;
  for (const l of l3339) if (redact(l) !== l) n++;
  return n;
});
const secrets = l3339.map((l, i) => (i % 100 === 0 ? `${l} password=hunter${i}` : l));
run('redactor, built-ins (1% with a password=)', N, () => {
  let n = 0;
  for (const l of secrets) if (redact(l) !== l) n++;
  return n;
});
const redactCustom = compileRedactor({ builtin: true, patterns: [/\bssn=\d{3}-\d{2}-\d{4}/], replacement: '[REDACTED]' })!;
run('redactor, built-ins + 1 custom pattern', N, () => {
  let n = 0;
  for (const l of l3339) if (redactCustom(l) !== l) n++;
  return n;
});

const filter = compileFilter([/sshd|sudo/], [/session closed/])!;
run('filter (1 include, 1 exclude)', N, () => {
  let n = 0;
  for (const l of l3339) if (filter(l)) n++;
  return n;
});
