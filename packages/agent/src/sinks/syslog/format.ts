// guard's events as syslog messages: RFC 5424 (guard's fields in one SD-ELEMENT) or, for old
// receivers, RFC 3164; and the two stream framings of RFC 6587 (octet counting, as RFC 5425
// requires over TLS, or a trailing LF). Pure functions of a batch's NDJSON body.

import { FACILITIES, SEVERITIES } from '../../parsers/syslog';
import { type BufferPool, ByteWriter, digitsValue, Lit, TailKey } from '../core/byte-writer';
import { NextBackslash } from '../core/event-scan';

export type SyslogFormat = 'rfc5424' | 'rfc3164';

export interface FormatOptions {
  format: SyslogFormat;
  /** Facility and severity (0–23, 0–7) of an event whose line carried no priority of its own. */
  facility: number;
  severity: number;
  /** The SD-ID of guard's SD-ELEMENT, e.g. guard@32473. */
  sdId: string;
}

/** A batch's messages, encoded once and reused by every attempt (and every RELP session):
 *  message i is buf[starts[i], ends[i]), without framing. */
export interface SyslogMessages {
  readonly buf: Buffer;
  readonly starts: Int32Array;
  readonly ends: Int32Array;
  /** When the encoder wrote each message's octet count in front of it (SyslogEncoder's
   *  `octetCounted`): where frame i (`LEN SP MSG`) starts; the frames follow one another. */
  readonly frames?: Int32Array;
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
 *   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID id=… offset=… source=… path=… host=…
 *   parser=… tags=… flags=… fields=…] MSG
 * HOSTNAME is the host the line names (syslog parser) or guard's host; APP-NAME the program, else
 * "guard"; MSGID the source's name. `fields` (JSON) is there when the parser is not syslog, whose
 * fields are the header's. MSG is the line as guard ships it (control characters already escaped).
 */
export function rfc5424(ev: EventJson, o: FormatOptions): string {
  const f = ev.fields;
  const host = text(ev.host);
  let sd = `[${o.sdId} id="${paramValue(text(ev.id))}" offset="${typeof ev.offset === 'number' ? ev.offset : ''}"${sdConstant(text(ev.source), text(ev.path), host, text(ev.parser), list(ev.tags))}`;
  const flags = list(ev.flags);
  if (flags !== null) sd += ` flags="${paramValue(flags)}"`;
  if (f !== undefined && ev.parser !== 'syslog') sd += ` fields="${paramValue(JSON.stringify(f))}"`;
  const hostname = headerField(f?.hostname ?? host, 255);
  const app = f?.program !== undefined ? headerField(f.program, 48) : 'guard';
  const procid = headerField(f?.pid, 128);
  return `<${priority(ev, o)}>1 ${timestamp(ev.time)} ${hostname} ${app} ${procid} ${headerField(ev.source, 32)} ${sd}] ${text(ev.message)}`;
}

/** The SD-PARAMs that are the same for every line of a file: source, path, host, parser, tags. */
function sdConstant(
  source: string,
  path: string,
  host: string,
  parser: string,
  tags: string | null,
): string {
  const t = tags === null ? '' : ` tags="${paramValue(tags)}"`;
  return ` source="${paramValue(source)}" path="${paramValue(path)}" host="${paramValue(host)}" parser="${paramValue(parser)}"${t}`;
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

// ---- batches ------------------------------------------------------------------------------------
//
// The pipeline writes every event as `{"id":"…","time":"…","offset":N,"message":"…"[,"fields":{…}]
// [,"flags":[…]],"source":…}` where everything from `,"source"` on (the tail) is the same for every
// line of a file. RFC 5424 messages are written from those bytes in place: the tail's SD-PARAMs
// once per distinct tail, the message's JSON escapes undone while copying. A line in any other
// shape (other parsers' fields, flags, unusual escapes, RFC 3164) goes through JSON.parse and the
// functions above, which the fast path must match byte for byte (syslog-format.test.ts).

const Q = 0x22;
const BS = 0x5c;
const ascii = (t: string): Buffer => Buffer.from(t, 'latin1');
const ID = ascii('{"id":"');
const TIME = ascii('","time":"');
const OFFSET = ascii('","offset":');
const MESSAGE = ascii(',"message":"');
const FIELDS_HOSTNAME = ascii(',"fields":{"hostname":"');
const PROGRAM = ascii(',"program":"');
const PID = ascii(',"pid":');
const PRIORITY = ascii(',"priority":');
const FACILITY = ascii(',"facility":"');
const SEVERITY = ascii(',"severity":"');
const TAIL = ascii(',"source":"');
const ONE = ascii('>1 ');
const GUARD_DASH = ascii(' guard -');
const OFFSET_PARAM = Lit.of('" offset="');

function at(b: Buffer, p: number, prefix: Buffer): boolean {
  if (p + prefix.length > b.length) return false;
  for (let k = 0; k < prefix.length; k++) if (b[p + k] !== prefix[k]) return false;
  return true;
}

/** Index of the closing quote of a JSON string whose contents start at p and hold no backslash
 *  and only PRINTUSASCII; -1 otherwise (the slow path then decides). */
function plainEnd(b: Buffer, p: number, end: number, max: number): number {
  for (let k = p; k < end && k - p <= max; k++) {
    const c = b[k]!;
    if (c === Q) return k;
    if (c < 0x21 || c > 0x7e || c === BS) return -1;
  }
  return -1;
}

function digitsEnd(b: Buffer, p: number, end: number): number {
  let k = p;
  while (k < end && k - p < 16 && b[k]! >= 0x30 && b[k]! <= 0x39) k++;
  return k > p ? k : -1;
}

/** What is the same for every line of one file's tail, computed once per distinct tail. */
interface TailParts {
  /** ` MSGID ` */
  msgid: Lit;
  /** `" source=… tags=…] ` after the offset */
  sd: Lit;
  /** guard's host as a HOSTNAME, for lines whose fields name none */
  host: Lit;
}

function tailParts(tail: Buffer, o: FormatOptions): TailParts | null {
  let t: EventJson;
  try {
    t = JSON.parse(`{${tail.toString('utf8', 1)}`) as EventJson;
  } catch {
    return null;
  }
  if (t.flags !== undefined || t.fields !== undefined) return null;
  return {
    msgid: Lit.of(` ${headerField(t.source, 32)} `),
    sd: Lit.of(
      `"${sdConstant(text(t.source), text(t.path), text(t.host), text(t.parser), list(t.tags))}] `,
    ),
    host: Lit.of(` ${headerField(t.host, 255)}`),
  };
}

/** Encodes a batch's events; keeps the last tail's parts between batches. */
export class SyslogEncoder {
  private tail: TailParts | null = null;
  /** The bytes `tail` was made from. */
  private readonly tailKey = new TailKey();
  private readonly backslash = new NextBackslash();
  /** Lines written in place (the rest went through JSON.parse): for tests and profiles. */
  inPlace = 0;
  private readonly defaultPri: Buffer;
  private readonly sdOpen: Lit;

  /**
   * @param octetCounted write each message's RFC 6587 octet count in front of it, so that a
   *   stream of frames is a slice of the encoded batch (frameStream) and not a second copy
   */
  constructor(
    private readonly o: FormatOptions,
    private readonly octetCounted = false,
  ) {
    this.defaultPri = ascii(`<${o.facility * 8 + o.severity}`);
    this.sdOpen = Lit.of(`[${o.sdId} id="`);
  }

  /** The batch's messages; with `pool`, written into a buffer from it (give m.buf back once no
   *  message is read any more). */
  encode(body: Buffer, pool?: BufferPool): SyslogMessages {
    let n = 0;
    for (let p = body.indexOf(0x0a); p >= 0; p = body.indexOf(0x0a, p + 1)) n++;
    const starts = new Int32Array(n + 1);
    const ends = new Int32Array(n + 1);
    const frames = this.octetCounted ? new Int32Array(n + 1) : null;
    // messages are about as long as their JSON lines
    const size = body.length + 64 * (n + 1);
    const w = new ByteWriter(pool ? pool.take(size) : size);
    let k = 0;
    for (let s = 0; s < body.length;) {
      let e = body.indexOf(0x0a, s);
      if (e < 0) e = body.length;
      if (e > s) {
        if (frames !== null) {
          frames[k] = w.pos;
          w.ensure(COUNT_ROOM);
          w.pos += COUNT_ROOM;
        }
        starts[k] = w.pos;
        if (this.o.format === 'rfc5424' && this.fast(body, s, e, w)) this.inPlace++;
        else this.slow(body, s, e, w);
        ends[k] = w.pos;
        if (frames !== null) this.count(w, frames[k]!, starts, ends, k);
        k++;
      }
      s = e + 1;
    }
    return {
      buf: w.buf.subarray(0, w.pos),
      starts: starts.subarray(0, k),
      ends: ends.subarray(0, k),
      ...(frames !== null ? { frames: frames.subarray(0, k) } : {}),
    };
  }

  /** `LEN SP` written at `at`, in front of message k (COUNT_ROOM bytes were left there): the
   *  message moved up or down when its count is not three digits long. */
  private count(w: ByteWriter, at: number, starts: Int32Array, ends: Int32Array, k: number): void {
    const len = ends[k]! - starts[k]!;
    let digits = 1;
    for (let x = len; x >= 10; x = Math.floor(x / 10)) digits++;
    const shift = digits + 1 - COUNT_ROOM;
    if (shift !== 0) {
      w.ensure(Math.max(shift, 0));
      w.buf.copyWithin(starts[k]! + shift, starts[k]!, ends[k]!);
      starts[k] = starts[k]! + shift;
      ends[k] = ends[k]! + shift;
      w.pos += shift;
    }
    const end = w.pos;
    w.pos = at;
    w.decimal(len);
    w.byte(0x20);
    w.pos = end;
  }

  private slow(body: Buffer, s: number, e: number, w: ByteWriter): void {
    const line = body.toString('utf8', s, e);
    let ev: EventJson;
    try {
      ev = JSON.parse(line) as EventJson;
    } catch {
      // The pipeline writes these lines itself; this would be guard's bug. Ship it visibly.
      ev = { message: line, flags: ['unencodable'] };
    }
    w.text(this.o.format === 'rfc3164' ? rfc3164(ev, this.o) : rfc5424(ev, this.o));
  }

  /** The in-place path; false (having written nothing) when the line is not in the usual shape. */
  private fast(b: Buffer, s: number, e: number, w: ByteWriter): boolean {
    if (!at(b, s, ID)) return false;
    const idS = s + ID.length;
    const idE = plainEnd(b, idS, e, 200);
    if (idE < 0 || !at(b, idE, TIME)) return false;
    const tS = idE + TIME.length;
    const tE = tS + 24;
    if (tE > e || b[tE] !== Q || b[tE - 1] !== 0x5a /* Z */ || b[tS + 10] !== 0x54 /* T */)
      return false;
    if (!at(b, tE, OFFSET)) return false;
    const oS = tE + OFFSET.length;
    const oE = digitsEnd(b, oS, e);
    if (oE < 0 || !at(b, oE, MESSAGE)) return false;
    // the message: find its end, counting the escapes to undo (only \" \\ \t \/ here)
    const mS = oE + MESSAGE.length;
    // nearly always: no backslash before the first quote, which then ends the message (memchr);
    // else the loop below finds the end and counts the escapes
    let mE = this.backslash.plainEnd(b, mS, e);
    let escapes = 0;
    for (let k = mS; mE < 0 && k < e; k++) {
      const c = b[k]!;
      if (c === Q) {
        mE = k;
        break;
      }
      if (c === BS) {
        const x = b[k + 1];
        if (x !== Q && x !== BS && x !== 0x74 /* t */ && x !== 0x2f /* / */) return false;
        escapes++;
        k++;
      }
    }
    if (mE < 0) return false;
    let p = mE + 1;
    // fields as the syslog parser writes them: hostname, then program, pid, priority, facility, severity
    let hS = -1,
      hE = -1,
      gS = -1,
      gE = -1,
      pidS = -1,
      pidE = -1,
      priS = -1,
      priE = -1;
    if (at(b, p, FIELDS_HOSTNAME)) {
      hS = p + FIELDS_HOSTNAME.length;
      hE = plainEnd(b, hS, e, 255);
      if (hE <= hS) return false; // none, or empty (the slow path writes '-')
      p = hE + 1;
      if (at(b, p, PROGRAM)) {
        gS = p + PROGRAM.length;
        gE = plainEnd(b, gS, e, 48);
        if (gE <= gS) return false;
        p = gE + 1;
      }
      if (at(b, p, PID)) {
        pidS = p + PID.length;
        pidE = digitsEnd(b, pidS, e);
        if (pidE < 0 || pidE - pidS > 10) return false;
        p = pidE;
      }
      if (at(b, p, PRIORITY)) {
        priS = p + PRIORITY.length;
        priE = digitsEnd(b, priS, e);
        if (priE < 0 || priE - priS > 3) return false;
        p = priE;
        for (const key of [FACILITY, SEVERITY]) {
          if (!at(b, p, key)) return false;
          const vE = plainEnd(b, p + key.length, e, 20);
          if (vE < 0) return false;
          p = vE + 1;
        }
      }
      if (b[p] !== 0x7d /* } */) return false;
      p++;
    }
    if (!at(b, p, TAIL)) return false;
    let tail = this.tail;
    if (tail === null || !this.tailKey.matches(b, p, e)) {
      tail = tailParts(b.subarray(p, e), this.o);
      if (tail === null) return false;
      this.tail = tail;
      this.tailKey.set(b, p, e);
    }
    // <PRI>1 TIMESTAMP HOSTNAME APP PROCID MSGID [SD-ID id="…" offset="N" …] MSG
    w.ensure(
      e - s + tail.sd.length + tail.msgid.length + tail.host.length + this.o.sdId.length + 64,
    );
    if (priS >= 0 && digitsValue(b, priS, priE) <= 191) {
      w.byte(0x3c);
      w.bytes(b, priS, priE);
    } else w.bytes(this.defaultPri);
    w.bytes(ONE);
    w.bytes(b, tS, tE);
    if (hS >= 0) {
      w.byte(0x20);
      w.bytes(b, hS, hE);
    } else w.lit(tail.host);
    if (gS >= 0) {
      w.byte(0x20);
      w.bytes(b, gS, gE);
      w.byte(0x20);
      if (pidS >= 0) w.bytes(b, pidS, pidE);
      else w.byte(0x2d);
    } else if (pidS >= 0) {
      w.bytes(GUARD_DASH, 0, 7); // ' guard '
      w.bytes(b, pidS, pidE);
    } else w.bytes(GUARD_DASH);
    w.lit(tail.msgid);
    w.lit(this.sdOpen);
    {
      // room for it was ensured above (the id is part of the line)
      const out = w.buf;
      let o = w.pos;
      for (let k = idS; k < idE; k++) {
        const c = b[k]!;
        if (c === 0x5d /* ] */) out[o++] = BS; // '"' and '\\' cannot be here (plainEnd)
        out[o++] = c;
      }
      w.pos = o;
    }
    w.lit(OFFSET_PARAM);
    w.bytes(b, oS, oE);
    w.lit(tail.sd);
    if (escapes === 0) {
      w.bytes(b, mS, mE);
    } else {
      const out = w.buf;
      let o = w.pos;
      for (let k = mS; k < mE; k++) {
        let c = b[k]!;
        if (c === BS) {
          c = b[++k]!;
          if (c === 0x74) c = 0x09;
        }
        out[o++] = c;
      }
      w.pos = o;
    }
    return true;
  }
}

/** Bytes left in front of a message for its octet count: three digits and a space (messages of
 *  100–999 bytes, nearly all, need no move). */
const COUNT_ROOM = 4;

/** RFC 6587 framing of messages [from, to): octet counting (`LEN SP MSG`) or a trailing LF. */
export function frameStream(
  m: SyslogMessages,
  framing: 'octet_counting' | 'lf',
  from = 0,
  to = m.starts.length,
): Buffer {
  if (to <= from) return Buffer.alloc(0);
  if (framing === 'octet_counting' && m.frames !== undefined)
    return m.buf.subarray(m.frames[from]!, m.ends[to - 1]!); // written so by the encoder
  const w = new ByteWriter(m.ends[to - 1]! - m.starts[from]! + (to - from) * 8 + 16);
  for (let i = from; i < to; i++) {
    const a = m.starts[i]!;
    const z = m.ends[i]!;
    if (framing === 'lf') {
      w.bytes(m.buf, a, z);
      w.byte(0x0a);
    } else {
      w.decimal(z - a);
      w.byte(0x20);
      w.bytes(m.buf, a, z);
    }
  }
  return w.written();
}

const SYSLOG_COMMAND = ascii(' syslog ');

/** RELP `syslog` frames of the messages listed, with the TXNRs listed (relp.ts nextTxnr); with
 *  `pool`, written into a buffer from it (give the frames back once they were written). */
export function relpFrames(
  m: SyslogMessages,
  items: readonly number[],
  txnrs: readonly number[],
  pool?: BufferPool,
): Buffer {
  let size = 16;
  for (const i of items) size += m.ends[i]! - m.starts[i]! + 32;
  const w = new ByteWriter(pool ? pool.take(size) : size);
  for (let j = 0; j < items.length; j++) {
    const i = items[j]!;
    const a = m.starts[i]!;
    const z = m.ends[i]!;
    w.decimal(txnrs[j]!);
    w.bytes(SYSLOG_COMMAND);
    w.decimal(z - a);
    w.byte(0x20);
    w.bytes(m.buf, a, z);
    w.byte(0x0a);
  }
  return w.written();
}
