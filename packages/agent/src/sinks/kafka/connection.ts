// One connection to one broker (TCP or TLS), authenticated with SASL when configured: requests
// go out in order with a correlation id each; responses come back in the same order. A timeout or
// a lost connection fails every request on it and the connection is not used again (a response
// that came late would otherwise be read as the next request's).

import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { isIP } from 'node:net';
import {
  API,
  apiVersionsResponse,
  errorName,
  requestFrame,
  saslAuthenticateRequest,
  saslAuthenticateResponse,
  saslHandshakeRequest,
  saslHandshakeResponse,
} from './protocol';
import { mechanismName, saslExchange, type SaslMechanism } from './sasl';

/** A response larger than this is a protocol error, not an allocation. */
const MAX_RESPONSE_BYTES = 100 << 20;

export interface ConnectOptions {
  clientId: string;
  timeoutMs: number;
  tls: ConnectionOptions | null;
  sasl: { mechanism: SaslMechanism; user: string; password: () => string } | null;
}

/** A broker's error answer, with Kafka's error name as `type`. */
export class KafkaProtocolError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = 'KafkaProtocolError';
  }
}

interface Pending {
  resolve: (body: Buffer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  correlationId: number;
}

export class BrokerConnection {
  private socket!: Socket;
  private readonly pending: Pending[] = [];
  private nextId = 1;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failure: Error | null = null;
  private versions = new Map<number, [number, number]>();
  closed = false;

  private constructor(
    readonly address: string,
    private readonly opts: ConnectOptions,
  ) {}

  /** Connects (and authenticates); rejects with the reason a person can act on. */
  static async open(address: string, opts: ConnectOptions): Promise<BrokerConnection> {
    const c = new BrokerConnection(address, opts);
    await c.connect();
    try {
      const v = apiVersionsResponse(await c.request(API.apiVersions, 0, Buffer.alloc(0)));
      if (v.error !== 0)
        throw new KafkaProtocolError(
          errorName(v.error),
          `${errorName(v.error)}: ${address} answered ApiVersions with an error`,
        );
      c.versions = v.versions;
      if (opts.sasl !== null) await c.authenticate(opts.sasl);
    } catch (err) {
      c.close(err as Error);
      throw err;
    }
    return c;
  }

  private connect(): Promise<void> {
    const colon = this.address.lastIndexOf(':');
    const host = this.address.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(this.address.slice(colon + 1));
    return new Promise((resolve, reject) => {
      const t = this.opts.tls;
      const sock: Socket =
        t === null
          ? netConnect({ host, port })
          : tlsConnect({ ...t, host, port, ...(isIP(host) ? {} : { servername: host }) });
      this.socket = sock;
      sock.setNoDelay(true);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`connecting to ${this.address}: no answer in ${this.opts.timeoutMs} ms`));
      }, this.opts.timeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(new Error(`connecting to ${this.address}: ${err.message}`, { cause: err }));
      };
      sock.once('error', onError);
      sock.once(t === null ? 'connect' : 'secureConnect', () => {
        clearTimeout(timer);
        sock.off('error', onError);
        sock.on('error', (err) => this.close(err));
        sock.on('close', () => this.close(new Error(`connection to ${this.address} closed`)));
        sock.on('data', (d: Buffer) => this.onData(d));
        resolve();
      });
    });
  }

  /** The highest version of `api` in [min, max] that the broker has; throws UNSUPPORTED_VERSION. */
  version(api: number, min: number, max: number): number {
    const v = this.versions.get(api);
    if (v === undefined || v[1] < min || v[0] > max)
      throw new KafkaProtocolError(
        'UNSUPPORTED_VERSION',
        `UNSUPPORTED_VERSION: ${this.address} has ${v ? `versions ${v[0]}-${v[1]}` : 'no version'} of Kafka API ${api}; guard needs ${min}-${max}`,
      );
    return Math.min(v[1], max);
  }

  private async authenticate(s: NonNullable<ConnectOptions['sasl']>): Promise<void> {
    const name = mechanismName(s.mechanism);
    this.version(API.saslHandshake, 1, 1);
    this.version(API.saslAuthenticate, 1, 1);
    const hs = saslHandshakeResponse(
      await this.request(API.saslHandshake, 1, saslHandshakeRequest(name)),
    );
    if (hs.error !== 0)
      throw new KafkaProtocolError(
        errorName(hs.error),
        `${errorName(hs.error)}: ${this.address} does not offer SASL ${name} (it offers ${hs.mechanisms.join(', ') || 'none'})`,
      );
    const ex = saslExchange(s.mechanism, s.user, s.password());
    let token: Buffer | null = ex.first();
    while (token !== null) {
      const r = saslAuthenticateResponse(
        await this.request(API.saslAuthenticate, 1, saslAuthenticateRequest(token)),
      );
      if (r.error !== 0)
        throw new KafkaProtocolError(
          errorName(r.error),
          `${errorName(r.error)}: ${this.address} refused SASL ${name} for user ${JSON.stringify(s.user)}: ${r.message ?? 'no reason given'}`,
        );
      token = ex.next(r.token);
    }
  }

  /** Sends one request; resolves with the response body (after the correlation id). */
  request(apiKey: number, version: number, body: Buffer | readonly Buffer[]): Promise<Buffer> {
    if (this.closed)
      return Promise.reject(this.failure ?? new Error(`connection to ${this.address} closed`));
    const correlationId = this.nextId++ & 0x7fffffff;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          this.close(
            new KafkaProtocolError(
              'REQUEST_TIMED_OUT',
              `REQUEST_TIMED_OUT: ${this.address} did not answer in ${this.opts.timeoutMs} ms`,
            ),
          ),
        this.opts.timeoutMs,
      );
      this.pending.push({ resolve, reject, timer, correlationId });
      const frame = requestFrame(apiKey, version, correlationId, this.opts.clientId, body);
      // One writev for the frame's parts (length, headers, each batch's header and records).
      this.socket.cork();
      for (const part of frame) this.socket.write(part);
      this.socket.uncork();
    });
  }

  private onData(d: Buffer): void {
    this.chunks.push(d);
    this.buffered += d.length;
    while (this.buffered >= 4) {
      const head = this.chunks[0]!.length >= 4 ? this.chunks[0]! : this.joined();
      const size = head.readInt32BE(0);
      if (size < 4 || size > MAX_RESPONSE_BYTES) {
        this.close(new Error(`${this.address} sent a response of ${size} bytes: not Kafka?`));
        return;
      }
      if (this.buffered < size + 4) return;
      const all = this.joined();
      const frame = all.subarray(4, size + 4);
      const rest = all.subarray(size + 4);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      const p = this.pending.shift();
      if (p === undefined || frame.readInt32BE(0) !== p.correlationId) {
        this.close(new Error(`${this.address} answered out of order`));
        return;
      }
      clearTimeout(p.timer);
      p.resolve(frame.subarray(4));
    }
  }

  private joined(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!;
  }

  /** Ends the connection; every request still waiting fails with `err`. */
  close(err: Error = new Error(`connection to ${this.address} closed`)): void {
    if (!this.closed) {
      this.closed = true;
      this.failure = err;
      this.socket?.destroy();
    }
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }
}
