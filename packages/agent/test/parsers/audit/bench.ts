// Micro-benchmark (prints, asserts nothing): events/s and records/s grouping a ~100k-record log
// built from fixtures/audit.log (serials shifted per copy, so every copy is new events).
//   node --import tsx packages/agent/test/parsers/audit/bench.ts

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditGrouper } from '../../../src/parsers/audit/group';
import { lines } from './oracle';

const base = readFileSync(join(__dirname, 'fixtures', 'audit.log'), 'latin1').split('\n').filter(Boolean);
const out: string[] = [];
for (let copy = 0; out.length < 100_000; copy++) {
  for (const l of base) {
    out.push(l.replace(/msg=audit\((\d+)\.(\d+):(\d+)\)/, (_m, s: string, ms: string, n: string) =>
      `msg=audit(${Number(s) + copy * 3}.${ms}:${Number(n) + copy * 100_000})`));
  }
}
const buf = Buffer.from(out.join('\n') + '\n', 'latin1');
const decoded = [...lines(buf)];

for (let run = 0; run < 3; run++) {
  const g = new AuditGrouper();
  let events = 0;
  const t0 = process.hrtime.bigint();
  for (const [l, off, end] of decoded) events += g.push(l, off, end).length;
  events += g.flushAll().length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`run ${run + 1}: ${decoded.length} records (${(buf.length / 1e6).toFixed(1)} MB) → ${events} events in ${s.toFixed(3)} s: ` +
    `${Math.round(events / s).toLocaleString('en')} events/s, ${Math.round(decoded.length / s).toLocaleString('en')} records/s, ${(buf.length / 1e6 / s).toFixed(1)} MB/s`);
}
