// The Kafka sink: each event is one message (value = the event's JSON line, key and topic from the
// event's host and source), produced with acks=all through KafkaJS (docs/decisions.md says why).
// A batch is delivered when the cluster acknowledged every message of it, or dead-lettered the
// ones it refused for good:
//
//   retriable (leader moved, not enough replicas, timeout, connection lost, broker down)
//                         → the topic's messages sent again after a backoff, never given up
//   MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE
//                         → the request's messages in two halves; a single message refused so is
//                           dead-lettered with the broker's error
//   other non-retriable (authorization, invalid record, policy violation, invalid topic)
//                         → that request's messages dead-lettered with the broker's error
//   over max_message_bytes → dead-lettered before it is sent (the broker would refuse it)
//
// One produce call per topic, so an error names the topic's messages only. KafkaJS's own retries
// are off (retries: 0): the sink's loop retries, counts and shows it in the status.

import { readFileSync } from 'node:fs';
import type pino from 'pino';
import {
  CompressionTypes,
  Kafka,
  logLevel,
  Partitioners,
  type KafkaConfig,
  type Message,
  type Producer,
  type RecordMetadata,
} from 'kafkajs';
import type { KafkaSinkConfig } from '../../config/types';
import type { Batch, SendOutcome, Sink, SinkStatus } from '../../event';
import { writeDeadLetter, type DeadLetterItem } from '../dead-letter';
import { backoffDelay, throwIfAborted, waitToRetry, type RetryPolicy } from '../retry';
import { describeError, errorCode, SinkAbortError, SinkError } from '../sink-error';
import { markDelivered, newSinkStatus } from '../sink-status';
import { EventScan } from '../core/event-scan';
import { BatchLines, eventId } from '../core/lines';

/** Broker errors split like an HTTP 413: the request was too big, maybe not every message in it. */
const TOO_LARGE = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);
/** Broker errors no resend can cure: the affected messages are dead-lettered. */
const REFUSED = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'INVALID_RECORD',
  'INVALID_TOPIC_EXCEPTION',
  'POLICY_VIOLATION',
  'UNSUPPORTED_FOR_MESSAGE_FORMAT',
  'INVALID_REQUIRED_ACKS',
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

type Outcome =
  | { kind: 'ok' }
  | { kind: 'retry'; error: string }
  | { kind: 'split' | 'refused'; code: string; reason: string };

/** The broker's error type (KafkaJSProtocolError.type) in an error or its causes, if any. */
function brokerError(err: unknown): { type: string; message: string } | null {
  for (let e = err, depth = 0; e && depth < 5; depth++) {
    const t = (e as { type?: unknown }).type;
    if (typeof t === 'string' && t !== '') return { type: t, message: (e as Error).message ?? t };
    const next =
      (e as { cause?: unknown; originalError?: unknown }).cause ??
      (e as { originalError?: unknown }).originalError;
    if (next === e) break;
    e = next;
  }
  return null;
}

/** Kafka topic names allow A-Z a-z 0-9 . _ -; anything else from an event becomes _. */
function topicSafe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_');
}

export class KafkaSink implements Sink {
  readonly name: string;
  private readonly cfg: KafkaSinkConfig;
  private readonly log: pino.Logger;
  private readonly stateDir: string;
  private readonly retry: RetryPolicy;
  private readonly state: SinkStatus;
  private readonly producer: Producer;
  private connected: Promise<void> | null = null;
  private readonly scan = new EventScan();
  /** Per event tail (`,"source":…}`, the same for a file's events): its topic and key. */
  private readonly routes = new Map<string, { topic: string; key: Buffer }>();
  /** Messages per partition of the topic being sent, counted by the partitioner, for offsets. */
  private readonly tally = new Map<string, Map<number, number>>();
  private readonly brokerSeen = new Map<string, number>();
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
    const kafka = new Kafka(this.clientConfig());
    const base = Partitioners.DefaultPartitioner();
    this.producer = kafka.producer({
      // Java's murmur2 partitioner: the same key lands where Java clients put it.
      createPartitioner: () => (args) => {
        const p = base(args);
        const t = this.tally.get(args.topic);
        if (t) t.set(p, (t.get(p) ?? 0) + 1);
        return p;
      },
      retry: { retries: 0 },
      allowAutoTopicCreation: false,
    });
    this.producer.on(this.producer.events.REQUEST, (e) => {
      this.brokerSeen.set(e.payload.broker, Date.now());
    });
  }

  private clientConfig(): KafkaConfig {
    const { cfg } = this;
    const read = (path: string, what: string): Buffer => {
      try {
        return readFileSync(path);
      } catch (err) {
        throw new SinkError(
          'GUARD_KAFKA_FILE_UNREADABLE',
          `sink ${cfg.name}: cannot read ${what} ${path}: ${describeError(err)}`,
          { cause: err },
        );
      }
    };
    const config: KafkaConfig = {
      clientId: 'guard-agent',
      brokers: cfg.brokers,
      requestTimeout: cfg.timeoutMs,
      connectionTimeout: Math.min(cfg.timeoutMs, 10_000),
      retry: { retries: 0 },
      logLevel: logLevel.WARN,
      logCreator: () => (entry) => {
        // KafkaJS logs every failed request; the sink logs what it does about them.
        this.log.debug({ kafkajs: entry.log }, entry.log.message);
      },
    };
    if (cfg.tls) {
      // Without ca_file, the host's CA bundle (as the HTTP sinks do), not Node's built-in list.
      let ca = cfg.caFile !== null ? read(cfg.caFile, 'ca_file') : undefined;
      for (const bundle of cfg.caFile === null ? SYSTEM_CA_BUNDLES : []) {
        try {
          ca = readFileSync(bundle);
          break;
        } catch {
          // not this distribution's path; try the next
        }
      }
      config.ssl = {
        ...(ca !== undefined ? { ca: [ca] } : {}),
        ...(cfg.clientCertFile !== null && cfg.clientKeyFile !== null
          ? {
              cert: read(cfg.clientCertFile, 'client_cert_file'),
              key: read(cfg.clientKeyFile, 'client_key_file'),
            }
          : {}),
      };
    }
    if (cfg.sasl !== 'none') {
      const password = read(cfg.saslPasswordFile!, 'sasl_password_file').toString('utf8').trim();
      if (password === '')
        throw new SinkError(
          'GUARD_KAFKA_SASL_EMPTY',
          `sasl_password_file ${cfg.saslPasswordFile} is empty`,
        );
      config.sasl = {
        mechanism: cfg.sasl,
        username: cfg.saslUsername!,
        password,
      } as KafkaConfig['sasl'];
    }
    return config;
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
    let ts = body.lastIndexOf(SOURCE_KEY, e - SOURCE_KEY.length);
    if (ts < s) ts = -1;
    const last = this.lastRoute;
    if (
      ts >= 0 &&
      last !== null &&
      e - ts === last.tail.length &&
      body.compare(last.tail, 0, last.tail.length, ts, e) === 0
    )
      return last.route;
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

  async send(batch: Batch, signal: AbortSignal): Promise<SendOutcome> {
    throwIfAborted(signal);
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
    await Promise.all(
      [...byTopic].map(([topic, items]) =>
        this.sendTopic(topic, items, lines, keys, refused, signal),
      ),
    );
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

  /** Sends one topic's messages until each is acknowledged or refused for good. */
  private async sendTopic(
    topic: string,
    items: number[],
    lines: BatchLines,
    keys: Buffer[],
    refused: Refused[],
    signal: AbortSignal,
  ): Promise<void> {
    const queue: { items: number[]; failures: number }[] = [{ items, failures: 0 }];
    while (queue.length > 0) {
      const req = queue.shift()!;
      const out = await this.attempt(topic, req.items, lines, keys, signal);
      if (out.kind === 'ok') continue;
      if (out.kind === 'retry') {
        req.failures += 1;
        const delay = backoffDelay(req.failures, this.retry);
        this.log.warn(
          { topic, events: req.items.length, delayMs: delay, error: out.error },
          `kafka produce to ${topic} failed; retrying in ${delay} ms`,
        );
        await waitToRetry(this.state, out.error, delay, signal);
        queue.unshift(req);
      } else if (out.kind === 'split' && req.items.length > 1) {
        const half = Math.ceil(req.items.length / 2);
        queue.unshift(
          { items: req.items.slice(0, half), failures: req.failures },
          { items: req.items.slice(half), failures: req.failures },
        );
      } else {
        for (const item of req.items) refused.push({ item, code: out.code, reason: out.reason });
      }
    }
  }

  private async attempt(
    topic: string,
    items: number[],
    lines: BatchLines,
    keys: Buffer[],
    signal: AbortSignal,
  ): Promise<Outcome> {
    throwIfAborted(signal);
    const messages: Message[] = items.map((i) => ({ key: keys[i]!, value: lines.line(i) }));
    const tally = new Map<number, number>();
    try {
      if (this.connected === null)
        this.connected = this.producer.connect().catch((err: unknown) => {
          this.connected = null;
          throw err;
        });
      await this.connected;
      this.tally.set(topic, tally);
      const meta = await this.abortable(
        this.producer.send({
          topic,
          messages,
          acks: -1,
          timeout: this.cfg.timeoutMs,
          compression:
            this.cfg.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
        }),
        signal,
      );
      this.acknowledged(meta, tally);
      return { kind: 'ok' };
    } catch (err) {
      if (err instanceof SinkAbortError) throw err;
      const b = brokerError(err);
      if (b !== null && TOO_LARGE.has(b.type))
        return { kind: 'split', code: b.type, reason: `${b.type}: ${b.message}` };
      if (b !== null && REFUSED.has(b.type))
        return { kind: 'refused', code: b.type, reason: `${b.type}: ${b.message}` };
      return { kind: 'retry', error: b !== null ? `${b.type}: ${b.message}` : describeError(err) };
    } finally {
      this.tally.delete(topic);
    }
  }

  private acknowledged(meta: RecordMetadata[], tally: Map<number, number>): void {
    for (const m of meta) {
      if (m.baseOffset === undefined) continue;
      const n = tally.get(m.partition) ?? 1;
      this.offsets[`${m.topicName}/${m.partition}`] = (
        BigInt(m.baseOffset) + BigInt(n - 1)
      ).toString();
    }
  }

  /** The send, or a rejection as soon as shutdown aborts (KafkaJS takes no signal). */
  private abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(new SinkAbortError(signal.reason));
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
        const delay = backoffDelay(failures, this.retry);
        this.log.error(
          {
            seq: batch.seq,
            code: 'GUARD_DEAD_LETTER_WRITE_FAILED',
            cause: errorCode(err),
            delayMs: delay,
          },
          `cannot write the dead-letter file for refused events; retrying in ${delay} ms`,
        );
        await waitToRetry(
          this.state,
          `GUARD_DEAD_LETTER_WRITE_FAILED: ${describeError(err)}`,
          delay,
          signal,
        );
      }
    }
  }

  status(): SinkStatus {
    const now = Date.now();
    this.state.brokersConnected = [...this.brokerSeen]
      .filter(([, t]) => now - t < CONNECTED_WINDOW_MS)
      .map(([b]) => b)
      .sort();
    return { ...this.state, lastAckedOffsets: { ...this.offsets } };
  }

  async close(): Promise<void> {
    try {
      await this.producer.disconnect();
    } catch {
      // closing: nothing left to deliver through it
    }
  }
}
