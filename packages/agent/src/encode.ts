// The agent's hot path: one ASCII line of a syslog or plain source, straight from the bytes read to
// the bytes of its JSON event, with no string and no object per line (the string path costs a
// dozen short-lived strings per line, and the garbage collector was the largest item in the
// profile). It covers the lines nearly every log is made of, and declines the rest, which the
// pipeline then encodes through the parsers (parsers/syslog.ts) as before:
//
//   - a byte that is a control character other than TAB, DEL, or not ASCII (the line needs
//     decodeLine's escaping);
//   - RFC 5424, and syslog lines the header parser would flag 'unparsed'.
//
// What it writes is byte for byte what the string path writes for the same line; a unit test
// compares the two on generated and hand-made lines (test/encode.test.ts). The timestamp rules
// (validation, leap seconds, the UTC hour cache, RFC 3164's year) are the syslog parser's,
// ported to bytes; a 3164 timestamp is resolved by that parser itself, once per distinct second.

import { FACILITIES, SEVERITIES, daysInMonth, hourStart, parse3164Time } from './parsers/syslog';

const SPACE = 0x20;
const COLON = 0x3a;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const DASH = 0x2d;
const BACKSLASH = 0x5c;

/** 0 for the bytes of a host name (letters, digits, '.', '_', '-'), 1 for any other. */
const HOST_CHAR = new Uint8Array(256).map((_, c) =>
  (c >= 0x30 && c <= 0x39) ||
  (c >= 0x41 && c <= 0x5a) ||
  (c >= 0x61 && c <= 0x7a) ||
  c === 0x2e ||
  c === 0x5f ||
  c === DASH
    ? 0
    : 1,
);
/** 1 for a letter or digit: a host name ends in one. */
const ALNUM = new Uint8Array(256).map((_, c) =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ? 1 : 0,
);

/** How a byte goes into a JSON string here: 0 as it is, 1 after a backslash, 2 as \t, 3 not here. */
const CLASS = new Uint8Array(256).map((_, b) =>
  b === 0x09 ? 2 : b < 0x20 || b >= 0x7f ? 3 : b === 0x22 || b === BACKSLASH ? 1 : 0,
);

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const TIME_KEY = ascii('","time":');
const OFFSET_KEY = ascii(',"offset":');
const MESSAGE_KEY = ascii(',"message":"');
const HOSTNAME_KEY = ascii('","fields":{"hostname":"');
const PROGRAM_KEY = ascii('","program":"');
const PID_KEY = ascii(',"pid":');
const PRIORITY_KEY = ascii(',"priority":');
const FACILITY_KEY = FACILITIES.map((f) => ascii(`,"facility":"${f}"`));
const SEVERITY_KEY = SEVERITIES.map((s) => ascii(`,"severity":"${s}"}`));

function digit(b: Uint8Array, i: number): number {
  const c = b[i]! - 0x30; // past the end: undefined - 0x30 is NaN, not a digit
  return c >= 0 && c <= 9 ? c : -1;
}

function two(b: Uint8Array, i: number): number {
  const x = digit(b, i);
  const y = digit(b, i + 1);
  return x < 0 || y < 0 ? -1 : x * 10 + y;
}

/** two() where b[i] and b[i + 1] are known to exist: `>>> 0` makes a byte below '0' a large number. */
function twoIn(b: Uint8Array, i: number): number {
  const x = b[i]! - 0x30;
  const y = b[i + 1]! - 0x30;
  return x >>> 0 > 9 || y >>> 0 > 9 ? -1 : x * 10 + y;
}

function put(out: Uint8Array, o: number, src: Uint8Array): number {
  const n = src.length;
  if (n > 24) {
    out.set(src, o);
    return o + n;
  }
  for (let k = 0; k < n; k++) out[o + k] = src[k]!;
  return o + n;
}

/** "00".."99", two bytes a number: putUint writes two digits a division. */
const PAIRS = Uint8Array.from(
  { length: 200 },
  (_, k) => 0x30 + ((k & 1) === 0 ? ((k >> 1) / 10) | 0 : (k >> 1) % 10),
);

/** The decimal digits of a whole number ≥ 0 (a file offset, a pid). */
function putUint(out: Uint8Array, o: number, n: number): number {
  if (n > 0x7fffffff) return putBigUint(out, o, n);
  let v = n | 0;
  const len =
    v < 100000
      ? v < 100
        ? v < 10
          ? 1
          : 2
        : v < 1000
          ? 3
          : v < 10000
            ? 4
            : 5
      : v < 10000000
        ? v < 1000000
          ? 6
          : 7
        : v < 100000000
          ? 8
          : v < 1000000000
            ? 9
            : 10;
  let k = o + len;
  while (v >= 100) {
    const q = (v / 100) | 0;
    const r = (v - q * 100) << 1;
    out[--k] = PAIRS[r + 1]!;
    out[--k] = PAIRS[r]!;
    v = q;
  }
  if (v >= 10) {
    out[--k] = PAIRS[(v << 1) + 1]!;
    out[--k] = PAIRS[v << 1]!;
  } else out[--k] = 0x30 + v;
  return o + len;
}

/** putUint past 2^31 (offsets of files over 2 GiB). */
function putBigUint(out: Uint8Array, o: number, n: number): number {
  let len = 1;
  for (let p = 10; p <= n; p *= 10) len++;
  for (let k = o + len - 1; k >= o; k--) {
    const q = Math.floor(n / 10);
    out[k] = 0x30 + (n - q * 10);
    n = q;
  }
  return o + len;
}

function put2(out: Uint8Array, o: number, n: number): void {
  const q = (n / 10) | 0;
  out[o] = 0x30 + q;
  out[o + 1] = 0x30 + n - q * 10;
}

/** Up to this many bytes, copyBytes() below copies 8 bytes at a time through a DataView, which
 *  TurboFan compiles to plain loads and stores: a 10- to 64-byte copy in 5-18 ns, where
 *  Uint8Array#copyWithin, a call into C++, costs 18 ns whatever the length. */
const WORDS_MAX = 64;
/** Uint8Array#copyWithin itself: a site that calls it is a direct call, not a property load. */
const COPY_WITHIN = Uint8Array.prototype.copyWithin;

/**
 * n ≥ 8 bytes from[at…] → to[o…] (DataViews of one buffer or two; ranges that do not overlap), 8 at
 * a time; the last move overlaps the one before it instead of a byte loop for the tail. The moves
 * go through float64 values, which keep every bit pattern, signalling NaNs included, in each of
 * V8's tiers (unit tests copy all 65,536 patterns of the top two bytes). Also the wire encoders'
 * (ByteWriter).
 */
export function moveWords(
  to: DataView<ArrayBufferLike>,
  o: number,
  from: DataView<ArrayBufferLike>,
  at: number,
  n: number,
): void {
  let k = 0;
  for (; k + 8 <= n; k += 8) to.setFloat64(o + k, from.getFloat64(at + k, true), true);
  if (k < n) to.setFloat64(o + n - 8, from.getFloat64(at + n - 8, true), true);
}

/**
 * out.copyWithin(o, at, at + n), for ranges that do not overlap (o ≥ at + n or o + n ≤ at), where
 * `view` is a DataView of out (moveWords up to WORDS_MAX bytes).
 */
export function copyBytes(
  out: Uint8Array,
  view: DataView<ArrayBufferLike>,
  o: number,
  at: number,
  n: number,
): number {
  if (n > WORDS_MAX) {
    COPY_WITHIN.call(out, o, at, at + n);
    return o + n;
  }
  if (n >= 8) moveWords(view, o, view, at, n);
  else for (let k = 0; k < n; k++) out[o + k] = out[at + k]!;
  return o + n;
}

/** Runs shorter than this are copied by a JS loop; longer ones by copyWithin or Buffer#copy. */
const COPY_MIN = 16;

/**
 * src[from, to), known to need no escaping, at out[o…]. `at` is where src[0] is in out when both are
 * views of one buffer (then copyBytes, a few ns), else -1; `view` is a DataView of out.
 */
function putRaw(
  out: Buffer,
  view: DataView<ArrayBufferLike>,
  o: number,
  src: Buffer,
  at: number,
  from: number,
  to: number,
): number {
  const n = to - from;
  if (n < COPY_MIN) for (let j = from; j < to; j++) out[o++] = src[j]!;
  else if (at >= 0) o = copyBytes(out, view, o, at + from, n);
  else o += src.copy(out, o, from, to);
  return o;
}

/** src[from, to) as the inside of a JSON string, at out[o…] (as putRaw); -1 at a byte this path
 *  does not take. */
function putEscaped(
  out: Buffer,
  view: DataView<ArrayBufferLike>,
  o: number,
  src: Buffer,
  at: number,
  from: number,
  to: number,
): number {
  let k = from;
  while (k < to) {
    const run = k;
    while (k < to && CLASS[src[k]!] === 0) k++;
    o = putRaw(out, view, o, src, at, run, k);
    if (k === to) break;
    const c = src[k++]!;
    const cl = CLASS[c]!;
    if (cl === 1) {
      out[o++] = BACKSLASH;
      out[o++] = c;
    } else if (cl === 2) {
      out[o++] = BACKSLASH;
      out[o++] = 0x74;
    } else return -1;
  }
  return o;
}

/** The byte strings every event is made of, laid out at the start of the encoder's constant area. */
const KEYS = [
  TIME_KEY,
  OFFSET_KEY,
  MESSAGE_KEY,
  HOSTNAME_KEY,
  PROGRAM_KEY,
  ...FACILITY_KEY,
  ...SEVERITY_KEY,
];
const KEYS_BYTES = KEYS.reduce((n, k) => n + k.length, 0);
/** Room for the cached `","time":"YYYY-MM-DDTHH:` (at most 10 + 17 bytes). */
const ISO_BYTES = 40;
/** Room for the cached `","fields":{"hostname":"HOST","program":"` of a host name of ≤ 64 bytes. */
const HOST_BYTES = 128;
/** Room for a file's `{"id":"KEY:` and its tail (source, path, host, tags): more goes through put(). */
const FILE_CONSTANTS = 16 * 1024;

/** The longest RFC 3164 timestamp the encoder caches, plus one. */
const K3164_BYTES = 32;

export class EventEncoder {
  /**
   * One buffer holds the bytes read (the pipeline reads into input()), the constants events are
   * made of, and the events written: copying between them is copyWithin, a few ns, where a copy
   * between two buffers costs ~50 ns and a JS loop ~1 ns a byte (the message is most of an event).
   *
   *   [0, inCap) input | [inCap, start) constants | [start, out.length) events, written at pos
   *   constants: the keys (KEYS) | the hour putIso writes | the host | the file's tail and idHead
   */
  out: Buffer;
  /** A view of out, for copyBytes(). */
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  start = 0;
  pos = 0;
  /** Epoch ms of the time of the last line of this chunk encoded with one (NaN: none yet). */
  lastTime = NaN;

  private inCap = 0;
  private keyAt: number[] = [];
  /** Where the areas of the constants start (layout()). */
  private isoAt = 0;
  private hostAt = 0;
  private fileAt = 0;
  private nowJson: Uint8Array = ascii('""');
  private now = new Date(0);
  private idHead: Uint8Array = ascii('');
  private tail: Uint8Array = ascii('');
  /** Where the tail is in the constants, idHead right after it; -1 when they did not fit. */
  private tailAt = -1;
  /** line() writes the next event's idHead after each event's tail (one copy): where it did, while
   *  nothing else has been written since (clear(), putString(), begin() and layout() forget it). */
  private headAt = -1;

  // The header of the line being encoded.
  private epoch = 0;
  private hostStart = 0;
  private hostEnd = 0;
  private progStart = 0;
  private progEnd = -1;
  private pid = -1;
  private pri = -1;

  constructor(inputBytes = 0, outputBytes = 256 * 1024) {
    this.out = Buffer.alloc(0);
    this.layout(inputBytes, outputBytes);
  }

  private layout(inputBytes: number, outputBytes: number): void {
    const old = this.out;
    const pending = this.pos - this.start;
    this.inCap = inputBytes;
    this.isoAt = inputBytes + KEYS_BYTES;
    this.hostAt = this.isoAt + ISO_BYTES;
    this.fileAt = this.hostAt + HOST_BYTES;
    const start = this.fileAt + FILE_CONSTANTS;
    this.isoHour = NaN; // its prefix and the host's are in the old buffer
    this.hostLen = -1;
    this.out = Buffer.allocUnsafe(start + Math.max(outputBytes, pending));
    this.view = new DataView(this.out.buffer, this.out.byteOffset, this.out.length);
    let at = inputBytes;
    this.keyAt = KEYS.map((k) => {
      this.out.set(k, at);
      at += k.length;
      return at - k.length;
    });
    if (pending > 0) old.copy(this.out, start, this.start, this.pos);
    this.start = start;
    this.pos = start + pending;
    this.placeFileConstants();
    if (this.src) this.srcAt = this.offsetIn(this.src); // -1 now: the chunk is in the old buffer
  }

  /** The file's tail and idHead, in this order: the end of an event and the start of the next are
   *  one copy. */
  private placeFileConstants(): void {
    const at = this.fileAt;
    const fits = this.tail.length + this.idHead.length <= FILE_CONSTANTS;
    this.tailAt = fits ? at : -1;
    if (fits) {
      this.out.set(this.tail, at);
      this.out.set(this.idHead, at + this.tail.length);
    }
    this.headAt = -1;
  }

  /** The buffer to read `size` bytes into: the input area (grown when needed). Its bytes stay put
   *  until the next call, so a chunk read into it is encoded with copyWithin. */
  input(size: number): Buffer {
    if (size > this.inCap) this.layout(size, this.out.length - this.start);
    return this.out.subarray(0, size);
  }

  /** Makes sure `bytes` more fit at pos (growing the events area: the caller flushes first). */
  reserve(bytes: number): void {
    if (this.pos + bytes > this.out.length)
      this.layout(
        this.inCap,
        Math.max((this.out.length - this.start) * 2, this.pos - this.start + bytes),
      );
  }

  /** Starts a chunk of one file: its `{"id":"KEY:` and its tail (`,"source":…}\n`), and the time
   *  given to lines that have none. */
  begin(now: Date, idHead: Uint8Array, tail: Uint8Array, src?: Buffer): void {
    this.src = src ?? null;
    this.srcAt = src ? this.offsetIn(src) : -1;
    this.now = now;
    this.lastTime = NaN;
    this.nowJson = ascii(JSON.stringify(now.toISOString()));
    this.headAt = -1;
    if (idHead !== this.idHead || tail !== this.tail) {
      this.idHead = idHead;
      this.tail = tail;
      this.placeFileConstants();
    }
  }

  /** Bytes that are enough for the event of a line of `lineBytes` bytes. */
  bound(lineBytes: number): number {
    return 2 * this.idHead.length + this.tail.length + 4 * lineBytes + 256; // idHead: this event's and the next's
  }

  /** Forgets the events written (they have been handed on): the next is written at start. */
  clear(): void {
    this.pos = this.start;
    this.headAt = -1;
  }

  /** Writes an event the string path made (UTF-8) at pos; reserve(3 * json.length) first. */
  putString(json: string): void {
    this.pos += this.out.write(json, this.pos, 'utf8');
    this.headAt = -1;
  }

  // The host name of the line before and the constant made of it (one copy where there were three).
  private hostLen = -1;
  private readonly hostBytes = Buffer.alloc(64);

  /** True when the line's host is the cached one, caching it when it is not (and is short and
   *  clean: only then is this asked). */
  private sameHost(src: Buffer): boolean {
    const n = this.hostEnd - this.hostStart;
    if (n === this.hostLen) {
      let k = 0;
      while (k < n && src[this.hostStart + k] === this.hostBytes[k]) k++;
      if (k === n) return true;
    }
    if (n > this.hostBytes.length) return false;
    this.hostLen = n;
    src.copy(this.hostBytes, 0, this.hostStart, this.hostEnd);
    let at = this.hostAt;
    this.out.set(HOSTNAME_KEY, at);
    at += HOSTNAME_KEY.length;
    src.copy(this.out, at, this.hostStart, this.hostEnd);
    this.out.set(PROGRAM_KEY, at + n);
    return true;
  }

  // The chunk's buffer given to begin(), and where it is in out (-1: not in it).
  private src: Buffer | null = null;
  private srcAt = -1;

  /** Where src[0] is in out when both are views of one buffer, else -1. (`.buffer` is a call into
   *  C++, 30 ns: once a chunk, not once a line.) */
  private offsetIn(src: Buffer): number {
    return src.buffer === this.out.buffer ? src.byteOffset - this.out.byteOffset : -1;
  }

  /** Copies `n` bytes of the constants from `at` to o. */
  private copyConst(o: number, at: number, n: number): number {
    return copyBytes(this.out, this.view, o, at, n);
  }

  private key(o: number, i: number): number {
    return this.copyConst(o, this.keyAt[i]!, KEYS[i]!.length);
  }

  /** src[from, to) as the inside of a JSON string at o (putRaw when the caller knows it clean). */
  private putText(
    o: number,
    src: Buffer,
    at: number,
    from: number,
    to: number,
    clean: boolean,
  ): number {
    return clean
      ? putRaw(this.out, this.view, o, src, at, from, to)
      : putEscaped(this.out, this.view, o, src, at, from, to);
  }

  /** The event's idHead at pos: written already after the event before, or copied now. */
  private putIdHead(): number {
    if (this.pos === this.headAt) return this.pos + this.idHead.length;
    return this.tailAt >= 0
      ? this.copyConst(this.pos, this.tailAt + this.tail.length, this.idHead.length)
      : put(this.out, this.pos, this.idHead);
  }

  /**
   * Writes the event of line src[ls, le) (its '\n' at le, a CRLF's CR dropped by the caller), read at
   * file offset `offset`, at pos, with syslog's fields when `syslog`. Returns false, having written
   * nothing, when the line is not one this path takes. reserve(bound(le - ls)) first. `clean`: the
   * caller has checked that the line is ASCII and that none of its bytes needs escaping in JSON (one
   * scan of many lines); then they are copied as they are.
   */
  line(
    src: Buffer,
    ls: number,
    le: number,
    offset: number,
    syslog: boolean,
    clean = false,
  ): boolean {
    if (syslog && !this.header(src, ls, le)) return false;
    const out = this.out;
    const at = src === this.src ? this.srcAt : this.offsetIn(src);
    let o = this.putIdHead();
    const digits = o;
    o = putUint(out, o, offset);
    const digitsEnd = o;
    if (syslog) {
      o = this.putIso(out, o, this.epoch); // ","time":"…
      this.lastTime = this.epoch;
    } else {
      o = this.key(o, 0); // ","time":
      o = put(out, o, this.nowJson);
    }
    o = this.key(o, 1); // ,"offset":
    for (let k = digits; k < digitsEnd; k++) out[o++] = out[k]!;
    o = this.key(o, 2); // ,"message":"
    o = this.putText(o, src, at, ls, le, clean);
    if (o < 0) return false;
    if (syslog) {
      const prog = this.progEnd >= 0;
      if (clean && this.sameHost(src)) {
        // ","fields":{"hostname":"HOST[","program":"]
        o = this.copyConst(
          o,
          this.hostAt,
          HOSTNAME_KEY.length + this.hostLen + (prog ? PROGRAM_KEY.length : 0),
        );
      } else {
        o = this.key(o, 3); // ","fields":{"hostname":"
        o = this.putText(o, src, at, this.hostStart, this.hostEnd, clean);
        if (o < 0) return false;
        if (prog) o = this.key(o, 4); // ","program":"
      }
      if (prog) {
        o = this.putText(o, src, at, this.progStart, this.progEnd, clean);
        if (o < 0) return false;
        out[o++] = 0x22;
        if (this.pid >= 0) o = putUint(out, put(out, o, PID_KEY), this.pid);
      } else {
        out[o++] = 0x22;
      }
      if (this.pri >= 0) {
        o = putUint(out, put(out, o, PRIORITY_KEY), this.pri);
        o = this.key(o, 5 + (this.pri >> 3));
        o = this.key(o, 5 + FACILITY_KEY.length + (this.pri & 7));
      } else {
        out[o++] = 0x7d; // }
      }
    } else {
      out[o++] = 0x22;
    }
    if (this.tailAt >= 0) {
      // the tail and the next event's idHead
      this.pos =
        this.copyConst(o, this.tailAt, this.tail.length + this.idHead.length) - this.idHead.length;
      this.headAt = this.pos;
    } else {
      this.pos = put(out, o, this.tail);
    }
    return true;
  }

  // ---- syslog's header, as parsers/syslog.ts parseSyslog reads it ------------------------------

  /** [<PRI>] timestamp host [tag[pid]:] …; false for 5424 and for what the parser calls unparsed. */
  private header(b: Buffer, ls: number, le: number): boolean {
    let i = ls;
    this.pri = -1;
    if (b[i] === 0x3c) {
      // '<'
      let j = i + 1;
      let v = 0;
      let dd: number;
      while ((dd = digit(b, j)) >= 0 && j <= i + 3) {
        v = v * 10 + dd;
        j++;
      }
      if (j === i + 1 || j > i + 4 || b[j] !== 0x3e || v > 191) return false;
      this.pri = v;
      i = j + 1;
      const v1 = digit(b, i);
      if (v1 > 0 && (b[i + 1] === SPACE || (digit(b, i + 1) >= 0 && b[i + 2] === SPACE)))
        return false; // RFC 5424
    }
    const c = b[i]!;
    if (c === SPACE) return false; // `<13> Mar  7 …`: the parser's
    const j = c >= 0x30 && c <= 0x39 ? this.time3339(b, i, le) : this.time3164(b, i, le);
    if (j < 0 || j >= le || b[j] !== SPACE) return false;
    return this.hostTag(b, j + 1, le);
  }

  private hostTag(b: Uint8Array, i: number, n: number): boolean {
    this.progEnd = -1;
    this.pid = -1;
    let hEnd = i;
    let bad = 0;
    for (let c = 0; hEnd < n && (c = b[hEnd]!) !== SPACE; hEnd++) bad |= HOST_CHAR[c]!;
    // Not a host name as the parser's isHostName has it (or an IPv6 address): the parser's.
    if (hEnd === i || bad !== 0 || ALNUM[b[hEnd - 1]!] !== 1) return false;
    this.hostStart = i;
    this.hostEnd = hEnd;
    if (hEnd >= n) return true;
    const t = hEnd + 1;
    let j = t;
    let c = 0;
    while (j < n && (c = b[j]!) !== SPACE && c !== COLON && c !== LBRACKET) j++;
    if (j > t && j < n && c === LBRACKET) {
      let k = j + 1;
      let pid = 0;
      let dd: number;
      while (k < n && (dd = digit(b, k)) >= 0 && k - j <= 10) {
        pid = pid * 10 + dd;
        k++;
      }
      if (k > j + 1 && k < n && b[k] === RBRACKET) {
        k++;
        if (k < n && b[k] === COLON) k++;
        if (k < n && b[k] !== SPACE) return true; // `prog[1]x`: no tag
        this.progStart = t;
        this.progEnd = j;
        this.pid = pid;
      }
    } else if (j > t && c === COLON && j < n) {
      this.progStart = t;
      this.progEnd = j;
    }
    return true;
  }

  // RFC 3339: the same checks and the same UTC-hour cache as parse3339Time.
  private cY = -1;
  private cMo = -1;
  private cD = -1;
  private cH = -1;
  private cOff = 0;
  private cBase = 0;

  private time3339(b: Uint8Array, i: number, le: number): number {
    // The shortest timestamp, `YYYY-MM-DDTHH:MM:SSZ`, must be followed by a space before le (header
    // checks that): so bytes i … i + 19 are the line's, and the fixed fields are read unchecked.
    if (i + 20 >= le) return -1;
    const y1 = twoIn(b, i);
    const y2 = twoIn(b, i + 2);
    if (y1 < 0 || y2 < 0 || b[i + 4] !== DASH || b[i + 7] !== DASH) return -1;
    const t = b[i + 10];
    if ((t !== 0x54 && t !== 0x74) || b[i + 13] !== COLON || b[i + 16] !== COLON) return -1;
    const year = y1 * 100 + y2;
    const mo = twoIn(b, i + 5);
    const d = twoIn(b, i + 8);
    const h = twoIn(b, i + 11);
    const mi = twoIn(b, i + 14);
    let sec = twoIn(b, i + 17);
    if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(year, mo - 1)) return -1;
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60) return -1;
    if (sec === 60) sec = 59;
    let j = i + 19;
    let ms = 0;
    if (b[j] === 0x2e) {
      j++;
      const fracStart = j;
      let dd: number;
      while ((dd = digit(b, j)) >= 0) {
        if (j - fracStart < 3) ms = ms * 10 + dd;
        j++;
      }
      const n = j - fracStart;
      if (n === 0) return -1;
      if (n < 3) ms *= n === 1 ? 100 : 10;
    }
    let offMin: number;
    const z = b[j];
    if (z === 0x5a || z === 0x7a) {
      offMin = 0;
      j++;
    } else if (z === 0x2b || z === DASH) {
      const oh = two(b, j + 1);
      const om = two(b, j + 4);
      if (oh < 0 || oh > 23 || om < 0 || om > 59 || b[j + 3] !== COLON) return -1;
      offMin = (z === DASH ? -1 : 1) * (oh * 60 + om);
      j += 6;
    } else {
      return -1;
    }
    if (
      year !== this.cY ||
      mo !== this.cMo ||
      d !== this.cD ||
      h !== this.cH ||
      offMin !== this.cOff
    ) {
      this.cY = year;
      this.cMo = mo;
      this.cD = d;
      this.cH = h;
      this.cOff = offMin;
      this.cBase = hourStart(year, mo, d, h, offMin);
    }
    this.epoch = this.cBase + mi * 60000 + sec * 1000 + ms;
    return this.epoch >= -8.64e15 && this.epoch <= 8.64e15 ? j : -1;
  }

  // RFC 3164: `Mmm dd HH:MM:SS` resolved by the syslog parser (year inference), cached per second.
  private k3164 = Buffer.alloc(K3164_BYTES);
  private k3164Len = 0;
  private k3164Now = NaN;
  private k3164Epoch = NaN;
  private readonly t3164 = { time: '' };

  private time3164(b: Buffer, i: number, le: number): number {
    const n = this.k3164Len;
    if (n > 0 && this.k3164Now === this.now.getTime() && i + n <= le) {
      let same = true;
      for (let k = 0; k < n && same; k++) same = b[i + k] === this.k3164[k];
      if (same) {
        this.epoch = this.k3164Epoch;
        return i + n;
      }
    }
    // `Mmm dd YYYY HH:MM:SS.ffffff:` is 28 bytes; a longer fraction goes to the parser.
    const head = b.toString('latin1', i, Math.min(i + K3164_BYTES, le));
    const after = parse3164Time(head, 0, this.now, this.t3164);
    if (after < 0 || after >= K3164_BYTES) return -1;
    this.k3164.set(b.subarray(i, i + after));
    this.k3164Len = after;
    this.k3164Now = this.now.getTime();
    this.k3164Epoch = this.epoch = Date.parse(this.t3164.time);
    return i + after;
  }

  // `","time":"` and ISO 8601 in UTC as toISOString() writes it: `","time":"YYYY-MM-DDTHH:` of the
  // UTC hour kept in the constants area (as isoUtc in parsers/syslog.ts keeps it), then
  // `MM:SS.mmmZ"` written digit by digit.
  private isoHour = NaN;
  private isoLen = 0;

  private putIso(out: Buffer, o: number, epoch: number): number {
    const at = this.isoAt;
    let rem = epoch - this.isoHour;
    if (!(rem >= 0 && rem < 3600000)) {
      this.isoHour = epoch - (((epoch % 3600000) + 3600000) % 3600000);
      const iso = new Date(this.isoHour).toISOString();
      this.isoLen = out.write('","time":"' + iso.slice(0, iso.length - 10), at, 'latin1');
      rem = epoch - this.isoHour;
    }
    o = this.copyConst(o, at, this.isoLen);
    let r = rem | 0; // < 3,600,000: integer divisions by constants from here on
    const min = (r / 60000) | 0;
    r -= min * 60000;
    const sec = (r / 1000) | 0;
    const ms = r - sec * 1000;
    put2(out, o, min);
    out[o + 2] = COLON;
    put2(out, o + 3, sec);
    out[o + 5] = 0x2e; // .
    const h = (ms / 100) | 0;
    out[o + 6] = 0x30 + h;
    put2(out, o + 7, ms - h * 100);
    out[o + 9] = 0x5a; // Z
    out[o + 10] = 0x22;
    return o + 11;
  }
}
