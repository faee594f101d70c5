// Driving test/fixtures/peer.cjs (a raw fdpass client) and `guardctl probe` as a test user.
import { PROTOCOL_VERSION } from '@guard/protocol/wire';
import { killPid, run, start, type RunAs } from './proc';
import type { Sandbox } from './sandbox';

/** One step of a peer script; see test/fixtures/peer.cjs. */
export interface Action {
  a:
    | 'connect'
    | 'connectMany'
    | 'close'
    | 'send'
    | 'recv'
    | 'req'
    | 'reqMany'
    | 'expectClosed'
    | 'loop'
    | 'stuff'
    | 'mark'
    | 'sleep'
    | 'waitFile'
    | 'listAll';
  c?: string;
  path?: string;
  label?: string;
  json?: unknown;
  raw?: string;
  b64?: string;
  fill?: number;
  fillChar?: string;
  padTo?: number;
  passPath?: string;
  passSelf?: boolean;
  timeout?: number;
  read?: number;
  n?: number;
  prefix?: string;
  window?: number;
  reqs?: unknown[];
  secret?: string;
  /** count replies whose text contains this (a name that must never be listed) */
  leak?: string;
  idleTimeout?: number;
  max?: number;
  ms?: number;
  quietMs?: number;
  name?: string;
  /** send this action without the hello the peer otherwise says first on each connection */
  noHello?: boolean;
}

export interface Reply {
  json?: Record<string, unknown> & {
    ok?: boolean;
    op?: string | null;
    error?: string;
    message?: string;
    dev?: string;
    ino?: string;
    size?: number;
  };
  text?: string;
  gotFd?: boolean;
  unexpectedFd?: boolean;
  head?: string;
  dev?: string;
  ino?: string;
  size?: number;
  writable?: boolean;
  closed?: boolean;
  timeout?: boolean;
  error?: string;
  sendError?: string;
  bytes?: number;
  truncated?: boolean;
  ms: number;
  label?: string;
}

export interface ClosedResult {
  closed: boolean;
  replies: Reply[];
  ms: number;
  error?: string;
}

export interface LoopResult {
  /** replies whose text contained the loop's `leak` marker */
  leaks?: number;
  sent: number;
  replies: number;
  granted: number;
  /** granted replies to requests other than an open with a descriptor (list, hello, identity) */
  otherOk: number;
  refused: Record<string, number>;
  secrets: number;
  heads: Record<string, number>;
  okOpenWithoutFd: number;
  fdOnRefusal: number;
  /** such a reply with a descriptor attached */
  fdOnOther: number;
  /** replies whose `op` is not the request's */
  opMismatch: number;
  firstMismatch?: { request: string; reply: unknown };
  closed: boolean;
  stalled: boolean;
  maxInflight: number;
  sendError?: string;
  recvError?: string;
  ms: number;
  error?: string;
}

export interface PeerOutput {
  done: boolean;
  results: Array<Record<string, unknown>>;
  unexpectedFds: number;
  ms: number;
  error?: string;
  stderr: string;
  code: number | null;
}

export interface PeerOptions {
  timeoutMs?: number;
  onMark?: (name: string) => void | Promise<void>;
}

/** Runs a peer script as `user`; resolves with the final result line. */
export async function runPeer(
  sb: Sandbox,
  user: RunAs,
  socket: string,
  actions: Action[],
  opts: PeerOptions = {},
): Promise<PeerOutput> {
  const child = start(process.execPath, [sb.peerJs, sb.addon], {
    user,
    stdin: JSON.stringify({ socket, actions, hello: PROTOCOL_VERSION }),
  });
  let stdout = '';
  let stderr = '';
  let last: Record<string, unknown> | null = null;
  const markWork: Array<Promise<void>> = [];
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    let i: number;
    while ((i = stdout.indexOf('\n')) >= 0) {
      const line = stdout.slice(0, i);
      stdout = stdout.slice(i + 1);
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(line) as Record<string, unknown>;
      } catch {
        stderr += `[stdout] ${line}\n`;
        continue;
      }
      if (typeof v.mark === 'string') {
        if (opts.onMark) markWork.push(Promise.resolve(opts.onMark(v.mark)));
      } else last = v;
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const timer = setTimeout(() => killPid(child.pid, 'SIGKILL'), opts.timeoutMs ?? 60000);
  const code = await new Promise<number | null>((resolve) =>
    child.once('close', (c) => resolve(c)),
  );
  clearTimeout(timer);
  await Promise.all(markWork);
  const fin = last as Record<string, unknown> | null;
  if (!fin || fin.done !== true) {
    throw new Error(`peer failed (exit ${code}): ${JSON.stringify(fin)}\n${stderr.slice(0, 3000)}`);
  }
  return {
    done: true,
    results: fin.results as Array<Record<string, unknown>>,
    unexpectedFds: Number(fin.unexpectedFds),
    ms: Number(fin.ms),
    stderr,
    code,
  };
}

export function reply(out: PeerOutput, i: number): Reply {
  const r = out.results[i];
  if (!r) throw new Error(`no result #${i}`);
  return r as unknown as Reply;
}

export function closedResult(out: PeerOutput, i: number): ClosedResult {
  const r = out.results[i];
  if (!r) throw new Error(`no result #${i}`);
  return r as unknown as ClosedResult;
}

export function loopResult(out: PeerOutput, i: number): LoopResult {
  const r = out.results[i];
  if (!r) throw new Error(`no result #${i}`);
  return r as unknown as LoopResult;
}

export const open = (path: string): { op: string; path: string } => ({ op: 'open', path });
export const list = (source: string): { op: string; source: string } => ({ op: 'list', source });
/** open with `descriptor: false`: the checks and identity only (what HelperClient.stat sends) */
export const identity = (path: string): { op: string; path: string; descriptor: false } => ({
  op: 'open',
  path,
  descriptor: false,
});
export const hello = { op: 'hello', version: PROTOCOL_VERSION };

export interface ProbeResult {
  code: number | null;
  json:
    | (Record<string, unknown> & {
        granted?: boolean;
        code?: string;
        dev?: string;
        ino?: string;
        size?: number;
        path?: string;
        message?: string;
      })
    | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

/** `guardctl probe PATH --socket S --json` as `user`. */
export async function probe(
  sb: Sandbox,
  user: RunAs,
  socket: string,
  path: string,
  timeoutMs = 20000,
): Promise<ProbeResult> {
  const r = await run(
    process.execPath,
    [sb.guardctlJs, 'probe', path, '--socket', socket, '--json'],
    { user, timeoutMs },
  );
  let json: ProbeResult['json'] = null;
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    json = JSON.parse(line) as ProbeResult['json'];
  } catch {
    json = null;
  }
  return { code: r.code, json, stdout: r.stdout, stderr: r.stderr, ms: r.ms, timedOut: r.timedOut };
}
