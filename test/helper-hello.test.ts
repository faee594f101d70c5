// The conversation only moves forward (issue 12, item 3): nothing is served before a hello in the
// helper's protocol version; a request before it closes the connection as a protocol violation; a
// hello in another version is refused with `version`, naming both. The hello reply says which open
// path the helper uses, as its `listening` line does. After a policy reload the connections the
// helper closes are logged as what they are (info, "closed after policy reload"), not as warnings.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, beforeEach, describe, it } from 'node:test';
import { PROTOCOL_VERSION } from '@guard/protocol/wire';
import {
  agentPeer,
  assertStillServing,
  ensureHealthyHelper,
  setupEnv,
  teardownEnv,
  type Env,
} from './lib/env';
import { closedResult, hello, open, reply, runPeer } from './lib/peer';

describe('guard-helper: hello first, in its version', () => {
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

  it('closes a connection whose first request is not hello, serving nothing', async () => {
    const from = env.helper.logs.length;
    for (const first of [
      open(env.legitPath),
      { op: 'watch', source: 'app' },
      { op: 'list', source: 'app' },
    ]) {
      const out = await agentPeer(env, [
        { a: 'connect' },
        { a: 'send', json: first, noHello: true },
        { a: 'expectClosed' },
      ]);
      const r = closedResult(out, 2);
      assert.equal(r.closed, true, `${first.op} before hello: not closed`);
      assert.equal(r.replies.length, 1);
      assert.equal(r.replies[0]?.json?.error, 'bad_request');
      assert.equal(r.replies[0]?.json?.message, `${first.op} before hello`);
      assert.notEqual(r.replies[0]?.gotFd, true);
      assert.equal(out.unexpectedFds, 0);
    }
    const closed = env.helper.events('closed', from).filter((e) => e.code === 'bad_request');
    assert.equal(closed.length, 3, env.helper.dump(10));
    for (const e of closed) {
      assert.equal(e.level, 'warn');
      assert.equal(e.reason, 'protocol violation');
    }
    await assertStillServing(env);
  });

  it('refuses a hello in another version with `version`, naming both, and closes', async () => {
    const from = env.helper.logs.length;
    const out = await agentPeer(env, [
      { a: 'connect' },
      { a: 'send', json: { op: 'hello', version: PROTOCOL_VERSION - 1 } },
      { a: 'expectClosed' },
      { a: 'connect', c: 'd' },
      { a: 'send', c: 'd', json: { op: 'hello', version: PROTOCOL_VERSION - 1 } },
      { a: 'send', c: 'd', json: open(env.legitPath), noHello: true },
      { a: 'expectClosed', c: 'd' },
    ]);
    const r = closedResult(out, 2);
    assert.equal(r.closed, true);
    assert.deepEqual(r.replies[0]?.json, {
      ok: false,
      op: 'hello',
      error: 'version',
      message: `the client speaks protocol version ${PROTOCOL_VERSION - 1}, this helper ${PROTOCOL_VERSION}`,
    });
    // a refused hello does not open the door: the open behind it is never answered (the reply to
    // the hello may be lost to the reset of a connection closed with a request unread)
    const d = closedResult(out, 6);
    assert.equal(d.closed, true);
    assert.ok(d.replies.length <= 1, JSON.stringify(d));
    for (const x of d.replies) assert.equal(x.json?.error, 'version', JSON.stringify(d));
    assert.equal(out.unexpectedFds, 0);
    const logged = env.helper.events('closed', from).filter((e) => e.code === 'version');
    assert.equal(logged.length, 2);
    assert.equal(logged[0]?.reason, 'protocol version mismatch');
    await assertStillServing(env);
  });

  it('answers hello with the open path the helper uses, as its listening line says', async () => {
    const out = await agentPeer(env, [{ a: 'connect' }, { a: 'req', json: hello }]);
    const h = reply(out, 1).json;
    assert.equal(h?.ok, true);
    assert.equal(h?.version, PROTOCOL_VERSION);
    assert.ok(h?.open_path === 'openat2' || h?.open_path === 'walk', JSON.stringify(h));
    assert.equal(h?.open_path, env.helper.events('listening')[0]?.open_path);
  });

  it('logs the connections it closes after a reload as such, at info, not as violations', async () => {
    const go = env.sb.path('run', 'go-hello-reload');
    const from = env.helper.logs.length;
    const out = await runPeer(
      env.sb,
      env.agent,
      env.socket,
      [
        { a: 'connect' },
        { a: 'req', json: hello },
        { a: 'mark', name: 'reload' },
        { a: 'waitFile', path: go },
        { a: 'send', json: open(env.legitPath) },
        { a: 'expectClosed' },
      ],
      {
        onMark: async () => {
          env.helper.hup();
          await env.helper.waitFor((e) => e.event === 'reloaded', 10000, from);
          writeFileSync(go, '');
        },
      },
    );
    const r = closedResult(out, 5);
    assert.equal(r.closed, true);
    assert.equal(r.replies[0]?.json?.error, 'reloaded');
    const lines = env.helper.logs.slice(from).filter((e) => e.event === 'closed');
    assert.equal(lines.length, 1, env.helper.dump(10));
    assert.equal(lines[0]?.level, 'info');
    assert.equal(lines[0]?.reason, 'closed after policy reload');
    const warned = env.helper.logs.slice(from).filter((e) => e.level !== 'info');
    assert.deepEqual(warned, [], 'a reload is not a warning');
    // startMainHelper's baseline policy changed: later tests reconnect, as the agent does
    await assertStillServing(env);
  });
});
