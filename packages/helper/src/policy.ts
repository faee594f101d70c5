// The helper's policy: which paths may be opened, for whom. Built once from guard.conf, then frozen;
// SIGHUP builds a new one and swaps it in whole (never edited in place).
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import * as ini from 'ini';

export interface Source { name: string; audit: boolean; patterns: string[]; regexes: RegExp[] }
export interface Policy { agentUid: number; socketGid: number; auditGid: number; sources: Source[]; digest: string }

// Never handed out, whatever a glob says: credentials, key material, kernel and device interfaces,
// guard's own secrets. Checked on the requested path and again on the opened descriptor's real path.
const DENY = [
  /^\/(proc|sys|dev|boot|root|etc\/guard|var\/lib\/guard)(\/|$)/,
  /^\/etc\/(g?shadow|security\/opasswd|krb5\.keytab|ssl\/private\/.*)-?$/,
  /\/\.(ssh|gnupg|aws|kube|docker)\//,
  /\/(ssh_host_[^/]*_key|id_(rsa|dsa|ecdsa|ed25519)[^/]*|[^/]*\.(key|p12|pfx|jks|keytab))$/,
];

export function isDenied(path: string): boolean {
  return DENY.some((re) => re.test(path));
}

// Absolute and normalised, so that the string we match is the path the kernel resolves.
export function pathSyntaxError(path: string): string | null {
  if (Buffer.byteLength(path) > 4095) return 'path is longer than 4095 bytes';
  if (!path.startsWith('/')) return 'path must be absolute';
  if (/[\x00-\x1f\x7f]/.test(path)) return 'path contains a NUL or control character';
  if (path.length > 1 && path.endsWith('/')) return 'path must not end with /';
  if (/\/\/|\/\.\.?(\/|$)/.test(path)) return 'path must be normalised (no //, . or .. components)';
  return null;
}

function globToRegex(pattern: string): RegExp {
  const body = pattern.replace(/\[!?[^\]/\\]+\]|[.+^${}()|\\[\]]|\*|\?/g, (m) =>
    m === '*' ? '[^/]*' : m === '?' ? '[^/]' : m.length > 1 ? m.replace(/^\[[!^]/, '[^/') : '\\' + m);
  return new RegExp(`^${body}$`);
}

// Sources whose patterns match the path exactly (a glob never matches across a /).
export function matchingSources(policy: Policy, path: string): Source[] {
  return policy.sources.filter((s) => s.regexes.some((re) => re.test(path)));
}

// Like sshd's StrictModes: a config anyone but root can change would let them widen the allow-list.
function assertRootOnly(file: string): void {
  for (let p = realpathSync(file); ; p = dirname(p)) {
    const st = statSync(p);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0)
      throw new Error(`${p} must be owned by root and not writable by group or others (owner uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`);
    if (p === '/') return;
  }
}

function lookup(file: string, name: string, what: string): string[] {
  const row = readFileSync(file, 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[0] === name);
  if (!row) throw new Error(`${what} "${name}" does not exist in ${file}`);
  return row;
}

export function loadPolicy(file: string): Policy {
  assertRootOnly(file);
  const conf = ini.parse(readFileSync(file, 'utf8'));
  const where = (section: string, key: string) => `${file}: [${section}] ${key}`;
  const user = conf.agent?.user;
  if (typeof user !== 'string' || user === '') throw new Error(`${where('agent', 'user')}: expected the agent's user name`);
  const [, , uid, gid] = lookup('/etc/passwd', user, 'user');
  const auditGroup = conf.helper?.audit_group ?? 'guard-audit';
  const sources: Source[] = [];
  for (const [name, s] of Object.entries<Record<string, unknown>>(conf.source ?? {})) {
    const type = s.type ?? 'file';
    if (type !== 'file' && type !== 'audit') throw new Error(`${where(`source.${name}`, 'type')}: expected "file" or "audit", got ${JSON.stringify(type)}`);
    const raw = s.paths ?? (type === 'audit' ? '/var/log/audit/audit.log, /var/log/audit/audit.log.[0-9]*' : undefined);
    const patterns = (Array.isArray(raw) ? raw : String(raw ?? '').split(',')).map((p) => String(p).trim()).filter(Boolean);
    const bad = patterns.find((p) => pathSyntaxError(p) !== null);
    if (patterns.length === 0 || bad !== undefined)
      throw new Error(`${where(`source.${name}`, 'paths')}: expected comma-separated absolute, normalised paths or globs${bad ? `, got "${bad}"` : ''}`);
    sources.push({ name, audit: type === 'audit', patterns, regexes: patterns.map(globToRegex) });
  }
  const digest = createHash('sha256').update(JSON.stringify(sources.map(({ name, audit, patterns }) => [name, audit, patterns]))).digest('hex');
  return { agentUid: Number(uid), socketGid: Number(gid), auditGid: Number(lookup('/etc/group', auditGroup, 'group')[2]), sources, digest };
}

// The files that currently match a source's patterns. Only real directories are descended and only
// regular files are listed (never through a symlink), so a planted link cannot reveal names elsewhere.
export function listSource(source: Source, limit: number): { files: string[]; truncated: boolean } {
  const found = new Set<string>();
  const walk = (dir: string, parts: string[], re: RegExp): void => {
    const [part, ...rest] = parts;
    if (part === undefined) return;
    let entries;
    try { entries = readdirSync(dir || '/', { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const path = `${dir}/${e.name}`;
      if (rest.length > 0 && e.isDirectory() && globToRegex(part).test(e.name)) walk(path, rest, re);
      else if (rest.length === 0 && e.isFile() && re.test(path) && !isDenied(path)) found.add(path);
    }
  };
  source.patterns.forEach((p, i) => walk('', p.split('/').slice(1), source.regexes[i]!));
  const files = [...found].sort();
  return { files: files.slice(0, limit), truncated: files.length > limit };
}
