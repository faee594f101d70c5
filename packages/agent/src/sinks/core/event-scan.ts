// Reads the parts of an event line the OTLP and Loki encoders need, in place, without JSON.parse: the line
// as the pipeline writes it (pipeline.ts eventJson / the EventEncoder),
//
//   {"id":"…","time":"…","offset":N,"message":"…"[,"fields":{flat}][,"flags":[…]],"source":…}
//
// where `flat` is an object of string and integer values (what the syslog and plain parsers
// give). A line of any other shape (JSON-parser fields, escapes in a key) returns false, and the
// encoder takes the JSON.parse path for it.

import { BodyView } from './byte-writer';

const BACKSLASH = 0x5c;
const QUOTE = 0x22;
const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
/** The pieces of a line's head, between its id, time, offset and message (Loki writes them
 *  escaped around those values). */
export const ID = ascii('{"id":"');
export const TIME = ascii('","time":"');
export const OFFSET = ascii('","offset":');
export const MESSAGE = ascii(',"message":"');
const FIELDS = ascii(',"fields":{');
const FLAGS = ascii(',"flags":[');
const SOURCE = ascii(',"source":');
const SEVERITY = ascii('severity');
const MAX_FIELDS = 32;

function at(body: Buffer, p: number, s: Buffer): boolean {
  if (p + s.length > body.length) return false;
  for (let k = 0; k < s.length; k++) if (body[p + k] !== s[k]) return false;
  return true;
}

/** Where stringClose() saw the first backslash of the string it last read, or -1. */
let escapedAt = -1;

/** Whether the four bytes of w (a little-endian int32) hold a quote or a backslash: a zero byte
 *  in w ^ 0x22222222 or in w ^ 0x5c5c5c5c, found as (x − 0x01010101) & ~x & 0x80808080 finds one
 *  (exact: a byte's borrow reaches its top bit only when it was 0 or a lower one borrowed). */
function special4(w: number): boolean {
  const q = w ^ 0x22222222;
  const b = w ^ 0x5c5c5c5c;
  return ((((q - 0x01010101) & ~q) | ((b - 0x01010101) & ~b)) & 0x80808080) !== 0;
}

/** The first position at or after p where a quote or a backslash may be, four bytes at a time
 *  while four remain before `limit` (then the byte loops take over). */
function plainRun(view: DataView<ArrayBufferLike>, p: number, limit: number): number {
  while (p + 4 <= limit && !special4(view.getInt32(p, true))) p += 4;
  return p;
}

/**
 * The index of the closing quote of the JSON string whose contents start at p (before `limit`),
 * or -1; sets escapedAt. One loop: Buffer#indexOf for the quote and a second loop for a
 * backslash cost more on lines of a few hundred bytes (and indexOf would search on to the end of
 * the batch for a backslash that is not there). The bytes before the first quote or backslash
 * are skipped four at a time.
 */
function stringClose(
  body: Buffer,
  view: DataView<ArrayBufferLike>,
  p: number,
  limit: number,
): number {
  escapedAt = -1;
  p = plainRun(view, p, limit);
  while (p < limit) {
    const c = body[p]!;
    if (c === QUOTE) return p;
    if (c === BACKSLASH) {
      if (escapedAt < 0) escapedAt = p;
      p += 2; // the escaped character, whatever it is, is not the end
    } else p++;
  }
  return -1;
}

/**
 * The first backslash at or after a position of a batch's body, searched once and kept, so that a
 * long JSON string without one (a message, nearly always) can be closed by Buffer#indexOf (memchr:
 * ~13 ns for 90 bytes, where a byte loop takes ~70 ns). One forward search a backslash, and one a
 * batch when it has none. Keyed by the Buffer object: a body's bytes do not change while its lines
 * are encoded (each batch's body is a Buffer of its own, pipeline.ts take()).
 */
export class NextBackslash {
  private body: Buffer | null = null;
  private start = 0;
  /** The first backslash at or after `start` in `body`, or -1: none after it. */
  private at = -1;

  /** The first backslash at or after p in body, or -1. */
  private from(body: Buffer, p: number): number {
    if (body !== this.body || p < this.start || (this.at >= 0 && this.at < p)) {
      this.body = body;
      this.start = p;
      this.at = body.indexOf(BACKSLASH, p);
    }
    return this.at;
  }

  /** The closing quote of the JSON string whose contents start at p, when it comes before `limit`
   *  with no backslash before it (then nothing in the string is escaped); else -1, and the caller
   *  walks the string. */
  plainEnd(body: Buffer, p: number, limit: number): number {
    const q = body.indexOf(QUOTE, p);
    if (q < 0 || q >= limit) return -1;
    const b = this.from(body, p);
    return b < 0 || b > q ? q : -1;
  }
}

/** One scan's result; reused from line to line. */
export class EventScan {
  private readonly backslash = new NextBackslash();
  /** A DataView of the body being scanned (its bytes are read four at a time). */
  private readonly bodies = new BodyView();
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

  /** stringClose() for a string that is usually long and without escapes. */
  private longStringClose(body: Buffer, p: number, limit: number): number {
    const q = this.backslash.plainEnd(body, p, limit);
    if (q < 0) return stringClose(body, this.view, p, limit);
    escapedAt = -1;
    return q;
  }

  idS = 0;
  idE = 0;
  timeS = 0;
  timeE = 0;
  /** The time holds an escape (guard writes none; a hand-made line may). */
  timeEscaped = false;
  msgS = 0;
  msgE = 0;
  msgEscaped = false;
  /** Per field: key start, key end, value start, value end (a string's contents, or an integer's
   *  digits), and 1 for a string (2 for a string with escapes), 0 for an integer. */
  readonly f = new Int32Array(MAX_FIELDS * 5);
  fieldCount = 0;
  /** The field named "severity" (string), or -1. */
  severity = -1;
  flagsS = -1;
  flagsE = -1;
  /** `,"source":…}` — the part the same for every event of a file. */
  tailS = 0;
  tailE = 0;

  /** Scans body[s, e); false when the line is not of the shape above. One pass over the bytes, no
   *  object made: the id and time as lines.ts eventHead() reads them, every JSON string's end and
   *  whether it holds an escape found by the same loop. */
  scan(body: Buffer, s: number, e: number): boolean {
    if (!at(body, s, ID)) return false;
    this.view = this.bodies.of(body);
    this.idS = s + ID.length;
    let p = plainRun(this.view, this.idS, e);
    for (;;) {
      if (p >= e) return false;
      const c = body[p]!;
      if (c === QUOTE) break;
      if (c === BACKSLASH) return false;
      p++;
    }
    this.idE = p;
    if (!at(body, p, TIME)) return false;
    this.timeS = p + TIME.length;
    p = stringClose(body, this.view, this.timeS, e);
    if (p < 0) return false;
    this.timeE = p;
    this.timeEscaped = escapedAt >= 0;
    if (!at(body, p, OFFSET)) return false;
    p += OFFSET.length;
    while (body[p]! >= 0x30 && body[p]! <= 0x39) p++;
    if (!at(body, p, MESSAGE)) return false;
    this.msgS = p + MESSAGE.length;
    this.msgE = this.longStringClose(body, this.msgS, e);
    if (this.msgE < 0) return false;
    this.msgEscaped = escapedAt >= 0;
    p = this.msgE + 1;
    this.fieldCount = 0;
    this.severity = -1;
    if (at(body, p, FIELDS)) {
      p = this.fields(body, p + FIELDS.length, e);
      if (p < 0) return false;
    }
    this.flagsS = -1;
    if (at(body, p, FLAGS)) {
      this.flagsS = p + FLAGS.length - 1;
      let end = this.flagsS;
      while (end < e && body[end] !== 0x5d) end++; // flags are plain words: no ']' inside
      if (end >= e) return false;
      this.flagsE = end + 1;
      p = end + 1;
    }
    if (!at(body, p, SOURCE)) return false;
    this.tailS = p;
    this.tailE = e;
    return true;
  }

  /** A flat object's fields from just after its '{'; the position after its '}', or -1. */
  private fields(body: Buffer, p: number, e: number): number {
    const f = this.f;
    if (body[p] === 0x7d) return p + 1;
    for (;;) {
      if (this.fieldCount === MAX_FIELDS || body[p] !== QUOTE) return -1;
      const ks = p + 1;
      const ke = stringClose(body, this.view, ks, e);
      if (ke < 0 || escapedAt >= 0 || body[ke + 1] !== 0x3a) return -1;
      p = ke + 2;
      const o = this.fieldCount * 5;
      f[o] = ks;
      f[o + 1] = ke;
      if (body[p] === QUOTE) {
        const ve = stringClose(body, this.view, p + 1, e);
        if (ve < 0) return -1;
        f[o + 2] = p + 1;
        f[o + 3] = ve;
        f[o + 4] = escapedAt >= 0 ? 2 : 1;
        if (ke - ks === 8 && at(body, ks, SEVERITY)) this.severity = o;
        p = ve + 1;
      } else {
        const vs = p;
        while (body[p]! >= 0x30 && body[p]! <= 0x39) p++;
        // only non-negative integers here; anything else (floats, objects, true) takes JSON.parse
        if (p === vs || p - vs > 15) return -1;
        f[o + 2] = vs;
        f[o + 3] = p;
        f[o + 4] = 0;
      }
      this.fieldCount++;
      if (body[p] === 0x2c) p++;
      else if (body[p] === 0x7d) return p + 1;
      else return -1;
    }
  }
}
