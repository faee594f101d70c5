// guard's events as syslog messages: RFC 5424 (guard's fields in one SD-ELEMENT) or, for old
// receivers, RFC 3164; and the two stream framings of RFC 6587 (octet counting, as RFC 5425
// requires over TLS, or a trailing LF). Pure functions of a batch's NDJSON body.

import { FACILITIES, SEVERITIES } from '../../parsers/syslog';

export type SyslogFormat = 'rfc5424' | 'rfc3164';

export interface FormatOptions {
  format: SyslogFormat;
  /** Facility and severity (0–23, 0–7) of an event whose line carried no priority of its own. */
  facility: number;
  severity: number;
  /** The SD-ID of guard's SD-ELEMENT, e.g. guard@32473. */
  sdId: string;
}

/** A batch's messages, encoded once and reused by every attempt (and every RELP session). */
export interface SyslogMessages {
  /** The messages (without framing), one per event, in the batch's order. */
  readonly texts: string[];
  /** Their UTF-8 lengths in bytes. */
  readonly bytes: number[];
}

export function facilityNumber(name: string): number {
  return FACILITIES.indexOf(name as (typeof FACILITIES)[number]);
}

export function severityNumber(name: string): number {
  return SEVERITIES.indexOf(name as (typeof SEVERITIES)[number]);
}

interface EventJson {
  id?: unknown;
  time?: unknown;
  offset?: unknown;
  message?: unknown;
  fields?: Record<string, unknown>;
  flags?: unknown;
  source?: unknown;
  path?: unknown;
  host?: unknown;
  tags?: unknown;
  parser?: unknown;
}

const NOT_PRINTUSASCII = /[^\x21-\x7e]/g;

/** A header field: PRINTUSASCII only (anything else becomes '_'), at most `max` characters, '-' when empty (RFC 5424 §6). */
export function headerField(v: unknown, max: number): string {
  if (typeof v !== 'string' && typeof v !== 'number') return '-';
  const s = String(v);
  if (s === '') return '-';
  const clean = /^[\x21-\x7e]*$/.test(s) ? s : s.replace(NOT_PRINTUSASCII, '_');
  return clean.length > max ? clean.slice(0, max) : clean;
}

/** A PARAM-VALUE: '"', '\' and ']' escaped with a backslash (RFC 5424 §6.3.3). */
export function paramValue(s: string): string {
  return /["\\\]]/.test(s) ? s.replace(/["\\\]]/g, '\\$&') : s;
}

const RFC5424_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$/;

/** RFC 5424 TIMESTAMP: guard's ISO 8601 UTC times are one already; others are checked, '-' if not one. */
export function timestamp(v: unknown): string {
  if (typeof v !== 'string') return '-';
  if (v.length === 24 && v.charCodeAt(23) === 0x5a /* Z */ && v.charCodeAt(10) === 0x54 /* T */)
    return v;
  if (RFC5424_TIME.test(v)) return v;
  // More than six fraction digits (RFC 5424 allows six): cut, never round into the next second.
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})\d+(Z|[+-]\d\d:\d\d)$/.exec(v);
  return m ? `${m[1]}${m[2]}` : '-';
}

/** The priority of an event: the line's own (syslog parser) or the configured one. */
function priority(ev: EventJson, o: FormatOptions): number {
  const p = ev.fields?.priority;
  return typeof p === 'number' && p >= 0 && p <= 191 && Number.isInteger(p)
    ? p
    : o.facility * 8 + o.severity;
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function list(v: unknown): string | null {
  return Array.isArray(v) && v.length > 0 ? v.join(',') : null;
}

/**
 * One event as RFC 5424:
 *   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID id=… source=… path=… offset=… host=…
 *   parser=… flags=… tags=… fields=…] MSG
 * HOSTNAME is the host the line names (syslog parser) or guard's host; APP-NAME the program, else
 * "guard"; MSGID the source's name. `fields` (JSON) is there when the parser is not syslog, whose
 * fields are the header's. MSG is the line as guard ships it (control characters already escaped).
 */
export function rfc5424(ev: EventJson, o: FormatOptions): string {
  const f = ev.fields;
  const host = text(ev.host);
  let sd = `[${o.sdId} id="${paramValue(text(ev.id))}" source="${paramValue(text(ev.source))}" path="${paramValue(text(ev.path))}" offset="${typeof ev.offset === 'number' ? ev.offset : ''}" host="${paramValue(host)}" parser="${paramValue(text(ev.parser))}"`;
  const flags = list(ev.flags);
  if (flags !== null) sd += ` flags="${paramValue(flags)}"`;
  const tags = list(ev.tags);
  if (tags !== null) sd += ` tags="${paramValue(tags)}"`;
  if (f !== undefined && ev.parser !== 'syslog') sd += ` fields="${paramValue(JSON.stringify(f))}"`;
  const hostname = headerField(f?.hostname ?? host, 255);
  const app = f?.program !== undefined ? headerField(f.program, 48) : 'guard';
  const procid = headerField(f?.pid, 128);
  return `<${priority(ev, o)}>1 ${timestamp(ev.time)} ${hostname} ${app} ${procid} ${headerField(ev.source, 32)} ${sd}] ${text(ev.message)}`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);

/**
 * One event as RFC 3164 (BSD syslog): <PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG, the time in UTC
 * (the format has no zone). No structured data: guard's id, source and path are not carried.
 */
export function rfc3164(ev: EventJson, o: FormatOptions): string {
  const t = typeof ev.time === 'string' ? new Date(ev.time) : new Date(NaN);
  const d = Number.isNaN(t.getTime()) ? new Date() : t;
  const day = d.getUTCDate();
  const stamp = `${MONTHS[d.getUTCMonth()]} ${day < 10 ? ` ${day}` : day} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`;
  const f = ev.fields;
  const hostname = headerField(f?.hostname ?? ev.host, 255);
  // TAG: alphanumerics only, at most 32 (RFC 3164 §4.1.3); [PID] after it, as syslog(3) writes.
  const program = typeof f?.program === 'string' ? f.program.replace(/[^A-Za-z0-9_.-]/g, '_') : '';
  const tag = (program || 'guard').slice(0, 32);
  const pid = typeof f?.pid === 'number' ? `[${f.pid}]` : '';
  return `<${priority(ev, o)}>${stamp} ${hostname} ${tag}${pid}: ${text(ev.message)}`;
}

/** Encodes every NDJSON line of a batch body. A line that is not an object becomes a message naming the problem (never dropped). */
export function encodeBatch(body: Buffer, o: FormatOptions): SyslogMessages {
  const one = o.format === 'rfc3164' ? rfc3164 : rfc5424;
  const all = body.toString('utf8');
  const texts: string[] = [];
  const bytes: number[] = [];
  let start = 0;
  for (let nl = all.indexOf('\n'); nl >= 0; nl = all.indexOf('\n', start)) {
    const line = all.slice(start, nl);
    start = nl + 1;
    if (line === '') continue;
    let ev: EventJson;
    try {
      ev = JSON.parse(line) as EventJson;
    } catch {
      // The pipeline writes these lines itself; this would be guard's bug. Ship it visibly.
      ev = { message: line, flags: ['unencodable'] };
    }
    const t = one(ev, o);
    texts.push(t);
    bytes.push(Buffer.byteLength(t));
  }
  return { texts, bytes };
}

/** RFC 6587 framing of messages [from, to): octet counting (`LEN SP MSG`) or a trailing LF. */
export function frameStream(
  m: SyslogMessages,
  framing: 'octet_counting' | 'lf',
  from = 0,
  to = m.texts.length,
): Buffer {
  let s = '';
  if (framing === 'lf') {
    for (let i = from; i < to; i++) s += `${m.texts[i]}\n`;
  } else {
    for (let i = from; i < to; i++) s += `${m.bytes[i]} ${m.texts[i]}`;
  }
  return Buffer.from(s, 'utf8');
}
