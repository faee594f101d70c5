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

export interface Opened {
  fd: number;
  dev: string;
  ino: string;
  size: number;
}
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

export function openAllowed(policy: Policy, path: string, inAuditGroup: boolean): Opened {
  const syntax = pathSyntaxError(path);
  if (syntax) throw new Refused('bad_path', syntax);
  const root = checkAllowed(policy, path, inAuditGroup);
  let fd: number;
  try {
    fd = fdpass.openNoFollow(path, root.length);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const [code, why] = OPEN_ERRORS[err.code ?? ''] ?? [
      'io',
      `cannot open: ${err.code ?? err.message}`,
    ];
    throw new Refused(code, `${path}: ${why}`);
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    // Anything but a regular file came back unopened (O_PATH): a FIFO or device read could hang the
    // helper or act on the device. Refused here, so its descriptor never leaves.
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
    // A hard link to a secret can be planted only in a directory a non-root user controls: there, a
    // second name for the file means we may not trust it.
    const untrusted = st.nlink > 1n ? notRootOnly(dirname(real)) : null;
    if (untrusted)
      throw new Refused(
        'hard_link',
        `${real} has ${st.nlink} hard links and ${untrusted}: possibly a planted link`,
      );
    return { fd, dev: String(st.dev), ino: String(st.ino), size: Number(st.size) };
  } catch (e) {
    fdpass.close(fd);
    // The peer can provoke file-system errors (renames, deep paths) here; they refuse, never crash.
    throw e instanceof Refused
      ? e
      : new Refused(
          'io',
          `${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'} while checking the opened file`,
        );
  }
}

// A new inotify instance with a watch on each directory walkSource reads for the source, added on the
// descriptor the walk opened. At most `max` directories, and a reply that fits the protocol's
// 64 KiB: more is refused (`limit`), and the agent polls that source. Closed on every refusal.
export function watchSource(source: Source, max = 4096): { fd: number; watches: Watch[] } {
  let fd: number;
  try {
    fd = fdpass.inotifyInit();
  } catch (e) {
    throw new Refused('unsupported', `inotify_init1 failed: ${(e as Error).message}`);
  }
  const watches = new Map<string, number>();
  let dirs = 0,
    failed: string | undefined;
  const visit = (dir: string, dirFd: number): void => {
    if (watches.has(dir) || ++dirs > max || failed) return;
    try {
      watches.set(dir, fdpass.addWatch(fd, dirFd));
    } catch (e) {
      failed = (e as Error).message; // ENOSPC: root's max_user_watches is used up
    }
  };
  try {
    const complete = walkSource(source, 100_000, visit);
    const list = [...watches].map(([dir, wd]) => ({ wd, dir }));
    if (failed) throw new Refused('unsupported', `inotify_add_watch failed: ${failed}`);
    if (list.length === 0)
      throw new Refused('not_found', `none of source "${source.name}"'s directories can be opened`);
    const what = `source "${source.name}" has ${dirs} directories to watch`;
    if (dirs > max) throw new Refused('limit', `${what}, more than ${max}`);
    if (!complete) throw new Refused('limit', `${what} in over 100000 entries, or one failed`);
    if (Buffer.byteLength(JSON.stringify(list)) > 60_000)
      throw new Refused('limit', `${what}, whose names are over the reply's 60000 bytes`);
    return { fd, watches: list };
  } catch (e) {
    fdpass.close(fd);
    throw e;
  }
}
