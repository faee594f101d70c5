// Running programs as root or as a test user, and keeping track of every process started so the
// after hooks can end them by PID (never by name).
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface RunAs {
  uid: number;
  gid: number;
  /** 'init': the user's supplementary groups (initgroups); 'clear': none at all */
  groups?: 'init' | 'clear';
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

const started = new Set<ChildProcess>();

/** The environment of every child: nothing inherited from the test runner. */
export const cleanEnv: NodeJS.ProcessEnv = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/',
  LANG: 'C.UTF-8',
};

/** argv that runs cmd as the user, supplementary groups included (spawn({uid,gid}) drops them). */
export function asUser(user: RunAs | undefined, cmd: string, args: string[]): [string, string[]] {
  if (!user) return [cmd, args];
  const groups = user.groups === 'clear' ? '--clear-groups' : '--init-groups';
  return [
    '/usr/bin/setpriv',
    [`--reuid=${user.uid}`, `--regid=${user.gid}`, groups, '--', cmd, ...args],
  ];
}

export function track(child: ChildProcess): ChildProcess {
  started.add(child);
  child.once('exit', () => started.delete(child));
  return child;
}

export interface StartOptions {
  user?: RunAs;
  stdin?: string;
  cwd?: string;
  /** further descriptors the child inherits as fd 3, 4, … */
  extraFds?: number[];
}

/** Starts a long-running process (setpriv execs, so the PID is the program's own). */
export function start(cmd: string, args: string[], opts: StartOptions = {}): ChildProcess {
  const [c, a] = asUser(opts.user, cmd, args);
  const child = spawn(c, a, {
    cwd: opts.cwd ?? '/',
    env: cleanEnv,
    stdio: ['pipe', 'pipe', 'pipe', ...(opts.extraFds ?? [])],
  });
  track(child);
  if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
  else child.stdin?.end();
  return child;
}

/** Runs a program to completion (killed by PID after timeoutMs). */
export function run(
  cmd: string,
  args: string[],
  opts: StartOptions & { timeoutMs?: number } = {},
): Promise<RunResult> {
  const t0 = Date.now();
  const child = start(cmd, args, opts);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killPid(child.pid, 'SIGKILL');
  }, opts.timeoutMs ?? 30000);
  return new Promise((resolve, reject) => {
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0, timedOut });
    });
  });
}

/** PIDs of the processes whose command line has an argument starting with `prefix`. */
export function pidsRunning(prefix: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
          .split('\0')
          .some((a) => a.startsWith(prefix));
      } catch {
        return false;
      }
    });
}

/** /proc/PID/status as key → value. */
export function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

export function killPid(pid: number | undefined, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Ends every process this test file started that is still running, by PID. */
export async function killAll(): Promise<void> {
  const left = [...started];
  for (const c of left) killPid(c.pid, 'SIGTERM');
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && left.some((c) => c.exitCode === null && c.signalCode === null))
    await sleep(50);
  for (const c of left) if (c.exitCode === null && c.signalCode === null) killPid(c.pid, 'SIGKILL');
  const hard = Date.now() + 2000;
  while (
    Date.now() < hard &&
    left.some(
      (c) => c.pid !== undefined && alive(c.pid) && c.exitCode === null && c.signalCode === null,
    )
  )
    await sleep(50);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
