// Shared by the fdpass tests: real sockets in a private temporary directory, descriptor accounting.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../src/connect';
import * as fdpass from '../src/index';

export const dir = mkdtempSync(join(tmpdir(), 'fdpass-test-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let sockets = 0;

/** Descriptors this process holds right now. */
/** Sockets and files open in this process: what these tests pass and could leak. Node's own
 *  event-loop plumbing (eventfd, epoll, pipes), which libuv may add lazily while a test runs on a
 *  loaded machine, is not counted (a full count once saw 36 for 35). */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').filter((n) => {
    try {
      return /^(socket:|\/)/.test(readlinkSync(`/proc/self/fd/${n}`));
    } catch {
      return false; // the directory's own descriptor, closed by now
    }
  }).length;
}

/** The open flags of one of our descriptors, from /proc/self/fdinfo (an octal number). */
export function fdFlags(fd: number): number {
  const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (!m?.[1]) throw new Error(`no flags for fd ${fd}`);
  return parseInt(m[1], 8);
}
export const O_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;
export const O_ACCMODE = 0o3;
export const O_PATH = 0o10000000;

/** A listening socket plus a connected client and its accepted server end. */
export function socketPair(): {
  path: string;
  listenFd: number;
  client: number;
  server: number;
  close(): void;
} {
  const path = join(dir, `s${sockets++}.sock`);
  const listenFd = fdpass.listen(path);
  const client = connect(path);
  const server = fdpass.accept(listenFd);
  if (server < 0) throw new Error('accept found no connection');
  return {
    path,
    listenFd,
    client,
    server,
    close() {
      for (const fd of [client, server, listenFd]) fdpass.close(fd);
    },
  };
}

/** A listening socket only (for a child process to connect to). */
export function listening(): { path: string; listenFd: number } {
  const path = join(dir, `l${sockets++}.sock`);
  return { path, listenFd: fdpass.listen(path) };
}

/**
 * Runs python3 as a raw peer: connects to `path` and sends one packet carrying `count` descriptors of
 * /dev/null with socket.send_fds (the addon itself never sends more than one). Optionally drops to
 * uid/gid 65534 with the given supplementary groups first. Returns the child's pid.
 */
export function pythonSend(path: string, count: number, groups?: number[]): number {
  const script = `
import os, socket, sys
path, count = sys.argv[1], int(sys.argv[2])
if len(sys.argv) > 3:
    os.setgroups([int(g) for g in sys.argv[3].split(',') if g]); os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(path)
fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(count)]
if fds: socket.send_fds(s, [b'many'], fds)
else: s.send(b'none')
print(os.getpid())
`;
  const args = ['-c', script, path, String(count)];
  if (groups) args.push(groups.join(','));
  const r = spawnSync('python3', args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}
