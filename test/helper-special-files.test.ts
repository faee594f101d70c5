// Attack 3: special files where a log file is expected. A FIFO must not hang the helper (nobody
// writes to it), a device must not be opened, and each is refused `not_regular` with no descriptor.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  agentPeer,
  ensureHealthyHelper,
  assertRefused,
  assertStillServing,
  setupEnv,
  teardownEnv,
  type Env,
} from './lib/env';
import { open, probe, reply, type Action } from './lib/peer';
import { killPid, sleep, start } from './lib/proc';

describe('guard-helper and special files', () => {
  let env: Env;
  before(async () => {
    env = await setupEnv({
      layout: (e) => {
        const sb = e.sb;
        // a directory the attacker controls, as with a log directory of some service
        sb.mkdir('logs/special', 0o755, e.attacker);
        const d = sb.path('logs/special');
        execFileSync('mkfifo', ['-m', '0666', `${d}/fifo.log`]);
        execFileSync('mknod', ['-m', '0666', `${d}/null.log`, 'c', '1', '3']);
        execFileSync('mknod', ['-m', '0600', `${d}/block.log`, 'b', '7', '200']);
        sb.mkdir('logs/special/dir.log', 0o755, e.attacker);
        // a Unix socket file: bound, and left behind when python exits
        execFileSync('/usr/bin/python3', [
          '-c',
          `import socket; socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).bind(${JSON.stringify(`${d}/sock.log`)})`,
        ]);
      },
      extraConfig: (e) =>
        ['[source.special]', 'type = file', `paths = ${e.sb.dir}/logs/special/*.log`].join('\n'),
    });
  });
  after(async () => {
    await teardownEnv(env);
  });
  beforeEach(async () => {
    await ensureHealthyHelper(env);
  });

  it('the special files are what they claim to be', () => {
    const d = env.sb.path('logs/special');
    assert.ok(statSync(`${d}/fifo.log`).isFIFO());
    assert.ok(statSync(`${d}/null.log`).isCharacterDevice());
    assert.ok(statSync(`${d}/block.log`).isBlockDevice());
    assert.ok(statSync(`${d}/dir.log`).isDirectory());
    assert.ok(statSync(`${d}/sock.log`).isSocket());
  });

  it('refuses a FIFO without hanging: guardctl probe answers within 2 s', async () => {
    const p = `${env.sb.path('logs/special')}/fifo.log`;
    const r = await probe(env.sb, env.agent, env.socket, p, 10000);
    assert.equal(r.timedOut, false, 'guardctl probe of a FIFO hung');
    assert.ok(r.ms < 2000, `guardctl probe of a FIFO took ${r.ms} ms`);
    assert.equal(r.code, 1, `exit ${r.code}: ${r.stdout} ${r.stderr}`);
    assert.equal(r.json?.granted, false);
    assert.equal(r.json?.code, 'not_regular');
    await assertStillServing(env);
  });

  it('refuses FIFO, character device, block device, directory and socket as not_regular', async () => {
    const d = env.sb.path('logs/special');
    const names = ['fifo.log', 'null.log', 'block.log', 'dir.log', 'sock.log'];
    const actions: Action[] = [{ a: 'connect' }];
    for (const n of names)
      actions.push(
        { a: 'req', json: open(`${d}/${n}`), read: 16, timeout: 2000, label: `open ${n}` },
        { a: 'req', json: open(`${d}/${n}`), timeout: 2000, label: `again ${n}` },
      );
    // pipelined on a second connection: a FIFO request must not hold up the ones behind it
    actions.push({ a: 'connect', c: 'p' });
    for (let i = 0; i < 3; i++) actions.push({ a: 'send', c: 'p', json: open(`${d}/fifo.log`) });
    actions.push({ a: 'send', c: 'p', json: open(env.legitPath) });
    for (let i = 0; i < 4; i++) actions.push({ a: 'recv', c: 'p', timeout: 2000, read: 64 });
    const out = await agentPeer(env, actions);
    const failures: string[] = [];
    for (let i = 0; i < names.length * 2; i++) {
      const r = reply(out, 1 + i);
      if (r.timeout) failures.push(`${r.label}: no answer within 2 s`);
      else
        try {
          assertRefused(r, 'not_regular', String(r.label));
        } catch (e) {
          failures.push((e as Error).message);
        }
    }
    const base = 1 + names.length * 2 + 1 + 4;
    for (let i = 0; i < 3; i++) {
      const r = reply(out, base + i);
      if (r.timeout) failures.push(`pipelined FIFO #${i}: no answer within 2 s`);
      else
        try {
          assertRefused(r, 'not_regular', `pipelined FIFO #${i}`);
        } catch (e) {
          failures.push((e as Error).message);
        }
    }
    const legit = reply(out, base + 3);
    if (legit.json?.ok !== true || legit.head !== env.rootOnlyText)
      failures.push(`legit open behind FIFOs: ${JSON.stringify(legit)}`);
    assert.equal(out.unexpectedFds, 0, 'descriptors were sent');
    assert.deepEqual(failures, []);
    await assertStillServing(env);
  });

  it('a FIFO with a writer waiting is still refused and the writer is not served', async () => {
    // A writer blocked in open(O_WRONLY) returns as soon as anybody opens the FIFO for reading:
    // the helper must never do that (it checks the O_PATH descriptor before opening for reading).
    const p = `${env.sb.path('logs/special')}/fifo.log`;
    const writer = start('/bin/sh', ['-c', `echo x > ${p}; echo opened`], { user: env.attacker });
    let wrote = '';
    writer.stdout?.setEncoding('utf8').on('data', (d: string) => {
      wrote += d;
    });
    await sleep(300);
    const out = await agentPeer(env, [
      { a: 'connect' },
      { a: 'req', json: open(p), read: 16, timeout: 2000 },
    ]);
    assertRefused(reply(out, 1), 'not_regular', 'FIFO with a writer');
    await sleep(200);
    const stillBlocked = writer.exitCode === null;
    killPid(writer.pid, 'SIGKILL');
    assert.ok(
      stillBlocked && !wrote.includes('opened'),
      'the helper opened the FIFO for reading (the blocked writer got through)',
    );
    await assertStillServing(env);
  });
});
