import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fstatSync, mkdirSync, readSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as fdpass from '../src/index';
import {
  dir,
  fdCount,
  fdFlags,
  listening,
  O_ACCMODE,
  O_CLOEXEC,
  O_NONBLOCK,
  O_PATH,
} from './fixtures';

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

type Expect = { code: string };
const refusals: [string, string, Expect][] = [
  ['symlink leaf', join(root, 'logs/leaf-link'), { code: 'ELOOP' }],
  ['symlinked intermediate directory', join(root, 'dir-link/app.log'), { code: 'ELOOP' }],
  ['dangling symlink', join(root, 'logs/dangling'), { code: 'ELOOP' }],
  ['symlink loop', join(root, 'logs/loop-a'), { code: 'ELOOP' }],
  ['magic link /proc/self/root', '/proc/self/root/etc/hostname', { code: 'ELOOP' }],
  ['the root directory (nothing below its root)', '/', { code: 'ENOENT' }],
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
      for (const at of [1, path.length + 1, -1, 0.5])
        assert.throws(() => fdpass.openNoFollow(path, at, walk), { code: 'EINVAL' }, String(at));
    });

    // Never opened for reading (a FIFO would hang, a device act on open): the caller fstats the
    // O_PATH descriptor and refuses, or lists and watches a directory through it.
    const unopened: [string, string, (st: ReturnType<typeof fstatSync>) => boolean][] = [
      ['FIFO (must not hang)', fifo, (st) => st.isFIFO()],
      ['character device', '/dev/null', (st) => st.isCharacterDevice()],
      ['directory', join(root, 'logs'), (st) => st.isDirectory()],
      ['Unix socket file', sock.path, (st) => st.isSocket()],
    ];
    for (const [name, path, isIt] of unopened)
      test(
        `${name} comes back as an O_PATH descriptor that cannot be read`,
        { timeout: 5000 },
        () => {
          const fd = fdpass.openNoFollow(path, path.lastIndexOf('/'), walk);
          try {
            assert.ok(fdFlags(fd) & O_PATH, 'O_PATH');
            assert.ok(fdFlags(fd) & O_CLOEXEC);
            assert.ok(isIt(fstatSync(fd)));
            assert.throws(() => readSync(fd, Buffer.alloc(8), 0, 8, null), { code: 'EBADF' });
          } finally {
            fdpass.close(fd);
          }
        },
      );

    test('a path that is its own root (an allowed directory itself) opens as O_PATH', () => {
      const logs = join(root, 'logs');
      const fd = fdpass.openNoFollow(logs, logs.length, walk);
      assert.ok(fdFlags(fd) & O_PATH);
      assert.ok(fstatSync(fd).isDirectory());
      fdpass.close(fd);
      // still no symlink anywhere on the way, the last component included
      const link = join(root, 'dir-link');
      assert.throws(() => fdpass.openNoFollow(link, link.length, walk), { code: 'ELOOP' });
    });

    for (const [name, path, expected] of refusals) {
      test(`${name} → ${expected.code}`, { timeout: 5000 }, () => {
        const before = fdCount();
        assert.throws(
          () => fdpass.openNoFollow(path, Math.max(0, path.lastIndexOf('/')), walk),
          (e: NodeJS.ErrnoException) => {
            assert.equal(e.code, expected.code);
            assert.ok(e.message.includes(expected.code));
            return true;
          },
        );
        assert.equal(fdCount(), before, 'the O_PATH descriptors are closed on every refusal');
      });
    }
  });
}
