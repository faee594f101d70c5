// The HTTP(S) sink: POSTs each batch as NDJSON (gzip by default) to one URL over a keep-alive
// undici Pool, and does not give up on a batch until the backend took it, refused it for good
// (then it goes to the dead-letter directory) or the agent shuts down.
//
//   2xx                      → 'delivered'
//   408, 429, 5xx, network,  → retry the same body: exponential backoff with full jitter;
//   TLS, timeout, 1xx/3xx      429/503 with Retry-After wait exactly that long (≤ 10 min)
//   401/403                  → re-read token_file once: retry if the token changed, else as below
//   any other 4xx            → dead-letter, 'dead_lettered'

import { readFileSync } from 'node:fs';
import { markDelivered, newSinkStatus } from '../sink-status';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import type pino from 'pino';
import type { Pool as UndiciPool } from 'undici';

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
import { EventEmitter } from 'node:events';
import type { Batch, SendOutcome, Sink, SinkStatus } from '../../event';
import type { HttpSinkConfig } from '../../config/types';
import { writeDeadLetter } from '../dead-letter';
import { backoffDelay, throwIfAborted, waitToRetry, type RetryPolicy } from '../retry';
import { describeError, errorCode, SinkAbortError, SinkError } from '../sink-error';

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

type AttemptResult =
  | { kind: 'delivered'; status: number }
  | { kind: 'retry'; error: SinkError | Error; status: number | null; retryAfterMs: number | null }
  | { kind: 'refused'; status: number; body: Buffer; bodyTruncated: boolean };

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

/** The bearer token in token_file (a few bytes, read when the sink starts, reloads, or is refused). */
function readToken(path: string): string {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SinkError(
      'GUARD_HTTP_TOKEN_UNREADABLE',
      `cannot read token_file ${path}: ${describeError(err)}`,
      { cause: err },
    );
  }
  const token = raw.trim();
  if (token === '') throw new SinkError('GUARD_HTTP_TOKEN_EMPTY', `token_file ${path} is empty`);
  // A token goes into a header: a line break in it would be header injection, not a token.
  if (/[\0-\x1f\x7f]/.test(token))
    throw new SinkError('GUARD_HTTP_TOKEN_INVALID', `token_file ${path} holds control characters`);
  return token;
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

export class HttpSink implements Sink {
  readonly name: string;
  private readonly cfg: HttpSinkConfig;
  private readonly stateDir: string;
  private readonly log: pino.Logger;
  private readonly retry: RetryPolicy;
  private readonly caBundles: readonly string[];
  private readonly url: URL;
  private readonly requestPath: string;
  private readonly endpoint: string;
  private pool: Pool;
  private tls: TlsMaterial;
  private token: string | null;
  private closed = false;
  private readonly state: SinkStatus;

  constructor(cfg: HttpSinkConfig, opts: HttpSinkOptions) {
    this.name = cfg.name;
    this.cfg = cfg;
    this.stateDir = opts.stateDir;
    this.log = opts.logger.child({ sink: cfg.name, sinkType: 'http' });
    this.retry = {
      initialMs: cfg.retryInitialMs,
      maxMs: cfg.retryMaxMs,
      ...(opts.random ? { random: opts.random } : {}),
    };
    this.caBundles = opts.systemCaBundles ?? SYSTEM_CA_BUNDLES;

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
    this.requestPath = `${url.pathname}${url.search}`;
    // The query string may carry an API key: status, logs and dead-letter files show origin + path.
    this.endpoint = `${url.origin}${url.pathname}`;

    this.token = cfg.tokenFile === null ? null : readToken(cfg.tokenFile);
    this.tls = this.loadTls();
    this.pool = this.createPool(this.tls);
    this.state = newSinkStatus(cfg.name, 'http', this.endpoint);
    this.log.info(
      {
        endpoint: this.endpoint,
        ca: this.tls.caSource,
        clientCert: this.tls.cert !== undefined,
        token: this.token !== null,
        compression: cfg.compression,
      },
      'http sink ready',
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
    if (this.cfg.tokenFile !== null) this.token = readToken(this.cfg.tokenFile);
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
    this.log.info('http sink reloaded');
  }

  /** Compression is worth doing while the batch before is in flight. */
  get preparesAhead(): boolean {
    return this.cfg.compression === 'gzip';
  }

  private readonly compressed = new WeakMap<Batch, Promise<Buffer>>();

  /** Compressed once (level 1: a third of level 6's CPU; bandwidth matters less than the agent's CPU;
   *  memLevel 9, zlib's largest hash, 6 % faster than the default 8 on events, same size); every
   *  retry sends the same bytes. */
  private compress(batch: Batch): Promise<Buffer> {
    let p = this.compressed.get(batch);
    if (p === undefined) {
      p = gzip(batch.body, { level: 1, memLevel: 9 });
      p.catch(() => undefined); // awaited by send(); a batch never sent (shutdown) must not be an unhandled rejection
      this.compressed.set(batch, p);
    }
    return p;
  }

  prepare(batch: Batch): void {
    if (this.cfg.compression === 'gzip') void this.compress(batch);
  }

  async send(batch: Batch, signal: AbortSignal): Promise<SendOutcome> {
    throwIfAborted(signal);
    if (this.closed) throw new SinkError('GUARD_SINK_CLOSED', `sink ${this.name} is closed`);
    const body = this.cfg.compression === 'gzip' ? await this.compress(batch) : batch.body;
    throwIfAborted(signal);

    let failures = 0;
    let tokenReread = false;
    try {
      for (;;) {
        // close() without an abort first (a programming error) must not leave a send retrying forever.
        if (this.closed)
          throw new SinkError(
            'GUARD_SINK_CLOSED',
            `sink ${this.name} was closed with batch ${batch.seq} unsent`,
          );
        const result = await this.attempt(body, signal);
        if (result.kind === 'delivered') {
          markDelivered(this.state, batch.events);
          if (failures > 0)
            this.log.info(
              { seq: batch.seq, attempts: failures + 1 },
              'batch delivered after retries',
            );
          return 'delivered';
        }
        if (result.kind === 'refused') {
          if (
            (result.status === 401 || result.status === 403) &&
            !tokenReread &&
            (await this.tokenChanged())
          ) {
            // The token was rotated on disk but the agent not yet reloaded: one immediate retry.
            tokenReread = true;
            this.state.retries += 1;
            this.state.lastError = `GUARD_HTTP_STATUS_${result.status}: HTTP ${result.status}; token_file changed, retrying with the new token`;
            this.log.warn(
              { seq: batch.seq, code: `GUARD_HTTP_STATUS_${result.status}`, status: result.status },
              'backend refused the token; token_file changed, retrying with the new token',
            );
            continue;
          }
          await this.deadLetter(batch, result, signal);
          return 'dead_lettered';
        }

        failures += 1;
        const code = errorCode(result.error);
        const delay = result.retryAfterMs ?? backoffDelay(failures, this.retry);
        this.log.warn(
          {
            seq: batch.seq,
            code,
            status: result.status ?? undefined,
            attempt: failures,
            delayMs: delay,
            retryAfter: result.retryAfterMs !== null,
          },
          `batch not delivered (${code}); retrying in ${delay} ms`,
        );
        await waitToRetry(this.state, describeError(result.error), delay, signal);
      }
    } finally {
      this.state.retryingUntil = null;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  /** One POST. Never throws but for the caller's abort. */
  private async attempt(body: Buffer, signal: AbortSignal): Promise<AttemptResult> {
    const headers: Record<string, string> = {
      'content-type': 'application/x-ndjson',
      'user-agent': USER_AGENT,
    };
    if (this.cfg.compression === 'gzip') headers['content-encoding'] = 'gzip';
    if (this.token !== null) headers.authorization = `Bearer ${this.token}`;

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
        path: this.requestPath,
        headers,
        body,
        signal: attempt,
      });
      const status = res.statusCode;
      if (status >= 200 && status < 300) {
        await res.body.dump({ limit: RESPONSE_DRAIN_LIMIT }).catch(() => undefined);
        return { kind: 'delivered', status };
      }
      const { snippet, truncated } = await readSnippet(res.body);
      const error = new SinkError(
        `GUARD_HTTP_STATUS_${status}`,
        `HTTP ${status} from ${this.endpoint}`,
      );
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
        return { kind: 'refused', status, body: snippet, bodyTruncated: truncated };
      }
      const retryAfterMs =
        status === 429 || status === 503 ? parseRetryAfter(res.headers['retry-after']) : null;
      if (status < 400)
        error.message +=
          ' (not a success: a redirect or informational answer to an ingest POST is a misconfiguration)';
      return { kind: 'retry', error, status, retryAfterMs };
    } catch (err) {
      if (signal.aborted) throw new SinkAbortError(signal.reason);
      const error =
        timeout !== undefined && attempt.aborted && attempt.reason === timeout
          ? timeout
          : (err as Error);
      return { kind: 'retry', error, status: null, retryAfterMs: null };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Writes the refused batch to the dead-letter directory, retrying (never dropping) on disk errors. */
  private async deadLetter(
    batch: Batch,
    refused: Extract<AttemptResult, { kind: 'refused' }>,
    signal: AbortSignal,
  ): Promise<void> {
    const code = `GUARD_HTTP_STATUS_${refused.status}`;
    const responseBody = refused.body.toString('utf8');
    let failures = 0;
    for (;;) {
      try {
        const file = await writeDeadLetter(this.stateDir, batch, {
          sink: this.name,
          type: 'http',
          endpoint: this.endpoint,
          status: refused.status,
          code,
          responseBody,
          responseBodyTruncated: refused.bodyTruncated,
        });
        this.state.deadLetteredBatches += 1;
        this.state.lastError = `${code}: HTTP ${refused.status}; batch ${batch.seq} dead-lettered to ${file}`;
        this.log.error(
          {
            seq: batch.seq,
            events: batch.events,
            code,
            status: refused.status,
            response: responseBody.slice(0, 200),
            file,
          },
          `backend refused batch ${batch.seq} with HTTP ${refused.status}; written to ${file}, not retried`,
        );
        return;
      } catch (err) {
        failures += 1;
        const delay = backoffDelay(failures, this.retry);
        this.log.error(
          {
            seq: batch.seq,
            code: 'GUARD_DEAD_LETTER_WRITE_FAILED',
            cause: errorCode(err),
            delayMs: delay,
          },
          `cannot write the dead-letter file for a refused batch; retrying in ${delay} ms`,
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

  private async tokenChanged(): Promise<boolean> {
    if (this.cfg.tokenFile === null) return false;
    try {
      const token = readToken(this.cfg.tokenFile);
      if (token === this.token) return false;
      this.token = token;
      return true;
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
      // The pipeline keeps one batch in flight per sink: one connection, kept alive between batches.
      connections: 1,
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

/** Reads the first KiB of a body for the record and drains a little more so the socket stays usable. */
async function readSnippet(
  body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown },
): Promise<{ snippet: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let kept = 0;
  let seen = 0;
  try {
    for await (const chunk of body) {
      seen += chunk.length;
      if (kept < RESPONSE_SNIPPET_BYTES) {
        const part = chunk.subarray(0, RESPONSE_SNIPPET_BYTES - kept);
        chunks.push(part);
        kept += part.length;
      }
      if (seen > RESPONSE_DRAIN_LIMIT) {
        body.destroy();
        break;
      }
    }
  } catch {
    // A body cut short still leaves us the status code and what arrived of it.
  }
  return { snippet: Buffer.concat(chunks), truncated: seen > kept };
}
