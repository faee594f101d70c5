// The syslog sink: each batch's events as RFC 5424 (or RFC 3164) messages to one receiver, over
//   protocol = relp  RELP: every message answered `rsp 200` by the receiver; a batch is delivered
//                    when all of its messages are, and after a broken session only the messages
//                    not yet answered are sent again (recommended: at-least-once end to end);
//   protocol = tcp   a syslog stream (RFC 6587 octet counting or LF; RFC 5425 with TLS): no
//                    answers, so a batch counts as delivered once the kernel took its bytes —
//                    what the receiver had not yet stored when it crashed is lost
//                    (docs/sinks/syslog.md says exactly what).
// Both with TLS (default; mutual TLS with a client certificate) or without. Never gives up on a
// batch: a refused connection, a TLS failure or a RELP error is retried with backoff, and the
// reason shown in the sink's status.

import { readFileSync } from 'node:fs';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type TLSSocket } from 'node:tls';
import type pino from 'pino';
import type { SyslogSinkConfig } from '../../config/types';
import type { Batch, SendOutcome, Sink, SinkStatus } from '../../event';
import { backoffDelay, throwIfAborted, waitToRetry, type RetryPolicy } from '../retry';
import { describeError, errorCode, SinkAbortError, SinkError } from '../sink-error';
import { SYSTEM_CA_BUNDLES } from '../core/http-core';
import { markDelivered, newSinkStatus } from '../sink-status';
import {
  facilityNumber,
  frameStream,
  relpFrames,
  severityNumber,
  SyslogEncoder,
  type SyslogMessages,
} from './format';
import { nextTxnr, RELP_OFFERS, relpFrame, RelpReader, rspCode, type RelpFrame } from './relp';

/** RELP messages sent ahead of their answers (librelp's own client uses 128; rsyslog keeps up). */
const RELP_WINDOW = 1024;
/** TLS 1.3: how long a new connection must stay open without a refusal when no session ticket comes. */
const SETTLE_MS = 1000;

/** One connection to the receiver; dies once (error, close, timeout, protocol error) and is replaced. */
class Connection {
  dead: Error | null = null;
  txnr = 0;
  /** Where RELP frames from the receiver go (the open handshake, then the batch being sent). */
  onFrame: ((f: RelpFrame) => void) | null = null;
  onDeath: ((e: Error) => void) | null = null;
  private readonly reader: RelpReader | null;

  constructor(
    readonly socket: Socket,
    relp: boolean,
  ) {
    this.reader = relp ? new RelpReader() : null;
    socket.on('error', (e) => this.die(e));
    socket.on('end', () =>
      this.die(new SinkError('GUARD_SYSLOG_CLOSED', 'the receiver closed the connection')),
    );
    socket.on('close', () =>
      this.die(new SinkError('GUARD_SYSLOG_CLOSED', 'the connection was closed')),
    );
    socket.on('data', (chunk: Buffer) => {
      if (this.reader === null) return; // a plain syslog receiver has nothing to say
      try {
        for (const f of this.reader.push(chunk)) {
          if (f.command === 'serverclose') {
            this.die(
              new SinkError('GUARD_RELP_SERVERCLOSE', 'the receiver ended the RELP session'),
            );
            return;
          }
          this.onFrame?.(f);
        }
      } catch (e) {
        this.die(e as Error);
      }
    });
  }

  die(e: Error): void {
    if (this.dead !== null) return;
    this.dead = e;
    this.socket.destroy();
    this.onDeath?.(e);
  }
}

/** Explains the TLS failures an operator meets (the code stays first: tools match on it). */
function tlsError(err: unknown, endpoint: string): Error {
  const code = errorCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  const why: Record<string, string> = {
    CERT_HAS_EXPIRED: "the receiver's certificate has expired",
    CERT_NOT_YET_VALID: "the receiver's certificate is not valid yet",
    UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      "the receiver's certificate is not signed by a trusted CA (ca_file)",
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      "the receiver's certificate is not signed by a trusted CA (ca_file)",
    SELF_SIGNED_CERT_IN_CHAIN: "the receiver's certificate chain ends in a CA not in ca_file",
    DEPTH_ZERO_SELF_SIGNED_CERT: "the receiver's certificate is self-signed and not in ca_file",
    ERR_TLS_CERT_ALTNAME_INVALID: "the receiver's certificate is not for this host (server_name)",
  };
  const alert =
    /alert (certificate expired|unknown ca|bad certificate|certificate required|handshake failure)/i.exec(
      msg,
    );
  const reason =
    why[code] ??
    (alert ? `the receiver refused guard's client certificate (TLS alert: ${alert[1]})` : msg);
  return new SinkError(code, `TLS with ${endpoint} failed: ${reason}`, { cause: err });
}

export class SyslogSink implements Sink {
  readonly name: string;
  readonly preparesAhead = true;
  private readonly cfg: SyslogSinkConfig;
  private readonly log: pino.Logger;
  private readonly retry: RetryPolicy;
  private readonly endpoint: string;
  private readonly encoder: SyslogEncoder;
  private readonly tls: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  private readonly state: SinkStatus;
  private readonly encoded = new WeakMap<Batch, SyslogMessages>();
  private conn: Connection | null = null;
  private closed = false;

  constructor(cfg: SyslogSinkConfig, opts: { logger: pino.Logger; random?: () => number }) {
    this.name = cfg.name;
    this.cfg = cfg;
    this.log = opts.logger.child({ sink: cfg.name, sinkType: 'syslog' });
    this.retry = {
      initialMs: cfg.retryInitialMs,
      maxMs: cfg.retryMaxMs,
      ...(opts.random ? { random: opts.random } : {}),
    };
    const scheme = `${cfg.protocol === 'relp' ? 'relp' : 'syslog'}${cfg.tls ? '+tls' : ''}`;
    const host = isIP(cfg.host) === 6 ? `[${cfg.host}]` : cfg.host;
    this.endpoint = `${scheme}://${host}:${cfg.port}`;
    this.encoder = new SyslogEncoder(
      {
        format: cfg.format,
        facility: facilityNumber(cfg.facility),
        severity: severityNumber(cfg.severity),
        sdId: cfg.sdId,
      },
      // a TCP stream sends the frames as the encoder wrote them: no second copy per batch
      cfg.protocol === 'tcp' && cfg.framing === 'octet_counting',
    );
    const read = (path: string | null, what: string): Buffer | undefined => {
      if (path === null) return undefined;
      try {
        return readFileSync(path);
      } catch (err) {
        throw new SinkError(
          'GUARD_SYSLOG_TLS_FILE_UNREADABLE',
          `cannot read ${what} ${path}: ${describeError(err)}`,
          { cause: err },
        );
      }
    };
    let ca = read(cfg.caFile, 'ca_file');
    // As the http sink: the host's CA bundle, so a CA added with update-ca-certificates is trusted.
    for (const bundle of cfg.caFile === null && cfg.tls ? SYSTEM_CA_BUNDLES : []) {
      try {
        ca = readFileSync(bundle);
        break;
      } catch {
        // not this distribution's path; try the next
      }
    }
    const cert = read(cfg.clientCertFile, 'client_cert_file');
    const key = read(cfg.clientKeyFile, 'client_key_file');
    this.tls = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
    this.state = newSinkStatus(cfg.name, 'syslog', this.endpoint);
    this.log.info(
      {
        endpoint: this.endpoint,
        format: cfg.format,
        framing: cfg.protocol === 'tcp' ? cfg.framing : undefined,
        clientCert: cert !== undefined,
        acknowledged: cfg.protocol === 'relp',
      },
      'syslog sink ready',
    );
  }

  status(): SinkStatus {
    return { ...this.state };
  }

  prepare(batch: Batch): void {
    this.messages(batch);
  }

  private messages(batch: Batch): SyslogMessages {
    let m = this.encoded.get(batch);
    if (m === undefined) {
      m = this.encoder.encode(batch.body);
      this.encoded.set(batch, m);
    }
    return m;
  }

  async send(batch: Batch, signal: AbortSignal): Promise<SendOutcome> {
    throwIfAborted(signal);
    const msgs = this.messages(batch);
    // RELP: which messages the receiver has answered, kept across reconnects of this batch.
    const answered = new Uint8Array(msgs.starts.length);
    let failures = 0;
    try {
      for (;;) {
        if (this.closed)
          throw new SinkError(
            'GUARD_SINK_CLOSED',
            `sink ${this.name} was closed with batch ${batch.seq} unsent`,
          );
        try {
          const conn = await this.connection(signal);
          if (this.cfg.protocol === 'relp') await this.sendRelp(conn, msgs, answered, signal);
          else await this.sendStream(conn, msgs, signal);
          markDelivered(this.state, batch.events);
          if (failures > 0)
            this.log.info(
              { seq: batch.seq, attempts: failures + 1 },
              'batch delivered after retries',
            );
          return 'delivered';
        } catch (err) {
          if (signal.aborted || err instanceof SinkAbortError)
            throw new SinkAbortError(signal.reason);
          this.conn?.die(err as Error);
          this.conn = null;
          failures += 1;
          const delay = backoffDelay(failures, this.retry);
          const code = errorCode(err);
          this.log.warn(
            { seq: batch.seq, code, attempt: failures, delayMs: delay },
            `batch not delivered (${describeError(err)}); retrying in ${delay} ms`,
          );
          await waitToRetry(this.state, describeError(err), delay, signal);
        }
      }
    } finally {
      this.state.retryingUntil = null;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const conn = this.conn;
    this.conn = null;
    if (conn === null || conn.dead !== null) return;
    if (this.cfg.protocol === 'relp')
      conn.socket.write(relpFrame(nextTxnr(conn.txnr), 'close', ''));
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => conn.die(new Error('closed')), 1000);
      conn.onDeath = () => {
        clearTimeout(t);
        resolve();
      };
      conn.socket.end();
    });
  }

  /** The live connection, or a new one (TLS handshake and RELP open included). */
  private async connection(signal: AbortSignal): Promise<Connection> {
    if (this.conn !== null && this.conn.dead === null) return this.conn;
    this.conn = null;
    const conn = await this.connect(signal);
    if (this.cfg.protocol === 'relp') {
      try {
        await this.openRelp(conn, signal);
      } catch (err) {
        conn.die(err as Error);
        if (errorCode(err) !== 'GUARD_SYSLOG_CLOSED' || !this.cfg.tls) throw err;
        throw new SinkError(
          'GUARD_SYSLOG_TLS_REFUSED',
          `${this.endpoint} closed the connection before answering the RELP open: it refused guard's client certificate (${this.cfg.clientCertFile === null ? 'none configured: client_cert_file' : this.cfg.clientCertFile}), or does not accept this client`,
          { cause: err },
        );
      }
    }
    this.conn = conn;
    return conn;
  }

  private connect(signal: AbortSignal): Promise<Connection> {
    const { cfg } = this;
    return new Promise((resolve, reject) => {
      let socket: Socket;
      if (cfg.tls) {
        const name = cfg.serverName ?? cfg.host;
        socket = tlsConnect({
          host: cfg.host,
          port: cfg.port,
          ...(isIP(name) === 0 ? { servername: name } : {}),
          ...this.tls,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.2',
          checkServerIdentity: (_host, cert) => checkServerIdentity(name, cert),
        });
      } else {
        socket = netConnect({ host: cfg.host, port: cfg.port });
      }
      const finish = (err: Error | null): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        socket.removeListener('error', onError);
        if (err === null) {
          socket.setNoDelay(true);
          socket.setKeepAlive(true, 30_000);
          resolve(new Connection(socket, cfg.protocol === 'relp'));
          return;
        }
        socket.destroy();
        reject(err);
      };
      const onError = (err: Error): void =>
        finish(cfg.tls && isTlsFailure(err) ? tlsError(err, this.endpoint) : err);
      const onAbort = (): void => finish(new SinkAbortError(signal.reason));
      const timer = setTimeout(
        () =>
          finish(
            new SinkError(
              'GUARD_SYSLOG_CONNECT_TIMEOUT',
              `no connection to ${this.endpoint} within timeout_ms (${cfg.timeoutMs} ms)`,
            ),
          ),
        cfg.timeoutMs,
      );
      signal.addEventListener('abort', onAbort, { once: true });
      socket.once('error', onError);
      if (!cfg.tls) {
        socket.once('connect', () => finish(null));
        return;
      }
      socket.once('secureConnect', () => {
        const protocol = (socket as TLSSocket).getProtocol();
        // TLS 1.2: the receiver's Finished came after it checked our certificate. RELP: no
        // answer to `open` comes from a receiver that refused us.
        if (protocol !== 'TLSv1.3' || cfg.protocol === 'relp') {
          finish(null);
          return;
        }
        // TLS 1.3: our handshake is done before the receiver has checked our certificate, and a
        // refusal comes later as an alert or a close — after a plain syslog batch could have been
        // written into the void. So wait for the receiver's session ticket (sent once it accepted
        // us) or, from receivers that send none, for SETTLE_MS without a refusal.
        const settled = (): void => {
          socket.removeListener('session', settled);
          socket.removeListener('end', refused);
          socket.removeListener('close', refused);
          clearTimeout(settle);
          finish(null);
        };
        const refused = (): void => {
          clearTimeout(settle);
          finish(
            new SinkError(
              'GUARD_SYSLOG_TLS_REFUSED',
              `${this.endpoint} closed the connection right after the TLS handshake: it refused guard's client certificate (${cfg.clientCertFile === null ? 'none configured: client_cert_file' : cfg.clientCertFile})`,
            ),
          );
        };
        const settle = setTimeout(settled, SETTLE_MS);
        socket.once('session', settled);
        socket.once('end', refused);
        socket.once('close', refused);
        socket.resume();
      });
    });
  }

  /** Waits for one answer to `txnr` (or the connection's death, the timeout, the abort). */
  private exchange(
    conn: Connection,
    frame: string,
    txnr: number,
    signal: AbortSignal,
  ): Promise<RelpFrame> {
    return new Promise((resolve, reject) => {
      const done = (err: Error | null, f?: RelpFrame): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        conn.onFrame = null;
        conn.onDeath = null;
        if (err) reject(err);
        else resolve(f!);
      };
      const onAbort = (): void => done(new SinkAbortError(signal.reason));
      const timer = setTimeout(
        () =>
          done(
            new SinkError(
              'GUARD_RELP_TIMEOUT',
              `no RELP answer from ${this.endpoint} within timeout_ms (${this.cfg.timeoutMs} ms): is it a RELP receiver (rsyslog imrelp)?`,
            ),
          ),
        this.cfg.timeoutMs,
      );
      signal.addEventListener('abort', onAbort, { once: true });
      conn.onDeath = (e) => done(e);
      conn.onFrame = (f) => {
        if (f.txnr !== txnr || f.command !== 'rsp')
          done(
            new SinkError('GUARD_RELP_PROTOCOL', `unexpected RELP frame ${f.txnr} ${f.command}`),
          );
        else done(null, f);
      };
      if (conn.dead) done(conn.dead);
      else conn.socket.write(frame);
    });
  }

  private async openRelp(conn: Connection, signal: AbortSignal): Promise<void> {
    conn.txnr = 1;
    const f = await this.exchange(conn, relpFrame(1, 'open', RELP_OFFERS), 1, signal);
    const code = rspCode(f.data);
    if (code !== 200)
      throw new SinkError(
        'GUARD_RELP_OPEN_REFUSED',
        `the receiver refused the RELP session: ${JSON.stringify(f.data.slice(0, 200))}`,
      );
    const commands = /(?:^|\n)commands=([^\n]*)/.exec(f.data)?.[1] ?? '';
    if (!commands.split(',').includes('syslog'))
      throw new SinkError(
        'GUARD_RELP_OPEN_REFUSED',
        `the receiver does not offer the RELP syslog command (commands=${commands})`,
      );
  }

  /** Sends the messages not yet answered, RELP_WINDOW ahead of the answers; resolves when all are answered 200. */
  private sendRelp(
    conn: Connection,
    msgs: SyslogMessages,
    answered: Uint8Array,
    signal: AbortSignal,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const inFlight = new Map<number, number>(); // txnr → message index
      let next = 0;
      let left = 0;
      for (let i = 0; i < answered.length; i++) if (answered[i] === 0) left++;
      const done = (err: Error | null): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        conn.onFrame = null;
        conn.onDeath = null;
        if (err) reject(err);
        else resolve();
      };
      const stalled = (): void =>
        done(
          new SinkError(
            'GUARD_RELP_TIMEOUT',
            `the receiver answered no RELP message for timeout_ms (${this.cfg.timeoutMs} ms)`,
          ),
        );
      let timer = setTimeout(stalled, this.cfg.timeoutMs);
      const pump = (): void => {
        const items: number[] = [];
        const txnrs: number[] = [];
        while (inFlight.size < RELP_WINDOW && next < answered.length) {
          const i = next++;
          if (answered[i] === 1) continue;
          conn.txnr = nextTxnr(conn.txnr);
          inFlight.set(conn.txnr, i);
          items.push(i);
          txnrs.push(conn.txnr);
        }
        if (items.length > 0) conn.socket.write(relpFrames(msgs, items, txnrs));
      };
      const onAbort = (): void => done(new SinkAbortError(signal.reason));
      signal.addEventListener('abort', onAbort, { once: true });
      conn.onDeath = (e) => done(e);
      conn.onFrame = (f) => {
        const i = inFlight.get(f.txnr);
        if (f.command !== 'rsp' || i === undefined) {
          done(
            new SinkError('GUARD_RELP_PROTOCOL', `unexpected RELP frame ${f.txnr} ${f.command}`),
          );
          return;
        }
        inFlight.delete(f.txnr);
        const code = rspCode(f.data);
        if (code !== 200) {
          done(
            new SinkError(
              'GUARD_RELP_REFUSED',
              `the receiver answered a message with ${JSON.stringify(f.data.slice(0, 200))}`,
            ),
          );
          return;
        }
        answered[i] = 1;
        left -= 1;
        if (left === 0) {
          done(null);
          return;
        }
        timer.refresh();
        if (inFlight.size <= RELP_WINDOW / 2) pump();
      };
      if (conn.dead) {
        done(conn.dead);
        return;
      }
      if (left === 0) {
        done(null);
        return;
      }
      pump();
      timer = timer.refresh();
    });
  }

  /** Writes the whole batch; resolves when the kernel has taken every byte (no receiver answer exists). */
  private sendStream(conn: Connection, msgs: SyslogMessages, signal: AbortSignal): Promise<void> {
    const bytes = frameStream(msgs, this.cfg.framing);
    return new Promise((resolve, reject) => {
      const done = (err: Error | null): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        conn.onDeath = null;
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(
        () =>
          done(
            new SinkError(
              'GUARD_SYSLOG_TIMEOUT',
              `the receiver took not all of a batch within timeout_ms (${this.cfg.timeoutMs} ms)`,
            ),
          ),
        this.cfg.timeoutMs,
      );
      const onAbort = (): void => done(new SinkAbortError(signal.reason));
      signal.addEventListener('abort', onAbort, { once: true });
      conn.onDeath = (e) => done(e);
      if (conn.dead) {
        done(conn.dead);
        return;
      }
      conn.socket.write(bytes, (err) => done(err ?? conn.dead));
    });
  }
}

function isTlsFailure(err: Error): boolean {
  const code = errorCode(err);
  return (
    code.startsWith('ERR_SSL') ||
    code.startsWith('ERR_TLS') ||
    /CERT|SIGNATURE|ISSUER|SELF_SIGNED/.test(code) ||
    // a receiver that drops the handshake (e.g. refused our certificate) without an alert
    code === 'ECONNRESET'
  );
}
