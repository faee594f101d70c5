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
import {
  backoffDelay,
  throwIfAborted,
  untilAborted,
  waitToRetry,
  type RetryPolicy,
} from '../retry';
import { describeError, errorCode, SinkAbortError, SinkError } from '../sink-error';
import { SYSTEM_CA_BUNDLES } from '../core/http-core';
import { BufferPool } from '../core/byte-writer';
import { markDelivered, newSinkStatus } from '../sink-status';
import {
  facilityNumber,
  frameStream,
  relpFrames,
  severityNumber,
  SyslogEncoder,
  type SyslogMessages,
} from './format';
import {
  nextTxnr,
  RELP_OFFERS,
  relpFrame,
  RelpReader,
  RelpWindow,
  rspCode,
  rspCodeAt,
  type RelpFrame,
  type RelpFrameHandler,
} from './relp';

/** RELP messages sent ahead of their answers (librelp's own client uses 128; rsyslog keeps up). */
const RELP_WINDOW = 1024;
/** TLS 1.3: how long a new connection must stay open without a refusal when no session ticket comes. */
const SETTLE_MS = 1000;

/**
 * One batch's messages on a RELP session: sent RELP_WINDOW ahead of the answers (the window is
 * the session's, shared by the batches on it), done when every message was answered 200.
 * `answered` outlives the session: after a broken one, only the others are sent again.
 */
interface RelpTx {
  readonly msgs: SyslogMessages;
  readonly answered: Uint8Array;
  /** The next message to consider sending. */
  next: number;
  /** Messages not yet answered. */
  left: number;
  /** Every message answered, or the session broke (its error); the first settle() counts. */
  readonly done: Promise<void>;
  settle(err: Error | null): void;
}

/** One connection to the receiver; dies once (error, close, timeout, protocol error) and is replaced. */
class Connection {
  dead: Error | null = null;
  /** Where RELP frames from the receiver go (the open handshake, then the session's batches). */
  onFrame: RelpFrameHandler | null = null;
  onDeath: ((e: Error) => void) | null = null;
  /** Called once the frames of a chunk were handed to onFrame (RELP: sends more, in one write). */
  afterFrames: (() => void) | null = null;
  /** RELP: the batches being sent on this session, oldest first. */
  readonly txs: RelpTx[] = [];
  /** RELP: the messages sent and not yet answered, each with its batch and index. */
  readonly window = new RelpWindow<RelpTx>(RELP_WINDOW);
  /** RELP: fires when messages are unanswered and no answer came for timeout_ms. */
  stall: NodeJS.Timeout | null = null;
  /** RELP: an answer came in the chunk being read (the stall timer counts from the last one: bytes
   *  that complete no answer, a receiver trickling one, do not keep the session alive). */
  answeredInChunk = false;
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
    const onFrame: RelpFrameHandler = (txnr, command, data, from, to) => {
      if (this.dead !== null) return;
      if (command === 'serverclose') {
        this.die(new SinkError('GUARD_RELP_SERVERCLOSE', 'the receiver ended the RELP session'));
        return;
      }
      this.onFrame?.(txnr, command, data, from, to);
    };
    socket.on('data', (chunk: Buffer) => {
      if (this.reader === null) return; // a plain syslog receiver has nothing to say
      try {
        this.reader.read(chunk, onFrame);
        if (this.dead === null) this.afterFrames?.();
      } catch (e) {
        this.die(e as Error);
      }
    });
  }

  die(e: Error): void {
    if (this.dead !== null) return;
    this.dead = e;
    this.socket.destroy();
    if (this.stall !== null) clearTimeout(this.stall);
    this.onDeath?.(e);
    for (const tx of this.txs.splice(0)) tx.settle(e);
    this.window.clear();
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
  /** The buffers of batches delivered (their messages read no more), for the next batches. */
  private readonly batchBuffers = new BufferPool();
  /** RELP: the buffers of frames the kernel has taken, for the next frames. */
  private readonly frameBuffers = new BufferPool();
  private conn: Connection | null = null;
  private closed = false;
  /** RELP: batches prepare() started on the session ahead of their send() (at most AHEAD). */
  private readonly early = new Map<Batch, { tx: RelpTx; conn: Connection }>();
  /** The pipeline's signal, from the last send(): what ends batches started ahead too. */
  private signal: AbortSignal | null = null;
  /** RELP: the seq of the last batch whose messages went on `conn` (a batch goes ahead only
   *  right behind it, so that the session carries the batches in order). */
  private lastSeq = -1;

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

  /**
   * Encodes the next batch while the one before it is in flight; with RELP, the batch also goes on
   * the session right behind the one before it as soon as that one's messages do (goAhead()):
   * nothing waits for a whole batch's answers before the next batch's messages go. send() still
   * resolves in order and checkpoints move as before: a kill sends again up to the batches in
   * flight (three) instead of one.
   */
  prepare(batch: Batch): void {
    this.messages(batch);
    if (this.cfg.protocol !== 'relp') return;
    this.ready.set(batch.seq, batch);
    this.goAhead();
  }

  /** Batches prepared and not yet on the session, by seq. */
  private readonly ready = new Map<number, Batch>();

  /** Puts the prepared batches that follow the last one on the session on it too (at most two
   *  ahead of their send()), while nothing is retrying. */
  private goAhead(): void {
    const conn = this.conn;
    const signal = this.signal;
    for (;;) {
      const batch = this.ready.get(this.lastSeq + 1);
      if (
        batch === undefined ||
        conn === null ||
        conn.dead !== null ||
        conn.txs.length === 0 || // nothing in flight: its send() is next, and starts it
        this.early.size >= 2 ||
        signal === null ||
        signal.aborted ||
        this.closed ||
        this.state.retryingUntil !== null
      )
        return;
      this.ready.delete(batch.seq);
      const msgs = this.messages(batch);
      const tx = this.startRelp(conn, batch.seq, msgs, new Uint8Array(msgs.starts.length));
      tx.done.catch(() => undefined); // send() awaits it; a batch never sent (shutdown) is not an error
      this.early.set(batch, { tx, conn });
    }
  }

  private messages(batch: Batch): SyslogMessages {
    let m = this.encoded.get(batch);
    if (m === undefined) {
      m = this.encoder.encode(batch.body, this.batchBuffers);
      this.encoded.set(batch, m);
    }
    return m;
  }

  async send(batch: Batch, signal: AbortSignal): Promise<SendOutcome> {
    throwIfAborted(signal);
    this.signal = signal;
    const msgs = this.messages(batch);
    let early = this.early.get(batch) ?? null;
    this.early.delete(batch);
    this.ready.delete(batch.seq);
    // RELP: which messages the receiver has answered, kept across reconnects of this batch.
    const answered = early?.tx.answered ?? new Uint8Array(msgs.starts.length);
    let failures = 0;
    try {
      for (;;) {
        if (this.closed)
          throw new SinkError(
            'GUARD_SINK_CLOSED',
            `sink ${this.name} was closed with batch ${batch.seq} unsent`,
          );
        // The session this attempt used, once it has one.
        let used: Connection | null = null;
        const wentAhead = early !== null;
        try {
          if (early !== null) {
            // Put on the session ahead of this send() (goAhead()): its answers.
            used = early.conn;
            const tx = early.tx;
            early = null;
            this.goAhead(); // room for one more ahead
            await this.relpAnswers(tx, signal);
          } else {
            const conn = await this.connection(signal);
            used = conn;
            if (this.cfg.protocol === 'relp') {
              const tx = this.startRelp(conn, batch.seq, msgs, answered);
              this.goAhead();
              await this.relpAnswers(tx, signal);
            } else await this.sendStream(conn, msgs, signal);
          }
          markDelivered(this.state, batch.events);
          // Every message answered (RELP: sent as copies, relpFrames), or, over TCP, every byte
          // taken by the kernel: nothing reads the batch's buffer any more. (A batch that failed or
          // was aborted may still have a write pending: its buffer is left to the collector.)
          this.encoded.delete(batch);
          this.batchBuffers.give(msgs.buf);
          if (failures > 0)
            this.log.info(
              { seq: batch.seq, attempts: failures + 1 },
              'batch delivered after retries',
            );
          return 'delivered';
        } catch (err) {
          if (signal.aborted || err instanceof SinkAbortError)
            throw new SinkAbortError(signal.reason);
          used?.die(err as Error);
          if (this.conn === used || this.conn?.dead) this.conn = null;
          // A batch that went ahead on a session the batch before it has since replaced (that one
          // met the break first, waited it out and was delivered): the rest at once, on the new one.
          if (wentAhead && this.conn !== null) continue;
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
    this.ready.clear();
    this.early.clear();
    const conn = this.conn;
    this.conn = null;
    if (conn === null || conn.dead !== null) return;
    // answers still coming (batches sent before an abort) are not waited for: the `close` is
    conn.onFrame = null;
    conn.afterFrames = null;
    if (this.cfg.protocol === 'relp')
      conn.socket.write(relpFrame(nextTxnr(conn.window.txnr), 'close', ''));
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
    if (this.cfg.protocol === 'relp') {
      // from now on every answer is for a message of the batches on the session
      conn.onFrame = (txnr, command, data, from, to) =>
        this.relpAnswer(conn, txnr, command, data, from, to);
      conn.afterFrames = () => {
        // the stall timer counts from the last answer (refreshed once a chunk that held any)
        if (conn.window.unanswered === 0) {
          if (conn.stall !== null) clearTimeout(conn.stall);
          conn.stall = null;
        } else if (conn.answeredInChunk) conn.stall?.refresh();
        conn.answeredInChunk = false;
        // more messages once half the window was answered, all that fit in one write
        if (conn.window.inFlight <= RELP_WINDOW / 2) this.pump(conn);
      };
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
      conn.onFrame = (t, command, data, from, to) => {
        if (t !== txnr || command !== 'rsp')
          done(new SinkError('GUARD_RELP_PROTOCOL', `unexpected RELP frame ${t} ${command}`));
        else done(null, { txnr: t, command, data: data.toString('latin1', from, to) });
      };
      if (conn.dead) done(conn.dead);
      else conn.socket.write(frame);
    });
  }

  private async openRelp(conn: Connection, signal: AbortSignal): Promise<void> {
    conn.window.txnr = 1;
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

  /** Puts a batch's messages not yet answered on the session, behind the batches already on it. */
  private startRelp(
    conn: Connection,
    seq: number,
    msgs: SyslogMessages,
    answered: Uint8Array,
  ): RelpTx {
    let left = 0;
    for (let i = 0; i < answered.length; i++) if (answered[i] === 0) left++;
    let settle!: (err: Error | null) => void;
    const done = new Promise<void>((resolve, reject) => {
      settle = (err) => (err === null ? resolve() : reject(err));
    });
    const tx: RelpTx = { msgs, answered, next: 0, left, done, settle };
    this.lastSeq = seq;
    if (conn.dead !== null) {
      tx.settle(conn.dead);
      return tx;
    }
    if (left === 0) {
      tx.settle(null);
      return tx;
    }
    conn.txs.push(tx);
    this.pump(conn);
    return tx;
  }

  /** Resolves when every message of `tx` was answered 200; rejects when its session broke. */
  private relpAnswers(tx: RelpTx, signal: AbortSignal): Promise<void> {
    tx.done.catch(() => undefined); // settled by a session's death whether or not awaited
    return untilAborted(tx.done, signal);
  }

  /** Sends the session's batches' next messages, oldest batch first, while the window has room. */
  private pump(conn: Connection): void {
    // stopping (the pipeline's signal aborted): no more messages, the session is closed next
    if (this.signal?.aborted === true) return;
    for (const tx of conn.txs) {
      if (conn.window.inFlight >= RELP_WINDOW) break;
      const items: number[] = [];
      const txnrs: number[] = [];
      const n = tx.answered.length;
      while (conn.window.inFlight < RELP_WINDOW && tx.next < n) {
        const i = tx.next++;
        if (tx.answered[i] === 1) continue;
        items.push(i);
        txnrs.push(conn.window.sent(tx, i));
      }
      if (items.length > 0) {
        const frames = relpFrames(tx.msgs, items, txnrs, this.frameBuffers);
        // called once the kernel has the bytes, or with an error once the socket is destroyed
        conn.socket.write(frames, () => this.frameBuffers.give(frames));
      }
    }
    if (conn.window.unanswered > 0 && conn.stall === null)
      conn.stall = setTimeout(
        () =>
          conn.die(
            new SinkError(
              'GUARD_RELP_TIMEOUT',
              `the receiver answered no RELP message for timeout_ms (${this.cfg.timeoutMs} ms)`,
            ),
          ),
        this.cfg.timeoutMs,
      );
  }

  /** An answer on a session with batches on it. A refusal or a frame that answers nothing sent
   *  breaks the session: every batch on it sends its unanswered messages again (send()). */
  private relpAnswer(
    conn: Connection,
    txnr: number,
    command: string,
    data: Buffer,
    from: number,
    to: number,
  ): void {
    const w = conn.window;
    if (command !== 'rsp' || !w.answer(txnr)) {
      conn.die(new SinkError('GUARD_RELP_PROTOCOL', `unexpected RELP frame ${txnr} ${command}`));
      return;
    }
    if (rspCodeAt(data, from, to) !== 200) {
      const said = data.toString('latin1', from, Math.min(to, from + 200));
      conn.die(
        new SinkError(
          'GUARD_RELP_REFUSED',
          `the receiver answered a message with ${JSON.stringify(said)}`,
        ),
      );
      return;
    }
    conn.answeredInChunk = true;
    const tx = w.item!;
    w.item = null; // the batch is not kept for the window's sake
    tx.answered[w.index] = 1;
    tx.left -= 1;
    if (tx.left === 0) {
      conn.txs.splice(conn.txs.indexOf(tx), 1);
      tx.settle(null);
    }
  }

  /** Writes the whole batch; resolves when the kernel has taken every byte (no receiver answer exists). */
  private sendStream(conn: Connection, msgs: SyslogMessages, signal: AbortSignal): Promise<void> {
    const bytes = frameStream(msgs, this.cfg.framing);
    return new Promise((resolve, reject) => {
      // Once: an abort or a timeout settles the send while the write is still pending, and its
      // callback comes later — by then close() may have put its own onDeath on the connection,
      // which this must not take away (close() would wait for ever).
      let settled = false;
      const onDeath = (e: Error): void => done(e);
      const done = (err: Error | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        if (conn.onDeath === onDeath) conn.onDeath = null;
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
      conn.onDeath = onDeath;
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
