// Micro-benchmark of the audit path alone (no I/O, no helper, no sink), in process: the bench's
// audit log (run 22's file, bench/audit.ts) decoded line by line as the pipeline does, grouped
// (parseRecord + AuditGrouper) and encoded (auditEventBody), stage by stage, in ns of CPU (this
// process's user + system time, all threads) per record.
// The SHA-256 of the encoded events is printed: a change meant to be invisible must keep it.
//   node --import tsx bench/audit-micro.ts [records] [format]
// For working on parsers/audit; `npm run bench -- --runs 2,22` is the figure that counts.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { auditEventBody } from '../packages/agent/src/parsers/audit/encode';
import { AuditGrouper } from '../packages/agent/src/parsers/audit/group';
import type { AuditEvent } from '../packages/agent/src/parsers/audit/types';
import { decodeLine } from '../packages/agent/src/parsers/escape';
import { writeAuditLog } from './audit';

const records = Number(process.argv[2] ?? 200_000);
const withRecords = (process.argv[3] ?? 'parsed') !== 'text';
const path = `/tmp/guard-audit-micro-${records}.log`;
if (!existsSync(path)) writeAuditLog(path, records);
const file = readFileSync(path);
const starts: number[] = [];
const ends: number[] = [];
for (let s = 0, nl = file.indexOf(10); nl !== -1; s = nl + 1, nl = file.indexOf(10, s)) {
  starts.push(s);
  ends.push(nl);
}
const n = starts.length;

function run(stage: 'decode' | 'group' | 'encode', hash: boolean): string {
  const g = new AuditGrouper();
  const h = createHash('sha256');
  let events = 0;
  const emit = (evs: AuditEvent[]): void => {
    for (const ev of evs) {
      events++;
      if (stage === 'encode') {
        const body = auditEventBody(ev, null, withRecords);
        if (hash) h.update(body);
      }
    }
  };
  for (let k = 0; k < n; k++) {
    const { text } = decodeLine(file, starts[k]!, ends[k]!);
    if (stage === 'decode') continue;
    emit(g.push(text, starts[k]!, ends[k]! + 1));
  }
  if (stage !== 'decode') emit(g.flushAll());
  return `${events} events` + (hash ? `, sha256 ${h.digest('hex').slice(0, 16)}` : '');
}

console.log(`${n} records, ${(file.length / n).toFixed(0)} bytes each`);
const stages = ['decode', 'group', 'encode'] as const;
const best = [Infinity, Infinity, Infinity];
for (let round = 0; round < 6; round++) {
  const row: string[] = [];
  let prev = 0;
  stages.forEach((stage, i) => {
    const t0 = process.cpuUsage();
    const what = run(stage, round === 0);
    const cpu = process.cpuUsage(t0);
    const ns = ((cpu.user + cpu.system) * 1000) / n;
    row.push(`${stage} +${(ns - prev).toFixed(0)}`);
    if (round > 0) best[i] = Math.min(best[i]!, ns);
    prev = ns;
    if (round === 0 && stage === 'encode') console.log(what);
  });
  console.log(`round ${round}: ns/record ${row.join(', ')} = ${prev.toFixed(0)}`);
}
console.log(
  `best of rounds 1-5, ns/record: decode ${best[0]!.toFixed(0)}, group +${(best[1]! - best[0]!).toFixed(0)}, ` +
    `encode +${(best[2]! - best[1]!).toFixed(0)} (cumulative best ${best[2]!.toFixed(0)})`,
);
