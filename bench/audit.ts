// Run 22 of `npm run bench` (#20): auditd records grouped into events, through the real helper and
// agent, beside two baselines in the same invocation on the same file:
//   22a. the simple shipper (bench/simple-shipper.cjs) posting every record raw, one per line;
//   22b. guard with the same file as `type = file`, `parser = plain` (one event per record, no
//        grouping, no audit parsing): what the audit parser and grouper add on top of guard's own
//        reading, encoding and sending;
//   22c. guard with `type = audit`: records parsed and grouped into one event per stamp;
//   22d. the same with `audit_records = text`: the records shipped as text beside the summary.
// The file is a real auditd 3.0.9 log (the oracle test's fixture, ENRICHED format, 417 records in
// 78 events, some interleaved, one EXECVE split over records) replayed with fresh stamps until it
// holds `--audit-records` records (default 1,020,000): same bytes every time.
// Called from bench/run.ts's main with what it needs (this module imports nothing from run.ts,
// which runs main() when loaded).
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { repoRoot } from '../test/lib/sandbox';

const FIXTURE = join(repoRoot, 'packages/agent/test/parsers/audit/fixtures/audit.log');
/** Events the oracle test finds in the fixture (ausearch's count too). */
const FIXTURE_EVENTS = 78;
/** #20's target. */
const TARGET_RECORDS_PER_S = 400_000;

export interface AuditLogFile {
  records: number;
  events: number;
  bytes: number;
  sha256: string;
}

/** Writes `records` (rounded up to whole copies of the fixture) audit records to `path`. */
export function writeAuditLog(path: string, records: number): AuditLogFile {
  const lines = readFileSync(FIXTURE, 'latin1').split('\n').filter(Boolean);
  const stampRe = /msg=audit\((\d+)\.(\d{3}):(\d+)\)/;
  const parsed = lines.map((l) => {
    const m = stampRe.exec(l)!;
    return {
      head: l.slice(0, m.index),
      tail: l.slice(m.index + m[0].length),
      sec: +m[1]!,
      ms: m[2]!,
      serial: +m[3]!,
    };
  });
  const minSec = Math.min(...parsed.map((p) => p.sec));
  const span = Math.max(...parsed.map((p) => p.sec)) - minSec + 5; // > end_of_event_timeout apart
  const maxSerial = Math.max(...parsed.map((p) => p.serial)) + 1;
  const copies = Math.ceil(records / lines.length);
  const hash = createHash('sha256');
  const fd = openSync(path, 'w', 0o600);
  let bytes = 0;
  try {
    let out = '';
    for (let c = 0; c < copies; c++) {
      for (const p of parsed) {
        out += `${p.head}msg=audit(${p.sec + c * span}.${p.ms}:${p.serial + c * maxSerial})${p.tail}\n`;
      }
      if (out.length > 1 << 20 || c === copies - 1) {
        const b = Buffer.from(out, 'latin1');
        hash.update(b);
        writeSync(fd, b);
        bytes += b.length;
        out = '';
      }
    }
  } finally {
    closeSync(fd);
  }
  return {
    records: copies * lines.length,
    events: copies * FIXTURE_EVENTS,
    bytes,
    sha256: hash.digest('hex'),
  };
}

/** What bench/run.ts hands over: its runs of the shipper and the agent, generalised. */
export interface AuditBenchDeps<R> {
  /** The sandbox path for a log file (root-only directory). */
  logPath: (name: string) => string;
  /** The simple shipper on `file` until `expect` records arrived. */
  shipperRun: (label: string, file: string, expect: number) => Promise<R>;
  /** guard helper + agent with this [source.*] section until `expect` events arrived. */
  agentRun: (name: string, label: string, source: string[], expect: number) => Promise<R>;
  /** Runs one numbered step, printing its time; undefined when it failed or is not selected. */
  attempt: <T>(what: string, f: () => Promise<T>) => Promise<T | undefined>;
}

interface Rate {
  run: string;
  seconds: number;
  cpuS: number;
}

/** Run 22: the audit file, the three runs, a short table; returns the runs for the JSON. */
export async function auditBench<R extends Rate>(
  deps: AuditBenchDeps<R>,
  recordsWanted: number,
): Promise<{ file: AuditLogFile; runs: R[] } | undefined> {
  const path = deps.logPath('audit.log');
  const t = Date.now();
  const file = writeAuditLog(path, recordsWanted);
  console.log(
    `audit log: ${file.records.toLocaleString('en')} records in ${file.events.toLocaleString('en')} events, ` +
      `${(file.bytes / 2 ** 20).toFixed(1)} MiB, sha256 ${file.sha256.slice(0, 16)}… in ${((Date.now() - t) / 1000).toFixed(1)} s`,
  );
  const runs: R[] = [];
  const shipper = await deps.attempt('22. a) simple shipper, the audit records raw, http', () =>
    deps.shipperRun('simple shipper (audit records raw, http)', path, file.records),
  );
  if (shipper) runs.push(shipper);
  const plain = await deps.attempt(
    '22. b) guard helper + agent, the audit file as plain lines (no grouping), http',
    () =>
      deps.agentRun(
        'audit-plain',
        'guard (audit.log as plain lines, http)',
        [
          '[source.auditplain]',
          'type = file',
          `paths = ${path}`,
          'parser = plain',
          'start_at = beginning',
        ],
        file.records,
      ),
  );
  if (plain) runs.push(plain);
  const grouped = await deps.attempt(
    '22. c) guard helper + agent, type = audit (records grouped into events), http',
    () =>
      deps.agentRun(
        'audit',
        'guard (audit, grouped, http)',
        ['[source.audit]', 'type = audit', `paths = ${path}`, 'start_at = beginning'],
        file.events,
      ),
  );
  if (grouped) runs.push(grouped);
  const text = await deps.attempt(
    '22. d) guard helper + agent, type = audit, audit_records = text (records as text and the summary), http',
    () =>
      deps.agentRun(
        'audit-text',
        'guard (audit, grouped, records as text, http)',
        [
          '[source.audit]',
          'type = audit',
          `paths = ${path}`,
          'start_at = beginning',
          'audit_records = text',
        ],
        file.events,
      ),
  );
  if (text) runs.push(text);
  if (runs.length === 0) return undefined;
  console.log(
    `\naudit (#20), ${file.records.toLocaleString('en')} records → ${file.events.toLocaleString('en')} events:\n` +
      runs
        .map((r) => {
          const perS = Math.round(file.records / r.seconds);
          const us = ((r.cpuS * 1e6) / file.records).toFixed(2);
          return `  ${r.run.padEnd(42)} ${perS.toLocaleString('en').padStart(9)} records/s  ${r.cpuS.toFixed(2).padStart(6)} CPU s  ${us.padStart(6)} µs CPU/record`;
        })
        .join('\n'),
  );
  for (const g of [grouped, text]) {
    if (g === undefined) continue;
    const perS = Math.round(file.records / g.seconds);
    const perCpuS = Math.round(file.records / g.cpuS);
    console.log(
      `  ${g.run}:\n` +
        `    target ≥ ${TARGET_RECORDS_PER_S.toLocaleString('en')} records/s grouped: ${perS.toLocaleString('en')} wall ` +
        `(${perS >= TARGET_RECORDS_PER_S ? 'met' : 'NOT MET'}); ${perCpuS.toLocaleString('en')} per CPU second of the agent ` +
        `(${perCpuS >= TARGET_RECORDS_PER_S ? 'met' : 'NOT MET'}); load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
    );
  }
  return { file, runs };
}
