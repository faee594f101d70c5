// The request loop. Each connection is authenticated once, by the kernel's word (SO_PEERCRED,
// SO_PEERGROUPS), then serves a closed set of requests with at most one reply waiting at a time.
import * as fdpass from '@guard/fdpass';
import {
  MAX_REQUEST_BYTES,
  PROTOCOL_VERSION,
  parseRequest,
  type ErrorCode,
  type Refusal,
  type Request,
} from '@guard/protocol/wire';
import { auditOnly, openAllowed, Refused, watchSource } from './open';
import { listSource, type Policy, type Source } from './policy';

// What every hello reply says beside the peer's own: the protocol and the open path in use.
export const HELLO = {
  version: PROTOCOL_VERSION,
  open_path: fdpass.hasOpenat2() ? 'openat2' : 'walk',
};

// C1 controls, bidi overrides and line separators escaped too (JSON.stringify leaves them raw): no
// path or cursor becomes a terminal escape or reorders what a viewer shows.
export const log = (level: 'info' | 'warn' | 'error', event: string, fields: object = {}): void =>
  void process.stderr.write(
    JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }).replace(
      /[\u0080-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    ) + '\n',
  );

// Per connection: requests a second, a burst, and how many are served before another's turn.
const limits = { connections: 32, ratePerSecond: 5000, burst: 500, perTurn: 64 };
interface Reply {
  body: object;
  fd: number;
  /** the connection is closed once this is sent, logged at this level with this reason */
  close?: ['info' | 'warn', string];
}
interface Conn {
  fd: number;
  peer: { pid: number; uid: number };
  audit: boolean;
  policy: Policy;
  hello: boolean;
  watcher: fdpass.Watcher;
  tokens: number;
  at: number;
  out: Reply | null;
  paused: boolean;
}

// One row per request: its answer to an authenticated peer (beside ok, op) and descriptor, if any.
type Row<R> = (c: Conn, r: R, fd: number) => [object, number?];
const REQUESTS: { [K in Request['op']]: Row<Extract<Request, { op: K }>> } = {
  hello: (c) => [{ ...HELLO, policy: c.policy.digest, uid: c.peer.uid, audit: c.audit }],
  list: (c, r) => {
    const listed = listSource(sourceFor(c, r.source), r.cursor);
    return [{ source: r.source, ...listed }];
  },
  open: (c, r) => {
    const { fd, ...id } = openAllowed(c.policy, r.path, c.audit);
    if (r.descriptor === false)
      fdpass.close(fd); // identity only (rotation polls): not a grant
    else log('info', 'granted', { ...c.peer, op: r.op, path: r.path, dev: id.dev });
    return [{ path: r.path, ...id }, r.descriptor === false ? -1 : fd];
  },
  watch: (c, r, fd) => {
    const source = sourceFor(c, r.source);
    // The agent's own instance (charged to it, not root), closed here once the watches are in.
    if (fd < 0) throw new Refused('bad_request', "watch carries the agent's inotify instance");
    const watches = watchSource(source, fd);
    log('info', 'watching', { ...c.peer, source: r.source, dirs: watches.length });
    return [{ source: r.source, watches }];
  },
};

function sourceFor(c: Conn, name: string): Source {
  const source = c.policy.sources.find((s) => s.name === name);
  if (!source) throw new Refused('not_allowed', `no source "${name}" is configured`);
  if (source.type === 'audit' && !c.audit) throw auditOnly(`source "${name}"`);
  return source;
}

const refusal = (op: unknown, error: ErrorCode, message: string, close?: Reply['close']) => ({
  body: { ok: false, op: typeof op === 'string' ? op : null, error, message },
  fd: -1,
  close,
});
const violation = (error: ErrorCode, message: string) =>
  refusal(null, error, message, ['warn', 'protocol violation']);

export function serve(listenFd: number, getPolicy: () => Policy): void {
  const conns = new Set<Conn>();

  function drop(c: Conn, fields: object, level: 'info' | 'warn' = 'info'): void {
    if (!conns.delete(c)) return;
    c.watcher.close();
    if (c.out && c.out.fd >= 0) fdpass.close(c.out.fd);
    fdpass.close(c.fd);
    log(level, 'closed', { ...c.peer, ...fields });
  }

  function handle(c: Conn, data: Buffer, truncated: boolean, fd: number, extra: number): Reply {
    // Only watch carries a descriptor (the agent's inotify instance); pump closes it after handle.
    if (extra > 0) return violation('bad_request', 'a request carries at most one descriptor');
    if (truncated || data.length > MAX_REQUEST_BYTES)
      return violation('too_large', `requests are at most ${MAX_REQUEST_BYTES} bytes`);
    // Identity and audit membership were checked against the policy of the moment: re-check after a reload.
    if (getPolicy() !== c.policy)
      return refusal(null, 'reloaded', 'the helper reloaded its policy: reconnect', [
        'info',
        'closed after policy reload',
      ]);
    const parsed = parseRequest(data);
    if (!parsed.ok) return violation(parsed.code, parsed.message);
    const req = parsed.request;
    // The conversation only moves forward: a hello in a version this helper speaks, then requests.
    if (req.op === 'hello' && req.version !== PROTOCOL_VERSION)
      return refusal(
        'hello',
        'version',
        `the client speaks protocol version ${req.version}, this helper ${PROTOCOL_VERSION}`,
        ['warn', 'protocol version mismatch'],
      );
    if (!(c.hello ||= req.op === 'hello'))
      return violation('bad_request', `${req.op} before hello`);
    if (fd >= 0 && req.op !== 'watch')
      return violation('bad_request', `${req.op} requests must not carry descriptors`);
    try {
      const [body, out = -1] = (REQUESTS[req.op] as Row<Request>)(c, req, fd);
      return { body: { ok: true, op: req.op, ...body }, fd: out };
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      log('warn', 'refused', { ...req, ...c.peer, code: e.code, message: e.message }); // ours win
      return refusal(req.op, e.code, e.message);
    }
  }

  // Serve one connection until it would block, is throttled, or has had its turn (fairness).
  function pump(c: Conn): void {
    for (let turn = 0; conns.has(c); turn++) {
      if (c.out) {
        const { body, fd, close } = c.out;
        let sent: boolean;
        try {
          sent = fdpass.send(c.fd, Buffer.from(JSON.stringify(body)), fd >= 0 ? fd : undefined);
        } catch (e) {
          // a refused peer that hung up first is still logged as refused, at its level
          const errno = (e as NodeJS.ErrnoException).code;
          return drop(c, { reason: close?.[1] ?? errno, errno }, close?.[0]);
        }
        if (!sent) return c.watcher.start(false, true);
        if (fd >= 0) fdpass.close(fd);
        c.out = null;
        if (close) return drop(c, { reason: close[1], code: (body as Refusal).error }, close[0]);
      }
      const now = Date.now();
      c.tokens = Math.min(limits.burst, c.tokens + ((now - c.at) * limits.ratePerSecond) / 1000);
      c.at = now;
      if (c.tokens < 1 || turn >= limits.perTurn) {
        c.watcher.stop();
        if (c.tokens < 1 && !c.paused) log('warn', 'throttled', c.peer);
        c.paused = c.tokens < 1;
        if (c.paused) setTimeout(() => pump(c), Math.ceil(1000 / limits.ratePerSecond));
        else setImmediate(() => pump(c));
        return;
      }
      let msg: fdpass.Received | null;
      try {
        msg = fdpass.recv(c.fd, MAX_REQUEST_BYTES + 1, 1);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code; // ECTRUNC: more descriptors than fit; the addon closed them all
        if (code !== 'ECTRUNC') return drop(c, { reason: code });
        c.out = violation('bad_request', 'a request carries at most one descriptor');
        continue;
      }
      if (msg === null) return c.watcher.start(true, false);
      if (msg.data.length === 0) return drop(c, { reason: 'peer closed' });
      c.tokens -= 1;
      c.out = handle(c, msg.data, msg.truncated, msg.fd, msg.closed);
      if (msg.fd >= 0) fdpass.close(msg.fd);
    }
  }

  // listener is used in here: its callback (held by the addon) keeps it from the GC (deaf else).
  function accept(): void {
    for (;;) {
      let fd: number;
      try {
        fd = fdpass.accept(listenFd);
      } catch (e) {
        listener.stop(); // out of descriptors or memory: pause rather than spin on a readable socket
        setTimeout(() => listener.start(true, false), 100);
        return log('error', 'accept_failed', { code: (e as NodeJS.ErrnoException).code });
      }
      if (fd < 0) return;
      const cred = fdpass.peerCred(fd);
      const policy = getPolicy();
      const c: Conn = {
        fd,
        peer: { pid: cred.pid, uid: cred.uid },
        audit: false,
        policy,
        hello: false,
        tokens: limits.burst,
        at: Date.now(),
        out: null,
        paused: false,
        watcher: new fdpass.Watcher(fd, (status) =>
          status < 0 ? drop(c, { reason: `poll error ${status}` }) : pump(c),
        ),
      };
      // A stranger or a connection over the limit gets its refusal and is closed by pump, as any.
      if (cred.uid !== policy.agentUid)
        c.out = refusal(null, 'peer', `uid ${cred.uid} is not the agent user`, [
          'warn',
          'peer_refused',
        ]);
      else if (conns.size >= limits.connections)
        c.out = refusal(null, 'io', `more than ${limits.connections} connections`, [
          'warn',
          'too_many_connections',
        ]);
      else {
        c.audit = cred.gid === policy.auditGid || fdpass.peerGroups(fd).includes(policy.auditGid);
        log('info', 'connected', { ...c.peer, audit: c.audit });
      }
      conns.add(c);
      pump(c);
    }
  }

  const listener: fdpass.Watcher = new fdpass.Watcher(listenFd, (status) =>
    status < 0 ? log('error', 'accept_failed', { status }) : accept(),
  );
  listener.start(true, false);
}
