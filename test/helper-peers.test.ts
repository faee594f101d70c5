// Attack 5: hostile or greedy peers. Wrong uid, missing audit group, descriptors sent *to* the
// helper, a flood of requests, a reader that never reads, a low rate limit, too many connections.
// The helper's descriptor table and memory stay bounded and it keeps serving.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  agentPeer,
  ensureHealthyHelper,
  assertRefused,
  assertStillServing,
  legitOpen,
  setupEnv,
  standardConfig,
  teardownEnv,
  type Env,
} from './lib/env';
import { Helper } from './lib/helper';
import {
  closedResult,
  hello,
  loopResult,
  open,
  reply,
  runPeer,
  identity,
  list,
  type Action,
  type Reply,
} from './lib/peer';
import { run, sleep } from './lib/proc';

interface PySendResult {
  replies: Array<{ json: { ok?: boolean; error?: string } | null; fds: number }>;
  closed: boolean;
  sent?: boolean;
  sendError?: string;
  timeout?: boolean;
}

describe('guard-helper and hostile peers', () => {
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

  it('creates the socket root:<agent group> 0660', () => {
    const st = statSync(env.socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o7777, 0o660);
    assert.equal(st.uid, 0);
    assert.equal(st.gid, env.agent.gid);
  });

  it('refuses a peer with another uid (in the socket group) with `peer` and closes', async () => {
    const out = await runPeer(env.sb, env.other, env.socket, [
      { a: 'connect' },
      { a: 'recv', timeout: 3000 },
      { a: 'send', json: open(env.legitPath) },
      { a: 'expectClosed', timeout: 3000 },
    ]);
    assert.equal(
      (out.results[0] as { connected?: boolean }).connected,
      true,
      `the other user could not even connect: ${JSON.stringify(out.results[0])}`,
    );
    const first = reply(out, 1);
    assertRefused(first, 'peer', 'other uid');
    assert.equal(first.json?.op, null);
    const closed = closedResult(out, 3);
    assert.equal(
      closed.closed,
      true,
      `connection of the other uid left open: ${JSON.stringify(closed)}`,
    );
    for (const r of closed.replies) {
      assert.notEqual(r.gotFd, true);
      assert.notEqual(r.json?.ok, true, 'the other uid was served');
    }
    assert.equal(out.unexpectedFds, 0);
    assert.ok(
      env.helper
        .events('closed')
        .some((e) => e.reason === 'peer_refused' && e.code === 'peer' && e.uid === env.other.uid),
      'no closed event (peer_refused) for the other uid',
    );
    await assertStillServing(env);
  });

  it('lets nobody outside the socket group connect at all', async () => {
    const out = await runPeer(env.sb, env.attacker, env.socket, [{ a: 'connect' }]);
    assert.equal((out.results[0] as { error?: string }).error, 'EACCES');
    await assertStillServing(env);
  });

  it('serves the audit file only to a peer in the audit group', async () => {
    const auditLog = env.sb.path('audit/audit.log');
    // the agent, a member of the audit group
    const a = await agentPeer(env, [
      { a: 'connect' },
      { a: 'req', json: hello },
      { a: 'req', json: open(auditLog), read: 32 },
    ]);
    assert.equal(reply(a, 1).json?.audit, true);
    const granted = reply(a, 2);
    assert.equal(
      granted.json?.ok,
      true,
      `agent in the audit group refused: ${JSON.stringify(granted)}`,
    );
    assert.ok(
      granted.head?.startsWith('type=DAEMON_START'),
      `audit descriptor reads ${JSON.stringify(granted.head)}`,
    );
    // the same uid with its supplementary groups dropped: as if removed from the audit group
    const noGroups = { ...env.agent, groups: 'clear' as const };
    const b = await runPeer(env.sb, noGroups, env.socket, [
      { a: 'connect' },
      { a: 'req', json: hello },
      { a: 'req', json: open(auditLog), read: 16 },
      { a: 'req', json: open(auditLog), read: 16 },
      { a: 'req', json: open(env.legitPath), read: 64 },
      { a: 'req', json: { op: 'list', source: 'audit' } },
    ]);
    assert.equal(reply(b, 1).json?.audit, false);
    assertRefused(reply(b, 2), 'audit_group', 'agent uid without the audit group (open)');
    assertRefused(reply(b, 3), 'audit_group', 'agent uid without the audit group (open, again)');
    assert.equal(
      reply(b, 4).json?.ok,
      true,
      'a non-audit source refused to the agent without the audit group',
    );
    // nor may it learn which audit files exist: list names none and says why
    assertRefused(reply(b, 5), 'audit_group', 'agent uid without the audit group (list)');
    assert.equal((reply(b, 5).json as { files?: unknown } | undefined)?.files, undefined);

    // a second helper configured for agent2, who is not in the audit group at all
    const cfg2 = env.sb.writeConfig('etc/guard2.conf', standardConfig(env, env.agent2.name));
    const sock2 = env.sb.path('run', 'helper2.sock');
    const h2 = await Helper.start({ helperJs: env.sb.helperJs, config: cfg2, socket: sock2 });
    try {
      assert.equal(statSync(sock2).gid, env.agent2.gid);
      const c = await runPeer(env.sb, env.agent2, sock2, [
        { a: 'connect' },
        { a: 'req', json: hello },
        { a: 'req', json: open(auditLog), read: 16 },
        { a: 'req', json: open(env.legitPath), read: 64 },
      ]);
      assert.equal(reply(c, 1).json?.audit, false);
      assertRefused(reply(c, 2), 'audit_group', 'agent2 (not in the audit group)');
      const ok = reply(c, 3);
      assert.equal(ok.json?.ok, true, `agent2 refused a non-audit file: ${JSON.stringify(ok)}`);
      assert.equal(ok.head, env.rootOnlyText);
      assert.equal(c.unexpectedFds, 0);
      // the second helper's socket belongs to agent2's group: the first agent cannot even connect
      const d = await agentPeer(env, [{ a: 'connect', path: sock2 }]);
      assert.equal((d.results[0] as { error?: string }).error, 'EACCES');
      await legitOpen(env, h2, sock2, env.agent2);
    } finally {
      await h2.stop();
    }
    await assertStillServing(env);
  });

  it('closes a connection that sends it a descriptor, without keeping it (bad_request)', async () => {
    const base = env.baselineFds;
    const actions: Action[] = [];
    const cases: Array<[string, Action]> = [
      [
        'open with /etc/passwd attached',
        { a: 'send', json: open(env.legitPath), passPath: '/etc/passwd' },
      ],
      ["hello with the peer's own socket attached", { a: 'send', json: hello, passSelf: true }],
      ['garbage with a descriptor attached', { a: 'send', raw: 'x', passPath: '/etc/passwd' }],
    ];
    for (let round = 0; round < 10; round++) {
      for (const [label, act] of cases)
        actions.push(
          { a: 'connect', c: 'x' },
          { ...act, c: 'x', label },
          { a: 'expectClosed', c: 'x', label },
        );
    }
    const out = await agentPeer(env, actions);
    const problems: string[] = [];
    for (let i = 0; i < actions.length; i += 3) {
      const label = String(actions[i + 1]?.label);
      const res = closedResult(out, i + 2);
      if (!res.closed) problems.push(`${label}: not closed`);
      if (res.replies.length !== 1) problems.push(`${label}: ${res.replies.length} replies`);
      for (const r of res.replies) {
        if (r.gotFd) problems.push(`${label}: descriptor in the reply`);
        if (r.json?.ok !== false || r.json?.error !== 'bad_request')
          problems.push(`${label}: ${JSON.stringify(r.json ?? r)}`);
      }
    }
    const n = await env.helper.settleFds(base);
    assert.ok(n <= base, `helper kept descriptors: ${n} > ${base}`);

    // several descriptors at once (the addon attaches at most one: python's sendmsg does it)
    for (const count of [2, 16, 253]) {
      const r = await run(
        '/usr/bin/python3',
        [env.sb.sendFdsPy, env.socket, String(count), JSON.stringify(open(env.legitPath))],
        { user: env.agent, timeoutMs: 15000 },
      );
      let res: PySendResult;
      try {
        res = JSON.parse(r.stdout.trim()) as PySendResult;
      } catch {
        throw new Error(`sendfds.py: ${r.stdout} ${r.stderr}`);
      }
      const m = await env.helper.settleFds(base);
      if (m > base)
        problems.push(`${count} descriptors attached: helper kept descriptors: ${m} > ${base}`);
      if (res.replies.some((x) => x.fds > 0))
        problems.push(`${count} descriptors attached: a descriptor came back`);
      if (!res.closed)
        problems.push(`${count} descriptors attached: connection not closed: ${r.stdout}`);
      if (res.replies.length !== 1 || res.replies[0]?.json?.error !== 'bad_request') {
        problems.push(
          `${count} descriptors attached: expected one bad_request reply, got ${JSON.stringify(res.replies)} (helper log: ${JSON.stringify(env.helper.logs.filter((e) => e.event === 'closed').pop())})`,
        );
      }
    }
    try {
      await assertStillServing(env);
    } catch (e) {
      problems.push(`afterwards: ${(e as Error).message.split('\n')[0]}`);
    }
    assert.deepEqual(problems, []);
  });

  it('answers open with descriptor false without one, logs no grant and keeps no descriptor behind (300 on one connection); refuses the old stat op', async (t) => {
    const gone = await agentPeer(env, [
      { a: 'connect' },
      { a: 'req', json: { op: 'stat', path: env.legitPath } },
    ]);
    assertRefused(reply(gone, 1), 'unknown_op', 'stat (protocol 2)');
    const base = env.baselineFds;
    const grantsBefore = env.helper.events('granted').length;
    let during = -1;
    const out = await runPeer(
      env.sb,
      env.agent,
      env.socket,
      [
        { a: 'connect' },
        { a: 'loop', n: 300, window: 16, reqs: [identity(env.legitPath)] },
        { a: 'mark', name: 'done' },
        { a: 'sleep', ms: 300 },
      ],
      {
        onMark: async () => {
          await sleep(100);
          during = env.helper.fdCount();
        },
      },
    );
    const res = loopResult(out, 1);
    const summary = `300 identity opens: ${res.otherOk} ok, refused ${JSON.stringify(res.refused)}, op mismatches ${res.opMismatch}${res.firstMismatch ? ` (first ${JSON.stringify(res.firstMismatch)})` : ''}; helper fds baseline ${base}, with the connection still open ${during}`;
    t.diagnostic(summary);
    console.log(summary);
    assert.equal(res.replies, 300);
    // the connection's own socket is the only descriptor it may cost
    assert.ok(
      during >= 0 && during <= base + 1,
      `descriptor: false leaks descriptors in the helper: ${during} open with one idle connection, baseline ${base}`,
    );
    assert.equal(
      res.opMismatch,
      0,
      `a reply names another op: ${JSON.stringify(res.firstMismatch)}`,
    );
    assert.equal(res.otherOk, 300);
    assert.equal(res.fdOnOther, 0, 'replies to descriptor: false carried descriptors');
    assert.equal(
      env.helper.events('granted').length,
      grantsBefore,
      'identity opens logged as grants',
    );
    await assertStillServing(env);
  });

  it('keeps descriptors flat and memory bounded under a flood of 100,000 pipelined requests', async (t) => {
    const N = 100000;
    const base = env.baselineFds;
    const rss0 = env.helper.rssKiB();
    let maxFds = 0;
    let maxRss = 0;
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        try {
          maxFds = Math.max(maxFds, env.helper.fdCount());
          maxRss = Math.max(maxRss, env.helper.rssKiB());
          samples++;
        } catch {
          /* helper gone: asserted below */
        }
        await sleep(100);
      }
    })();
    let out;
    try {
      out = await agentPeer(
        env,
        [
          { a: 'connect' },
          {
            a: 'loop',
            n: N,
            window: 32,
            reqs: [open(env.legitPath), list('app'), hello, open(env.sb.path('logs/app/a.log'))],
            read: 4,
            idleTimeout: 20000,
          },
        ],
        180000,
      );
    } finally {
      sampling = false;
      await sampler;
    }
    const res = loopResult(out, 1);
    const rss1 = env.helper.running ? env.helper.rssKiB() : -1;
    const summary =
      `flood: ${res.replies}/${N} replies in ${res.ms} ms (${Math.round(res.replies / (res.ms / 1000))}/s): ${res.granted} opens granted, ${res.otherOk} lists and hellos, refused ${JSON.stringify(res.refused)}; ` +
      `helper fds baseline ${base}, max ${maxFds} (${samples} samples); RSS baseline ${rss0} KiB, max ${maxRss} KiB, after ${rss1} KiB`;
    t.diagnostic(summary);
    console.log(summary);
    const problems: string[] = [];
    const check = (ok: boolean, what: string): void => {
      if (!ok) problems.push(what);
    };
    // one connection: its socket, at most one descriptor waiting to be sent, and the O_PATH
    // descriptor of an open in progress
    check(maxFds <= base + 3, `helper descriptors grew: max ${maxFds}, baseline ${base}`);
    check(
      maxRss < 2 * env.baselineRssKiB + 30 * 1024,
      `helper RSS ${maxRss} KiB, baseline ${env.baselineRssKiB} KiB`,
    );
    check(res.replies === N, `${res.replies} replies of ${N}`);
    check(
      res.opMismatch === 0,
      `${res.opMismatch} replies named another op, e.g. ${JSON.stringify(res.firstMismatch)}`,
    );
    check(res.fdOnOther === 0, `${res.fdOnOther} list or hello replies carried descriptors`);
    check(
      res.granted === N / 2 && res.otherOk === N / 2 && Object.keys(res.refused).length === 0,
      `not everything granted: ${res.granted} opens, ${res.otherOk} lists and hellos, refused ${JSON.stringify(res.refused)}`,
    );
    check(out.unexpectedFds === 0, `${out.unexpectedFds} unexpected descriptors`);
    // the rate limit (5000/s, burst 500) makes this take at least ~19.9 s: a lower bound only
    check(
      res.ms >= ((N - 500) / 5000) * 1000 * 0.9,
      `100,000 requests took only ${res.ms} ms: the rate limit did not hold`,
    );
    check(env.helper.events('throttled').length > 0, 'no throttled event logged');
    try {
      await assertStillServing(env);
    } catch (e) {
      problems.push(`afterwards: ${(e as Error).message.split('\n')[0]}`);
    }
    assert.deepEqual(problems, [], summary);
  });

  it('a peer that never reads its replies neither stalls another connection nor grows the helper', async (t) => {
    const base = env.baselineFds;
    let fdsWhileStalled = -1;
    const res = await runPeer(
      env.sb,
      env.agent,
      env.socket,
      [
        { a: 'connect', c: 'greedy' },
        {
          a: 'stuff',
          c: 'greedy',
          json: open(env.legitPath),
          max: 200000,
          ms: 10000,
          quietMs: 800,
        },
        { a: 'mark', name: 'stalled' },
        { a: 'sleep', ms: 700 },
        { a: 'connect', c: 'polite' },
        { a: 'req', c: 'polite', json: open(env.legitPath), read: 64, timeout: 10000 },
        { a: 'req', c: 'polite', json: list('app'), timeout: 10000 },
      ],
      {
        timeoutMs: 60000,
        // sampled while the greedy connection is stuck (the peer sleeps after marking it)
        onMark: async (name) => {
          if (name !== 'stalled') return;
          await sleep(300);
          fdsWhileStalled = env.helper.fdCount();
        },
      },
    );
    const stuffed = res.results[1] as { sent: number; blocked: boolean };
    const polite = reply(res, 5);
    const summary = `greedy peer sent ${stuffed.sent} requests without reading (blocked: ${stuffed.blocked}); polite open answered in ${polite.ms} ms; helper fds baseline ${base}, while stalled ${fdsWhileStalled}`;
    t.diagnostic(summary);
    console.log(summary);
    assert.equal(stuffed.blocked, true, 'the greedy peer was never pushed back');
    // its socket plus at most one reply (one descriptor) held for it, plus slack for an open in progress
    assert.ok(
      fdsWhileStalled >= 0 && fdsWhileStalled <= base + 3,
      `helper descriptors while stalled: ${fdsWhileStalled}, baseline ${base}`,
    );
    assert.equal(
      polite.json?.ok,
      true,
      `the polite connection was not served: ${JSON.stringify(polite)}`,
    );
    assert.equal(polite.head, env.rootOnlyText);
    assert.equal(reply(res, 6).json?.ok, true);
    assert.equal(res.unexpectedFds, 0);
    await assertStillServing(env);
  });

  it('caps connections at 32: extras are closed, existing ones keep working', async () => {
    const actions: Action[] = [
      { a: 'connectMany', prefix: 'k', n: 32 },
      { a: 'reqMany', prefix: 'k', n: 32, json: hello },
      { a: 'connect', c: 'x0' },
      { a: 'connect', c: 'x1' },
      { a: 'connect', c: 'x2' },
      { a: 'expectClosed', c: 'x0' },
      { a: 'expectClosed', c: 'x1' },
      { a: 'expectClosed', c: 'x2' },
      { a: 'reqMany', prefix: 'k', n: 32, json: open(env.legitPath), read: 64 },
    ];
    const out = await agentPeer(env, actions, 60000);
    assert.equal((out.results[0] as { connected: number }).connected, 32);
    const hellos = (out.results[1] as { replies: Reply[] }).replies;
    assert.equal(
      hellos.filter((r) => r.json?.ok === true).length,
      32,
      `not all 32 connections served: ${JSON.stringify(hellos.filter((r) => r.json?.ok !== true))}`,
    );
    for (let i = 0; i < 3; i++) {
      const c = closedResult(out, 5 + i);
      assert.equal(c.closed, true, `connection #${33 + i} not closed: ${JSON.stringify(c)}`);
      for (const r of c.replies) {
        assert.notEqual(r.gotFd, true);
        assert.notEqual(r.json?.ok, true, `connection #${33 + i} served`);
      }
    }
    const opens = (out.results[8] as { replies: Reply[] }).replies;
    const bad = opens.filter((r) => r.json?.ok !== true || r.head !== env.rootOnlyText);
    assert.deepEqual(bad, [], 'existing connections stopped working');
    assert.ok(
      env.helper.events('closed').filter((e) => e.reason === 'too_many_connections').length >= 3,
      'too_many_connections not logged',
    );
    assert.equal(out.unexpectedFds, 0);
    await assertStillServing(env);
  });
});
