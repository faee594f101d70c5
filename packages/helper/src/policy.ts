// The helper's policy: which paths may be opened, for whom. Built once from guard.conf, then frozen;
// SIGHUP builds a new one and swaps it in whole (never edited in place).
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  opendirSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
  type Dir,
} from 'node:fs';
import { dirname } from 'node:path';
import * as ini from 'ini';
import { splitGeneration } from '@guard/protocol/wire';

export interface Pattern {
  glob: string;
  re: RegExp;
  /** the deepest directory with no glob character ('' for /): nothing below it may cross a mount */
  root: string;
}
export interface Source {
  name: string;
  type: 'file' | 'audit' | 'journal';
  patterns: Pattern[];
}
export interface Policy {
  agentUid: number;
  socketGid: number;
  auditGid: number;
  sources: Source[];
  digest: string;
}

// Never handed out, whatever a glob says: credentials, key material, kernel and device interfaces,
// guard's own secrets. Checked on the requested path and again on the opened descriptor's real path.
const DENY = [
  /^\/(proc|sys|dev|boot|root|etc\/guard|var\/lib\/guard|var\/backups|var\/lib\/sss|run\/(credentials|secrets|user))(\/|$)/,
  /^\/etc\/(g?shadow|nshadow|security\/opasswd|krb5\.keytab|ipsec\.secrets)[^/]*$/, // and shadow-, shadow+, shadow.bak
  /^\/etc\/(ssl\/private|letsencrypt|wireguard|NetworkManager\/system-connections)\/|\/private\//,
  /\/\.(ssh|gnupg|aws|kube|docker)\/|\/\.(netrc|pgpass|my\.cnf|[a-z]*_history)$/,
  /\/(ssh_host_[^/]*_key|id_(rsa|dsa|ecdsa|ed25519)[^/]*|privkey[^/]*|[^/]*\.(key|pem|p12|pfx|jks|keytab))$/,
];

// A rotated generation of a denied name (shadow.1, tls.key.2.gz) is denied with it.
export function isDenied(path: string): boolean {
  const base = splitGeneration(path)?.base ?? path;
  return DENY.some((re) => re.test(path) || re.test(base));
}

// Absolute and normalised, so that the string we match is the path the kernel resolves.
export function pathSyntaxError(path: string): string | null {
  if (Buffer.byteLength(path) > 4095) return 'path is longer than 4095 bytes';
  if (!path.startsWith('/')) return 'path must be absolute';
  if (/[\x00-\x1f\x7f-\x9f]/.test(path)) return 'path contains a NUL or control character'; // C1 too: U+009B is a terminal CSI
  if (path.length > 1 && path.endsWith('/')) return 'path must not end with /';
  if (/\/\/|\/\.\.?(\/|$)/.test(path)) return 'path must be normalised (no //, . or .. components)';
  return null;
}

function globToRegex(pattern: string): RegExp {
  const body = pattern.replace(/\[!?[^\]/\\]+\]|[.+^${}()|\\[\]]|\*|\?/g, (m) =>
    m === '*'
      ? '[^/]*'
      : m === '?'
        ? '[^/]'
        : m.length > 1
          ? '(?!/)' + m.replace(/^\[[!^]/, '[^')
          : '\\' + m,
  ); // a range may span /
  return new RegExp(`^${body}$`);
}

// Whether a pattern of the source allows the path: it matches exactly (a glob never matches across
// a /), or, for a file source, the path is a rotated generation of a name it matches.
const allows = (s: Source, p: Pattern, path: string, base = splitGeneration(path)?.base) =>
  p.re.test(path) || (s.type === 'file' && base !== undefined && p.re.test(base));

export function matching(policy: Policy, path: string): [Source, Pattern][] {
  return policy.sources.flatMap((s) =>
    s.patterns.filter((p) => allows(s, p, path)).map((p): [Source, Pattern] => [s, p]),
  );
}

// Like sshd's StrictModes: a config anyone but root can change would let them widen the allow-list.
export function assertRootOnly(file: string): string {
  const real = realpathSync(file);
  for (let p = real; ; p = dirname(p)) {
    const st = statSync(p);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0)
      throw new Error(
        `${p} must be owned by root and not writable by group or others (owner uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`,
      );
    if (p === '/') return real;
  }
}

function lookup(file: string, name: string, what: string): string[] {
  const row = readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => f[0] === name);
  if (!row) throw new Error(`${what} "${name}" does not exist in ${file}`);
  return row;
}

const DEFAULT_PATHS: Record<string, string | undefined> = {
  audit: '/var/log/audit/audit.log, /var/log/audit/audit.log.[0-9]*',
  journal: '/var/log/journal/*/*.journal, /run/log/journal/*/*.journal',
};

export function loadPolicy(file: string): Policy {
  const conf = ini.parse(readFileSync(assertRootOnly(file), 'utf8')); // read what was checked
  const where = (section: string, key: string) => `${file}: [${section}] ${key}`;
  const user = conf.agent?.user;
  if (typeof user !== 'string' || user === '')
    throw new Error(`${where('agent', 'user')}: expected the agent's user name`);
  const [, , uid, gid] = lookup('/etc/passwd', user, 'user');
  const auditGroup = conf.helper?.audit_group ?? 'guard-audit';
  const sources: Source[] = [];
  for (const [name, s] of Object.entries<Record<string, unknown>>(conf.source ?? {})) {
    const type = s.type ?? 'file';
    if (type !== 'file' && type !== 'audit' && type !== 'journal')
      throw new Error(
        `${where(`source.${name}`, 'type')}: expected "file", "audit" or "journal", got ${JSON.stringify(type)}`,
      );
    const raw = s.paths ?? DEFAULT_PATHS[type];
    const patterns = (Array.isArray(raw) ? raw : String(raw ?? '').split(','))
      .map((p) => String(p).trim())
      .filter(Boolean);
    const bad = patterns.find((p) => pathSyntaxError(p) !== null);
    if (patterns.length === 0 || bad !== undefined)
      throw new Error(
        `${where(`source.${name}`, 'paths')}: expected comma-separated absolute, normalised paths or globs${bad ? `, got "${bad}"` : ''}`,
      );
    sources.push({
      name,
      type,
      patterns: patterns.map((glob) => ({
        glob,
        re: globToRegex(glob),
        root: glob.slice(0, glob.search(/\/[^/]*[*?[]|\/[^/]*$/)),
      })),
    });
  }
  const digest = createHash('sha256')
    .update(JSON.stringify(sources.map((s) => [s.name, s.type, s.patterns.map((p) => p.glob)])))
    .digest('hex');
  return {
    agentUid: Number(uid),
    socketGid: Number(gid),
    auditGid: Number(lookup('/etc/group', auditGroup, 'group')[2]),
    sources,
    digest,
  };
}

// The names that currently match a source's patterns (`files`) and the rotated generations of such
// names (`generations`), one page at a time in sorted order, after `cursor` (the last name of the
// previous page). Only real directories are descended (never through a symlink), so a planted link
// cannot reveal names elsewhere; every other matching entry is named — a symlink or FIFO too — so
// that `open` refuses it with a reason the operator sees. Bounded in names and bytes per page, names
// held and directory entries read: a user who fills an allowed directory cannot make one request
// block the helper, outgrow the socket's buffer or the helper's memory.
export function listSource(
  source: Source,
  cursor = '',
  limit = { names: 1024, bytes: 60_000, entries: 100_000 },
): { files: string[]; generations: string[]; next?: string; truncated?: true } {
  const found = new Map<string, boolean>(); // name -> a generation only (a live match wins)
  let entries = 0,
    truncated = false;
  const keep = (path: string, generation: boolean): void => {
    if (path <= cursor || found.get(path) === false) return;
    found.set(path, generation);
    if (found.size > 4 * limit.names)
      // only the page's names and one more can be sent
      for (const k of [...found.keys()].sort().slice(limit.names + 1)) found.delete(k);
  };
  // Each directory is reopened by name under its parent's descriptor with O_NOFOLLOW: one swapped for
  // a symlink between readdir and open is refused, not followed into a directory we may not name.
  // Below a pattern's root no directory on another mount is descended (the mount id of the
  // descriptor, from /proc/self/fdinfo): its names are not the allowed directory's.
  const walk = (dir: string, dirFd: number, parts: string[], p: Pattern, mnt?: string): void => {
    const part = parts[0] && parts.length > 1 ? globToRegex(parts[0]) : null;
    let d: Dir;
    try {
      const here = /^mnt_id:\s*(\d+)$/m.exec(
        readFileSync(`/proc/self/fdinfo/${dirFd}`, 'latin1'),
      )?.[1];
      if (dir === p.root)
        mnt = here ?? ''; // unknown: descend nothing below it
      else if (mnt !== undefined && here !== mnt) return;
      d = opendirSync(`/proc/self/fd/${dirFd}`);
    } catch {
      return;
    }
    try {
      for (
        let e = d.readSync();
        e && !(truncated ||= ++entries > limit.entries);
        e = d.readSync()
      ) {
        const path = `${dir}/${e.name}`;
        if (part && e.isDirectory() && part.test(e.name)) {
          let fd: number;
          try {
            fd = openSync(
              `/proc/self/fd/${dirFd}/${e.name}`,
              constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
            );
          } catch {
            continue;
          }
          try {
            walk(path, fd, parts.slice(1), p, mnt);
          } finally {
            closeSync(fd);
          }
        } else if (!part && !e.isDirectory() && allows(source, p, path) && !isDenied(path))
          keep(path, !p.re.test(path));
      }
    } catch {
      truncated = true; // a directory that fails under us (EIO, an entry gone mid-lstat) ends the walk, not the helper
    } finally {
      d.closeSync();
    }
  };
  const rootFd = openSync('/', constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    for (const p of source.patterns) walk('', rootFd, p.glob.split('/').slice(1), p);
  } finally {
    closeSync(rootFd);
  }
  // Counted as the reply encodes it (a control character is 6 bytes of JSON), the last name twice:
  // it is also the `next` cursor.
  const sorted = [...found.keys()].sort();
  const page: string[] = [];
  let bytes = 0;
  for (const path of sorted) {
    const cost = Buffer.byteLength(JSON.stringify(path)) + 1;
    if (page.length >= limit.names || (bytes += cost) + cost > limit.bytes) break;
    page.push(path);
  }
  return {
    files: page.filter((f) => !found.get(f)),
    generations: page.filter((f) => found.get(f)),
    ...(page.length < sorted.length ? { next: page.at(-1) } : {}),
    ...(truncated ? { truncated } : {}),
  };
}
