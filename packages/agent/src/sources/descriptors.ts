// The agent's descriptor hygiene: what it inherits, and what the helper hands it.
//
// - Descriptors inherited from whatever started the agent (a shell, a supervisor, a test runner)
//   could be files or sockets a compromised parser should never reach: closed at start, as the
//   helper closes its own (packages/helper/src/main.ts).
// - A descriptor received from the helper is checked before anything reads it. The helper is
//   root; a compromised helper, or a fake one listening where the agent looks for it, could hand
//   over a descriptor open for writing (the agent could then alter a log it is shipping, or
//   whatever file it is), a socket, a FIFO or a directory, or a file other than the one its reply
//   names (the checkpoint of one file applied to another). So: open read-only (the `flags:` line
//   of /proc/self/fdinfo/N, O_ACCMODE), not an O_PATH handle, a regular file, and {dev, ino} equal
//   to the reply's. A descriptor that fails is closed, never read, and reported.
import { closeSync, fstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { HelperRefusal } from '@guard/protocol/client';
import type { ErrorCode } from '@guard/protocol/wire';

const O_ACCMODE = 0o3;
const O_RDONLY = 0o0;
const O_PATH = 0o10000000;

/** Closes every descriptor above 2 that is not Node's own; returns what it closed. */
export function closeStrayDescriptors(): { fd: number; what: string }[] {
  const fds = readdirSync('/proc/self/fd')
    .map(Number)
    .filter((fd) => fd > 2)
    .map((fd) => {
      try {
        return [fd, readlinkSync(`/proc/self/fd/${fd}`)] as const;
      } catch {
        return [fd, ''] as const; // the directory readdirSync had open, closed by now
      }
    });
  const closed: { fd: number; what: string }[] = [];
  for (const [fd, what] of fds) {
    // Node's own at this point: libuv's epoll and eventfd (and io_uring) handles, and pipes whose
    // two ends are both ours (its signal and wake-up pipes).
    const own =
      /^anon_inode:\[(eventpoll|eventfd|io_uring)\]$/.test(what) ||
      (what.startsWith('pipe:') && fds.filter(([, l]) => l === what).length === 2);
    if (what === '' || own) continue;
    try {
      closeSync(fd);
      closed.push({ fd, what });
    } catch {
      /* gone meanwhile */
    }
  }
  return closed;
}

/**
 * A descriptor from the helper failed a check; it has been closed. A refusal, as far as the
 * sources are concerned (shown by `guardctl status` with code `bad_descriptor`), though the agent
 * refused it, not the helper: the code is the agent's own, not one of the protocol's.
 */
export class DescriptorRejected extends HelperRefusal {
  constructor(message: string) {
    super('bad_descriptor' as ErrorCode, message, 'open');
  }
}

/** What /proc says of the descriptor's open flags, or null when it cannot be read. */
function openFlags(fd: number): number | null {
  let info: string;
  try {
    info = readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1');
  } catch {
    return null;
  }
  const m = /^flags:\s*([0-7]+)$/m.exec(info);
  return m ? parseInt(m[1]!, 8) : null;
}

/**
 * Checks descriptor `fd`, received with `reply` for `path`, before any use; closes it and throws
 * DescriptorRejected when it is not a read-only descriptor of the regular file the reply names.
 */
export function checkReceivedDescriptor(
  fd: number,
  reply: { dev: string; ino: string },
  path: string,
): void {
  const problem = descriptorProblem(fd, reply);
  if (problem === null) return;
  try {
    closeSync(fd);
  } catch {
    /* not a descriptor we can close: nothing to keep either */
  }
  throw new DescriptorRejected(`the helper's descriptor for ${path} ${problem}: closed unread`);
}

function descriptorProblem(fd: number, reply: { dev: string; ino: string }): string | null {
  if (!Number.isInteger(fd) || fd < 0) return 'is missing';
  const flags = openFlags(fd);
  if (flags === null) return 'has open flags /proc does not show';
  if ((flags & O_PATH) !== 0) return 'is an O_PATH handle';
  if ((flags & O_ACCMODE) !== O_RDONLY)
    return `is open for writing (${(flags & O_ACCMODE) === 1 ? 'O_WRONLY' : 'O_RDWR'})`;
  let st;
  try {
    st = fstatSync(fd, { bigint: true });
  } catch (e) {
    return `cannot be examined (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
  }
  if (!st.isFile()) return 'is not a regular file';
  if (String(st.dev) !== reply.dev || String(st.ino) !== reply.ino)
    return `is dev ${st.dev} ino ${st.ino}, not the dev ${reply.dev} ino ${reply.ino} of the reply`;
  return null;
}
