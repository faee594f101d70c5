// HelperClient: the unprivileged side of the helper protocol (docs/protocol.md), used by the agent
// and guardctl. Not loaded by the helper, so it is outside the root-surface budget.
import * as fdpass from '@guard/fdpass';
import { connect, inotifyInit } from '@guard/fdpass/connect';
import {
  MAX_REPLY_BYTES,
  MAX_REQUEST_BYTES,
  PROTOCOL_VERSION,
  type ErrorCode,
  type FileReply,
  type HelloReply,
  type ListReply,
  type Refusal,
  type Reply,
  type Request,
  type Watch,
  type WatchReply,
} from './wire';

/** The helper answered `ok:false`: `code` is the helper's error code, `message` its sentence. */
export class HelperRefusal extends Error {
  override readonly name = 'HelperRefusal';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly op: Request['op'] | null,
  ) {
    super(message);
  }
}

/**
 * The conversation with the helper failed (as opposed to a refusal):
 * - `helper_closed`: the helper closed the connection (or it broke: EPIPE/ECONNRESET);
 * - `helper_protocol`: the helper sent something the protocol does not allow;
 * - `client_closed`: close() was called while the request was waiting;
 * - `request_too_large`: the request would be over 4096 bytes, so it was never sent.
 */
export type ConnectionErrorCode =
  'helper_closed' | 'helper_protocol' | 'client_closed' | 'request_too_large';
export class HelperConnectionError extends Error {
  override readonly name = 'HelperConnectionError';
  constructor(
    readonly code: ConnectionErrorCode,
    message: string,
  ) {
    super(message);
  }
}

type ReplyFor<R extends Request> = R extends { op: 'hello' }
  ? HelloReply
  : R extends { op: 'list' }
    ? ListReply
    : R extends { op: 'watch' }
      ? WatchReply
      : FileReply;

export interface Exchange<R extends Request = Request> {
  reply: ReplyFor<R> | Refusal;
  /** The descriptor attached to a successful `open`; -1 otherwise. The caller owns it. */
  fd: number;
}

interface Pending {
  op: Request['op'];
  /** whether a successful reply carries a descriptor (open without `descriptor: false`) */
  fd: boolean;
  resolve(x: Exchange): void;
  reject(e: Error): void;
}

const CONNECT_RETRY_MS = 2000;

function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null
    ? ((e as { code?: unknown }).code as string | undefined)
    : undefined;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class HelperClient {
  private readonly pending: Pending[] = []; // replies arrive in request order
  // waiting for the socket to become writable, each with the descriptor it carries (-1: none)
  private readonly unsent: { packet: Buffer; fd: number }[] = [];
  private readonly watcher: fdpass.Watcher;
  private failure: Error | null = null; // set once: every later request fails with it
  private watching = { readable: false, writable: false };
  /** The helper's answer to the hello `connect` says (null when connected with `hello: false`). */
  helper: HelloReply | null = null;

  private constructor(private readonly fd: number) {
    this.watcher = new fdpass.Watcher(fd, (status, readable, writable) =>
      this.onEvent(status, readable, writable),
    );
  }

  /**
   * Connects to the helper's socket and says hello (the helper serves nothing before it): a
   * refusal (`peer`, `version`) rejects as HelperRefusal, a helper speaking another version as
   * HelperConnectionError `helper_protocol`, both naming the versions or the reason. EAGAIN (the
   * listen backlog is full) is retried with a bounded backoff for about 2 s; any other error
   * (ENOENT, EACCES, ECONNREFUSED…) is thrown as is. `hello: false` only connects (tests).
   */
  static async connect(socketPath: string, opts = { hello: true }): Promise<HelperClient> {
    const deadline = Date.now() + CONNECT_RETRY_MS;
    for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
      let fd: number;
      try {
        fd = connect(socketPath);
      } catch (e) {
        if (errnoCode(e) !== 'EAGAIN' || Date.now() + delay > deadline) throw e;
        await sleep(delay);
        continue;
      }
      let client: HelperClient;
      try {
        client = new HelperClient(fd);
      } catch (e) {
        fdpass.close(fd);
        throw e;
      }
      try {
        if (opts.hello) client.helper = await client.hello();
        return client;
      } catch (e) {
        client.close();
        throw e;
      }
    }
  }

  /**
   * Sends one request; resolves with the helper's reply (a refusal included) and the descriptor.
   * Requests may be pipelined. Rejects with HelperConnectionError when the conversation fails.
   */
  request<R extends Request>(req: R, passFd = -1): Promise<Exchange<R>> {
    return new Promise<Exchange>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      const packet = Buffer.from(JSON.stringify(req), 'utf8');
      if (packet.length > MAX_REQUEST_BYTES) {
        return reject(
          new HelperConnectionError(
            'request_too_large',
            `${req.op} request is ${packet.length} bytes, over the protocol's ${MAX_REQUEST_BYTES}`,
          ),
        );
      }
      this.pending.push({
        op: req.op,
        fd: !(req.op === 'open' && req.descriptor === false),
        resolve,
        reject,
      });
      this.unsent.push({ packet, fd: passFd }); // the caller keeps passFd open until answered
      this.flush();
      this.updateWatcher();
    }) as Promise<Exchange<R>>;
  }

  async hello(): Promise<HelloReply> {
    const reply = this.accept(
      (await this.request({ op: 'hello', version: PROTOCOL_VERSION })).reply,
    );
    if (reply.version !== PROTOCOL_VERSION) {
      throw new HelperConnectionError(
        'helper_protocol',
        `helper speaks protocol version ${String(reply.version)}, this client ${PROTOCOL_VERSION}`,
      );
    }
    return reply;
  }

  /** One page of a source's names; `cursor` is the previous page's `next`. */
  async list(source: string, cursor?: string): Promise<ListReply> {
    const req =
      cursor === undefined
        ? { op: 'list' as const, source }
        : { op: 'list' as const, source, cursor };
    return this.accept((await this.request(req)).reply);
  }

  /** Every name of a source: asks again with each reply's `next` until a reply has none. */
  async listAll(source: string): Promise<ListReply> {
    const all: ListReply = { ok: true, op: 'list', source, files: [], generations: [] };
    for (let cursor: string | undefined; ;) {
      const page = await this.list(source, cursor);
      all.files.push(...page.files);
      all.generations.push(...page.generations);
      if (page.truncated) all.truncated = true;
      if (page.next === undefined) return all;
      // sorted pages: a cursor that does not move forward would ask for the same page forever
      if (cursor !== undefined && page.next <= cursor)
        throw new HelperConnectionError('helper_protocol', `list cursor did not move forward`);
      cursor = page.next;
    }
  }

  /** Opens `path` through the helper. The caller owns the returned descriptor and must close it. */
  async open(path: string): Promise<{ reply: FileReply; fd: number }> {
    const { reply, fd } = await this.request({ op: 'open', path });
    return { reply: this.accept(reply), fd };
  }

  /** `open` without the descriptor: the helper's checks and the file's identity (protocol 3; the
   *  `stat` op before it did the same). The helper does not log it as a grant. */
  async stat(path: string): Promise<FileReply> {
    return this.accept((await this.request({ op: 'open', path, descriptor: false })).reply);
  }

  /**
   * A new inotify instance of this process's user (non-blocking, close-on-exec), sent to the helper,
   * which adds watches on the source's directories to it (docs/protocol.md, `watch`): the instance
   * and its watches count against this user's inotify limits, never root's. The caller owns `fd`
   * and must close it. Refusals: `not_allowed`, `audit_group`, `not_found`, `limit`,
   * `unsupported`; an `inotify_init1` failure (EMFILE: the user's instances used up) throws as is.
   */
  async watch(source: string): Promise<{ fd: number; watches: Watch[] }> {
    const fd = inotifyInit();
    try {
      const { reply } = await this.request({ op: 'watch', source }, fd);
      return { fd, watches: this.accept(reply).watches };
    } catch (e) {
      fdpass.close(fd);
      throw e;
    }
  }

  /** Closes the connection; requests still waiting reject with `client_closed`. Idempotent. */
  close(): void {
    this.fail(new HelperConnectionError('client_closed', 'closed'));
  }

  private accept<T extends Reply>(reply: T | Refusal): T {
    if (!reply.ok) throw new HelperRefusal(reply.error, reply.message, reply.op);
    return reply;
  }

  private onEvent(status: number, readable: boolean, writable: boolean): void {
    if (this.failure) return;
    if (writable) this.flush();
    // status < 0: libuv saw POLLERR (the helper closed with requests of ours unread, so the
    // socket holds ECONNRESET) and stopped the handle. Replies it sent before that are still
    // queued behind the error: read them, then start watching again if anything is left.
    if (readable || status < 0) this.receive();
    if (status < 0) this.watching = { readable: false, writable: false };
    this.updateWatcher();
  }

  private flush(): void {
    while (!this.failure && this.unsent.length > 0) {
      try {
        const { packet, fd } = this.unsent[0]!;
        if (!fdpass.send(this.fd, packet, fd >= 0 ? fd : undefined)) return; // EAGAIN: wait
      } catch (e) {
        // EPIPE/ECONNRESET: read what the helper sent before it closed (a `peer` refusal says why).
        this.receive();
        return this.fail(
          new HelperConnectionError(
            'helper_closed',
            `helper connection lost (${errnoCode(e) ?? String(e)})`,
          ),
        );
      }
      this.unsent.shift();
    }
  }

  private receive(): void {
    let reset = false;
    while (!this.failure) {
      let got: ReturnType<typeof fdpass.recv>;
      try {
        got = fdpass.recv(this.fd, MAX_REPLY_BYTES, 1);
      } catch (e) {
        const code = errnoCode(e);
        // ECONNRESET is reported once, ahead of the replies the helper sent before closing.
        if (code === 'ECONNRESET' && !reset) {
          reset = true;
          continue;
        }
        return this.fail(
          new HelperConnectionError(
            code === 'ECONNRESET' ? 'helper_closed' : 'helper_protocol',
            `receiving from the helper failed (${code ?? String(e)})`,
          ),
        );
      }
      if (got === null) {
        // EAGAIN: nothing more to read now
        if (reset)
          this.fail(new HelperConnectionError('helper_closed', 'the helper closed the connection'));
        return;
      }
      if (got.closed > 0) {
        // The helper attaches at most one descriptor to a reply: more is a compromised or fake
        // helper trying to fill our descriptor table (the addon closed the extra ones unread).
        if (got.fd >= 0) fdpass.close(got.fd);
        return this.fail(
          new HelperConnectionError(
            'helper_protocol',
            `helper protocol error: a reply carried ${got.closed + (got.fd >= 0 ? 1 : 0)} descriptors (at most 1 is allowed); the extra ones were closed unread`,
          ),
        );
      }
      if (got.data.length === 0) {
        if (got.fd >= 0) fdpass.close(got.fd);
        return this.fail(
          new HelperConnectionError('helper_closed', 'the helper closed the connection'),
        );
      }
      this.dispatch(got.data, got.fd, got.truncated);
    }
  }

  /** Matches one reply packet to the oldest waiting request. */
  private dispatch(data: Buffer, fd: number, truncated: boolean): void {
    const waiting = this.pending[0];
    const reply = truncated ? null : decodeReply(data);
    const problem =
      reply === null
        ? `an invalid reply packet (${data.length} bytes${truncated ? ', truncated' : ''})`
        : replyProblem(reply, fd, waiting?.op, waiting?.fd);
    if (problem !== null || reply === null) {
      if (fd >= 0) fdpass.close(fd); // never keep a descriptor we did not ask for
      return this.fail(
        new HelperConnectionError('helper_protocol', `helper protocol error: ${problem}`),
      );
    }
    if (!waiting) {
      // Only a refusal gets here (replyProblem): the `peer` refusal the helper sends before it
      // reads any request, then closes. Later requests fail with it, which says why.
      const refusal = reply as Refusal;
      return this.fail(new HelperRefusal(refusal.error, refusal.message, refusal.op));
    }
    this.pending.shift();
    waiting.resolve({ reply, fd });
  }

  private updateWatcher(): void {
    if (this.failure) return;
    const want = { readable: this.pending.length > 0, writable: this.unsent.length > 0 };
    if (want.readable === this.watching.readable && want.writable === this.watching.writable)
      return;
    if (want.readable || want.writable) this.watcher.start(want.readable, want.writable);
    else this.watcher.stop();
    this.watching = want;
  }

  /** Ends the connection once: every waiting request rejects with `error`, later ones too. */
  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.watcher.close();
    fdpass.close(this.fd);
    this.unsent.length = 0;
    for (const p of this.pending.splice(0)) p.reject(error);
  }
}

/** Light shape check of a reply from the (trusted, root) helper: enough to match it to its request. */
/** Why a well-formed reply cannot answer the request waiting for it (`op`), or null when it can. */
function replyProblem(
  reply: Reply,
  fd: number,
  op: Request['op'] | undefined,
  withFd = true,
): string | null {
  if (!reply.ok) {
    if (reply.op !== null && reply.op !== op)
      return `a ${reply.op} refusal while ${op ?? 'no'} request waits`;
    return fd >= 0 ? 'a descriptor attached to a refusal' : null;
  }
  if (reply.op !== op) return `a ${reply.op} reply while ${op ?? 'no'} request waits`;
  if (reply.op === 'open' && withFd)
    return fd >= 0 ? null : `a ${reply.op} reply without a descriptor`;
  return fd >= 0 ? `a descriptor attached to a ${reply.op} reply` : null;
}

const strings = (v: unknown): boolean => Array.isArray(v) && v.every((f) => typeof f === 'string');

function decodeReply(data: Buffer): Reply | null {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const r = value as Record<string, unknown>;
  if (r.ok === false) {
    return typeof r.error === 'string' && typeof r.message === 'string' ? (value as Refusal) : null;
  }
  if (r.ok !== true) return null;
  switch (r.op) {
    case 'hello':
      return typeof r.version === 'number' &&
        typeof r.policy === 'string' &&
        (r.open_path === undefined || r.open_path === 'openat2' || r.open_path === 'walk')
        ? (value as HelloReply)
        : null;
    case 'list':
      return strings(r.files) &&
        strings(r.generations) &&
        (r.next === undefined || typeof r.next === 'string')
        ? (value as ListReply)
        : null;
    case 'watch':
      return typeof r.source === 'string' &&
        Array.isArray(r.watches) &&
        r.watches.every(
          (w: unknown) =>
            typeof w === 'object' &&
            w !== null &&
            Number.isInteger((w as Watch).wd) &&
            typeof (w as Watch).dir === 'string',
        )
        ? (value as WatchReply)
        : null;
    case 'open':
      return typeof r.path === 'string' &&
        typeof r.dev === 'string' &&
        /^\d+$/.test(r.dev) &&
        typeof r.ino === 'string' &&
        /^\d+$/.test(r.ino) &&
        typeof r.size === 'number'
        ? (value as FileReply)
        : null;
    default:
      return null;
  }
}
