// The helper's policy: which paths may be opened, for whom. Frozen: SIGHUP swaps in a new one.
import { createHash } from 'node:crypto';
import {
  closeSync,
  opendirSync,
  openSync,
  readFileSync,
  lstatSync,
  readlinkSync,
  realpathSync,
} from 'node:fs';
import { dirname } from 'node:path';
import * as ini from 'ini';
import * as fdpass from '@guard/fdpass';
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

// The pattern matches the path (no glob spans /) or, in a file source, the name it rotated from.
const allows = (s: Source, p: Pattern, path: string, base = splitGeneration(path)?.base) =>
  p.re.test(path) || (s.type === 'file' && base !== undefined && p.re.test(base));

export function matching(policy: Policy, path: string): [Source, Pattern][] {
  return policy.sources.flatMap((s) =>
    s.patterns.filter((p) => allows(s, p, path)).map((p): [Source, Pattern] => [s, p]),
  );
}

// Why `path` or a directory above it is not root's alone (another owner, group or other write bits,
// which an ACL granting write shows as), or null. lstat: nothing followed; a name that vanishes is
// not trusted.
export function notRootOnly(path: string): string | null {
  for (let p = path; ; p = dirname(p)) {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return `${p} changed while it was checked`;
    }
    if (st.uid !== 0) return `${p} is owned by uid ${st.uid}`;
    if (st.mode & 0o022)
      return `${p} is writable by ${st.mode & 0o002 ? 'everyone' : `gid ${st.gid}`}`;
    if (p === '/') return null;
  }
}

// Like sshd's StrictModes: a config anyone but root can change would let them widen the allow-list.
export function assertRootOnly(file: string): string {
  const real = realpathSync(file);
  const why = notRootOnly(real);
  if (why)
    throw new Error(
      `${why}: it and every directory above it must be owned by root and not writable by group or others`,
    );
  return real;
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

// Walks each pattern's root and the directories below it that its directory components match,
// each opened as a file is (no symlink, no mount below the root), still where its path says, read
// through that descriptor, and not entered when deny-listed (/proc, a .ssh). `visit` gets each
// directory's descriptor, `name` each entry but a directory at a pattern's last component. False
// when it stopped early: over `maxEntries` entries read, or a directory failed under it.
export function walkSource(
  source: Source,
  maxEntries: number,
  visit: (dir: string, fd: number) => void,
  name?: (path: string, p: Pattern) => void,
): boolean {
  let entries = 0,
    complete = true;
  const walk = (dir: string, parts: string[], p: Pattern): void => {
    let fd: number;
    try {
      fd = dir ? fdpass.openNoFollow(dir, p.root.length) : openSync('/', 'r'); // '' is /: no parent
    } catch {
      return; // gone, a symlink, or across a mount: nothing in it is named or watched
    }
    try {
      if (isDenied(`${dir}/`) || readlinkSync(`/proc/self/fd/${fd}`) !== (dir || '/')) return;
      const d = opendirSync(`/proc/self/fd/${fd}`);
      try {
        visit(dir || '/', fd);
        const part = parts.length > 1 ? globToRegex(parts[0] ?? '') : null;
        if (!part && !name) return; // watch: the last component's names are not needed
        for (let e = d.readSync(); e && (complete &&= ++entries <= maxEntries); e = d.readSync()) {
          if (part && e.isDirectory() && part.test(e.name))
            walk(`${dir}/${e.name}`, parts.slice(1), p);
          else if (!part && !e.isDirectory()) name?.(`${dir}/${e.name}`, p);
        }
      } finally {
        d.closeSync();
      }
    } catch {
      complete = false; // a directory that fails under us (EIO, ENOTDIR) ends the walk, not the helper
    } finally {
      closeSync(fd);
    }
  };
  for (const p of source.patterns) walk(p.root, p.glob.slice(p.root.length + 1).split('/'), p);
  return complete;
}

// The names matching a source (`files`) and their rotated generations, a sorted page after `cursor`
// (the previous page's last name). A symlink or FIFO is named too, for `open` to refuse with a
// reason. Bounded in names, bytes, names held and entries read: a user who fills an allowed
// directory cannot make one request block the helper or outgrow the socket's buffer or its memory.
export function listSource(
  source: Source,
  cursor = '',
  limit = { names: 1024, bytes: 60_000, entries: 100_000 },
): { files: string[]; generations: string[]; next?: string; truncated?: true } {
  const found = new Map<string, boolean>(); // name -> a generation only (a live match wins)
  const keep = (path: string, p: Pattern): void => {
    if (!allows(source, p, path) || isDenied(path) || path <= cursor || found.get(path) === false)
      return;
    found.set(path, !p.re.test(path));
    if (found.size > 4 * limit.names)
      // only the page's names and one more can be sent
      for (const k of [...found.keys()].sort().slice(limit.names + 1)) found.delete(k);
  };
  const truncated = !walkSource(source, limit.entries, () => undefined, keep);
  // Counted as the reply encodes them (\u001b is 6 bytes), the last name twice: it is also `next`.
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
