// guard-helper: the only part of guard that runs as root. It opens allow-listed files read-only
// and hands the descriptors to the agent user; it never reads a byte of them.
import {
  closeSync,
  lstatSync,
  readlinkSync,
  readdirSync,
  unlinkSync,
  chmodSync,
  chownSync,
} from 'node:fs';
import * as fdpass from '@guard/fdpass';
import { assertRootOnly, loadPolicy, type Policy } from './policy';
import { dirname } from 'node:path';
import { HELLO, log, serve } from './server';

// Descriptors inherited from whatever started us could be files or sockets the peer should never
// reach through us. Node marks them close-on-exec, so only their kind tells them apart from Node's
// own (eventpoll, eventfd, and pipes whose both ends are ours): close every other one first.
const fds = readdirSync('/proc/self/fd')
  .map(Number)
  .filter((fd) => fd > 2)
  .map((fd) => {
    try {
      return [fd, readlinkSync(`/proc/self/fd/${fd}`)] as const;
    } catch {
      return [fd, ''] as const;
    }
  });
for (const [fd, link] of fds) {
  const own =
    /^anon_inode:\[event(poll|fd)\]$/.test(link) ||
    (link.startsWith('pipe:') && fds.filter(([, l]) => l === link).length === 2);
  if (link !== '' && !own) closeSync(fd);
}

const flag = (name: string, fallback: string): string =>
  (process.argv.includes(name) && process.argv[process.argv.indexOf(name) + 1]) || fallback;
const configPath = flag('--config', '/etc/guard/guard.conf');
const socketPath = flag('--socket', '/run/guard/helper.sock');

let policy: Policy;
try {
  policy = loadPolicy(configPath);
  assertRootOnly(dirname(socketPath));
} catch (e) {
  // the socket's directory too: chown/chmod below go by path
  log('error', 'config_error', { config: configPath, message: (e as Error).message });
  process.exit(1);
}
process.on('SIGHUP', () => {
  try {
    policy = loadPolicy(configPath);
  } catch (e) {
    // all or nothing: a failed reload keeps the old policy
    return log('error', 'reload_failed', {
      config: configPath,
      message: (e as Error).message,
      kept: policy.digest,
    });
  }
  log('info', 'reloaded', { policy: policy.digest, sources: policy.sources.map((s) => s.name) });
});
// A helper in an unknown state dies rather than guesses; its supervisor restarts it.
process.on('uncaughtException', (e) => {
  log('error', 'crashed', { message: e.stack });
  process.exit(70);
});

// Replace a stale socket from an earlier run, never anything else that sits at that path.
try {
  if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath);
} catch {
  /* nothing there */
}
process.umask(0o177); // the socket is born 0600, then opened to the agent's group only
const listenFd = fdpass.listen(socketPath, 64);
// Under systemd (Group=guard) it is born root:guard: no chown, so the unit can deny the syscall.
if (lstatSync(socketPath).gid !== policy.socketGid) chownSync(socketPath, 0, policy.socketGid);
chmodSync(socketPath, 0o660);
serve(listenFd, () => policy);
log('info', 'listening', { socket: socketPath, pid: process.pid, policy: policy.digest, ...HELLO });
