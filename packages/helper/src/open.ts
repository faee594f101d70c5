// Opening a file for the agent. Every check that matters runs on the opened descriptor, never on the
// path, so swapping a file for a link between a check and the open gains an attacker nothing.
import { fstatSync, readlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import * as fdpass from '@guard/fdpass';
import type { ErrorCode, Watch } from '@guard/protocol/wire';
import {
  isDenied,
  notRootOnly,
  matching,
  pathSyntaxError,
  walkSource,
  type Policy,
  type Source,
} from './policy';

export class Refused extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// The refusal of an audit source (`what`) to a peer outside the audit group, for open, list and watch.
export const auditOnly = (what: string) =>
  new Refused(
    'audit_group',
    `${what} is an audit source: the agent user must be in the audit group (restart the agent after adding it)`,
  );

// Throws Refused unless the path is allowed for the peer; returns the deepest allowed root among the
// patterns that allow it, the directory below which the open may not cross a mount.
function checkAllowed(policy: Policy, path: string, inAuditGroup: boolean): string {
  if (isDenied(path))
    throw new Refused(
      'deny_listed',
      `${path} is on guard's built-in deny-list (credentials, keys, kernel interfaces)`,
    );
  const found = matching(policy, path);
  if (found.length === 0)
    throw new Refused('not_allowed', `${path} matches no [source.*] paths in guard.conf`);
  const usable = found.filter(([s]) => inAuditGroup || s.type !== 'audit');
  if (usable.length === 0) throw auditOnly(path);
  return usable.map(([, p]) => p.root).reduce((a, b) => (b.length > a.length ? b : a));
}

const OPEN_ERRORS: Record<string, [ErrorCode, string]> = {
  ELOOP: ['symlink', 'a symbolic link is on the way; guard follows none'],
  ENOENT: ['not_found', 'no such file'],
  ENOTDIR: ['not_found', 'a component on the way is not a directory'],
  EXDEV: ['mount', 'a mount point is on the way below the allowed directory; guard crosses none'],
};

const FILE_TYPES = ['Directory', 'FIFO', 'CharacterDevice', 'BlockDevice', 'Socket'] as const;

export function openAllowed(policy: Policy, path: string, inAuditGroup: boolean) {
  const syntax = pathSyntaxError(path);
  if (syntax) throw new Refused('bad_path', syntax);
  const root = checkAllowed(policy, path, inAuditGroup);
  let fd = -1;
  try {
    fd = fdpass.openNoFollow(path, root.length);
    const st = fstatSync(fd, { bigint: true });
    // Anything but a regular file came back O_PATH (a FIFO or device read may hang, act): refused.
    if (!st.isFile()) {
      const type = FILE_TYPES.find((t) => st[`is${t}`]()) ?? 'unknown type';
      throw new Refused('not_regular', `${path}: not a regular file (${type})`);
    }
    // The descriptor's real path: a rename between resolution and open must not carry us outside.
    const real = readlinkSync(`/proc/self/fd/${fd}`);
    if (real !== path) {
      if (pathSyntaxError(real))
        throw new Refused('moved', `${path} was moved or deleted while it was opened`);
      try {
        checkAllowed(policy, real, inAuditGroup);
      } catch (e) {
        throw new Refused(
          e instanceof Refused && e.code === 'deny_listed' ? 'deny_listed' : 'moved',
          `${path} now resolves to ${real}, which is not allowed`,
        );
      }
    }
    // A hard link to a secret can be planted only where a non-root user may write: distrust it.
    const untrusted = st.nlink > 1n ? notRootOnly(dirname(real)) : null;
    if (untrusted)
      throw new Refused(
        'hard_link',
        `${real} has ${st.nlink} hard links and ${untrusted}: possibly a planted link`,
      );
    return { fd, dev: String(st.dev), ino: String(st.ino), size: Number(st.size) };
  } catch (e) {
    if (fd >= 0) fdpass.close(fd);
    if (e instanceof Refused) throw e;
    // File-system errors a peer can provoke (links, renames, deep paths) refuse; never a crash.
    const errno = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    const [code, why]: [ErrorCode, string] = Object.hasOwn(OPEN_ERRORS, errno)
      ? OPEN_ERRORS[errno]!
      : ['io', `cannot open or check it: ${errno}`];
    throw new Refused(code, `${path}: ${why}`);
  }
}

// Watches, by descriptor, each directory walkSource opens for the source, in the agent's instance
// `fd`. Over `max` directories, or a reply over 60000 bytes, is refused (`limit`): the agent polls.
export function watchSource(source: Source, fd: number, max = 4096): Watch[] {
  const wds = new Map<string, number>();
  let failed = '';
  const complete = walkSource(source, 100_000, (dir, dirFd) => {
    if (wds.size > max || failed || wds.has(dir)) return;
    try {
      wds.set(dir, fdpass.addWatch(fd, dirFd));
    } catch (e) {
      failed = (e as Error).message; // EINVAL: not an instance; ENOSPC: the agent's watches used up
    }
  });
  const watches = [...wds].map(([dir, wd]) => ({ wd, dir }));
  const count = wds.size > max ? `over ${max}` : String(wds.size);
  const what = `source "${source.name}" has ${count} directories to watch`;
  const refusal: [ErrorCode, string] | null = failed
    ? ['unsupported', `inotify_add_watch failed: ${failed}`]
    : wds.size === 0
      ? ['not_found', `none of source "${source.name}"'s directories can be opened`]
      : wds.size > max || !complete
        ? ['limit', `${what}${complete ? '' : ' (over 100000 entries read, or one failed)'}`]
        : Buffer.byteLength(JSON.stringify(watches)) > 60_000
          ? ['limit', `${what}, whose names are over the reply's 60000 bytes`]
          : null;
  if (refusal) throw new Refused(...refusal);
  return watches;
}
