// Starting guard-helper as root, collecting its JSON log lines, and reading its descriptor count
// and memory from /proc.
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { killPid, sleep, start } from './proc';

export interface LogEntry {
  event?: string;
  level?: string;
  message?: string;
  code?: string;
  uid?: number;
  path?: string;
  raw?: string;
  [key: string]: unknown;
}

export interface HelperOptions {
  helperJs: string;
  config: string;
  socket: string;
  extraArgs?: string[];
  /** descriptors the helper inherits as fd 3, 4, … (as from a careless parent) */
  inheritFds?: number[];
  /** options for node itself, before the script (e.g. --expose-gc) */
  nodeArgs?: string[];
  /** commands that run before node and exec it (same pid): see onlyWalk, inMountNamespace */
  prefix?: string[];
}

/**
 * A prefix under which the system call `name` fails with `errno` (a seccomp filter), then execs the
 * rest of the command line (same pid).
 */
export const failSyscall = (name: string, errno: number): string[] => [
  '/usr/bin/python3',
  '-c',
  `
import ctypes, os, sys
lib = ctypes.CDLL('libseccomp.so.2')
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
ctx = lib.seccomp_init(0x7fff0000)  # allow everything else
nr = lib.seccomp_syscall_resolve_name(b'${name}')
if nr < 0 or lib.seccomp_rule_add(ctx, 0x00050000 | ${errno}, nr, 0) or lib.seccomp_load(ctx):
    sys.exit('cannot load the ${name} filter')
os.execv(sys.argv[1], sys.argv[1:])
`,
];

/**
 * A prefix under which openat2 answers ENOSYS (a seccomp filter, as systemd 252's
 * RestrictSUIDSGID= does), so the helper takes its component walk: the open path production runs.
 */
export const onlyWalk = failSyscall('openat2', 38);

/** A prefix running \`script\` (sh, as root) in a private mount namespace, then the helper in it. */
export const inMountNamespace = (script: string): string[] => [
  '/usr/bin/unshare',
  '--mount',
  '--propagation',
  'private',
  '--',
  '/bin/sh',
  '-ec',
  `${script}\nexec "$@"`,
  'sh',
];

export class Helper {
  readonly logs: LogEntry[] = [];
  /** every log line exactly as written */
  readonly rawLines: string[] = [];
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private waiters: Array<() => void> = [];

  private constructor(readonly opts: HelperOptions) {
    const args = [opts.helperJs, '--config', opts.config, '--socket', opts.socket];
    args.push(...(opts.extraArgs ?? []));
    const [cmd = process.execPath, ...rest] = [...(opts.prefix ?? []), process.execPath];
    this.proc = start(cmd, [...rest, ...(opts.nodeArgs ?? []), ...args], {
      extraFds: opts.inheritFds ?? [],
    });
    if (this.proc.pid === undefined) throw new Error('guard-helper did not start');
    this.pid = this.proc.pid;
    const collect = (stream: NodeJS.ReadableStream | null) => {
      if (!stream) return;
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.trim()) this.push(line);
        }
      });
      stream.on('end', () => {
        if (buf.trim()) this.push(buf);
        buf = '';
      });
    };
    collect(this.proc.stderr);
    collect(this.proc.stdout);
    this.exited = new Promise((resolve) => {
      this.proc.once('close', (code, signal) => {
        this.exitInfo = { code, signal };
        this.wake();
        resolve({ code, signal });
      });
    });
  }

  private push(line: string): void {
    this.rawLines.push(line);
    let e: LogEntry;
    try {
      const v: unknown = JSON.parse(line);
      e =
        typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as LogEntry) : { raw: line };
    } catch {
      e = { raw: line };
    }
    this.logs.push(e);
    this.wake();
  }

  private wake(): void {
    const w = this.waiters.splice(0);
    for (const f of w) f();
  }

  /** Starts the helper and waits for its `listening` line. */
  static async start(opts: HelperOptions, timeoutMs = 15000): Promise<Helper> {
    const h = new Helper(opts);
    try {
      await h.waitFor((e) => e.event === 'listening', timeoutMs);
    } catch (e) {
      await h.stop();
      throw new Error(
        `guard-helper did not report listening: ${(e as Error).message}\nlogs:\n${h.dump()}`,
      );
    }
    return h;
  }

  /** Starts a helper that is expected to refuse to start; returns its exit status and logs. */
  static async startExpectingExit(
    opts: HelperOptions,
    timeoutMs = 15000,
  ): Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    logs: LogEntry[];
    listened: boolean;
  }> {
    const h = new Helper(opts);
    const timer = setTimeout(() => killPid(h.pid, 'SIGKILL'), timeoutMs);
    let listened = false;
    void h
      .waitFor((e) => e.event === 'listening', timeoutMs)
      .then(
        () => {
          listened = true;
          killPid(h.pid, 'SIGKILL');
        },
        () => undefined,
      );
    const r = await h.exited;
    clearTimeout(timer);
    return { ...r, logs: h.logs, listened };
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  /** Waits for a log entry at index >= from that satisfies pred. */
  async waitFor(pred: (e: LogEntry) => boolean, timeoutMs = 10000, from = 0): Promise<LogEntry> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.logs.length; i++) {
        const e = this.logs[i];
        if (e && pred(e)) return e;
      }
      if (this.exitInfo) throw new Error(`guard-helper exited (${JSON.stringify(this.exitInfo)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a log line');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  events(name: string, from = 0): LogEntry[] {
    return this.logs.slice(from).filter((e) => e.event === name);
  }

  /** Number of open descriptors of the helper (entries of /proc/PID/fd). */
  fdCount(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length;
  }

  /** Descriptor targets, for failure messages. */
  fdList(): string[] {
    const dir = `/proc/${this.pid}/fd`;
    return readdirSync(dir).map((n) => {
      try {
        return `${n} -> ${readlinkSync(`${dir}/${n}`)}`;
      } catch {
        return `${n} -> ?`;
      }
    });
  }

  /** Resident set size in KiB (VmRSS of /proc/PID/status). */
  rssKiB(): number {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    if (!m || m[1] === undefined) throw new Error('no VmRSS');
    return Number(m[1]);
  }

  /** Polls until the helper's descriptor count is at most `limit`; returns the last count seen. */
  async settleFds(limit: number, timeoutMs = 5000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let n = this.fdCount();
    while (n > limit && Date.now() < deadline) {
      await sleep(50);
      n = this.fdCount();
    }
    return n;
  }

  hup(): void {
    killPid(this.pid, 'SIGHUP');
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    killPid(this.pid, 'SIGTERM');
    const t = setTimeout(() => killPid(this.pid, 'SIGKILL'), 3000);
    await this.exited;
    clearTimeout(t);
  }

  dump(max = 40): string {
    const lines = this.logs.slice(-max).map((e) => JSON.stringify(e));
    if (this.exitInfo) lines.push(`[guard-helper exited: ${JSON.stringify(this.exitInfo)}]`);
    return lines.join('\n');
  }
}
