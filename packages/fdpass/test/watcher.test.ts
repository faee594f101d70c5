import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as fdpass from '../src/index';
import { fdCount, socketPair } from './fixtures';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
async function collect(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    gc();
    await tick();
    await sleep(1);
  }
}

describe('Watcher', () => {
  test('readable and writable events arrive', async () => {
    const p = socketPair();
    const events: [number, boolean, boolean][] = [];
    let wake = () => {};
    const w = new fdpass.Watcher(p.server, (status, r, wr) => {
      events.push([status, r, wr]);
      wake();
    });
    w.start(true, false);
    await sleep(20);
    assert.equal(events.length, 0, 'nothing to read yet');
    const arrived = new Promise<void>((resolve) => {
      wake = resolve;
    });
    fdpass.send(p.client, Buffer.from('ping'));
    await arrived;
    assert.deepEqual(events[0], [0, true, false]);
    assert.equal(fdpass.recv(p.server, 16, 0)?.data.toString(), 'ping');
    w.start(false, true);
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
    assert.deepEqual(events.at(-1), [0, false, true]);
    w.stop();
    w.close();
    p.close();
  });

  test('close() while an event is pending: no callback, no crash; close is idempotent', async () => {
    const p = socketPair();
    let calls = 0;
    const w = new fdpass.Watcher(p.server, () => {
      calls++;
    });
    w.start(true, false);
    fdpass.send(p.client, Buffer.from('pending'));
    w.close();
    w.close();
    w.stop();
    assert.throws(() => w.start(true, false), { code: 'EBADF' });
    await sleep(30);
    assert.equal(calls, 0);
    p.close();
  });

  test('a callback may close its own Watcher', async () => {
    const p = socketPair();
    let calls = 0;
    const done = new Promise<void>((resolve) => {
      const w = new fdpass.Watcher(p.server, () => {
        calls++;
        w.close();
        w.close();
        resolve();
      });
      w.start(true, false);
    });
    fdpass.send(p.client, Buffer.from('x'));
    await done;
    await sleep(20);
    assert.equal(calls, 1);
    p.close();
  });

  test('10,000 watchers created and closed, then GC: no crash, the descriptor can be watched again', async () => {
    const p = socketPair();
    const before = fdCount();
    for (let i = 0; i < 10_000; i++) {
      const w = new fdpass.Watcher(p.server, () => {});
      w.start(true, true);
      w.close();
    }
    await collect();
    assert.equal(fdCount(), before);
    const again = new fdpass.Watcher(p.server, () => {});
    again.close();
    p.close();
  });

  test('close and GC in the same tick, then the loop keeps spinning: native state outlives the handle', async () => {
    const p = socketPair();
    for (let i = 0; i < 1000; i++) {
      (() => {
        const w = new fdpass.Watcher(p.server, () => {});
        w.start(true, false);
        w.close();
      })();
      if (i % 100 === 0) gc(); // finalizers may now run before uv_close's callback
    }
    gc();
    for (let i = 0; i < 20; i++) await sleep(2);
    fdpass.send(p.client, Buffer.from('still alive'));
    const got = await new Promise<string>((resolve) => {
      const w = new fdpass.Watcher(p.server, () => {
        w.close();
        resolve(fdpass.recv(p.server, 64, 0)?.data.toString() ?? '');
      });
      w.start(true, false);
    });
    assert.equal(got, 'still alive');
    p.close();
  });

  test('a Watcher collected while still polling is stopped and closed by its finalizer', async () => {
    const p = socketPair();
    let calls = 0;
    (() => {
      new fdpass.Watcher(p.server, () => {
        calls++;
      }).start(true, false);
    })();
    // While that handle lives, libuv refuses a second one on the same descriptor.
    assert.throws(() => new fdpass.Watcher(p.server, () => {}), { code: 'EEXIST' });
    await collect();
    const w = new fdpass.Watcher(p.server, () => {}); // would be EEXIST had the finalizer not closed it
    w.close();
    fdpass.send(p.client, Buffer.from('nobody listens'));
    await sleep(20);
    assert.equal(calls, 0);
    p.close();
  });

  test('constructor and method arguments are checked', () => {
    assert.throws(() => new fdpass.Watcher(-1, () => {}), { code: 'EINVAL' });
    assert.throws(() => new fdpass.Watcher(0, 'x' as unknown as () => void), { code: 'EINVAL' });
    const p = socketPair();
    const w = new fdpass.Watcher(p.server, () => {});
    assert.throws(() => w.start(1 as unknown as boolean, false), { code: 'EINVAL' });
    assert.throws(() => Reflect.apply(w.stop, {}, []), TypeError); // V8 checks the receiver first
    w.close();
    p.close();
  });

  test('an exception thrown by the callback reaches uncaughtException', () => {
    const addon = join(__dirname, '../build/Release/fdpass.node');
    const connect = join(__dirname, '../build/Release/fdpass-connect.node');
    const script = `
      const a = require(${JSON.stringify(addon)});
      const { connect } = require(${JSON.stringify(connect)});
      const path = require('path').join(require('os').tmpdir(), 'fdpass-throw-' + process.pid + '.sock');
      const l = a.listen(path); const c = connect(path); const s = a.accept(l); require('fs').unlinkSync(path);
      process.on('uncaughtException', (e) => { console.log('caught ' + e.message); process.exit(0); });
      new a.Watcher(s, () => { throw new Error('boom'); }).start(true, false);
      a.send(c, Buffer.from('x'));
      setTimeout(() => process.exit(3), 3000);`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.stdout.trim(), 'caught boom');
    assert.equal(r.status, 0);
  });

  test('100,000 request/reply round trips driven by two Watchers', async () => {
    const p = socketPair();
    const before = fdCount();
    let replies = 0;
    await new Promise<void>((resolve, reject) => {
      const server = new fdpass.Watcher(p.server, (status, readable) => {
        if (status !== 0 || !readable) return reject(new Error(`server status ${status}`));
        for (let req; (req = fdpass.recv(p.server, 4097, 0)) !== null;)
          fdpass.send(p.server, Buffer.from('reply'), p.listenFd);
      });
      const client = new fdpass.Watcher(p.client, () => {
        for (let rep; (rep = fdpass.recv(p.client, 64, 1)) !== null;) {
          fdpass.close(rep.fd);
          if (++replies === 100_000) {
            server.close();
            client.close();
            return resolve();
          }
          fdpass.send(p.client, Buffer.from('request'));
        }
      });
      server.start(true, false);
      client.start(true, false);
      fdpass.send(p.client, Buffer.from('request'));
    });
    assert.equal(replies, 100_000);
    assert.equal(fdCount(), before);
    p.close();
  });
});
