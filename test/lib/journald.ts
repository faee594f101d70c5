// A real systemd-journald of the test's own, outside PID 1: in a private mount namespace where a
// sandbox directory is bind-mounted over /var/log/journal, /run is a fresh tmpfs (journald makes its
// sockets there) and journald.conf is the test's (no rate limit, no kernel log, no forwarding), and
// in a network namespace of its own: audit's netlink multicast exists only in the initial one, so
// this journald neither records the machine's audit events nor can change the kernel's audit state
// (journald.conf's Audit= turns kernel auditing on or off for the whole machine: never set it).
// The journal files stay visible on the host in the sandbox directory, where guard-helper opens them.
// Tools that talk to this journald (logger, systemd-cat, journalctl --rotate, a native-protocol
// writer) run inside the namespace through nsenter.
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { killPid, run, sleep, start, type RunResult } from './proc';
import type { Sandbox } from './sandbox';

const SETUP = `set -e
mount -t tmpfs -o mode=0755 tmpfs /var/log
mkdir /var/log/journal
mount --bind "$1" /var/log/journal
mount --bind "$2" /etc/systemd/journald.conf
if [ -n "$3" ]; then mkdir /var/log/.runtime && mount --bind "$3" /var/log/.runtime; fi
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/journal /run/log/journal
if [ -n "$3" ]; then mount --move /var/log/.runtime /run/log/journal && rmdir /var/log/.runtime
else touch /run/systemd/journal/flushed; fi
exec /lib/systemd/systemd-journald`;

/** Writes entries in journald's native protocol (binary-safe values), one datagram each: argv[1] is
 *  a JSON list of entries, each a list of [name, value as latin1 bytes]. */
const NATIVE_WRITER = `
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
for entry in json.loads(sys.stdin.read()):
    out = b''
    for name, value in entry:
        v = value.encode('latin1')
        out += name.encode() + b'\\n' + struct.pack('<Q', len(v)) + v + b'\\n'
    try:
        s.sendto(out, '/run/systemd/journal/socket')
    except OSError:  # too big for a datagram: journald takes it through a memfd
        import os
        fd = os.memfd_create('entry', os.MFD_ALLOW_SEALING)
        os.write(fd, out)
        import fcntl
        fcntl.fcntl(fd, 1033, 0x1 | 0x2 | 0x4 | 0x8)  # F_ADD_SEALS: seal, shrink, grow, write
        s.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack('i', fd))], 0, '/run/systemd/journal/socket')
        os.close(fd)
`;

export class PrivateJournald {
  private proc: ChildProcess | null = null;
  /** True while the tmpfs of the runtime directory is mounted (see start). */
  private mounted = false;

  private constructor(
    /** The host directory journald writes into (its /var/log/journal). */
    readonly dir: string,
    private readonly conf: string,
    /** The host directory that is its /run/log/journal, when the test sees it ('' otherwise). */
    readonly runtimeDir = '',
  ) {}

  /**
   * Starts journald with its journal in sandbox directory `rel`. With `runtime` (a sandbox
   * directory), journald starts as at boot before /var is there: it writes to its /run/log/journal
   * (that directory, visible to the test) until flush() moves the entries to /var/log/journal.
   */
  static async start(sb: Sandbox, rel = 'journal', runtime?: string): Promise<PrivateJournald> {
    const dir = sb.mkdir(rel, 0o755);
    const conf = sb.file(
      `${rel}.conf`,
      [
        '[Journal]',
        'Storage=persistent',
        'RateLimitBurst=0',
        'ReadKMsg=no',
        'ForwardToSyslog=no',
        'ForwardToWall=no',
        'ForwardToConsole=no',
        'ForwardToKMsg=no',
        '',
      ].join('\n'),
    );
    const j = new PrivateJournald(dir, conf, runtime ? sb.mkdir(runtime, 0o755) : '');
    // journald removes its /run journal after a flush only from a tmpfs (it refuses to delete from
    // a disk file system, and goes on writing there): the host's side is a tmpfs of the test's own,
    // unmounted by stop().
    if (runtime) {
      const m = await run('/bin/mount', [
        '-t',
        'tmpfs',
        '-o',
        'mode=0755,size=256m',
        'tmpfs',
        j.runtimeDir,
      ]);
      if (m.code !== 0) throw new Error(`mount tmpfs on ${j.runtimeDir}: ${m.stderr}`);
      j.mounted = true;
    }
    await j.up();
    return j;
  }

  get pid(): number {
    return this.proc!.pid!;
  }

  /** The machine's journal directory (created by journald on start; `in` another journal root). */
  machineDirIn(root: string): string {
    const ids = readdirSync(root);
    if (ids.length !== 1) throw new Error(`expected one machine directory in ${root}: ${ids}`);
    return join(root, ids[0]!);
  }

  get machineDir(): string {
    return this.machineDirIn(this.dir);
  }

  /** The journal files now, sorted. */
  files(): string[] {
    return readdirSync(this.machineDir)
      .filter((f) => f.endsWith('.journal'))
      .map((f) => join(this.machineDir, f))
      .sort();
  }

  async up(): Promise<void> {
    this.proc = start('/usr/bin/unshare', [
      '-m',
      '-n', // a network namespace of its own: no kernel audit messages (global) in this journal
      '--propagation',
      'private',
      '--',
      '/bin/sh',
      '-c',
      SETUP,
      'sh',
      this.dir,
      this.conf,
      this.runtimeDir,
    ]);
    let stderr = '';
    this.proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    for (let i = 0; i < 100; i++) {
      if (this.proc.exitCode !== null) throw new Error(`journald exited: ${stderr}`);
      const ok = await this.exec('/usr/bin/test', ['-S', '/run/systemd/journal/socket']);
      if (ok.code === 0 && readdirSync(this.runtimeDir || this.dir).length > 0) return;
      await sleep(50);
    }
    throw new Error(`journald did not come up: ${stderr}`);
  }

  /** Runs a program in journald's mount namespace (as root). */
  exec(cmd: string, args: string[], stdin?: string): Promise<RunResult> {
    return run(
      '/usr/bin/nsenter',
      [`--mount=/proc/${this.pid}/ns/mnt`, '--', cmd, ...args],
      stdin === undefined ? { timeoutMs: 120_000 } : { stdin, timeoutMs: 120_000 },
    );
  }

  private async must(cmd: string, args: string[], stdin?: string): Promise<string> {
    const r = await this.exec(cmd, args, stdin);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.code} ${r.stderr}`);
    return r.stdout;
  }

  /** Entries `${tag} n=<k>` for k in [from, to), through systemd-cat (the stdout transport),
   *  then waits until journald has written them. */
  async numbered(tag: string, from: number, to: number): Promise<void> {
    let text = '';
    for (let k = from; k < to; k++) text += `${tag} n=${k}\n`;
    await this.must('/usr/bin/systemd-cat', ['-t', tag], text);
    await this.settle(tag, to - 1);
  }

  /** One entry of the given fields through `logger --journald` (the native protocol). */
  async logger(fields: Record<string, string>): Promise<void> {
    const text = Object.entries(fields)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n');
    await this.must('/usr/bin/logger', ['--journald'], text + '\n');
  }

  /** Entries with any bytes (values as latin1 strings, a name may repeat), in the native protocol. */
  async native(entries: [string, string][][]): Promise<void> {
    await this.must('/usr/bin/python3', ['-c', NATIVE_WRITER], JSON.stringify(entries));
  }

  /** Waits until an entry `${tag} n=${last}` is in the journal files (journald writes asynchronously). */
  async settle(tag: string, last: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.must('/usr/bin/journalctl', [
        // both /run and /var (merged, as libsystemd does) when the test sees /run
        ...(this.runtimeDir ? ['-m'] : ['-D', '/var/log/journal']),
        '-t',
        tag,
        '-n',
        '1',
        '-o',
        'cat',
      ]);
      if (r.trim() === `${tag} n=${last}`) return;
      if (Date.now() > deadline) throw new Error(`journald did not write ${tag} n=${last}: ${r}`);
      await sleep(100);
    }
  }

  /** journalctl --flush: journald copies its /run journal to /var/log/journal, removes the /run
   *  files and writes to /var from then on (as when /var becomes available at boot). */
  async flush(): Promise<void> {
    await this.must('/usr/bin/journalctl', ['--flush']);
  }

  /** journalctl --rotate: the active file archived, a new one started. */
  async rotate(): Promise<void> {
    await this.must('/usr/bin/journalctl', ['--rotate']);
  }

  /** journalctl --vacuum-files=N: the oldest archived files removed until N are left. */
  async vacuumFiles(n: number): Promise<void> {
    await this.must('/usr/bin/journalctl', ['-D', '/var/log/journal', `--vacuum-files=${n}`]);
  }

  /** Every entry's cursor, message and _COMM (journald leaves _COMM out when the writer exited
   *  before it read /proc), oldest first (journalctl as root, on the host). */
  async entries(): Promise<{ cursor: string; message: string; comm?: string }[]> {
    const r = await run(
      '/usr/bin/journalctl',
      ['-D', this.machineDir, '-o', 'json', '--no-pager'],
      {
        timeoutMs: 120_000,
      },
    );
    return r.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const e = JSON.parse(l) as { __CURSOR: string; MESSAGE?: unknown; _COMM?: unknown };
        return {
          cursor: e.__CURSOR,
          message: typeof e.MESSAGE === 'string' ? e.MESSAGE : '',
          ...(typeof e._COMM === 'string' ? { comm: e._COMM } : {}),
        };
      });
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (p && p.exitCode === null) {
      const exited = new Promise((resolve) => p.once('exit', resolve));
      killPid(p.pid, 'SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (p.exitCode === null) killPid(p.pid, 'SIGKILL');
    }
    if (this.mounted) {
      // lazily: a reader may still hold a descriptor; the mount is gone from the tree at once
      const u = await run('/bin/umount', ['--lazy', this.runtimeDir]);
      if (u.code !== 0) throw new Error(`umount ${this.runtimeDir}: ${u.stderr}`);
      this.mounted = false;
    }
  }

  static available(): boolean {
    return existsSync('/lib/systemd/systemd-journald') && existsSync('/usr/bin/nsenter');
  }
}
