// guard's Kafka producer: the cluster's metadata, one connection per broker, Produce requests of
// pre-encoded record batches grouped by partition leader, and, when idempotent, the producer id,
// epoch and per-partition sequence numbers with which the broker drops a batch it already appended
// (a resend after a lost acknowledgement). It sends what it is given once and reports per
// partition; the sink decides what to retry, split or dead-letter.

import {
  API,
  errorName,
  initProducerIdRequest,
  initProducerIdResponse,
  metadataRequest,
  metadataResponse,
  produceRequest,
  produceResponse,
  type Metadata,
  type ProducePartition,
  type ProduceResult,
} from './protocol';
import { BrokerConnection, KafkaProtocolError, type ConnectOptions } from './connection';

export interface ProducerOptions extends ConnectOptions {
  bootstrap: readonly string[];
  idempotent: boolean;
}

export interface TopicLayout {
  /** Leader node per partition (-1: none now), index = partition. */
  leaders: number[];
}

/** What one partition batch's send came to: Kafka's error code (0: appended) and the offset. */
export interface PartitionOutcome {
  error: number;
  baseOffset: bigint;
  /** The request failed as a whole (connection lost, timeout): why. */
  failure?: string;
}

export interface OutgoingBatch {
  topic: string;
  partition: number;
  /** The record batch's parts, in order. */
  batch: readonly Buffer[];
}

export class KafkaProducer {
  private readonly conns = new Map<string, Promise<BrokerConnection>>();
  private readonly nodes = new Map<number, string>();
  private readonly topics = new Map<string, TopicLayout>();
  private readonly seen = new Map<string, number>();
  private pid: { id: bigint; epoch: number } | null = null;
  private readonly sequences = new Map<string, number>();

  constructor(private readonly opts: ProducerOptions) {}

  /** Addresses that answered within `windowMs`. */
  brokersSeen(windowMs: number): string[] {
    const now = Date.now();
    return [...this.seen]
      .filter(([, t]) => now - t < windowMs)
      .map(([a]) => a)
      .sort();
  }

  private connection(address: string): Promise<BrokerConnection> {
    const have = this.conns.get(address);
    if (have !== undefined) {
      return have.then((c) => (c.closed ? this.reconnect(address) : c));
    }
    return this.reconnect(address);
  }

  private reconnect(address: string): Promise<BrokerConnection> {
    const p = BrokerConnection.open(address, this.opts);
    this.conns.set(address, p);
    p.catch(() => {
      if (this.conns.get(address) === p) this.conns.delete(address);
    });
    return p;
  }

  /** A request at the highest version in [min, max] the broker has; [version, response]. */
  private async call(
    address: string,
    api: number,
    min: number,
    max: number,
    body: (version: number) => Buffer | Buffer[],
  ): Promise<[number, Buffer]> {
    const c = await this.connection(address);
    const version = c.version(api, min, max);
    const r = await c.request(api, version, body(version));
    this.seen.set(address, Date.now());
    return [version, r];
  }

  /** Any broker's answer: known brokers first, then the bootstrap list; the last error if none. */
  private async anyBroker(
    api: number,
    min: number,
    max: number,
    body: (version: number) => Buffer,
  ): Promise<[number, Buffer]> {
    const candidates = [...new Set([...this.nodes.values(), ...this.opts.bootstrap])];
    let last: unknown = new Error('no broker configured');
    for (const a of candidates) {
      try {
        return await this.call(a, api, min, max, body);
      } catch (err) {
        if (err instanceof KafkaProtocolError && err.type === 'SASL_AUTHENTICATION_FAILED')
          throw err; // the same credentials go to every broker
        last = err;
      }
    }
    throw last;
  }

  /** Refreshes the layout of `topics`; returns it (a topic's error code instead of a layout). */
  async refresh(topics: readonly string[]): Promise<Map<string, TopicLayout | number>> {
    const [version, body] = await this.anyBroker(API.metadata, 1, 4, (v) =>
      metadataRequest(v, topics),
    );
    const md: Metadata = metadataResponse(version, body);
    for (const b of md.brokers) this.nodes.set(b.nodeId, `${b.host}:${b.port}`);
    const out = new Map<string, TopicLayout | number>();
    for (const t of md.topics) {
      if (t.error !== 0 || t.partitions.length === 0) {
        this.topics.delete(t.name);
        out.set(t.name, t.error !== 0 ? t.error : 3);
        continue;
      }
      const leaders: number[] = new Array(t.partitions.length).fill(-1);
      for (const p of t.partitions)
        if (p.error === 0 || p.leader >= 0) leaders[p.partition] = p.leader;
      const layout = { leaders };
      this.topics.set(t.name, layout);
      out.set(t.name, layout);
    }
    return out;
  }

  layout(topic: string): TopicLayout | undefined {
    return this.topics.get(topic);
  }

  /** Forgets the layout of `topic` (a leader moved): the next send asks again. */
  forget(topic: string): void {
    this.topics.delete(topic);
  }

  /** The idempotent producer's id and epoch (asked for once, and again after reset()). */
  async producerId(): Promise<{ id: bigint; epoch: number } | null> {
    if (!this.opts.idempotent) return null;
    if (this.pid !== null) return this.pid;
    const r = initProducerIdResponse(
      (await this.anyBroker(API.initProducerId, 0, 0, () => initProducerIdRequest()))[1],
    );
    if (r.error !== 0)
      throw new KafkaProtocolError(
        errorName(r.error),
        `${errorName(r.error)}: the cluster gave no producer id for idempotence`,
      );
    this.pid = { id: r.producerId, epoch: r.epoch };
    this.sequences.clear();
    return this.pid;
  }

  /** A new producer id at the next send, sequences from 0 (after OUT_OF_ORDER_SEQUENCE_NUMBER,
   *  UNKNOWN_PRODUCER_ID or INVALID_PRODUCER_EPOCH). */
  reset(): void {
    this.pid = null;
    this.sequences.clear();
  }

  /** The sequence number of the next batch to `topic`/`partition`. */
  sequence(topic: string, partition: number): number {
    return this.sequences.get(`${topic}/${partition}`) ?? 0;
  }

  /** The broker appended `count` records to `topic`/`partition`. */
  advance(topic: string, partition: number, count: number): void {
    const k = `${topic}/${partition}`;
    this.sequences.set(k, ((this.sequences.get(k) ?? 0) + count) % 0x80000000);
  }

  /** Sends each batch to its partition's leader (one request per leader); an outcome per batch. */
  async produce(batches: readonly OutgoingBatch[], acks: number): Promise<PartitionOutcome[]> {
    const outcomes: PartitionOutcome[] = new Array(batches.length);
    const byLeader = new Map<string, number[]>();
    batches.forEach((b, i) => {
      const leader = this.topics.get(b.topic)?.leaders[b.partition] ?? -1;
      const address = this.nodes.get(leader);
      if (address === undefined) {
        outcomes[i] = { error: 5, baseOffset: -1n }; // LEADER_NOT_AVAILABLE
        return;
      }
      let list = byLeader.get(address);
      if (list === undefined) byLeader.set(address, (list = []));
      list.push(i);
    });
    await Promise.all(
      [...byLeader].map(async ([address, idx]) => {
        const topics = new Map<string, ProducePartition[]>();
        for (const i of idx) {
          const b = batches[i]!;
          let parts = topics.get(b.topic);
          if (parts === undefined) topics.set(b.topic, (parts = []));
          parts.push({ partition: b.partition, batch: b.batch });
        }
        let results: ProduceResult[];
        try {
          const [, body] = await this.call(address, API.produce, 3, 3, () =>
            produceRequest(acks, this.opts.timeoutMs, topics),
          );
          results = produceResponse(body);
        } catch (err) {
          const failure = err instanceof Error ? err.message : String(err);
          for (const i of idx) outcomes[i] = { error: -2, baseOffset: -1n, failure };
          return;
        }
        for (const i of idx) {
          const b = batches[i]!;
          const r = results.find((x) => x.topic === b.topic && x.partition === b.partition);
          outcomes[i] =
            r === undefined
              ? {
                  error: -2,
                  baseOffset: -1n,
                  failure: `${address} did not answer for ${b.topic}/${b.partition}`,
                }
              : { error: r.error, baseOffset: r.baseOffset };
        }
      }),
    );
    return outcomes;
  }

  close(): void {
    for (const p of this.conns.values())
      p.then(
        (c) => c.close(),
        () => undefined,
      );
    this.conns.clear();
  }
}
