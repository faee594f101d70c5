// A growable output buffer for the wire encoders: bytes copied in, no string per event. The core
// keeps a ring of them for whole-batch bodies (http-core.ts): a fresh ~1 MiB buffer per batch cost
// more than the encoding itself (0.47 → 1.33 µs an event, measured on the elasticsearch encoder).

import { moveWords } from '../../encode';

/** Up to this many bytes, bytes() copies 8 at a time through DataViews (plain loads and stores
 *  once TurboFan compiled it: ~17 ns for 16 bytes, ~66 for 100); Buffer#copy costs 50–90 ns at any
 *  length (it makes a Uint8Array view of the source each call), the byte loop 1.5 ns a byte. */
const WORDS_MAX = 128;
/** A source this long is a batch body, worth a DataView of its own. */
const BODY_MIN = 4096;

/**
 * A constant an encoder writes for every event (a JSON key with its punctuation, a file's encoded
 * attributes), with a DataView of its bytes made once, so that ByteWriter.lit() copies it 8 bytes
 * at a time: ~5–10 ns for 26 bytes, where the byte loop took ~40 and Buffer#copy 50–90.
 */
export class Lit {
  readonly view: DataView<ArrayBufferLike>;

  constructor(readonly buf: Buffer) {
    this.view = viewOf(buf);
  }

  get length(): number {
    return this.buf.length;
  }

  static of(text: string): Lit {
    return new Lit(Buffer.from(text, 'utf8'));
  }
}

/** A DataView of all of b. */
function viewOf(b: Buffer): DataView<ArrayBufferLike> {
  return new DataView(b.buffer, b.byteOffset, b.length);
}

/** A DataView of the batch body last asked for, made once a body (it keeps that body from the
 *  garbage collector until the next: a batch's bytes, ≤ 1 MiB). */
export class BodyView {
  private body: Buffer | null = null;
  private view: DataView<ArrayBufferLike> | null = null;

  /** Whether body is the one viewed now. */
  is(body: Buffer): boolean {
    return body === this.body;
  }

  of(body: Buffer): DataView<ArrayBufferLike> {
    if (body !== this.body) {
      this.body = body;
      this.view = viewOf(body);
    }
    return this.view!;
  }
}

/**
 * Buffers given back once nothing refers to them any more, for the next batch. A new buffer of a
 * few hundred KiB a batch is memory outside V8's heap, and that memory growing is what starts full
 * garbage collections: the syslog sink's encoded batches and RELP frames took 7–10 % of the agent
 * in collections where the HTTP sinks, writing into a ring, took 3 %. Only a buffer whose bytes
 * are no longer read (answered, or written to the kernel) may be given back.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  /** @param keep buffers kept at most; more given back are left to the garbage collector */
  constructor(private readonly keep = 8) {}

  /** A buffer of at least `size` bytes: a free one that is large enough, else a new one (in whole
   *  64 KiB, so that it fits the next batches too). Its bytes are whatever was written before. */
  take(size: number): Buffer {
    const free = this.free;
    for (let i = free.length - 1; i >= 0; i--) {
      const b = free[i]!;
      if (b.length >= size) {
        free[i] = free[free.length - 1]!;
        free.pop();
        return b;
      }
    }
    return Buffer.allocUnsafe(Math.ceil(size / 65536) * 65536);
  }

  /**
   * Gives back a buffer from take(), or one a ByteWriter grew into, or a piece of one that starts
   * at its first byte (ByteWriter#written()), once nothing reads any of its bytes any more. Buffers
   * under 64 KiB are not kept: Node hands out smaller ones from a slab that other buffers share.
   */
  give(b: Buffer): void {
    const whole = b.buffer.byteLength;
    if (this.free.length >= this.keep || b.byteOffset !== 0 || whole < 65536) return;
    this.free.push(b.length === whole ? b : Buffer.from(b.buffer, 0, whole));
  }

  /** Buffers free now (tests). */
  get size(): number {
    return this.free.length;
  }
}

/** The number of decimal digits of an integer in [0, 10^8). */
function decimalDigits(x: number): number {
  if (x < 10_000) return x < 10 ? 1 : x < 100 ? 2 : x < 1000 ? 3 : 4;
  return x < 100_000 ? 5 : x < 1_000_000 ? 6 : x < 10_000_000 ? 7 : 8;
}

/** The digits of x (an integer in [0, 2^31)) into b[from, to), right-aligned, zeros in front. */
function putDigits(b: Buffer, from: number, to: number, x: number): void {
  x |= 0;
  while (to > from) {
    const q = (x / 10) | 0;
    b[--to] = 0x30 + x - q * 10;
    x = q;
  }
}

export class ByteWriter {
  buf: Buffer;
  pos = 0;
  /** A DataView of buf, and of the large source bytes() last copied from (a batch body: an
   *  encoder copies many pieces of it, between constants of its own, which are copied as before). */
  private view: DataView<ArrayBufferLike>;
  private readonly body = new BodyView();

  /** @param initial a size to allocate, or a buffer to write into (from a BufferPool). */
  constructor(initial: number | Buffer = 64 * 1024) {
    this.buf = typeof initial === 'number' ? Buffer.allocUnsafe(initial) : initial;
    this.view = viewOf(this.buf);
  }

  reset(): void {
    this.pos = 0;
  }

  ensure(room: number): void {
    if (this.pos + room <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + room));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
    this.view = viewOf(next);
  }

  bytes(src: Buffer, start = 0, end = src.length): void {
    const n = end - start;
    this.ensure(n);
    const o = this.pos;
    if (n >= 8 && n <= WORDS_MAX && (this.body.is(src) || src.length >= BODY_MIN)) {
      moveWords(this.view, o, this.body.of(src), start, n);
    } else if (n >= 32) {
      src.copy(this.buf, o, start, end);
    } else {
      const b = this.buf;
      for (let k = 0; k < n; k++) b[o + k] = src[start + k]!;
    }
    this.pos = o + n;
  }

  /** A constant's bytes. */
  lit(c: Lit): void {
    const n = c.buf.length;
    this.ensure(n);
    const o = this.pos;
    if (n >= 8) moveWords(this.view, o, c.view, 0, n);
    else {
      const b = this.buf;
      const src = c.buf;
      for (let k = 0; k < n; k++) b[o + k] = src[k]!;
    }
    this.pos = o + n;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** UTF-8 of s. */
  text(s: string): void {
    this.ensure(s.length * 3);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  /** The decimal digits of a whole number n ≥ 0 (a length, a time in ms), without a string; with
   *  `width`, zero-padded to at least that many digits. */
  decimal(n: number, width = 1): void {
    if (!(n >= 0 && n < 1e15 && Number.isInteger(n))) {
      this.text(String(n).padStart(width, '0'));
      return;
    }
    // Below 10^8 the digits come from int32 arithmetic; above, from two halves that each fit one
    // (a 13-digit time in ms took 26 float divisions: ~2 % of OTLP JSON's agent).
    const hi = n < 1e8 ? 0 : Math.floor(n / 1e8);
    const lo = n - hi * 1e8; // exact: both below 2^53
    const digits = Math.max(hi > 0 ? decimalDigits(hi) + 8 : decimalDigits(lo), width);
    this.ensure(digits);
    const b = this.buf;
    const start = this.pos;
    const end = start + digits;
    if (hi > 0) {
      putDigits(b, end - 8, end, lo);
      putDigits(b, start, end - 8, hi);
    } else putDigits(b, start, end, lo);
    this.pos = end;
  }

  /** Base-128 varint of a whole number below 2^53 (protobuf). */
  varint(n: number): void {
    this.ensure(10);
    const b = this.buf;
    while (n > 0x7f) {
      b[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    b[this.pos++] = n;
  }

  /** Little-endian 64-bit from a bigint (protobuf fixed64). */
  fixed64(n: bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(n, this.pos);
    this.pos += 8;
  }

  /** What was written, not copied: valid until the writer is reset. */
  written(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/**
 * The bytes of a file's tail (its source, path, host…, the same for all its lines), kept to know
 * whether the next line has the same one and what was encoded from it can be used again: compared
 * for every line, 4 bytes at a time through DataViews (the line's batch body's made once a body).
 * Buffer#compare with offsets took ~70–120 ns a call, most of it around the call into C++; a byte
 * loop ~2.5 ns a byte (~200 ns for a tail of 80); this ~50.
 */
export class TailKey {
  private key = Buffer.alloc(0);
  private keyView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private readonly body = new BodyView();

  /** The bytes kept (a copy). */
  get bytes(): Buffer {
    return this.key;
  }

  /** body[s, e) equals the bytes kept. */
  matches(body: Buffer, s: number, e: number): boolean {
    const n = e - s;
    const key = this.key;
    if (n !== key.length) return false;
    const a = this.body.of(body);
    const b = this.keyView;
    let k = 0;
    for (; k + 4 <= n; k += 4) if (a.getInt32(s + k) !== b.getInt32(k)) return false;
    for (; k < n; k++) if (body[s + k] !== key[k]) return false;
    return true;
  }

  /** Keeps body[s, e). */
  set(body: Buffer, s: number, e: number): void {
    this.key = Buffer.from(body.subarray(s, e));
    this.keyView = viewOf(this.key);
  }
}

/** The value of the decimal digits b[from, to) (the caller found them; at most 15). */
export function digitsValue(b: Buffer, from: number, to: number): number {
  let n = 0;
  for (let k = from; k < to; k++) n = n * 10 + b[k]! - 0x30;
  return n;
}

export function varintSize(n: number): number {
  let size = 1;
  while (n > 0x7f) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}
