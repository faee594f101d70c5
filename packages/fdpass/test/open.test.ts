import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as fdpass from '../src/index';
import { dir, fdCount, fdFlags, listening, O_ACCMODE, O_CLOEXEC, O_NONBLOCK } from './fixtures';

const root = join(dir, 'tree');
mkdirSync(join(root, 'logs'), { recursive: true });
writeFileSync(join(root, 'logs/app.log'), 'line one\n');
symlinkSync('app.log', join(root, 'logs/leaf-link'));
symlinkSync('logs', join(root, 'dir-link'));
symlinkSync('nowhere', join(root, 'logs/dangling'));
symlinkSync('loop-b', join(root, 'logs/loop-a'));
symlinkSync('loop-a', join(root, 'logs/loop-b'));
const fifo = join(root, 'logs/fifo');
if (spawnSync('mkfifo', [fifo]).status !== 0) throw new Error('mkfifo failed');
const sock = listening();

type Expect = { code: string; fileType?: string };
const refusals: [string, string, Expect][] = [
  ['symlink leaf', join(root, 'logs/leaf-link'), { code: 'ELOOP' }],
  ['symlinked intermediate directory', join(root, 'dir-link/app.log'), { code: 'ELOOP' }],
  ['dangling symlink', join(root, 'logs/dangling'), { code: 'ELOOP' }],
  ['symlink loop', join(root, 'logs/loop-a'), { code: 'ELOOP' }],
  ['magic link /proc/self/root', '/proc/self/root/etc/hostname', { code: 'ELOOP' }],
  ['FIFO (must not hang)', fifo, { code: 'ENOTREG', fileType: 'fifo' }],
  ['character device', '/dev/null', { code: 'ENOTREG', fileType: 'chr' }],
  ['directory', join(root, 'logs'), { code: 'ENOTREG', fileType: 'dir' }],
  ['the root directory (nothing below its root)', '/', { code: 'ENOENT' }],
  ['Unix socket file', sock.path, { code: 'ENOTREG', fileType: 'sock' }],
  ['missing file', join(root, 'logs/missing.log'), { code: 'ENOENT' }],
  ['missing directory', join(root, 'nodir/app.log'), { code: 'ENOENT' }],
  ['regular file used as a directory', join(root, 'logs/app.log/x'), { code: 'ENOTDIR' }],
  ['.. component', `${root}/logs/../logs/app.log`, { code: 'EINVAL' }],
  ['. component', `${root}/./logs/app.log`, { code: 'EINVAL' }],
  ['empty component', `${root}//logs/app.log`, { code: 'EINVAL' }],
  ['trailing slash', `${root}/logs/app.log/`, { code: 'EINVAL' }],
  ['relative path', 'etc/hostname', { code: 'EINVAL' }],
  ['embedded NUL', `${root}/logs/app.log\0/etc/shadow`, { code: 'EINVAL' }],
  ['longer than 4095 bytes', `/${'a'.repeat(4096)}`, { code: 'ENAMETOOLONG' }],
];

test('openat2 is available on this kernel', () => assert.equal(fdpass.hasOpenat2(), true));

for (const walk of [false, true]) {
  describe(`openNoFollow (${walk ? 'component walk' : 'openat2'})`, () => {
    test('a regular file opens read-only, non-blocking and close-on-exec', () => {
      const fd = fdpass.openNoFollow(join(root, 'logs/app.log'), root.length, walk);
      const flags = fdFlags(fd);
      assert.equal(flags & O_ACCMODE, 0, 'O_RDONLY');
      assert.ok(flags & O_CLOEXEC);
      assert.ok(flags & O_NONBLOCK);
      const buf = Buffer.alloc(64);
      assert.equal(buf.subarray(0, readSync(fd, buf, 0, 64, 0)).toString(), 'line one\n');
      assert.throws(() => writeSync(fd, 'x'), { code: 'EBADF' });
      fdpass.close(fd);
    });

    test('the root must be a directory of the path, at a /', () => {
      const path = join(root, 'logs/app.log');
      for (const at of [1, path.length, path.length + 1, -1, 0.5])
        assert.throws(() => fdpass.openNoFollow(path, at, walk), { code: 'EINVAL' }, String(at));
    });

    for (const [name, path, expected] of refusals) {
      test(
        `${name} → ${expected.code}${expected.fileType ? ` '${expected.fileType}'` : ''}`,
        { timeout: 5000 },
        () => {
          const before = fdCount();
          assert.throws(
            () => fdpass.openNoFollow(path, Math.max(0, path.lastIndexOf('/')), walk),
            (e: NodeJS.ErrnoException & { fileType?: string }) => {
              assert.equal(e.code, expected.code);
              assert.equal(e.fileType, expected.fileType);
              assert.ok(e.message.includes(expected.code));
              return true;
            },
          );
          assert.equal(fdCount(), before, 'the O_PATH descriptors are closed on every refusal');
        },
      );
    }
  });
}
