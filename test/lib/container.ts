// Real inits for system tests: a Debian 12 container booted with systemd 252 or sysvinit + OpenRC
// 0.45 as its PID 1 under systemd-nspawn, on a throwaway overlay over a root file system built once
// per machine (test/containers/rootfs.sh, cached outside the repository).
//
//   const ct = await Container.boot('systemd', { withNode: true });
//   await ct.sh('systemctl is-active dbus');          // throws on a non-zero exit, returns stdout
//   const r = await ct.exec('false');                 // RunResult, never throws on an exit code
//   await ct.copyIn('/host/file', '/root/file');      // files and directories (cp -a)
//   await ct.reboot();                                // the same disk, a new boot
//   await ct.destroy();                               // power off (or kill) and delete the copy
//
// The base root file system holds no Node.js: `withNode` copies the host's Node 20 (with npm and its
// headers, `nodedir=/usr`, and the host's CA file for npm) into the copy before the first boot.
// The container shares the host's network (apt and npm must reach their registries; so ports bound
// inside are the host's ports: bind 127.0.0.1:0 there too). Each container has its own mount, PID,
// IPC and UTS namespace; the overlay is mounted once, in a private mount namespace held by a sleeping
// process until destroy() (across reboots, so device numbers stay put as on a real disk), so nothing
// of it is ever mounted on the host. Commands run through `nsenter` into PID 1's namespaces, with a
// clean environment, as root.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { alive, killPid, run, sleep, start, type RunResult } from './proc';
import { repoRoot } from './sandbox';

export type InitKind = 'systemd' | 'openrc';

export interface BootOptions {
  /** copy the host's Node.js 20 (+ npm, headers, npm config) into the copy */
  withNode?: boolean;
  /** extra systemd-nspawn arguments (e.g. --capability=CAP_AUDIT_CONTROL,CAP_AUDIT_READ) */
  nspawnArgs?: string[];
  /** how long boot() and reboot() wait for the init to finish starting (default 90 s) */
  bootTimeoutMs?: number;
}

export interface ExecOptions {
  timeoutMs?: number;
  stdin?: string;
}

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The cached base root file system of KIND, built first when it is missing or outdated. */
export function rootfs(kind: InitKind): string {
  const out = execFileSync('bash', [join(repoRoot, 'test/containers/rootfs.sh'), kind], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 20 * 60_000,
  });
  return out.trim().split('\n').pop() as string;
}

/** Can this machine boot containers at all? (root, systemd-nspawn, debootstrap, overlayfs) */
export function containersSupported(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  for (const t of ['/usr/bin/systemd-nspawn', '/usr/sbin/debootstrap', '/usr/bin/nsenter'])
    if (!existsSync(t)) return `${t} is missing (test/run-all.sh installs it)`;
  if (!readFileSync('/proc/filesystems', 'utf8').includes('overlay')) return 'no overlayfs';
  return null;
}

export class Container {
  /** the throwaway directory: upper/ (every change), work/, merged/, boot-N.log */
  readonly dir: string;
  readonly name: string;
  /** PID (on the host) of the container's PID 1, valid while it runs */
  pid1 = 0;
  private nspawn: ChildProcess | null = null;
  private exited: Promise<number | null> = Promise.resolve(null);
  private boots = 0;
  private disk: ChildProcess | null = null;

  private constructor(
    readonly kind: InitKind,
    readonly lower: string,
    private readonly opts: BootOptions,
  ) {
    this.name = `guardt-${kind}-${randomBytes(3).toString('hex')}`;
    mkdirSync('/var/tmp', { recursive: true });
    this.dir = mkdtempSync('/var/tmp/guard-ct-');
    for (const d of ['upper', 'work', 'merged']) mkdirSync(join(this.dir, d));
  }

  static async boot(kind: InitKind, opts: BootOptions = {}): Promise<Container> {
    const ct = new Container(kind, rootfs(kind), opts);
    try {
      if (opts.withNode) ct.addNode();
      await ct.start();
      return ct;
    } catch (e) {
      await ct.destroy();
      throw e;
    }
  }

  /** A path of the container's file system as seen from the host while it runs. */
  path(p: string): string {
    return `/proc/${this.pid1}/root${p}`;
  }

  /** Runs `sh -c cmd` inside as root with a clean environment. */
  exec(cmd: string, opts: ExecOptions = {}): Promise<RunResult> {
    return run(
      '/usr/bin/nsenter',
      [
        '-t',
        String(this.pid1),
        '-a',
        '--',
        '/usr/bin/env',
        '-i',
        `PATH=${PATH}`,
        'HOME=/root',
        'LANG=C.UTF-8',
        'TERM=dumb',
        '/bin/sh',
        '-c',
        cmd,
      ],
      { timeoutMs: opts.timeoutMs ?? 120_000, stdin: opts.stdin },
    );
  }

  /** exec(), but a non-zero exit (or a timeout) throws with both outputs; returns stdout. */
  async sh(cmd: string, opts: ExecOptions = {}): Promise<string> {
    const r = await this.exec(cmd, opts);
    if (r.code !== 0 || r.timedOut)
      throw new Error(
        `in ${this.name}: \`${cmd}\` ${r.timedOut ? 'timed out' : `exited ${r.code ?? r.signal}`}\n` +
          `--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`,
      );
    return r.stdout;
  }

  /** Copies a host file or directory to PATH inside (cp -a; parents created). */
  async copyIn(hostPath: string, path: string): Promise<void> {
    const dest = this.path(path);
    mkdirSync(dirname(dest), { recursive: true });
    execFileSync('cp', ['-a', '--no-target-directory', hostPath, dest]);
  }

  writeFile(path: string, content: string, mode = 0o644): void {
    const dest = this.path(path);
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, content, { mode });
  }

  readFile(path: string): string {
    return readFileSync(this.path(path), 'utf8');
  }

  /** `systemctl reboot` / `reboot` inside, then the same disk booted again. */
  async reboot(): Promise<void> {
    await this.exec(this.kind === 'systemd' ? 'systemctl reboot' : 'reboot', { timeoutMs: 30_000 });
    const code = await this.waitExit(60_000);
    if (code === undefined) throw new Error(`${this.name}: did not go down after reboot`);
    await this.start();
  }

  /** `systemctl poweroff` / `poweroff` inside; waits for nspawn to exit (kills it after 60 s). */
  async poweroff(): Promise<void> {
    if (!this.running()) return;
    await this.exec(this.kind === 'systemd' ? 'systemctl poweroff' : 'poweroff', {
      timeoutMs: 30_000,
    });
    if ((await this.waitExit(60_000)) === undefined) await this.kill();
  }

  /** Powers off if running and deletes the throwaway copy. */
  async destroy(): Promise<void> {
    try {
      await this.poweroff();
    } catch {
      await this.kill();
    }
    await this.unmountDisk();
    if (!process.env.GUARD_KEEP_CONTAINER) rmSync(this.dir, { recursive: true, force: true });
  }

  running(): boolean {
    return this.nspawn !== null && this.nspawn.exitCode === null && this.nspawn.signalCode === null;
  }

  /** The console output of the current (or last) boot. */
  bootLog(): string {
    try {
      return readFileSync(join(this.dir, `boot-${this.boots}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  private addNode(): void {
    const up = join(this.dir, 'upper');
    const copy = (from: string, to = from) => {
      mkdirSync(dirname(join(up, to)), { recursive: true });
      cpSync(from, join(up, to), { recursive: true, verbatimSymlinks: true });
    };
    copy(process.execPath, '/usr/bin/node');
    copy('/usr/lib/node_modules/npm');
    if (existsSync('/usr/lib/node_modules/corepack')) copy('/usr/lib/node_modules/corepack');
    if (existsSync('/usr/include/node')) copy('/usr/include/node');
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(up, 'usr/bin/npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(up, 'usr/bin/npx'));
    mkdirSync(join(up, 'root'), { recursive: true, mode: 0o700 });
    writeFileSync(
      join(up, 'root/.npmrc'),
      'cafile=/etc/ssl/certs/ca-certificates.crt\nnodedir=/usr\nfund=false\naudit=false\nupdate-notifier=false\n',
    );
  }

  private async start(): Promise<void> {
    this.boots++;
    const d = this.dir;
    const init = this.kind === 'systemd' ? ['-b'] : [];
    const nspawn = [
      'systemd-nspawn',
      '-D',
      `${d}/merged`,
      '--register=no',
      '--keep-unit',
      '-M',
      this.name,
      '--console=passive',
      ...(this.opts.nspawnArgs ?? []),
      ...init,
      ...(this.kind === 'openrc' ? ['/sbin/init'] : []),
    ];
    await this.mountDisk();
    const log = openSync(join(d, `boot-${this.boots}.log`), 'w');
    // nsenter -m alone execs (no fork): the child is nspawn itself
    const child = start('/usr/bin/nsenter', [
      '-t',
      String(this.disk!.pid),
      '-m',
      '--',
      '/usr/bin/env',
      'SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1',
      ...nspawn,
    ]);
    child.stdout?.on('data', (b: Buffer) => writeFileSync(log, b));
    child.stderr?.on('data', (b: Buffer) => writeFileSync(log, b));
    this.nspawn = child;
    this.exited = new Promise((res) => child.once('exit', (code) => res(code)));
    const deadline = Date.now() + (this.opts.bootTimeoutMs ?? 90_000);
    this.pid1 = 0;
    while (!this.pid1) {
      if (!this.running() || Date.now() > deadline)
        throw new Error(`${this.name}: nspawn did not start\n${this.bootLog().slice(-3000)}`);
      this.pid1 = findInit(child.pid as number);
      if (!this.pid1) await sleep(100);
    }
    // the init has finished starting its services
    const ready =
      this.kind === 'systemd'
        ? 'systemctl is-system-running --wait >/dev/null 2>&1; s=$(systemctl is-system-running); [ "$s" = running ] || [ "$s" = degraded ]'
        : '[ "$(cat /run/openrc/softlevel 2>/dev/null)" = default ] && [ -z "$(ls -A /run/openrc/starting 2>/dev/null)" ] && ! pgrep -x openrc >/dev/null';
    for (;;) {
      if (!this.running())
        throw new Error(`${this.name}: exited while booting\n${this.bootLog().slice(-3000)}`);
      const r = await this.exec(ready, { timeoutMs: 60_000 });
      if (r.code === 0) return;
      if (Date.now() > deadline)
        throw new Error(
          `${this.name}: did not finish booting in time\n${r.stdout}${r.stderr}\n${this.bootLog().slice(-3000)}`,
        );
      await sleep(300);
    }
  }

  /**
   * The overlay, mounted once in a private mount namespace held by a sleeping process and kept
   * across reboots: a remount would give it a new device number, which a real disk keeps (guard's
   * checkpoints name files by device and inode).
   */
  private async mountDisk(): Promise<void> {
    if (this.disk && this.disk.exitCode === null && this.disk.signalCode === null) return;
    const d = this.dir;
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const script =
      `mount -t overlay overlay -o lowerdir=${q(this.lower)},upperdir=${q(`${d}/upper`)},` +
      `workdir=${q(`${d}/work`)} ${q(`${d}/merged`)} && echo mounted && exec sleep infinity`;
    const holder = start('/usr/bin/unshare', [
      '-m',
      '--propagation',
      'private',
      '--',
      '/bin/sh',
      '-c',
      script,
    ]);
    this.disk = holder;
    let err = '';
    holder.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    await new Promise<void>((res, rej) => {
      holder.stdout?.on('data', (b: Buffer) => b.toString().includes('mounted') && res());
      holder.once('exit', (c) =>
        rej(new Error(`${this.name}: mounting the overlay failed (${c}): ${err}`)),
      );
    });
  }

  private async unmountDisk(): Promise<void> {
    const h = this.disk;
    if (!h?.pid || h.exitCode !== null || h.signalCode !== null) return;
    const gone = new Promise((res) => h.once('exit', res));
    killPid(h.pid, 'SIGTERM');
    await Promise.race([gone, sleep(5000)]);
  }

  /** nspawn's exit code, or undefined if it still runs after ms. */
  private async waitExit(ms: number): Promise<number | null | undefined> {
    if (!this.running()) return this.nspawn?.exitCode ?? null;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((res) => {
      timer = setTimeout(() => res(undefined), ms);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async kill(): Promise<void> {
    const pid = this.nspawn?.pid;
    if (!pid || !this.running()) return;
    killPid(pid, 'SIGTERM');
    if ((await this.waitExit(20_000)) !== undefined) return;
    killPid(pid, 'SIGKILL');
    await this.waitExit(10_000);
    if (alive(pid)) throw new Error(`${this.name}: nspawn pid ${pid} would not die`);
  }
}

/** The host PID of the container's PID 1: the descendant of nspawn whose NSpid ends in 1. */
function findInit(nspawnPid: number): number {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
    } catch {
      /* gone */
    }
  }
  const queue = [...(children.get(nspawnPid) ?? [])];
  while (queue.length) {
    const pid = queue.shift() as number;
    try {
      const ns = /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      const ids = (ns?.[1] ?? '').trim().split(/\s+/) ?? [];
      if (ids.length > 1 && ids[ids.length - 1] === '1') return pid;
    } catch {
      /* gone */
    }
    queue.push(...(children.get(pid) ?? []));
  }
  return 0;
}
