// The few Kafka requests the producer needs, encoded and decoded from the protocol's specification
// (kafka.apache.org/protocol): request header v1, response header v0, ApiVersions v0 first on
// every connection, then versions that every broker since Kafka 1.0 answers and Kafka 4.0 still
// does: Produce v3 (record batches v2), Metadata v1-v4 (the highest the broker has; 4.0 dropped
// v0-v3, librdkafka's mock has only v0-v2), InitProducerId v0, SaslHandshake v1, SaslAuthenticate v1.

export const API = {
  produce: 0,
  metadata: 3,
  apiVersions: 18,
  saslHandshake: 17,
  initProducerId: 22,
  saslAuthenticate: 36,
} as const;

/** Kafka's error codes that the producer acts on, by name; the rest are named by errorName(). */
const ERROR_NAMES: Record<number, string> = {
  [-1]: 'UNKNOWN_SERVER_ERROR',
  1: 'OFFSET_OUT_OF_RANGE',
  2: 'CORRUPT_MESSAGE',
  3: 'UNKNOWN_TOPIC_OR_PARTITION',
  4: 'INVALID_FETCH_SIZE',
  5: 'LEADER_NOT_AVAILABLE',
  6: 'NOT_LEADER_OR_FOLLOWER',
  7: 'REQUEST_TIMED_OUT',
  8: 'BROKER_NOT_AVAILABLE',
  9: 'REPLICA_NOT_AVAILABLE',
  10: 'MESSAGE_TOO_LARGE',
  13: 'NETWORK_EXCEPTION',
  14: 'COORDINATOR_LOAD_IN_PROGRESS',
  15: 'COORDINATOR_NOT_AVAILABLE',
  17: 'INVALID_TOPIC_EXCEPTION',
  18: 'RECORD_LIST_TOO_LARGE',
  19: 'NOT_ENOUGH_REPLICAS',
  20: 'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  21: 'INVALID_REQUIRED_ACKS',
  29: 'TOPIC_AUTHORIZATION_FAILED',
  31: 'CLUSTER_AUTHORIZATION_FAILED',
  33: 'UNSUPPORTED_SASL_MECHANISM',
  34: 'ILLEGAL_SASL_STATE',
  35: 'UNSUPPORTED_VERSION',
  43: 'UNSUPPORTED_FOR_MESSAGE_FORMAT',
  44: 'POLICY_VIOLATION',
  45: 'OUT_OF_ORDER_SEQUENCE_NUMBER',
  46: 'DUPLICATE_SEQUENCE_NUMBER',
  47: 'INVALID_PRODUCER_EPOCH',
  53: 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  56: 'KAFKA_STORAGE_ERROR',
  58: 'SASL_AUTHENTICATION_FAILED',
  59: 'UNKNOWN_PRODUCER_ID',
  74: 'FENCED_LEADER_EPOCH',
  87: 'INVALID_RECORD',
};

export function errorName(code: number): string {
  return ERROR_NAMES[code] ?? `KAFKA_ERROR_${code}`;
}

/** A request body, written field by field into a growing buffer. */
export class Writer {
  private buf = Buffer.allocUnsafe(256);
  private o = 0;

  private room(n: number): void {
    if (this.o + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.o + n));
    this.buf.copy(next, 0, 0, this.o);
    this.buf = next;
  }
  int8(v: number): this {
    this.room(1);
    this.o = this.buf.writeInt8(v, this.o);
    return this;
  }
  int16(v: number): this {
    this.room(2);
    this.o = this.buf.writeInt16BE(v, this.o);
    return this;
  }
  int32(v: number): this {
    this.room(4);
    this.o = this.buf.writeInt32BE(v, this.o);
    return this;
  }
  int64(v: bigint): this {
    this.room(8);
    this.o = this.buf.writeBigInt64BE(v, this.o);
    return this;
  }
  /** STRING, or NULLABLE_STRING when null. */
  string(s: string | null): this {
    if (s === null) return this.int16(-1);
    const n = Buffer.byteLength(s);
    this.int16(n);
    this.room(n);
    this.o += this.buf.write(s, this.o);
    return this;
  }
  /** BYTES, or NULLABLE_BYTES when null. */
  bytes(b: Buffer | null): this {
    if (b === null) return this.int32(-1);
    this.int32(b.length);
    this.room(b.length);
    this.o += b.copy(this.buf, this.o);
    return this;
  }
  done(): Buffer {
    return this.buf.subarray(0, this.o);
  }
}

/** A response body, read field by field; a short body throws. */
export class Reader {
  constructor(
    private readonly buf: Buffer,
    public o = 0,
  ) {}

  private need(n: number): void {
    if (this.o + n > this.buf.length)
      throw new RangeError(`Kafka response ends early (at byte ${this.o} of ${this.buf.length})`);
  }
  int8(): number {
    this.need(1);
    return this.buf.readInt8(this.o++);
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.o);
    this.o += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.o);
    this.o += 4;
    return v;
  }
  int64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.o);
    this.o += 8;
    return v;
  }
  string(): string | null {
    const n = this.int16();
    if (n < 0) return null;
    this.need(n);
    const s = this.buf.toString('utf8', this.o, this.o + n);
    this.o += n;
    return s;
  }
  bytes(): Buffer | null {
    const n = this.int32();
    if (n < 0) return null;
    this.need(n);
    const b = this.buf.subarray(this.o, this.o + n);
    this.o += n;
    return b;
  }
  array<T>(item: (r: this) => T): T[] {
    const n = this.int32();
    if (n < 0) return [];
    if (n > this.buf.length - this.o) throw new RangeError(`Kafka response array of ${n} items`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(item(this));
    return out;
  }
  get remaining(): number {
    return this.buf.length - this.o;
  }
}

/** A request frame: size, header v1 (api key, version, correlation id, client id), body. */
export function requestFrame(
  apiKey: number,
  version: number,
  correlationId: number,
  clientId: string,
  body: Buffer | readonly Buffer[],
): Buffer[] {
  const parts = Array.isArray(body) ? (body as Buffer[]) : [body as Buffer];
  const header = new Writer()
    .int32(0)
    .int16(apiKey)
    .int16(version)
    .int32(correlationId)
    .string(clientId)
    .done();
  let size = header.length - 4;
  for (const p of parts) size += p.length;
  header.writeInt32BE(size, 0);
  return [header, ...parts];
}

export interface MetadataBroker {
  nodeId: number;
  host: string;
  port: number;
}
export interface MetadataTopic {
  error: number;
  name: string;
  partitions: { error: number; partition: number; leader: number }[];
}
export interface Metadata {
  brokers: MetadataBroker[];
  topics: MetadataTopic[];
}

/** ApiVersions v0's answer: each API key's [min, max] version. */
export function apiVersionsResponse(body: Buffer): {
  error: number;
  versions: Map<number, [number, number]>;
} {
  const r = new Reader(body);
  const error = r.int16();
  const versions = new Map<number, [number, number]>();
  if (error === 0) r.array((x) => versions.set(x.int16(), [x.int16(), x.int16()]));
  return { error, versions };
}

/** Metadata v1-v4 for `topics`. */
export function metadataRequest(version: number, topics: readonly string[]): Buffer {
  const w = new Writer().int32(topics.length);
  for (const t of topics) w.string(t);
  // v4: allow_auto_topic_creation false: a typo in topic makes no topic (v1-v3: the broker's
  // auto.create.topics.enable decides)
  if (version >= 4) w.int8(0);
  return w.done();
}

export function metadataResponse(version: number, body: Buffer): Metadata {
  const r = new Reader(body);
  if (version >= 3) r.int32(); // throttle_time_ms
  const brokers = r.array((x) => {
    const b = { nodeId: x.int32(), host: x.string() ?? '', port: x.int32() };
    x.string(); // rack
    return b;
  });
  if (version >= 2) r.string(); // cluster_id
  r.int32(); // controller_id
  const topics = r.array((x) => ({
    error: x.int16(),
    name: x.string() ?? '',
    internal: x.int8(),
    partitions: x.array((p) => {
      const part = { error: p.int16(), partition: p.int32(), leader: p.int32() };
      p.array((q) => q.int32()); // replicas
      p.array((q) => q.int32()); // in-sync replicas
      return part;
    }),
  }));
  return {
    brokers,
    topics: topics.map(({ error, name, partitions }) => ({ error, name, partitions })),
  };
}

export interface ProducePartition {
  partition: number;
  /** The record batch, or its parts in order (header, records). */
  batch: Buffer | readonly Buffer[];
}

/** Produce v3: acks, timeout, then per topic its partitions' record batches (passed, not copied). */
export function produceRequest(
  acks: number,
  timeoutMs: number,
  topics: ReadonlyMap<string, readonly ProducePartition[]>,
): Buffer[] {
  const parts: Buffer[] = [];
  let w = new Writer().string(null).int16(acks).int32(timeoutMs).int32(topics.size);
  for (const [topic, partitions] of topics) {
    w.string(topic).int32(partitions.length);
    for (const p of partitions) {
      const batch = Buffer.isBuffer(p.batch) ? [p.batch] : p.batch;
      let size = 0;
      for (const b of batch) size += b.length;
      w.int32(p.partition).int32(size);
      parts.push(w.done(), ...batch);
      w = new Writer();
    }
  }
  parts.push(w.done());
  return parts;
}

export interface ProduceResult {
  topic: string;
  partition: number;
  error: number;
  baseOffset: bigint;
}

export function produceResponse(body: Buffer): ProduceResult[] {
  const r = new Reader(body);
  const out: ProduceResult[] = [];
  r.array((t) => {
    const topic = t.string() ?? '';
    t.array((p) => {
      out.push({ topic, partition: p.int32(), error: p.int16(), baseOffset: p.int64() });
      p.int64(); // log_append_time
    });
  });
  return out;
}

export function initProducerIdRequest(): Buffer {
  return new Writer().string(null).int32(60_000).done();
}

export function initProducerIdResponse(body: Buffer): {
  error: number;
  producerId: bigint;
  epoch: number;
} {
  const r = new Reader(body);
  r.int32(); // throttle_time_ms
  return { error: r.int16(), producerId: r.int64(), epoch: r.int16() };
}

export function saslHandshakeRequest(mechanism: string): Buffer {
  return new Writer().string(mechanism).done();
}

export function saslHandshakeResponse(body: Buffer): { error: number; mechanisms: string[] } {
  const r = new Reader(body);
  return { error: r.int16(), mechanisms: r.array((x) => x.string() ?? '') };
}

export function saslAuthenticateRequest(token: Buffer): Buffer {
  return new Writer().bytes(token).done();
}

export function saslAuthenticateResponse(body: Buffer): {
  error: number;
  message: string | null;
  token: Buffer;
} {
  const r = new Reader(body);
  return { error: r.int16(), message: r.string(), token: r.bytes() ?? Buffer.alloc(0) };
}

/** Java's murmur2 (the default partitioner's hash): the same key lands where Java clients put it. */
export function murmur2(key: Buffer): number {
  const m = 0x5bd1e995;
  const len = key.length;
  let h = (0x9747b28c ^ len) | 0;
  const n4 = len & ~3;
  for (let i = 0; i < n4; i += 4) {
    let k = key[i]! | (key[i + 1]! << 8) | (key[i + 2]! << 16) | (key[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = len & 3;
  if (tail === 3) h ^= key[n4 + 2]! << 16;
  if (tail >= 2) h ^= key[n4 + 1]! << 8;
  if (tail >= 1) {
    h ^= key[n4]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition of `key` among `count` partitions, as Java's default partitioner picks it. */
export function partitionOf(key: Buffer, count: number): number {
  return (murmur2(key) & 0x7fffffff) % count;
}
