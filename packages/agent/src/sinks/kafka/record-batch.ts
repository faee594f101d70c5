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

/** The CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) tables, slicing by 4. */
const CRC_TABLES: Uint32Array[] = (() => {
  const t0 = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t0[n] = c >>> 0;
  }
  const tables = [t0];
  for (let j = 1; j < 4; j++) {
    const prev = tables[j - 1]!;
    const t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) t[n] = (prev[n]! >>> 8) ^ t0[prev[n]! & 0xff]!;
    tables.push(t);
  }
  return tables;
})();

/** CRC-32C of buf[start, end). */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  const [t0, t1, t2, t3] = CRC_TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  let c = 0xffffffff;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    c ^= buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    c = t3[c & 0xff]! ^ t2[(c >>> 8) & 0xff]! ^ t1[(c >>> 16) & 0xff]! ^ t0[c >>> 24]!;
  }
  for (; i < end; i++) c = t0[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
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

export interface BatchHeader {
  timestamp: number; // ms since the epoch, every record's CreateTime
  compression: 'none' | 'gzip';
  producerId: bigint; // -1n: not idempotent
  producerEpoch: number; // -1 when not idempotent
  baseSequence: number; // -1 when not idempotent
}

export const HEADER_BYTES = 61; // baseOffset .. records count
const CRC_FROM = 21; // attributes start here

/** The records, back to back, uncompressed, after `headroom` bytes left unwritten. */
export function encodeRecords(src: RecordSource, headroom = 0): Buffer {
  const { body, starts, ends, keys, items } = src;
  let size = 0;
  for (let k = 0; k < items.length; k++) {
    const i = items[k]!;
    const klen = keys[i]!.length;
    const vlen = ends[i]! - starts[i]!;
    const inner = 3 + varintSize(k) + varintSize(klen) + klen + varintSize(vlen) + vlen; // attrs, ts 0, headers 0
    size += varintSize(inner) + inner;
  }
  const out = Buffer.allocUnsafe(headroom + size);
  let o = headroom;
  for (let k = 0; k < items.length; k++) {
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
    o += key.copy(out, o);
    o = writeVarint(out, o, vlen);
    o += body.copy(out, o, s, s + vlen);
    out[o++] = 0; // no headers
  }
  return out;
}

/** The record batch of `src` (gzip in zlib's thread pool, level 1 as the HTTP sinks). */
export async function encodeRecordBatch(src: RecordSource, h: BatchHeader): Promise<Buffer> {
  if (h.compression === 'gzip') {
    const records = await gzipAsync(encodeRecords(src), GZIP);
    const out = Buffer.allocUnsafe(HEADER_BYTES + records.length);
    records.copy(out, HEADER_BYTES);
    return frameRecordBatch(out, src.items.length, h);
  }
  return frameRecordBatch(encodeRecords(src, HEADER_BYTES), src.items.length, h);
}

const GZIP = { level: 1, memLevel: 9, strategy: zlibConstants.Z_DEFAULT_STRATEGY };

/** Fills in the batch header of `out` (records from HEADER_BYTES on), with its length and CRC. */
export function frameRecordBatch(out: Buffer, count: number, h: BatchHeader): Buffer {
  out.writeBigInt64BE(0n, 0); // baseOffset: the broker assigns it
  out.writeInt32BE(out.length - 12, 8);
  out.writeInt32BE(-1, 12); // partitionLeaderEpoch
  out.writeInt8(2, 16); // magic
  out.writeInt16BE(h.compression === 'gzip' ? 1 : 0, 21);
  out.writeInt32BE(count - 1, 23); // lastOffsetDelta
  out.writeBigInt64BE(BigInt(h.timestamp), 27);
  out.writeBigInt64BE(BigInt(h.timestamp), 35);
  out.writeBigInt64BE(h.producerId, 43);
  out.writeInt16BE(h.producerEpoch, 51);
  out.writeInt32BE(h.baseSequence, 53);
  out.writeInt32BE(count, 57);
  out.writeUInt32BE(crc32c(out, CRC_FROM), 17);
  return out;
}
