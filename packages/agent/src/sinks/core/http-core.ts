// The HTTP sink core: every HTTP-family sink (http, elasticsearch, splunk_hec, otlp) is this class
// with a WireFormat (wire-format.ts) that encodes its body and says what an answer means. The core
// does not give up on an event until the receiver took it, refused it for good (then that event,
// and only it, goes to the dead-letter directory with the receiver's reason) or the agent shuts down.
//
//   delivered            → done
//   retry                → the same request again: exponential backoff with full jitter, or exactly
//                          Retry-After (≤ 10 min) when the answer carries one
//   partial              → the refused items dead-lettered, the rest sent again (only those)
//   too_large (413)      → the request's items in two halves, each sent on its own; a single event
//                          too large for the receiver is dead-lettered
//   refused              → every item of the request dead-lettered
//   401/403              → token_file re-read once: retried at once if the secret changed, else
//                          classified as any other answer
//   network, TLS, timeout→ retry

import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import type pino from 'pino';
import type { Pool as UndiciPool } from 'undici';
import type { HttpCommonConfig } from '../../config/types';
import type { Batch, SendOutcome, Sink, SinkStatus } from '../../event';
import { waitToRetryDeadLetter, writeDeadLetter, type DeadLetterItem } from '../dead-letter';
import {
  backoffDelay,
  throwIfAborted,
  untilAborted,
  waitToRetry,
  type RetryPolicy,
} from '../retry';
import { describeError, errorCode, SinkAbortError, SinkError } from '../sink-error';
import { markDelivered, newSinkStatus } from '../sink-status';
import { AuthHeader } from './auth';
import { ByteWriter } from './byte-writer';
import { BatchLines, eventId } from './lines';
import type { Answer, ItemRefusal, RequestContext, Verdict, WireFormat } from './wire-format';

// undici's Pool and its request() by their own modules, not through undici's index: the index
// loads fetch, WebSocket, the cache and the mocks as well (CommonJS, so the bundler cannot leave
// them out), which cost the agent about 9 MiB of resident memory for nothing (docs/performance.md).
// The index makes request() a method of every dispatcher; here it is called on the pool. A unit
// test (http-sink.test.ts) checks these are undici's own Pool and request.
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const Pool = require('undici/lib/dispatcher/pool') as typeof UndiciPool;
type Pool = UndiciPool;
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const poolRequest = require('undici/lib/api/api-request') as UndiciPool['request'];

const gzip = promisify(gzipCallback);

/** Longest Retry-After we honour; a backend asking for more gets asked again after this. */
export const RETRY_AFTER_CAP_MS = 10 * 60_000;
/** Bytes of a refusal's body kept in the dead-letter metadata. */
const RESPONSE_SNIPPET_BYTES = 1024;
/** Bytes of an error body read to keep the connection reusable; beyond that the socket is dropped. */
const RESPONSE_DRAIN_LIMIT = 64 * 1024;
/** Where Debian/Ubuntu, RHEL/Fedora, SUSE and Alpine keep the system's CA bundle. */
export const SYSTEM_CA_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/ssl/cert.pem',
];
const USER_AGENT = 'guard-agent';

export interface HttpSinkOptions {
  stateDir: string;
  logger: pino.Logger;
  /** The agent's host name ([agent] hostname), for formats that name the host. */
  hostname?: string;
  /** For tests: the jitter source (Math.random by default). */
  random?: () => number;
  /** For tests: CA bundles tried, in order, when cfg.caFile is unset. */
  systemCaBundles?: readonly string[];
}

interface TlsMaterial {
  ca: Buffer | undefined;
  cert: Buffer | undefined;
  key: Buffer | undefined;
  /** Which file the trusted CAs came from, for the start-up log. */
  caSource: string;
}

/** One request of a batch: some of its events (null: all of them, as the batch was prepared). */
interface Pending {
  items: number[] | null;
  /** Failed attempts of this request and of the requests it was split or narrowed from. */
  failures: number;
}

/** An event refused for good, by its index in the batch's lines (-1: the whole batch). */
interface Refused {
  item: number;
  status: number | null;
  code: string;
  reason: string;
  body: Buffer;
  bodyTruncated: boolean;
}

/**
 * Parses a Retry-After value (delta-seconds or an HTTP-date) into milliseconds from `now`;
 * null when absent, unparsable or not in the future. Capped at RETRY_AFTER_CAP_MS.
 */
export function parseRetryAfter(
  value: string | string[] | undefined,
  now: number = Date.now(),
): number | null {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return null;
  let ms: number;
  if (/^\d+$/.test(v)) {
    ms = Number(v) * 1000;
  } else {
    const at = Date.parse(v);
    if (Number.isNaN(at)) return null;
    ms = at - now;
  }
  if (!(ms > 0)) return null;
  return Math.min(Math.ceil(ms), RETRY_AFTER_CAP_MS);
}

/** The verdict most formats give a status they have nothing special to say about. */
export function statusVerdict(
  a: Answer,
  endpoint: string,
  retryable: (status: number) => boolean,
): Verdict {
  const s = a.status;
  if (s >= 200 && s < 300) return { kind: 'delivered' };
  if (s === 413) return { kind: 'too_large' };
  const code = `GUARD_HTTP_STATUS_${s}`;
  if (s < 400 || retryable(s)) {
    const note =
      s < 400
        ? ' (not a success: a redirect or informational answer to an ingest POST is a misconfiguration)'
        : '';
    return {
      kind: 'retry',
      code,
      message: `HTTP ${s} from ${endpoint}${note}`,
      retryAfterMs: parseRetryAfter(a.headers['retry-after']),
    };
  }
  return { kind: 'refused', code, reason: `HTTP ${s}: ${a.body.toString('utf8').slice(0, 300)}` };
}

function readRequired(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new SinkError(
      'GUARD_HTTP_TLS_FILE_UNREADABLE',
      `cannot read ${what} ${path}: ${describeError(err)}`,
      { cause: err },
    );
  }
}

/**
 * One attempt's abort signal as undici takes one: an EventEmitter with `aborted` and `reason`
 * (undici listens with once('abort')). An AbortController costs ~4 µs a request in Node 20 (its
 * signal is made lazily, and EventTarget listeners are slow); this costs a tenth of that.
 */
class AttemptSignal extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.emit('abort');
  }
}

/** A transport failure or a timeout: what the core retries without asking the format. */
class TransportFailure {
  constructor(readonly error: Error) {}
}

export class HttpCoreSink implements Sink {
  readonly name: string;
  protected readonly cfg: HttpCommonConfig;
  protected readonly log: pino.Logger;
  private readonly stateDir: string;
  private readonly retry: RetryPolicy;
  private readonly caBundles: readonly string[];
  protected readonly url: URL;
  private readonly requestPath: string;
  protected readonly endpoint: string;
  private pool: Pool;
  private tls: TlsMaterial;
  private readonly auth: AuthHeader;
  private closed = false;
  protected readonly state: SinkStatus;
  private readonly gzipped: boolean;

  constructor(
    cfg: HttpCommonConfig,
    protected readonly format: WireFormat,
    opts: HttpSinkOptions,
  ) {
    this.name = cfg.name;
    this.cfg = cfg;
    this.stateDir = opts.stateDir;
    this.log = opts.logger.child({ sink: cfg.name, sinkType: format.type });
    this.retry = {
      initialMs: cfg.retryInitialMs,
      maxMs: cfg.retryMaxMs,
      ...(opts.random ? { random: opts.random } : {}),
    };
    this.caBundles = opts.systemCaBundles ?? SYSTEM_CA_BUNDLES;
    this.gzipped = cfg.compression === 'gzip';
    this.inFlight = format.overlaps ? Math.max(1, Math.min(3, cfg.maxInFlight ?? 3)) : 1;

    let url: URL;
    try {
      url = new URL(cfg.url);
    } catch (err) {
      throw new SinkError('GUARD_HTTP_URL_INVALID', `sink ${cfg.name}: url is not a URL`, {
        cause: err,
      });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new SinkError(
        'GUARD_HTTP_URL_INVALID',
        `sink ${cfg.name}: url must be http:// or https://, not ${url.protocol}//`,
      );
    }
    if (url.username !== '' || url.password !== '') {
      // Secrets belong in token_file (0640 root:guard), not in a URL that ends up in logs.
      throw new SinkError(
        'GUARD_HTTP_URL_CREDENTIALS',
        `sink ${cfg.name}: url must not contain credentials; use token_file`,
      );
    }
    this.url = url;
    this.requestPath = format.path(url);
    // The query string may carry an API key: status, logs and dead-letter files show origin + path.
    this.endpoint = `${url.origin}${this.requestPath.replace(/\?.*$/s, '')}`;

    this.auth = new AuthHeader({ scheme: cfg.auth, file: cfg.tokenFile, header: cfg.authHeader });
    this.tls = this.loadTls();
    this.pool = this.createPool(this.tls);
    this.state = newSinkStatus(cfg.name, format.type, this.endpoint);
    this.log.info(
      {
        endpoint: this.endpoint,
        ca: this.tls.caSource,
        clientCert: this.tls.cert !== undefined,
        auth: this.auth.name === null ? 'none' : cfg.auth,
        compression: cfg.compression,
      },
      `${format.type} sink ready`,
    );
  }

  status(): SinkStatus {
    return { ...this.state };
  }

  /**
   * Re-reads token_file and the TLS files (CA, client certificate and key). On any error the sink
   * keeps what it had and the promise rejects with a coded SinkError. New TLS material takes effect
   * on new connections: the old pool finishes what it is doing and is closed.
   */
  async reload(): Promise<void> {
    this.auth.reload();
    const tls = this.loadTls();
    if (!this.sameTls(tls)) {
      const old = this.pool;
      this.tls = tls;
      this.pool = this.createPool(tls);
      old
        .close()
        .catch((err: unknown) =>
          this.log.warn(
            { code: errorCode(err), err },
            'closing the previous connection pool failed',
          ),
        );
      this.log.info(
        { ca: tls.caSource, clientCert: tls.cert !== undefined },
        'TLS material changed; new connections use it',
      );
    }
    this.log.info(`${this.format.type} sink reloaded`);
  }

  /** Encoding and compressing are worth doing while the batch before is in flight. */
  get preparesAhead(): boolean {
    return this.gzipped || this.format.readsLines;
  }

  private readonly prepared = new WeakMap<Batch, Promise<Buffer>>();
  private readonly linesOf = new WeakMap<Batch, BatchLines>();

  private lines(batch: Batch): BatchLines {
    let l = this.linesOf.get(batch);
    if (l === undefined) {
      l = BatchLines.of(batch.body);
      this.linesOf.set(batch, l);
    }
    return l;
  }

  /** The body of `items` (null: the whole batch), encoded and compressed. Compression at level 1: a
   *  third of level 6's CPU; bandwidth matters less than the agent's CPU; memLevel 9, zlib's largest
   *  hash, 6 % faster than the default 8 on events, same size. Every retry sends the same bytes. */
  private body(batch: Batch, items: number[] | null): Promise<Buffer> {
    if (items === null) {
      let p = this.prepared.get(batch);
      if (p === undefined) {
        p = this.encode(batch, null);
        p.catch(() => undefined); // awaited by send(); a batch never sent (shutdown) must not be an unhandled rejection
        this.prepared.set(batch, p);
      }
      return p;
    }
    return this.encode(batch, items);
  }

  /**
   * Whole-batch bodies are written into a ring of writers (a new buffer per batch costs more than
   * encoding it). Batch k's body is written again by batch k + RING, which is encoded only once
   * batch k was answered: ahead of time at most two batches are prepared while one is in flight
   * (pipeline.ts AHEAD), in order. A narrower request (a retry of some events, a half after a 413)
   * gets a writer of its own.
   */
  private readonly ring = Array.from({ length: 4 }, () => new ByteWriter());
  private ringIx = 0;

  private encode(batch: Batch, items: number[] | null): Promise<Buffer> {
    let raw: Buffer;
    try {
      let out: ByteWriter;
      if (items === null) {
        out = this.ring[this.ringIx]!;
        this.ringIx = (this.ringIx + 1) % this.ring.length;
      } else out = new ByteWriter(16 * 1024);
      out.reset();
      raw = this.format.encode(batch, () => this.lines(batch), items, out);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.gzipped ? gzip(raw, { level: 1, memLevel: 9 }) : Promise.resolve(raw);
  }

  /**
   * Gets a batch ready while earlier ones are in flight: encodes (and compresses) it, and, for a
   * format whose batches may travel together (WireFormat.overlaps), sends it at once. Its send()
   * then only waits for what that started; the pipeline still calls send() in order and moves
   * checkpoints when it resolves, so a batch counts as handled only after every earlier one.
   */
  prepare(batch: Batch): void {
    if (this.groups(batch) === null) void this.body(batch, null);
    const signal = this.signal;
    if (this.inFlight <= 1 || signal === null || signal.aborted || this.closed) return;
    // In flight: the batch sent, and those started ahead whose send() has not come yet.
    if (1 + this.startedAhead >= this.inFlight) return;
    this.startedAhead++;
    let go!: () => void;
    const turn = new Promise<void>((resolve) => (go = resolve));
    const outcome = this.deliver(batch, signal, turn);
    outcome.catch(() => undefined); // send() awaits it; a batch never sent (shutdown) is not an error
    this.early.set(batch, { go, outcome });
  }

  /** Batches that may be in flight at once: max_in_flight (at most the pipeline's one sent and two
   *  prepared ahead, pipeline.ts AHEAD) for a format that allows it, else 1. */
  private readonly inFlight: number;
  private startedAhead = 0;
  /** Batches prepare() started, until their send(). */
  private readonly early = new WeakMap<Batch, { go: () => void; outcome: Promise<SendOutcome> }>();
  /** The pipeline's signal, from the last send(): what ends batches started ahead too. */
  private signal: AbortSignal | null = null;

  private readonly groupsOf = new WeakMap<Batch, number[][] | null>();

  /** The batch's requests when the format splits it (computed once), else null. */
  private groups(batch: Batch): number[][] | null {
    if (this.format.group === undefined) return null;
    let g = this.groupsOf.get(batch);
    if (g === undefined) {
      g = this.format.group(batch, () => this.lines(batch));
      this.groupsOf.set(batch, g);
    }
    return g;
  }

  async send(batch: Batch, signal: AbortSignal): Promise<SendOutcome> {
    throwIfAborted(signal);
    if (this.closed) throw new SinkError('GUARD_SINK_CLOSED', `sink ${this.name} is closed`);
    this.signal = signal;
    const early = this.early.get(batch);
    if (early === undefined) return this.deliver(batch, signal, null);
    this.early.delete(batch);
    this.startedAhead--;
    early.go();
    return early.outcome;
  }

  /**
   * Sends a batch until it is handled. `turn` (a batch started ahead by prepare()) resolves when
   * its send() is called: every earlier batch handled. Such a batch's requests go at once, but it
   * waits for its turn before any backoff, so that during an outage only the oldest batch retries,
   * as with one batch in flight.
   */
  private async deliver(
    batch: Batch,
    signal: AbortSignal,
    turn: Promise<void> | null,
  ): Promise<SendOutcome> {
    const backoff = async (
      req: Pending,
      error: Error,
      retryAfterMs: number | null,
    ): Promise<void> => {
      if (turn !== null) {
        await untilAborted(turn, signal);
        turn = null;
      }
      await this.backoff(batch, req, error, retryAfterMs, signal);
    };
    const groups = this.groups(batch);
    const queue: Pending[] =
      groups === null
        ? [{ items: null, failures: 0 }]
        : groups.map((items) => ({ items, failures: 0 }));
    const refused: Refused[] = [];
    let tokenReread = false;
    let attempts = 0;
    try {
      while (queue.length > 0) {
        // close() without an abort first (a programming error) must not leave a send retrying forever.
        if (this.closed)
          throw new SinkError(
            'GUARD_SINK_CLOSED',
            `sink ${this.name} was closed with batch ${batch.seq} unsent`,
          );
        const req = queue[0]!;
        const body = await this.body(batch, req.items);
        throwIfAborted(signal);
        const count = req.items === null ? batch.events : req.items.length;
        attempts++;
        const answer = await this.attempt(body, signal);
        if (answer instanceof TransportFailure) {
          await backoff(req, answer.error, null);
          continue;
        }
        if (
          (answer.status === 401 || answer.status === 403) &&
          !tokenReread &&
          this.tokenChanged()
        ) {
          // The token was rotated on disk but the agent not yet reloaded: one immediate retry.
          tokenReread = true;
          this.state.retries += 1;
          this.state.lastError = `GUARD_HTTP_STATUS_${answer.status}: HTTP ${answer.status}; token_file changed, retrying with the new token`;
          this.log.warn(
            { seq: batch.seq, code: `GUARD_HTTP_STATUS_${answer.status}`, status: answer.status },
            'backend refused the token; token_file changed, retrying with the new token',
          );
          continue;
        }
        const verdict = await this.format.classify(
          answer,
          this.context(count, req.items, () => this.lines(batch), signal),
        );
        switch (verdict.kind) {
          case 'delivered':
            queue.shift();
            break;
          case 'retry': {
            const err = new SinkError(verdict.code, verdict.message);
            await backoff(req, err, verdict.retryAfterMs);
            break;
          }
          case 'refused':
            queue.shift();
            if (req.items === null)
              refused.push({
                item: -1,
                status: answer.status,
                code: verdict.code,
                reason: verdict.reason,
                body: answer.body.subarray(0, RESPONSE_SNIPPET_BYTES),
                bodyTruncated: answer.truncated || answer.body.length > RESPONSE_SNIPPET_BYTES,
              });
            else
              for (const item of req.items)
                refused.push(this.refusal(item, answer, verdict.code, verdict.reason));
            break;
          case 'too_large': {
            queue.shift();
            const items = req.items ?? this.allItems(batch);
            if (items.length === 1) {
              refused.push(
                this.refusal(
                  items[0]!,
                  answer,
                  'GUARD_HTTP_STATUS_413',
                  `HTTP 413: this one event is larger than the receiver takes in a request`,
                ),
              );
            } else {
              const half = items.length >> 1;
              queue.unshift(
                { items: items.slice(0, half), failures: req.failures },
                { items: items.slice(half), failures: req.failures },
              );
              this.log.info(
                { seq: batch.seq, events: items.length },
                'receiver answered 413 (request too large): sending the events in two halves',
              );
            }
            break;
          }
          case 'partial': {
            const items = req.items ?? this.allItems(batch);
            for (const r of verdict.refused)
              refused.push(this.refusal(items[r.pos]!, answer, r.status, r.reason, r));
            queue.shift();
            if (verdict.retry.length > 0) {
              const next: Pending = {
                items: verdict.retry.map((pos) => items[pos]!),
                failures: req.failures,
              };
              queue.unshift(next);
              if (verdict.immediate !== true) {
                const code = verdict.retryCode ?? 'GUARD_ITEMS_RETRY';
                const err = new SinkError(
                  code,
                  `${verdict.retry.length} of ${items.length} events to be sent again (${code})`,
                );
                await backoff(next, err, null);
              }
            }
            break;
          }
        }
      }
    } finally {
      // A batch started ahead that never waited for its turn did not retry: the status's
      // retryingUntil, if set, is an earlier batch's.
      if (turn === null) this.state.retryingUntil = null;
    }
    const refusedEvents = refused.some((r) => r.item === -1) ? batch.events : refused.length;
    if (refusedEvents < batch.events) markDelivered(this.state, batch.events - refusedEvents);
    if (attempts > 1)
      this.log.info(
        { seq: batch.seq, attempts, refused: refusedEvents },
        'batch handled after retries',
      );
    if (refused.length === 0) return 'delivered';
    await this.deadLetter(batch, refused, signal);
    return 'dead_lettered';
  }

  private allItems(batch: Batch): number[] {
    const n = this.lines(batch).count;
    return Array.from({ length: n }, (_, i) => i);
  }

  private refusal(
    item: number,
    answer: Answer,
    code: string | number | null,
    reason: string,
    r?: ItemRefusal,
  ): Refused {
    const status = r ? r.status : answer.status;
    return {
      item,
      status,
      code: typeof code === 'string' ? code : `GUARD_HTTP_STATUS_${status ?? answer.status}`,
      reason,
      body: r ? Buffer.alloc(0) : answer.body.subarray(0, RESPONSE_SNIPPET_BYTES),
      bodyTruncated: r ? false : answer.truncated || answer.body.length > RESPONSE_SNIPPET_BYTES,
    };
  }

  private async backoff(
    batch: Batch,
    req: Pending,
    error: Error,
    retryAfterMs: number | null,
    signal: AbortSignal,
  ): Promise<void> {
    req.failures += 1;
    const code = errorCode(error);
    const delay = retryAfterMs ?? backoffDelay(req.failures, this.retry);
    this.log.warn(
      {
        seq: batch.seq,
        code,
        events: req.items === null ? batch.events : req.items.length,
        attempt: req.failures,
        delayMs: delay,
        retryAfter: retryAfterMs !== null,
      },
      `batch not delivered (${code}); retrying in ${delay} ms`,
    );
    await waitToRetry(this.state, describeError(error), delay, signal);
  }

  private context(
    count: number,
    items: readonly number[] | null,
    lines: () => BatchLines,
    signal: AbortSignal,
  ): RequestContext {
    return {
      count,
      items,
      lines,
      signal,
      post: async (path, body, headers) => {
        const a = await this.request(path, body, headers, 'application/json', signal, 1 << 20);
        if (a instanceof TransportFailure) throw a.error;
        return a;
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  private baseHeaders(contentType: string): Record<string, string> {
    const headers: Record<string, string> = {
      'content-type': contentType,
      'user-agent': USER_AGENT,
    };
    if (this.gzipped) headers['content-encoding'] = 'gzip';
    this.auth.apply(headers);
    return headers;
  }

  /** One POST of a batch's request. Never throws but for the caller's abort. */
  private attempt(body: Buffer, signal: AbortSignal): Promise<Answer | TransportFailure> {
    const headers = this.baseHeaders(this.format.contentType);
    const extra = this.format.headers?.();
    if (extra) Object.assign(headers, extra);
    return this.request(this.requestPath, body, headers, null, signal, this.format.readsAnswer);
  }

  /** One POST; `contentType` replaces the batch's (uncompressed side requests such as HEC's /ack). */
  private async request(
    path: string,
    body: Buffer,
    headers: Record<string, string>,
    contentType: string | null,
    signal: AbortSignal,
    reads: number,
  ): Promise<Answer | TransportFailure> {
    if (contentType !== null) {
      const h = this.baseHeaders(contentType);
      delete h['content-encoding'];
      headers = { ...h, ...headers };
    }
    // One deadline for the whole exchange (connect, upload, headers, body); the caller's signal
    // ends it at once too.
    const attempt = new AttemptSignal();
    // Made when it fires, not per attempt: an Error captures a stack trace (~30 µs a batch).
    let timeout: SinkError | undefined;
    const timer = setTimeout(() => {
      timeout = new SinkError(
        'GUARD_HTTP_TIMEOUT',
        `no complete answer within timeout_ms (${this.cfg.timeoutMs} ms)`,
      );
      attempt.abort(timeout);
    }, this.cfg.timeoutMs);
    const onAbort = (): void => attempt.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await poolRequest.call(this.pool, {
        method: 'POST',
        path,
        headers,
        body,
        signal: attempt,
      });
      const status = res.statusCode;
      if (status >= 200 && status < 300 && reads === 0) {
        await res.body.dump({ limit: RESPONSE_DRAIN_LIMIT }).catch(() => undefined);
        return { status, headers: res.headers, body: EMPTY, truncated: false };
      }
      const { data, truncated } = await readBody(
        res.body,
        status >= 200 && status < 300 ? reads : Math.max(reads, RESPONSE_SNIPPET_BYTES),
      );
      return { status, headers: res.headers, body: data, truncated };
    } catch (err) {
      if (signal.aborted) throw new SinkAbortError(signal.reason);
      return new TransportFailure(
        timeout !== undefined && attempt.aborted && attempt.reason === timeout
          ? timeout
          : (err as Error),
      );
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Writes the refused events to the dead-letter directory, retrying (never dropping) on disk errors. */
  private async deadLetter(batch: Batch, refused: Refused[], signal: AbortSignal): Promise<void> {
    const first = refused[0]!;
    const whole = first.item === -1;
    const lines = whole ? null : this.lines(batch);
    const items: DeadLetterItem[] | undefined = lines
      ? refused.map((r) => ({
          id: eventId(lines.body, lines.starts[r.item]!, lines.ends[r.item]!),
          status: r.status,
          reason: r.reason,
        }))
      : undefined;
    const body = lines ? lines.ndjson(refused.map((r) => r.item)) : batch.body;
    const events = lines ? refused.length : batch.events;
    let failures = 0;
    for (;;) {
      try {
        const file = await writeDeadLetter(
          this.stateDir,
          { seq: batch.seq, events, bytes: body.length, body },
          {
            sink: this.name,
            type: this.format.type,
            endpoint: this.endpoint,
            status: first.status,
            code: first.code,
            responseBody: first.body.toString('utf8'),
            responseBodyTruncated: first.bodyTruncated,
            ...(items ? { items } : {}),
          },
        );
        this.state.deadLetteredBatches += 1;
        this.state.deadLetteredEvents = (this.state.deadLetteredEvents ?? 0) + events;
        this.state.lastError = `${first.code}: ${events} of ${batch.events} events of batch ${batch.seq} refused (${first.reason.slice(0, 200)}); dead-lettered to ${file}`;
        this.log.error(
          {
            seq: batch.seq,
            events,
            code: first.code,
            status: first.status ?? undefined,
            response: first.reason.slice(0, 200),
            file,
          },
          `backend refused ${events} of ${batch.events} events of batch ${batch.seq}; written to ${file}, not retried`,
        );
        return;
      } catch (err) {
        failures += 1;
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

  private tokenChanged(): boolean {
    try {
      return this.auth.changed();
    } catch (err) {
      this.log.warn(
        { code: errorCode(err instanceof SinkError && err.cause !== undefined ? err.cause : err) },
        'cannot re-read token_file after an authentication refusal',
      );
      return false;
    }
  }

  private loadTls(): TlsMaterial {
    const { cfg } = this;
    if ((cfg.clientCertFile === null) !== (cfg.clientKeyFile === null)) {
      throw new SinkError(
        'GUARD_HTTP_TLS_CLIENT_INCOMPLETE',
        `sink ${cfg.name}: client_cert_file and client_key_file go together`,
      );
    }
    let ca: Buffer | undefined;
    let caSource: string;
    if (cfg.caFile !== null) {
      ca = readRequired(cfg.caFile, 'ca_file');
      caSource = cfg.caFile;
    } else {
      // Node's built-in list is Mozilla's, not the host's: read the system bundle so a CA the
      // operator added with update-ca-certificates is trusted, as by every other tool on the host.
      caSource = "node's built-in CA list (no system CA bundle found)";
      for (const bundle of this.caBundles) {
        try {
          ca = readFileSync(bundle);
          caSource = bundle;
          break;
        } catch {
          // not this distribution's path; try the next
        }
      }
    }
    return {
      ca,
      caSource,
      cert:
        cfg.clientCertFile === null
          ? undefined
          : readRequired(cfg.clientCertFile, 'client_cert_file'),
      key:
        cfg.clientKeyFile === null ? undefined : readRequired(cfg.clientKeyFile, 'client_key_file'),
    };
  }

  private sameTls(t: TlsMaterial): boolean {
    const eq = (a: Buffer | undefined, b: Buffer | undefined): boolean =>
      a === undefined ? b === undefined : b !== undefined && a.equals(b);
    return eq(t.ca, this.tls.ca) && eq(t.cert, this.tls.cert) && eq(t.key, this.tls.key);
  }

  private createPool(tls: TlsMaterial): Pool {
    return new Pool(this.url.origin, {
      // A connection per batch in flight, kept alive between batches: one, or max_in_flight for a
      // format whose batches may travel together.
      connections: this.inFlight,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 10 * 60_000,
      headersTimeout: this.cfg.timeoutMs,
      bodyTimeout: this.cfg.timeoutMs,
      connect: {
        timeout: this.cfg.timeoutMs,
        rejectUnauthorized: true,
        ...(tls.ca ? { ca: tls.ca } : {}),
        ...(tls.cert ? { cert: tls.cert } : {}),
        ...(tls.key ? { key: tls.key } : {}),
      },
    });
  }
}

const EMPTY = Buffer.alloc(0);

/** Reads up to `limit` bytes of a body, and drains a little more so the socket stays usable. */
async function readBody(
  body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown },
  limit: number,
): Promise<{ data: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let kept = 0;
  let seen = 0;
  try {
    for await (const chunk of body) {
      seen += chunk.length;
      if (kept < limit) {
        const part = chunk.subarray(0, limit - kept);
        chunks.push(part);
        kept += part.length;
      }
      if (seen > Math.max(limit, RESPONSE_DRAIN_LIMIT)) {
        body.destroy();
        break;
      }
    }
  } catch {
    // A body cut short still leaves us the status code and what arrived of it.
  }
  return { data: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), truncated: seen > kept };
}
