// The helper must stay up for as long as its supervisor wants it: nothing it needs may depend on
// the garbage collector not running. A helper that keeps no reference to its listening poll
// handle serves until the first full collection, then its event loop is empty and it exits 0
// (a clean exit: systemd's Restart=on-failure would not even restart it).
import assert from 'node:assert/strict';
import { closeSync, fstatSync, openSync, readdirSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  agentPeer,
  assertStillServing,
  ensureHealthyHelper,
  setupEnv,
  teardownEnv,
  type Env,
} from './lib/env';
import { Helper } from './lib/helper';
import { loopResult, open } from './lib/peer';
import { sleep } from './lib/proc';

describe('guard-helper lifetime', () => {
  let env: Env;
  before(async () => {
    env = await setupEnv();
  });
  after(async () => {
    await teardownEnv(env);
  });
  beforeEach(async () => {
    await ensureHealthyHelper(env);
  });

  it('survives garbage collection: idle, and after serving', async () => {
    const sock = env.sb.path('run', 'helper-gc.sock');
    const h = await Helper.start({
      ...env.helperOptions,
      socket: sock,
      nodeArgs: ['--expose-gc', '--require', env.sb.forceGcJs],
    });
    try {
      await sleep(1500); // several forced collections with nobody connected
      assert.ok(h.running, `guard-helper exited while idle under forced GC:\n${h.dump(5)}`);
      const base = h.fdCount();
      const out = await agentPeer(env, [
        { a: 'connect', path: sock },
        { a: 'loop', n: 1000, window: 16, reqs: [open(env.legitPath)], read: 4 },
      ]);
      assert.equal(loopResult(out, 1).replies, 1000);
      await sleep(1000);
      assert.ok(h.running, `guard-helper exited after serving, under forced GC:\n${h.dump(5)}`);
      await assertStillServing(env, h, base, sock);
    } finally {
      await h.stop();
    }
    await assertStillServing(env);
  });

  it('closes descriptors it inherits from whatever started it (a secret file, a listening socket)', async () => {
    const secret = openSync('/etc/shadow', 'r');
    const server = createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const serverFd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    const socketIno = String(fstatSync(serverFd).ino);
    const sock = env.sb.path('run', 'helper-inherit.sock');
    const h = await Helper.start({
      ...env.helperOptions,
      socket: sock,
      inheritFds: [secret, serverFd],
    });
    try {
      const links = readdirSync(`/proc/${h.pid}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${h.pid}/fd/${fd}`);
        } catch {
          return '';
        }
      });
      assert.ok(
        !links.includes('/etc/shadow'),
        `the inherited /etc/shadow descriptor is still open: ${links.join(', ')}`,
      );
      assert.ok(
        !links.includes(`socket:[${socketIno}]`),
        `the inherited TCP socket is still open: ${links.join(', ')}`,
      );
      await assertStillServing(env, h, h.fdCount(), sock);
    } finally {
      await h.stop();
      closeSync(secret);
      server.close();
    }
  });
});
