// Micro-benchmark of the agent's per-line hot path alone (no I/O): EventEncoder over the bench's
// auth.log, in process. For working on encode.ts; `npm run bench` is the figure that counts.
//   node --import tsx bench/encode-micro.ts [lines]
import { existsSync, readFileSync } from 'node:fs';
import { EventEncoder } from '../packages/agent/src/encode';
import { writeAuthLog } from './auth-log';

const lines = Number(process.argv[2] ?? 1_000_000);
const path = `/tmp/guard-encode-micro-${lines}.log`;
if (!existsSync(path)) writeAuthLog(path, lines);
const file = readFileSync(path);
const tail = Buffer.from(
  ',"source":"auth","path":"/var/log/auth.log","host":"web-01","parser":"syslog"}\n',
  'latin1',
);
const head = Buffer.from('{"id":"65024.16638017.de351fd6:', 'latin1');
const enc = new EventEncoder(file.length, 2 << 20); // room for 1 MiB of events and a line: no re-layout, which would leave `buf` outside the encoder's buffer
const buf = enc.input(file.length); // as the pipeline reads: into the encoder's input area
file.copy(buf);
for (let round = 0; round < 5; round++) {
  const t0 = process.hrtime.bigint();
  let n = 0;
  let bytes = 0;
  enc.begin(new Date(), head, tail, buf);
  for (let s = 0, nl = buf.indexOf(10); nl !== -1; s = nl + 1, nl = buf.indexOf(10, s)) {
    enc.reserve(enc.bound(nl - s));
    if (!enc.line(buf, s, nl, s, true, true))
      throw new Error(`declined: ${buf.toString('latin1', s, nl)}`);
    if (enc.pos - enc.start > 1 << 20) {
      bytes += enc.pos - enc.start;
      enc.clear();
    }
    n++;
  }
  bytes += enc.pos - enc.start;
  enc.clear();
  const ns = Number(process.hrtime.bigint() - t0);
  console.log(
    `round ${round}: ${n} lines, ${(ns / n).toFixed(0)} ns/line, ${(bytes / n).toFixed(0)} bytes/event`,
  );
}
