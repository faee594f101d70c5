// One audit event → the members of its LogEvent's JSON, from `"time"` to just before `,"source"`
// (the pipeline writes the id before them and the file's tail after).
//
// `fields` is the event's summary (parsers/audit/group.ts) and, with `records` (config
// `audit_records = parsed`, the default), every record's own fields and enrichment. Without them
// (`audit_records = text`) the records are in `message` only, as auditd wrote them: the event is
// ~40 % fewer bytes, and their JSON is a large part of the CPU an event costs.

import { hiddenFlags } from '../hidden';
import type { AuditEvent } from './types';

/** Members of an AuditEvent that are not part of its `fields`. */
const NOT_FIELDS = new Set(['records', 'offset', 'end', 'raw', 'flags']);

/**
 * The event's JSON members. `extraFlags` are the flags of the file's tail (a hidden character in
 * its name), added to the event's own and to those its text earns ('bidi', 'invisible').
 */
export function auditEventBody(
  ev: AuditEvent,
  extraFlags: string[] | null,
  withRecords: boolean,
): string {
  const records = ev.records;
  let message: string;
  if (ev.raw !== undefined) message = ev.raw;
  else if (records.length === 1) message = records[0]!.raw;
  else {
    message = records[0]!.raw;
    for (let i = 1; i < records.length; i++) message += '\n' + records[i]!.raw;
  }
  const fields: Record<string, unknown> = {};
  for (const k in ev) if (!NOT_FIELDS.has(k)) fields[k] = ev[k as keyof AuditEvent];
  if (withRecords)
    fields.records = records.map((r) => ({ type: r.type, fields: r.fields, enriched: r.enriched }));
  // What auditd hex-encoded (a command line, a file name) is decoded in `fields`: look there too.
  // The fields are stringified once, for that look and for the event.
  const fieldsJson = JSON.stringify(fields);
  const hidden = hiddenFlags(message) ?? hiddenFlags(fieldsJson);
  const flags = ev.flags;
  let allFlags = '';
  if (flags !== undefined || hidden !== null || extraFlags !== null) {
    const set = new Set([...(flags ?? []), ...(hidden ?? []), ...(extraFlags ?? [])]);
    allFlags = `,"flags":${JSON.stringify([...set])}`;
  }
  return (
    `"time":${JSON.stringify(ev.time || new Date().toISOString())},` +
    `"offset":${ev.offset},"message":${JSON.stringify(message)},"fields":${fieldsJson}${allFlags}`
  );
}
