// The Kafka sink: each event is one message (value = the event's JSON line, key and topic from the
// event's host and source), produced with acks=all by guard's own producer (./producer.ts: record
// batches written straight from the NDJSON lines, docs/decisions.md says why). The batch's events
// are split per topic and partition (Java's murmur2 of the key); one record batch per partition,
// one Produce request per leader broker. A batch is delivered when the cluster acknowledged every
// message of it, or dead-lettered the ones it refused for good:
//
//   retriable (leader moved, not enough replicas, timeout, connection lost, broker down, SASL
//   refused, no producer id)
//                         → the partition's batch sent again (the same bytes) after a backoff,
//                           never given up
//   DUPLICATE_SEQUENCE_NUMBER (idempotent: the broker has that batch already) → acknowledged
//   OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH
//                         → a new producer id, sequences from 0, the batch sent again
//   MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE
//                         → the partition's batch in two halves; a single message refused so is
//                           dead-lettered with the broker's error
//   other non-retriable (authorization, invalid record, policy violation, invalid topic)
//                         → that partition batch's messages dead-lettered with the broker's error
//   over max_message_bytes → dead-lettered before it is sent (the broker would refuse it)
//
// With idempotence one batch per partition is in flight, so sequence numbers reach the broker in
// order, and a resend carries the sequence number of the first try.
//
// prepare() does a batch's work ahead, while the batch before it is in flight (pipeline.ts cuts up
// to two full batches ahead): routing, partitioning (topics whose layout is known) and each
// partition's records encoded and compressed, with their CRC-32C. What is left for send() is the
// 61-byte header per partition (producer id, sequence number, the CRC combined with the records').

import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type pino from 'pino';
import type { KafkaSinkConfig } from '../../config/types';
import type { Batch, SendOutcome, Sink, SinkStatus } from '../../event';
import { waitToRetryDeadLetter, writeDeadLetter, type DeadLetterItem } from '../dead-letter';
import { backoffDelay, throwIfAborted, waitToRetry, type RetryPolicy } from '../retry';
import { describeError, SinkAbortError, SinkError } from '../sink-error';
import { markDelivered, newSinkStatus } from '../sink-status';
import { EventScan } from '../core/event-scan';
import { BatchLines, eventId } from '../core/lines';
import { KafkaProducer, type OutgoingBatch } from './producer';
import { batchHeader, encodeRecordsFor, RecordPool, type EncodedRecords } from './record-batch';
import { errorName, partitionOf } from './protocol';

/** Broker errors split like an HTTP 413: the request was too big, maybe not every message in it. */
const TOO_LARGE = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);
/** Broker errors no resend can cure: the affected messages are dead-lettered. */
const REFUSED = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'INVALID_RECORD',
  'INVALID_TOPIC_EXCEPTION',
  'POLICY_VIOLATION',
  'UNSUPPORTED_FOR_MESSAGE_FORMAT',
  'INVALID_REQUIRED_ACKS',
  'CORRUPT_MESSAGE',
]);
/** The idempotent producer's state is out of step with the broker's: a new producer id. */
const PRODUCER_RESET = new Set([
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'UNKNOWN_PRODUCER_ID',
  'INVALID_PRODUCER_EPOCH',
]);
/** Where Debian/Ubuntu, RHEL/Fedora, SUSE and Alpine keep the system's CA bundle. */
const SYSTEM_CA_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/ssl/cert.pem',
];
/** A broker that answered within this long counts as connected in the status. */
const CONNECTED_WINDOW_MS = 60_000;
/** Per-message bytes beyond key and value in a record (attributes, varints, headers count). */
const RECORD_OVERHEAD = 64;
const SOURCE_KEY = Buffer.from(',"source":', 'latin1');
/** Kafka's description of the errors shown most, for the status and dead-letter reasons. */
const ERROR_TEXT: Record<string, string> = {
  TOPIC_AUTHORIZATION_FAILED: 'Not authorized to access topics: [Topic authorization failed]',
  MESSAGE_TOO_LARGE:
    'The request included a message larger than the max message size the server will accept',
  NOT_ENOUGH_REPLICAS: 'Messages are rejected since there are fewer in-sync replicas than required',
  NOT_LEADER_OR_FOLLOWER: 'This server is not the leader for that topic-partition',
  UNKNOWN_TOPIC_OR_PARTITION: 'This server does not host this topic-partition',
};

export interface KafkaSinkOptions {
  stateDir: string;
  logger: pino.Logger;
  hostname?: string;
  random?: () => number;
}

interface Refused {
  item: number;
  code: string;
  reason: string;
}

/** The messages of one partition still to send, in order; `batch` is their encoded record batch
 *  (kept for resends: a retry sends the same bytes, the same sequence number). */
interface Chunk {
  topic: string;
  partition: number;
  items: number[];
  failures: number;
  /** The records, encoded and compressed (from prepare() or the first send); kept across a new
   *  producer id, which changes only the header. */
  records: Promise<EncodedRecords> | null;
  batch: Buffer[] | null;
}

/** A batch routed (topic and key per event; over max_message_bytes refused) and, for the topics
 *  whose layout is known, partitioned, with each partition's records being encoded. */
interface Plan {
  lines: BatchLines;
  keys: Buffer[];
  refused: Refused[];
  /** Topics not partitioned yet (layout unknown when planned): their messages. */
  unplaced: Map<string, number[]>;
  /** Per "topic/partition", its chunks still to send, in order. */
  queues: Map<string, Chunk[]>;
}

/** Kafka topic names allow A-Z a-z 0-9 . _ -; anything else from an event becomes _. */
function topicSafe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_');
}

/** `p`, or a SinkAbortError as soon as shutdown aborts (a request in flight may take timeout_ms;
 *  its answer is not waited for, and close() ends the connections). */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new SinkAbortError(signal.reason));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

function describeKafka(code: string): string {
  return ERROR_TEXT[code] !== undefined ? `${code}: ${ERROR_TEXT[code]}` : code;
}

export class KafkaSink implements Sink {
  readonly name: string;
  private readonly cfg: KafkaSinkConfig;
  private readonly log: pino.Logger;
  private readonly stateDir: string;
  private readonly retry: RetryPolicy;
  private readonly state: SinkStatus;
  private readonly producer: KafkaProducer;
  private readonly scan = new EventScan();
  /** Per event tail (`,"source":…}`, the same for a file's events): its topic and key. */
  private readonly routes = new Map<string, { topic: string; key: Buffer }>();
  private readonly offsets: Record<string, string> = {};

  constructor(cfg: KafkaSinkConfig, opts: KafkaSinkOptions) {
    this.name = cfg.name;
    this.cfg = cfg;
    this.log = opts.logger.child({ sink: cfg.name });
    this.stateDir = opts.stateDir;
    this.retry = { initialMs: cfg.retryInitialMs, maxMs: cfg.retryMaxMs, random: opts.random };
    this.state = newSinkStatus(cfg.name, 'kafka', cfg.brokers.join(','));
    this.state.brokersConnected = [];
    this.state.lastAckedOffsets = this.offsets;
    this.producer = new KafkaProducer({
      bootstrap: cfg.brokers,
      clientId: 'guard-agent',
      timeoutMs: cfg.timeoutMs,
      tls: this.tlsOptions(),
      sasl: this.saslOptions(),
      idempotent: cfg.idempotence,
    });
  }

  private read(path: string, what: string): Buffer {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new SinkError(
        'GUARD_KAFKA_FILE_UNREADABLE',
        `sink ${this.cfg.name}: cannot read ${what} ${path}: ${describeError(err)}`,
        { cause: err },
      );
    }
  }

  private tlsOptions(): ConnectionOptions | null {
    const { cfg } = this;
    if (!cfg.tls) return null;
    // Without ca_file, the host's CA bundle (as the HTTP sinks do), not Node's built-in list.
    let ca = cfg.caFile !== null ? this.read(cfg.caFile, 'ca_file') : undefined;
    for (const bundle of cfg.caFile === null ? SYSTEM_CA_BUNDLES : []) {
      try {
        ca = readFileSync(bundle);
        break;
      } catch {
        // not this distribution's path; try the next
      }
    }
    return {
      ...(ca !== undefined ? { ca: [ca] } : {}),
      ...(cfg.clientCertFile !== null && cfg.clientKeyFile !== null
        ? {
            cert: this.read(cfg.clientCertFile, 'client_cert_file'),
            key: this.read(cfg.clientKeyFile, 'client_key_file'),
          }
        : {}),
    };
  }

  /** SASL with the password read from its file at each new connection: a corrected file is used
   *  at the next attempt, without a restart. */
  private saslOptions() {
    const { cfg } = this;
    if (cfg.sasl === 'none') return null;
    const password = (): string => {
      const p = this.read(cfg.saslPasswordFile!, 'sasl_password_file').toString('utf8').trim();
      if (p === '')
        throw new SinkError(
          'GUARD_KAFKA_SASL_EMPTY',
          `sasl_password_file ${cfg.saslPasswordFile} is empty`,
        );
      return p;
    };
    password(); // unreadable or empty: a configuration error at start
    return { mechanism: cfg.sasl, user: cfg.saslUsername!, password };
  }

  /** Topic and key of event i (from its host and source). */
  private route(lines: BatchLines, i: number): { topic: string; key: Buffer } {
    const body = lines.body;
    const s = lines.starts[i]!;
    const e = lines.ends[i]!;
    // The line ends with the per-file tail `,"source":…}` (the same bytes for every event of a
    // file). `,"source":` cannot occur inside a JSON string (its quote would be escaped), so the
    // last occurrence is the tail's unless a later object (tags) has such a key: then the tail does
    // not parse as an object and the line is scanned properly.
    // The tail of the line before, at the end of this one: the same route (the tail holds
    // `,"source":` only at its start, so it is this line's last occurrence too).
    // Compared in JavaScript: ~80 bytes, where `Buffer#compare`'s call into C++ cost more.
    const last = this.lastRoute;
    if (last !== null && e - last.tail.length >= s) {
      const tail = last.tail;
      let k = tail.length - 1;
      for (let o = e - 1; k >= 0 && body[o] === tail[k]; o--) k--;
      if (k < 0) return last.route;
    }
    let ts = body.lastIndexOf(SOURCE_KEY, e - SOURCE_KEY.length);
    if (ts < s) ts = -1;
    let r = ts >= 0 ? this.routeOf(body.toString('utf8', ts, e)) : null;
    if (r === null) {
      const tail = this.scan.scan(body, s, e)
        ? body.toString('utf8', this.scan.tailS, this.scan.tailE)
        : body.toString('utf8', s, e);
      r = this.routeOf(tail) ?? this.routeOf(tail, true)!;
    } else {
      this.lastRoute = { tail: Buffer.from(body.subarray(ts, e)), route: r };
    }
    return r;
  }

  private lastRoute: { tail: Buffer; route: { topic: string; key: Buffer } } | null = null;

  /** The route of a tail (or a whole line); null if it does not parse (unless `anyway`). */
  private routeOf(tail: string, anyway = false): { topic: string; key: Buffer } | null {
    let r = this.routes.get(tail);
    if (r === undefined) {
      let host = '';
      let source = '';
      try {
        const ev = JSON.parse(tail.startsWith(',') ? `{${tail.slice(1)}` : tail) as Record<
          string,
          unknown
        >;
        if (typeof ev.host === 'string') host = ev.host;
        if (typeof ev.source === 'string') source = ev.source;
      } catch {
        if (!anyway) return null;
        // not JSON: routed with empty host and source
      }
      const fill = (p: string, safe: (x: string) => string): string =>
        p.replace(/\$\{(host|source)\}/g, (_, f: string) => safe(f === 'host' ? host : source));
      r = {
        topic: fill(this.cfg.topic, topicSafe).slice(0, 249),
        key: Buffer.from(fill(this.cfg.key, (x) => x)),
      };
      if (this.routes.size > 10_000) this.routes.clear();
      this.routes.set(tail, r);
    }
    return r;
  }

  /** Routing, partitioning, encoding and gzip are worth doing while the batch before is in flight. */
  readonly preparesAhead = true;
  private readonly plans = new WeakMap<Batch, Plan>();
  private readonly pool = new RecordPool();

  prepare(batch: Batch): void {
    if (this.plans.has(batch)) return;
    try {
      this.plans.set(batch, this.plan(batch));
    } catch {
      // planned again by send(), which reports the error
    }
  }

  /** Routes each event of `batch`, then partitions and encodes what it can (placeKnown). */
  private plan(batch: Batch): Plan {
    const lines = BatchLines.of(batch.body);
    const refused: Refused[] = [];
    const byTopic = new Map<string, number[]>();
    const keys: Buffer[] = new Array(lines.count);
    for (let i = 0; i < lines.count; i++) {
      const r = this.route(lines, i);
      keys[i] = r.key;
      const size = lines.ends[i]! - lines.starts[i]! + r.key.length + RECORD_OVERHEAD;
      if (size > this.cfg.maxMessageBytes) {
        refused.push({
          item: i,
          code: 'MESSAGE_TOO_LARGE',
          reason: `MESSAGE_TOO_LARGE: the message is ${size} bytes, over max_message_bytes (${this.cfg.maxMessageBytes}); not sent`,
        });
        continue;
      }
      let list = byTopic.get(r.topic);
      if (list === undefined) byTopic.set(r.topic, (list = []));
      list.push(i);
    }
    const plan: Plan = { lines, keys, refused, unplaced: byTopic, queues: new Map() };
    this.placeKnown(plan);
    return plan;
  }

  async send(batch: Batch, signal: AbortSignal): Promise<SendOutcome> {
    throwIfAborted(signal);
    const plan = this.plans.get(batch) ?? this.plan(batch);
    this.plans.delete(batch); // a second send() of the same batch starts over
    const { lines, refused } = plan;
    await this.deliver(plan, signal);
    if (refused.length < lines.count) markDelivered(this.state, lines.count - refused.length);
    if (refused.length === 0) {
      if (this.state.lastError !== null && this.state.retryingUntil === null)
        this.state.lastError = null;
      return 'delivered';
    }
    refused.sort((a, b) => a.item - b.item);
    await this.deadLetter(batch, lines, refused, signal);
    return 'dead_lettered';
  }

  /** The records of `items`, encoded and compressed (a rejection is handled where awaited). */
  private encode(plan: Plan, items: number[]): Promise<EncodedRecords> {
    const { body, starts, ends } = plan.lines;
    const p = encodeRecordsFor(
      { body, starts, ends, keys: plan.keys, items },
      this.cfg.compression,
      this.pool,
    );
    p.catch(() => undefined); // a batch never sent (shutdown) must not be an unhandled rejection
    return p;
  }

  /** `c` was answered for good (appended, refused or split): its records' buffer is free again. The
   *  broker answered the request that carried it, so the socket wrote it all; an earlier attempt's
   *  connection was destroyed with whatever it had still to write. */
  private finished(c: Chunk): void {
    const r = c.records;
    c.records = null;
    c.batch = null;
    void r?.then(
      (x) => {
        if (x.backing !== null) this.pool.give(x.backing);
      },
      () => undefined,
    );
  }

  /** Partitions each topic's messages (once the topic's layout is known), then sends the head
   *  chunk of every partition, round after round, until each is acknowledged or refused. */
  private async deliver(plan: Plan, signal: AbortSignal): Promise<void> {
    const { unplaced, queues } = plan;
    let failures = 0;
    while (unplaced.size > 0 || queues.size > 0) {
      throwIfAborted(signal);
      let error: string | null = null;
      try {
        error = await abortable(this.place(plan), signal);
        if (error === null) error = await abortable(this.round(plan), signal);
      } catch (err) {
        if (err instanceof SinkAbortError) throw err;
        error = describeError(err);
      }
      if (error === null) {
        failures = 0;
        continue;
      }
      failures += 1;
      const delay = backoffDelay(failures, this.retry);
      this.log.warn(
        { delayMs: delay, error, pending: [...queues.keys(), ...unplaced.keys()].slice(0, 10) },
        `kafka produce failed; retrying in ${delay} ms`,
      );
      await waitToRetry(this.state, error, delay, signal);
    }
  }

  /** Asks for the layout of the topics not yet partitioned, then partitions them; an error that
   *  stops it, or null. */
  private async place(plan: Plan): Promise<string | null> {
    const { unplaced, refused } = plan;
    if (unplaced.size === 0) return null;
    const missing = [...unplaced.keys()].filter((t) => this.producer.layout(t) === undefined);
    let error: string | null = null;
    if (missing.length > 0) {
      const got = await this.producer.refresh(missing);
      for (const t of missing) {
        const r = got.get(t);
        if (typeof r !== 'number' && r !== undefined) continue;
        const code = errorName(r ?? 3);
        if (REFUSED.has(code)) {
          for (const item of unplaced.get(t)!)
            refused.push({ item, code, reason: `${describeKafka(code)} (topic ${t})` });
          unplaced.delete(t);
        } else {
          error = `${describeKafka(code)} (topic ${t})`;
        }
      }
    }
    this.placeKnown(plan);
    return error;
  }

  /** Partitions the messages of the topics whose layout is known, and starts encoding each
   *  partition's records. */
  private placeKnown(plan: Plan): void {
    const { unplaced, queues, keys } = plan;
    for (const [topic, items] of unplaced) {
      const layout = this.producer.layout(topic);
      if (layout === undefined) continue;
      const parts = new Map<number, number[]>();
      for (const i of items) {
        const p = partitionOf(keys[i]!, layout.leaders.length);
        let l = parts.get(p);
        if (l === undefined) parts.set(p, (l = []));
        l.push(i);
      }
      for (const [partition, its] of parts)
        queues.set(`${topic}/${partition}`, [
          {
            topic,
            partition,
            items: its,
            failures: 0,
            records: this.encode(plan, its),
            batch: null,
          },
        ]);
      unplaced.delete(topic);
    }
  }

  /** One Produce round: the head chunk of every partition; the first retriable error, or null. */
  private async round(plan: Plan): Promise<string | null> {
    const { queues, refused } = plan;
    if (queues.size === 0) return null;
    const pid = await this.producer.producerId();
    const heads = [...queues.values()].map((q) => q[0]!);
    const now = Date.now();
    const out: OutgoingBatch[] = await Promise.all(
      heads.map(async (c) => {
        if (c.batch === null) {
          const pending = (c.records ??= this.encode(plan, c.items));
          let r: EncodedRecords;
          try {
            r = await pending;
          } catch (err) {
            if (c.records === pending) c.records = null; // encoded again at the next round
            throw err;
          }
          c.batch = [
            batchHeader(r, {
              timestamp: now,
              producerId: pid?.id ?? -1n,
              producerEpoch: pid?.epoch ?? -1,
              baseSequence: pid === null ? -1 : this.producer.sequence(c.topic, c.partition),
            }),
            r.data,
          ];
        }
        return { topic: c.topic, partition: c.partition, batch: c.batch };
      }),
    );
    const outcomes = await this.producer.produce(out, -1);
    let error: string | null = null;
    let reset = false;
    heads.forEach((c, k) => {
      const o = outcomes[k]!;
      const key = `${c.topic}/${c.partition}`;
      const code = o.error === -2 ? 'NETWORK' : errorName(o.error);
      if (o.error === 0 || code === 'DUPLICATE_SEQUENCE_NUMBER') {
        if (o.error === 0 && o.baseOffset >= 0n)
          this.offsets[key] = (o.baseOffset + BigInt(c.items.length - 1)).toString();
        if (pid !== null) this.producer.advance(c.topic, c.partition, c.items.length);
        this.finished(c);
        const q = queues.get(key)!;
        q.shift();
        if (q.length === 0) queues.delete(key);
        return;
      }
      if (TOO_LARGE.has(code) && c.items.length > 1) {
        const half = Math.ceil(c.items.length / 2);
        this.finished(c);
        queues
          .get(key)!
          .splice(
            0,
            1,
            { ...c, items: c.items.slice(0, half), records: null, batch: null },
            { ...c, items: c.items.slice(half), records: null, batch: null },
          );
        return;
      }
      if (TOO_LARGE.has(code) || REFUSED.has(code)) {
        for (const item of c.items)
          refused.push({ item, code, reason: `${describeKafka(code)} (${key})` });
        this.finished(c);
        const q = queues.get(key)!;
        q.shift();
        if (q.length === 0) queues.delete(key);
        return;
      }
      if (PRODUCER_RESET.has(code)) reset = true;
      if (
        code === 'NOT_LEADER_OR_FOLLOWER' ||
        code === 'LEADER_NOT_AVAILABLE' ||
        code === 'NETWORK'
      )
        this.producer.forget(c.topic);
      c.failures += 1;
      error ??= o.failure ?? `${describeKafka(code)} (${key})`;
    });
    if (reset) {
      this.log.warn('the idempotent producer is out of step with the broker: a new producer id');
      this.producer.reset();
      for (const q of queues.values()) for (const c of q) c.batch = null;
    }
    if (error !== null) await this.relayout(queues);
    return error;
  }

  /** After a leader moved or a connection broke: the topics' layouts again (the partitions stay). */
  private async relayout(queues: Map<string, Chunk[]>): Promise<void> {
    const topics = [...new Set([...queues.values()].map((q) => q[0]!.topic))].filter(
      (t) => this.producer.layout(t) === undefined,
    );
    if (topics.length === 0) return;
    try {
      await this.producer.refresh(topics);
    } catch {
      // asked again at the next round
    }
  }

  /** Writes the refused events to the dead-letter directory, retrying (never dropping) on disk errors. */
  private async deadLetter(
    batch: Batch,
    lines: BatchLines,
    refused: Refused[],
    signal: AbortSignal,
  ): Promise<void> {
    const items: DeadLetterItem[] = refused.map((r) => ({
      id: eventId(lines.body, lines.starts[r.item]!, lines.ends[r.item]!),
      status: null,
      reason: r.reason,
    }));
    const body = lines.ndjson(refused.map((r) => r.item));
    const first = refused[0]!;
    for (let failures = 1; ; failures++) {
      try {
        const file = await writeDeadLetter(
          this.stateDir,
          { seq: batch.seq, events: refused.length, bytes: body.length, body },
          {
            sink: this.name,
            type: 'kafka',
            endpoint: this.state.endpoint,
            status: null,
            code: first.code,
            responseBody: first.reason.slice(0, 1024),
            responseBodyTruncated: first.reason.length > 1024,
            items,
          },
        );
        this.state.deadLetteredBatches += 1;
        this.state.deadLetteredEvents = (this.state.deadLetteredEvents ?? 0) + refused.length;
        this.state.lastError = `${first.code}: ${refused.length} of ${batch.events} events of batch ${batch.seq} refused (${first.reason.slice(0, 200)}); dead-lettered to ${file}`;
        this.log.error(
          { seq: batch.seq, events: refused.length, code: first.code, file },
          `kafka refused ${refused.length} of ${batch.events} events of batch ${batch.seq}; written to ${file}, not retried`,
        );
        return;
      } catch (err) {
        await waitToRetryDeadLetter(
          this.log,
          this.state,
          this.retry,
          failures,
          batch.seq,
          err,
          signal,
        );
      }
    }
  }

  status(): SinkStatus {
    this.state.brokersConnected = this.producer.brokersSeen(CONNECTED_WINDOW_MS);
    return { ...this.state, lastAckedOffsets: { ...this.offsets } };
  }

  async close(): Promise<void> {
    this.producer.close();
  }
}
