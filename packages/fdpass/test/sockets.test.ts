import assert from 'node:assert/strict';
import { chmodSync, closeSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { connect } from '../src/connect';
import * as fdpass from '../src/index';
import { dir, fdCount, fdFlags, listening, O_CLOEXEC, pythonSend, socketPair } from './fixtures';

const file = join(dir, 'payload.txt');
writeFileSync(file, 'hello through the socket\n');

function readAll(fd: number): string {
  const buf = Buffer.alloc(256);
  return buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString();
}

describe('descriptor passing', () => {
  test('a descriptor survives the trip, arrives close-on-exec and reads the file', () => {
    const p = socketPair();
    const src = openSync(file, 'r');
    assert.equal(fdpass.send(p.server, Buffer.from('{"ok":true}'), src), true);
    closeSync(src);
    const r = fdpass.recv(p.client, 4096, 1);
    assert.ok(r);
    assert.equal(r.data.toString(), '{"ok":true}');
    assert.equal(r.truncated, false);
    assert.ok(r.fd >= 0);
    assert.ok(fdFlags(r.fd) & O_CLOEXEC, 'received descriptor must be O_CLOEXEC');
    assert.equal(readAll(r.fd), 'hello through the socket\n');
    fdpass.close(r.fd);
    p.close();
  });

  test('sockets from listen, connect and accept are close-on-exec', () => {
    const p = socketPair();
    for (const fd of [p.listenFd, p.client, p.server]) assert.ok(fdFlags(fd) & O_CLOEXEC);
    p.close();
  });

  test('maxFds 0 closes a descriptor that arrives anyway', () => {
    const p = socketPair();
    const before = fdCount();
    const src = openSync(file, 'r');
    fdpass.send(p.server, Buffer.from('x'), src);
    closeSync(src);
    const r = fdpass.recv(p.client, 16, 0);
    assert.equal(r?.fd, -1);
    assert.equal(fdCount(), before);
    p.close();
  });

  for (const [count, maxFds] of [
    [2, 1],
    [3, 1],
    [8, 1],
    [2, 0],
    [3, 0],
  ] as const) {
    test(`${count} descriptors in one packet, maxFds ${maxFds}: keeps ${maxFds}, closes the rest`, () => {
      const l = listening();
      pythonSend(l.path, count);
      const before = fdCount();
      const s = fdpass.accept(l.listenFd);
      const r = fdpass.recv(s, 64, maxFds);
      assert.ok(r);
      assert.equal(r.data.toString(), 'many');
      assert.equal(r.closed, count - maxFds, 'the descriptors closed unread are counted');
      if (maxFds === 1) {
        assert.ok(r.fd >= 0);
        assert.ok(fdFlags(r.fd) & O_CLOEXEC);
        fdpass.close(r.fd);
      } else {
        assert.equal(r.fd, -1);
      }
      assert.equal(fdpass.recv(s, 64, 1)?.data.length, 0, 'then end-of-stream');
      fdpass.close(s);
      assert.equal(fdCount(), before, 'no descriptor leaked');
      fdpass.close(l.listenFd);
    });
  }

  for (const count of [9, 100, 253]) {
    test(`MSG_CTRUNC (${count} descriptors): throws ECTRUNC and closes every one received`, () => {
      const l = listening();
      pythonSend(l.path, count);
      const s = fdpass.accept(l.listenFd);
      const before = fdCount();
      assert.throws(
        () => fdpass.recv(s, 64, 1),
        (e: NodeJS.ErrnoException) => e.code === 'ECTRUNC' && /ECTRUNC/.test(e.message),
      );
      assert.equal(fdCount(), before);
      fdpass.close(s);
      fdpass.close(l.listenFd);
    });
  }

  test('MSG_TRUNC is reported and the descriptor still arrives', () => {
    const p = socketPair();
    fdpass.send(p.server, Buffer.alloc(100, 'a'), p.listenFd);
    const r = fdpass.recv(p.client, 10, 1);
    assert.equal(r?.data.length, 10);
    assert.equal(r?.truncated, true);
    assert.equal(r?.closed, 0);
    assert.ok((r?.fd ?? -1) >= 0);
    fdpass.close(r?.fd ?? -1);
    p.close();
  });

  test('nothing waiting: accept gives -1, recv gives null; peer closed: empty data', () => {
    const p = socketPair();
    assert.equal(fdpass.accept(p.listenFd), -1);
    assert.equal(fdpass.recv(p.client, 16, 1), null);
    fdpass.close(p.server);
    assert.deepEqual(fdpass.recv(p.client, 16, 1), {
      data: Buffer.alloc(0),
      fd: -1,
      truncated: false,
      closed: 0,
    });
    fdpass.close(p.client);
    fdpass.close(p.listenFd);
  });

  test('send gives false when the peer is full, EPIPE (no SIGPIPE) when it is gone', () => {
    const p = socketPair();
    let sent = 0;
    while (fdpass.send(p.client, Buffer.alloc(1024)) && sent < 1_000_000) sent++;
    assert.ok(sent > 0 && sent < 1_000_000);
    p.close();
    const q = socketPair();
    fdpass.close(q.server);
    assert.throws(() => fdpass.send(q.client, Buffer.from('x')), { code: 'EPIPE' });
    fdpass.close(q.client);
    fdpass.close(q.listenFd);
  });

  test('a packet of 0 bytes is refused (the peer would read end-of-stream)', () => {
    const p = socketPair();
    assert.throws(() => fdpass.send(p.client, Buffer.alloc(0)), { code: 'EINVAL' });
    p.close();
  });

  test('errors carry the errno name as code and in the message', () => {
    assert.throws(
      () => connect(join(dir, 'nobody-listens')),
      (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.message.startsWith('ENOENT: '),
    );
    assert.throws(() => fdpass.listen(join(dir, 'x'.repeat(200))), { code: 'ENAMETOOLONG' });
    assert.throws(() => fdpass.listen(`${dir}/a\0b`), { code: 'EINVAL' });
    assert.throws(() => fdpass.close(1.5), { code: 'EINVAL' });
    assert.throws(() => fdpass.close(2 ** 32 + 1), { code: 'EINVAL' });
    assert.throws(() => fdpass.recv(0, 16, 2 as 1), { code: 'EINVAL' });
    assert.throws(() => fdpass.recv(0, 0, 1), { code: 'EINVAL' });
    assert.throws(() => fdpass.send(0, 'x' as unknown as Buffer), { code: 'EINVAL' });
    const l = listening();
    assert.throws(() => fdpass.listen(l.path), { code: 'EADDRINUSE' });
    fdpass.close(l.listenFd);
  });
});

describe('peer credentials', () => {
  test('peerCred and peerGroups on a listen/connect pair report this process', () => {
    const p = socketPair();
    const expected = { pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() };
    assert.deepEqual(fdpass.peerCred(p.server), expected);
    assert.deepEqual(fdpass.peerCred(p.client), expected);
    const status =
      /^Groups:[ \t]*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '';
    const groups = status.split(/\s+/).filter(Boolean).map(Number);
    assert.deepEqual(fdpass.peerGroups(p.server).sort(), groups.sort());
    p.close();
  });

  test('another user with 300 supplementary groups is reported as that user', () => {
    const l = listening();
    chmodSync(dir, 0o755);
    chmodSync(l.path, 0o777);
    const groups = Array.from({ length: 300 }, (_, i) => 20000 + i);
    const pid = pythonSend(l.path, 0, groups);
    const s = fdpass.accept(l.listenFd);
    assert.deepEqual(fdpass.peerCred(s), { pid, uid: 65534, gid: 65534 });
    assert.deepEqual(
      fdpass.peerGroups(s).sort((a, b) => a - b),
      groups,
    );
    fdpass.close(s);
    fdpass.close(l.listenFd);
    chmodSync(dir, 0o700);
  });
});

describe('volume', () => {
  test('100,000 request/reply round trips with a descriptor each leave the descriptor count unchanged', () => {
    const p = socketPair();
    const src = openSync(file, 'r');
    const before = fdCount();
    const request = Buffer.from('{"op":"open","path":"/var/log/syslog"}');
    const reply = Buffer.from('{"ok":true,"op":"open"}');
    for (let i = 0; i < 100_000; i++) {
      assert.equal(fdpass.send(p.client, request), true);
      const req = fdpass.recv(p.server, 4097, 0);
      if (!req || req.data.length !== request.length || req.fd !== -1)
        assert.fail(`bad request ${i}`);
      assert.equal(fdpass.send(p.server, reply, src), true);
      const rep = fdpass.recv(p.client, 65536, 1);
      if (!rep || rep.fd < 0) assert.fail(`no descriptor in reply ${i}`);
      fdpass.close(rep.fd);
    }
    assert.equal(fdCount(), before);
    closeSync(src);
    p.close();
  });
});
