// Kafka's record batch (magic 2, the format of Produce v3 and later), written straight from the
// batch's NDJSON lines into one Buffer per partition: no object per record, no generic encoder.
//
//   baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 = 2 |
//   crc uint32 (CRC-32C of everything after it) | attributes int16 (bits 0-2: compression) |
//   lastOffsetDelta int32 | baseTimestamp int64 | maxTimestamp int64 | producerId int64 |
//   producerEpoch int16 | baseSequence int32 | records count int32 | records (compressed or not)
//
// A record: length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
// keyLength varint | key | valueLength varint | value | headers count varint. Varints are zigzag
// (signed) base-128, least significant group first.

import { gzip, constants as zlibConstants } from 'node:zlib';
import { promisify } from 'node:util';

const gzipAsync = promisify(gzip);

/** The CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) tables, slicing by 8, in one array:
 *  table j at [256 j, 256 j + 256). */
const POLY = 0x82f63b78;
const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let n = 0; n < 7 * 256; n++) t[n + 256] = (t[n]! >>> 8) ^ t[t[n]! & 0xff]!;
  return t;
})();

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** CRC-32C of buf[start, end): 8 bytes a step, read as two 32-bit words through an Int32Array over
 *  the aligned middle (little-endian hosts; a byte at a time elsewhere), ~2× slicing by 4 bytes. */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  const t = CRC_TABLE;
  let c = 0xffffffff;
  let i = start;
  if (LITTLE_ENDIAN && end - start >= 64) {
    for (; ((buf.byteOffset + i) & 3) !== 0; i++) c = t[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
    const words = ((end - i) >>> 3) << 1;
    const w = new Int32Array(buf.buffer, buf.byteOffset + i, words);
    for (let k = 0; k < words; k += 2) {
      c ^= w[k]!;
      const h = w[k + 1]!;
      c =
        t[1792 + (c & 0xff)]! ^
        t[1536 + ((c >>> 8) & 0xff)]! ^
        t[1280 + ((c >>> 16) & 0xff)]! ^
        t[1024 + (c >>> 24)]! ^
        t[768 + (h & 0xff)]! ^
        t[512 + ((h >>> 8) & 0xff)]! ^
        t[256 + ((h >>> 16) & 0xff)]! ^
        t[h >>> 24]!;
    }
    i += words * 4;
  }
  for (; i < end; i++) c = t[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** a(x)·b(x) modulo the polynomial (bit 31 is x^0: the reflected order). */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(2^k) modulo the polynomial, k = 0..31. */
const X2N: Uint32Array = (() => {
  const t = new Uint32Array(32);
  let p = 0x40000000; // x^1
  for (let k = 0; k < 32; k++) {
    t[k] = p;
    p = multModP(p, p);
  }
  return t;
})();

/** CRC-32C of A‖B from crc32c(A), crc32c(B) and B's length (zlib's crc32_combine, for Castagnoli's
 *  polynomial): a batch's records are checksummed once when encoded ahead, the header at sending. */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  let p = 0x80000000; // x^0
  let k = 3; // x^(8 n): n bytes of zeros
  for (let n = lengthB; n > 0; n = Math.floor(n / 2), k++)
    if (n % 2 === 1) p = multModP(X2N[k & 31]!, p);
  return (multModP(p, crcA) ^ crcB) >>> 0;
}

/** Bytes of the zigzag varint of a 32-bit signed value. */
export function varintSize(v: number): number {
  let u = ((v << 1) ^ (v >> 31)) >>> 0;
  let n = 1;
  while (u >= 0x80) {
    u >>>= 7;
    n++;
  }
  return n;
}

/** Writes the zigzag varint of a 32-bit signed value at `o`; returns the offset after it. */
export function writeVarint(buf: Buffer, o: number, v: number): number {
  let u = ((v << 1) ^ (v >> 31)) >>> 0;
  while (u >= 0x80) {
    buf[o++] = (u & 0x7f) | 0x80;
    u >>>= 7;
  }
  buf[o++] = u;
  return o;
}

/** Reads a zigzag varint (up to 32 bits) at `o`: [value, offset after it]. */
export function readVarint(buf: Buffer, o: number): [number, number] {
  let u = 0;
  let shift = 0;
  for (;;) {
    if (o >= buf.length) throw new RangeError('varint runs past the end');
    const b = buf[o++]!;
    u |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
    if (shift > 28) throw new RangeError('varint longer than 5 bytes');
  }
  return [(u >>> 1) ^ -(u & 1), o];
}

/** The records of one partition's batch: value i is body[starts[i], ends[i]), key keys[i]. */
export interface RecordSource {
  body: Buffer;
  starts: Int32Array;
  ends: Int32Array;
  keys: readonly Buffer[];
  /** Indices of the records, in order. */
  items: readonly number[];
}

export type Compression = 'none' | 'gzip';

export interface BatchHeader {
  timestamp: number; // ms since the epoch, every record's CreateTime
  producerId: bigint; // -1n: not idempotent
  producerEpoch: number; // -1 when not idempotent
  baseSequence: number; // -1 when not idempotent
}

/** A partition batch's records, encoded (and compressed) once, ahead of sending: what follows the
 *  header. The header (producer id, sequence, CRC) is written at each first send (batchHeader). */
export interface EncodedRecords {
  data: Buffer;
  count: number;
  compression: Compression;
  /** CRC-32C of `data`, combined with the header's into the batch's CRC. */
  crc: number;
  /** The pool's buffer `data` lies in (uncompressed records): given back once the broker answered
   *  for them for good (RecordPool.give), or null. */
  backing: Buffer | null;
}

/**
 * Buffers the records are encoded into, reused. Not only to spare the allocation: `copyWithin` into
 * a buffer allocated just before costs microseconds a call for a while (measured on Node 20: 2–7 µs
 * a record into fresh 400 KB buffers, 30–120 ns into kept ones), `Buffer#copy` ~100–300 ns.
 */
export class RecordPool {
  private readonly free: Buffer[] = [];

  /** A buffer of at least `n` bytes. */
  take(n: number): Buffer {
    for (let k = 0; k < this.free.length; k++)
      if (this.free[k]!.length >= n) return this.free.splice(k, 1)[0]!;
    return Buffer.allocUnsafe(Math.ceil(n / 65536) * 65536);
  }

  /** `b` (from take()) is no longer read or written by anyone. */
  give(b: Buffer): void {
    if (this.free.length >= 8) this.free.shift();
    this.free.push(b);
  }
}

export const HEADER_BYTES = 61; // baseOffset .. records count
const CRC_FROM = 21; // attributes start here

/**
 * The records, back to back, uncompressed. Values are moved with `copyWithin` (a third of
 * `Buffer#copy`'s cost a call): the items' span of `body` is copied into the output once, then each
 * value moved from there to its place. When the items are in order and every record's value lands
 * at or before where it lies in the span (the span at the end of the output: records are longer
 * than lines, so the write position never overtakes what is still to be read), the span shares the
 * output's bytes; otherwise it goes after them. A key equal to the one before is moved the same way.
 */
export function encodeRecords(src: RecordSource, pool: RecordPool): [Buffer, Buffer] {
  const { body, starts, ends, keys, items } = src;
  const n = items.length;
  let size = 0;
  let from = Infinity;
  let to = 0;
  let ordered = true;
  let maxLead = -Infinity; // max over k of (value k's place) − (its offset in the span)
  let prev = -1;
  for (let k = 0; k < n; k++) {
    const i = items[k]!;
    const klen = keys[i]!.length;
    const s = starts[i]!;
    const vlen = ends[i]! - s;
    const inner = 3 + varintSize(k) + varintSize(klen) + klen + varintSize(vlen) + vlen; // attrs, ts 0, headers 0
    const head = varintSize(inner) + inner - vlen - 1;
    if (s < from) from = s;
    if (ends[i]! > to) to = ends[i]!;
    if (s < prev) ordered = false;
    prev = s;
    const lead = size + head - s;
    if (lead > maxLead) maxLead = lead;
    size += varintSize(inner) + inner;
  }
  if (n === 0) from = to;
  const span = to - from;
  // In place when every value's place ≤ its offset in the span at size − span: lead_k + from ≤ size − span.
  const shared = ordered && maxLead + from <= size - span;
  const out = pool.take(shared ? size : size + span);
  const base = (shared ? size - span : size) - from; // value i is at base + starts[i]
  body.copy(out, base + from, from, to);
  let o = 0;
  let lastKey: Buffer | null = null;
  let lastKeyAt = 0;
  for (let k = 0; k < n; k++) {
    const i = items[k]!;
    const key = keys[i]!;
    const s = starts[i]!;
    const vlen = ends[i]! - s;
    const inner = 3 + varintSize(k) + varintSize(key.length) + key.length + varintSize(vlen) + vlen;
    o = writeVarint(out, o, inner);
    out[o++] = 0; // attributes
    out[o++] = 0; // timestampDelta 0 (varlong 0)
    o = writeVarint(out, o, k); // offsetDelta
    o = writeVarint(out, o, key.length);
    if (key === lastKey) out.copyWithin(o, lastKeyAt, lastKeyAt + key.length);
    else {
      key.copy(out, o);
      lastKey = key;
    }
    lastKeyAt = o;
    o += key.length;
    o = writeVarint(out, o, vlen);
    out.copyWithin(o, base + s, base + s + vlen);
    o += vlen;
    out[o++] = 0; // no headers
  }
  return [out.subarray(0, size), out];
}

/** The records of `src`, encoded and compressed (gzip in zlib's thread pool, level 1 as the HTTP
 *  sinks), with their CRC. */
export async function encodeRecordsFor(
  src: RecordSource,
  compression: Compression,
  pool: RecordPool,
): Promise<EncodedRecords> {
  const [raw, backing] = encodeRecords(src, pool);
  const count = src.items.length;
  if (compression === 'none') return { data: raw, count, compression, crc: crc32c(raw), backing };
  let data: Buffer;
  try {
    data = await gzipAsync(raw, GZIP);
  } finally {
    pool.give(backing); // zlib is done with it
  }
  return { data, count, compression, crc: crc32c(data), backing: null };
}

/** Level 1 and memLevel 9 as the HTTP sinks. Output in 128 KiB pieces (a 1,000-event batch
 *  compresses to less), not zlib's 16 KiB: each piece is a round trip between the thread pool and
 *  the main thread (zlib's processCallback was ~14 % of the main thread's profile with 16 KiB). */
const GZIP = {
  level: 1,
  memLevel: 9,
  strategy: zlibConstants.Z_DEFAULT_STRATEGY,
  chunkSize: 128 * 1024,
};

/** The batch header of `r` (61 bytes; the records follow it on the wire), with length and CRC. */
export function batchHeader(r: EncodedRecords, h: BatchHeader): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES);
  out.writeBigInt64BE(0n, 0); // baseOffset: the broker assigns it
  out.writeInt32BE(HEADER_BYTES + r.data.length - 12, 8);
  out.writeInt32BE(-1, 12); // partitionLeaderEpoch
  out.writeInt8(2, 16); // magic
  out.writeInt16BE(r.compression === 'gzip' ? 1 : 0, 21);
  out.writeInt32BE(r.count - 1, 23); // lastOffsetDelta
  out.writeBigInt64BE(BigInt(h.timestamp), 27);
  out.writeBigInt64BE(BigInt(h.timestamp), 35);
  out.writeBigInt64BE(h.producerId, 43);
  out.writeInt16BE(h.producerEpoch, 51);
  out.writeInt32BE(h.baseSequence, 53);
  out.writeInt32BE(r.count, 57);
  out.writeUInt32BE(crc32cCombine(crc32c(out, CRC_FROM), r.crc, r.data.length), 17);
  return out;
}

/** The whole record batch of `src` in one Buffer (tests; the sink sends header and records apart). */
export async function encodeRecordBatch(
  src: RecordSource,
  h: BatchHeader & { compression: Compression },
): Promise<Buffer> {
  const r = await encodeRecordsFor(src, h.compression, new RecordPool());
  return Buffer.concat([batchHeader(r, h), r.data]);
}
