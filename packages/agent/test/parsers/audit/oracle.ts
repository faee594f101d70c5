// Helpers for the ausearch oracle: read a log as the agent does (escaped
// lines with their byte offsets) and parse `ausearch -i` output into events.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { decodeLine } from '../../../src/parsers/escape';
import { AuditGrouper } from '../../../src/parsers/audit/group';
import type { AuditEvent } from '../../../src/parsers/audit/types';

/** Every line of buf, decoded, with [offset, end) (end past the '\n'); a last line without '\n' too. */
export function* lines(buf: Buffer): Generator<[string, number, number]> {
  let start = 0;
  for (;;) {
    const nl = buf.indexOf(0x0a, start);
    if (nl < 0) break;
    yield [decodeLine(buf, start, nl).text, start, nl + 1];
    start = nl + 1;
  }
  if (start < buf.length) yield [decodeLine(buf, start, buf.length).text, start, buf.length];
}

export function groupFile(path: string, grouper = new AuditGrouper()): AuditEvent[] {
  const buf = readFileSync(path);
  const out: AuditEvent[] = [];
  for (const [line, off, end] of lines(buf)) out.push(...grouper.push(line, off, end));
  out.push(...grouper.flushAll());
  return out;
}

/** `ausearch -if FILE -i` (TZ=UTC) → one `secs.ms:serial` stamp and record count per event. */
export function ausearchEvents(path: string): Array<{ stamp: string; records: number }> {
  let text: string;
  try {
    text = execFileSync('ausearch', ['-if', path, '-i'], {
      env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' },
      maxBuffer: 256 * 1024 * 1024,
      encoding: 'utf8',
    });
  } catch (e) {
    // ausearch exits 1 when nothing matched; anything else is a real failure.
    const err = e as { status?: number; stdout?: string };
    if (err.status === 1 && typeof err.stdout === 'string') text = err.stdout;
    else throw e;
  }
  const events: Array<{ stamp: string; records: number }> = [];
  let cur: { stamp: string; records: number } | undefined;
  for (const line of text.split('\n')) {
    if (line === '----') {
      cur = undefined;
      continue;
    }
    const m =
      /^(?:node=\S+ )?type=\S+ msg=audit\((\d\d)\/(\d\d)\/(\d\d\d?\d?) (\d\d):(\d\d):(\d\d)\.(\d\d\d):(\d+)\)/.exec(
        line,
      );
    if (m === null) continue;
    const [, mo, d, y, h, mi, s, ms, serial] = m;
    const year = Number(y) < 100 ? 2000 + Number(y) : Number(y);
    const secs = Date.UTC(year, Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) / 1000;
    const stamp = `${secs}.${ms}:${serial}`;
    if (cur === undefined) {
      cur = { stamp, records: 0 };
      events.push(cur);
    }
    cur.records++;
  }
  return events;
}
