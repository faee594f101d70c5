// What /proc and the user database say: processes with their argv, uids and capabilities; users
// and groups by name. Everything here is read-only and degrades to "cannot see" rather than failing,
// since guardctl's read-only commands run as members of group guard, and /proc may be mounted with
// hidepid.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';

export interface ProcInfo {
  pid: number;
  argv: string[];
  /** real, effective, saved, filesystem */
  uids: number[] | null;
  caps: { CapPrm: bigint; CapEff: bigint; CapBnd: bigint; CapAmb: bigint } | null;
}

export function readArgv(pid: number): string[] | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (raw === '') return null; // a kernel thread or a zombie
    return raw.replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

/** /proc/PID/status, or null when the process is gone or hidden (hidepid). */
export function readProc(pid: number): ProcInfo | null {
  const argv = readArgv(pid);
  if (argv === null) return null;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return { pid, argv, uids: null, caps: null };
  }
  const field = (k: string): string | undefined =>
    new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const nums = (k: string): number[] | null => {
    const v = field(k);
    return v === undefined ? null : v.split(/\s+/).filter(Boolean).map(Number);
  };
  const cap = (k: string): bigint => BigInt(`0x${field(k) ?? '0'}`);
  const hasCaps = field('CapEff') !== undefined;
  return {
    pid,
    argv,
    uids: nums('Uid'),
    caps: hasCaps
      ? {
          CapPrm: cap('CapPrm'),
          CapEff: cap('CapEff'),
          CapBnd: cap('CapBnd'),
          CapAmb: cap('CapAmb'),
        }
      : null,
  };
}

export function allPids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((n) => /^\d+$/.test(n))
      .map(Number);
  } catch {
    return [];
  }
}

export type GuardProgram = 'guard-helper' | 'guard-agent' | 'guardctl';

/** Programs that run a guard program's script: node itself, or the sh of an installed wrapper. */
const RUNNERS = /^(node|nodejs|node[0-9]+|sh|bash|dash|ash|busybox)$/;

/**
 * Which guard program a command line runs (`node …/guard-agent.js`, or the sh wrapper `guard-agent`),
 * and its script path. A process that only names one — OpenRC's `supervise-daemon guard-agent
 * --start …`, `setpriv … -- /usr/sbin/guard-agent` before it execs, an editor — is not it.
 */
export function guardProgram(argv: string[]): { program: GuardProgram; script: string } | null {
  const names = ['guard-helper', 'guard-agent', 'guardctl'] as const;
  const match = (a: string) => {
    const b = basename(a);
    return names.find((p) => b === p || b === `${p}.js`);
  };
  const self = match(argv[0] ?? '');
  if (self) return { program: self, script: argv[0]! };
  if (!RUNNERS.test(basename(argv[0] ?? ''))) return null;
  // node's own options come before the script; the first argument naming a guard program is it
  for (const a of argv.slice(1, 6)) {
    const p = match(a);
    if (p) return { program: p, script: a };
  }
  return null;
}

/** The value of `--name V` (or `--name=V`) in argv. */
export function flagValue(argv: string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === name) return argv[i + 1];
    if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
  }
  return undefined;
}

export function readPidFile(path: string): number | null {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

export interface Passwd {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}
export interface Group {
  name: string;
  gid: number;
}

function getent(db: string, key: string): string | null {
  try {
    return (
      execFileSync('getent', [db, key], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).split('\n')[0] ?? null
    );
  } catch {
    return null; // exit 2: no such entry
  }
}

export function lookupUser(key: string | number): Passwd | null {
  const line = getent('passwd', String(key));
  if (!line) return null;
  const [name, , uid, gid, , home, shell] = line.split(':');
  return {
    name: name ?? '',
    uid: Number(uid),
    gid: Number(gid),
    home: home ?? '',
    shell: shell ?? '',
  };
}

export function lookupGroup(key: string | number): Group | null {
  const line = getent('group', String(key));
  if (!line) return null;
  const [name, , gid] = line.split(':');
  return { name: name ?? '', gid: Number(gid) };
}

const userNames = new Map<number, string>();
const groupNames = new Map<number, string>();
export function userName(uid: number): string {
  if (!userNames.has(uid)) userNames.set(uid, lookupUser(uid)?.name ?? String(uid));
  return userNames.get(uid)!;
}
export function groupName(gid: number): string {
  if (!groupNames.has(gid)) groupNames.set(gid, lookupGroup(gid)?.name ?? String(gid));
  return groupNames.get(gid)!;
}

/** Every gid a user is in: the primary group and each group listing the user. */
export function userGids(user: Passwd): number[] {
  try {
    const out = execFileSync('id', ['-G', user.name], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return [...new Set([user.gid, ...out.trim().split(/\s+/).map(Number)])];
  } catch {
    return [user.gid];
  }
}

export function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}
