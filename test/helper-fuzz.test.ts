// Fuzzing the real guard-helper (issue #12, item 5): generated requests over its socket, from the
// agent user, through the raw fdpass peer. Requests come from a grammar of the protocol (every op,
// paths allowed, denied, planted symlinks, traversal and encoding tricks, wrong types, extra keys,
// with and without hello first) and from arbitrary JSON and bytes. Whatever comes in, the answer
// is a refusal, a valid reply or a closed connection — never a crash or a stall, never a
// descriptor on anything but a granted open, never a descriptor onto a denied file — and the
// helper still serves and holds no more descriptors afterwards. Bounded and seeded in CI;
// `npm run fuzz` runs it longer with a fresh seed (packages/agent/test/fuzz/budget.ts).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { fuzz, SCALE } from '../packages/agent/test/fuzz/budget';
import { assertStillServing, setupEnv, teardownEnv, type Env } from './lib/env';
import { hello, runPeer, type Action, type Reply } from './lib/peer';

describe('fuzz: guard-helper request parser and dispatch (real helper, real socket)', () => {
  let env: Env;
  before(async () => {
    env = await setupEnv({
      // a symlink the attacker plants where the glob looks, onto the secret
      layout: (e) => e.sb.symlink(e.sb.path('secret/secret.txt'), 'logs/app/link.log', e.attacker),
    });
  });
  after(() => teardownEnv(env));

  it('any request: a refusal, a valid reply or a close; no descriptor onto a denied file', async () => {
    const s = env.sb.dir;
    const paths = [
      env.legitPath,
      `${s}/logs/app/a.log`,
      `${s}/logs/app/link.log`,
      `${s}/logs/app/missing.log`,
      `${s}/logs/app`,
      `${s}/secret/secret.txt`,
      `${s}/secret/a.log`,
      `${s}/audit/audit.log`,
      `${s}/logs/app/../../secret/a.log`,
      `${s}/logs/app/./a.log`,
      `${s}//logs/app/a.log`,
      `${s}/logs/app/a.log/`,
      `${s}/logs/app/a.log\u0000`,
      `${s}/logs/app/\u202ea.log`,
      '/etc/shadow',
      '/proc/self/environ',
      '/dev/zero',
      'logs/app/a.log',
      '',
    ];
    const path = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...paths) },
      {
        weight: 1,
        arbitrary: fc
          .tuple(fc.constantFrom(...paths), fc.string({ maxLength: 12 }))
          .map(([p, x]) => p + x),
      },
      { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(`${s}/logs/app/${'x'.repeat(5000)}.log`, `/${'a/'.repeat(300)}`),
      },
    );
    const request = fc.oneof(
      {
        weight: 6,
        // descriptor: false asks for the identity only: no descriptor may come with it
        arbitrary: fc.record(
          { op: fc.constant('open'), path, descriptor: fc.constantFrom(false, true, 0) },
          { requiredKeys: ['op', 'path'] },
        ),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          op: fc.constant('list'),
          source: fc.constantFrom('app', 'audit', 'nope', '', '__proto__'),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          op: fc.constant('hello'),
          version: fc.oneof(fc.constant(1), fc.integer(), fc.string()),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record(
          {
            op: fc.oneof(
              fc.constantFrom('open', 'stat', 'list', 'hello', 'OPEN', 'close'),
              fc.string({ maxLength: 6 }),
              fc.integer(),
            ),
            path: fc.oneof(path, fc.jsonValue({ maxDepth: 1 })),
            source: fc.jsonValue({ maxDepth: 1 }),
            version: fc.jsonValue({ maxDepth: 1 }),
            extra: fc.jsonValue({ maxDepth: 2 }),
          },
          { requiredKeys: [] },
        ),
      },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
    );
    const packet = fc.oneof(
      { weight: 8, arbitrary: request.map((r) => Buffer.from(JSON.stringify(r))) },
      // truncated or mutated JSON, and bytes
      {
        weight: 1,
        arbitrary: fc.tuple(request, fc.nat(), fc.nat(255)).map(([r, at, b]) => {
          const buf = Buffer.from(JSON.stringify(r));
          const i = at % buf.length;
          return at % 2 === 0
            ? buf.subarray(0, i + 1)
            : Buffer.from([...buf.subarray(0, i), b, ...buf.subarray(i + 1)]);
        }),
      },
      {
        weight: 1,
        arbitrary: fc.uint8Array({ minLength: 1, maxLength: 5000 }).map((a) => Buffer.from(a)),
      },
    );
    const conversation = fc.record({
      helloFirst: fc.boolean(),
      packets: fc.array(packet, { minLength: 1, maxLength: 3 }),
    });

    const params = fuzz<[typeof conversation extends fc.Arbitrary<infer T> ? T[] : never]>(
      0x4e1,
      1,
    );
    const cases = fc.sample(
      fc.array(conversation, { minLength: 250 * SCALE, maxLength: 250 * SCALE }),
      {
        seed: params.seed,
        numRuns: 1,
      },
    )[0]!;

    const actions: Action[] = [];
    const sent: Buffer[] = [];
    for (const [i, c] of cases.entries()) {
      const conn = `c${i}`;
      actions.push({ a: 'connect', c: conn });
      if (c.helloFirst) actions.push({ a: 'req', c: conn, json: hello, timeout: 3000 });
      for (const p of c.packets) {
        actions.push({
          a: 'req',
          c: conn,
          b64: p.toString('base64'),
          read: 64,
          timeout: 3000,
          label: String(sent.length),
        });
        sent.push(p);
      }
      actions.push({ a: 'close', c: conn });
    }
    const out = await runPeer(env.sb, env.agent, env.socket, actions, { timeoutMs: 600_000 });
    assert.equal(out.done, true, out.error ?? out.stderr);

    const allowed = new Set([
      env.publicText,
      env.rootOnlyText,
      'type=DAEMON_START msg=audit(1700000000.000:1): op=start\n',
    ]);
    let granted = 0;
    let refused = 0;
    let closed = 0;
    const codes: Record<string, number> = {};
    for (const r of out.results as unknown as Reply[]) {
      if (r.label === undefined) continue; // connect, hello, close
      const what = `request ${JSON.stringify(sent[Number(r.label)]!.toString('utf8').slice(0, 120))}: ${JSON.stringify(r).slice(0, 300)}`;
      assert.ok(!r.timeout, `the helper did not answer: ${what}`);
      assert.ok(!r.unexpectedFd, `a descriptor on a reply that is not a granted open: ${what}`);
      assert.equal(r.text, undefined, `a reply that is not JSON: ${what}`);
      if (r.closed || r.sendError || r.error) {
        closed++;
        continue;
      }
      const j = r.json!;
      assert.equal(typeof j.ok, 'boolean', what);
      if (j.ok === false) {
        refused++;
        codes[j.error as string] = (codes[j.error as string] ?? 0) + 1;
        assert.equal(typeof j.error, 'string', what);
        assert.equal(typeof j.message, 'string', what);
        assert.equal(r.gotFd, false, what);
        continue;
      }
      assert.ok(['hello', 'list', 'open'].includes(j.op as string), what);
      let identityOnly = false;
      try {
        identityOnly = JSON.parse(sent[Number(r.label)]!.toString('utf8')).descriptor === false;
      } catch {
        /* a mutated packet the helper answered anyway: not an identity request */
      }
      if (j.op === 'open' && identityOnly) {
        assert.equal(r.gotFd, false, `a descriptor with descriptor: false: ${what}`);
      } else if (j.op === 'open') {
        granted++;
        assert.equal(r.gotFd, true, `an open granted without a descriptor: ${what}`);
        assert.equal(r.writable, false, `a writable descriptor: ${what}`);
        assert.notEqual(r.head, env.secretText, `THE SECRET: ${what}`);
        assert.ok(allowed.has(r.head!), `a descriptor onto something not allowed: ${what}`);
      } else {
        assert.equal(r.gotFd, false, what);
      }
    }
    assert.equal(out.unexpectedFds, 0);
    console.log(
      `helper fuzz: ${sent.length} packets on ${cases.length} connections: ${granted} granted, ${refused} refused ${JSON.stringify(codes)}, ${closed} closed`,
    );
    assert.ok(granted > 0 && refused > 0 && closed > 0, 'every kind of answer was seen');
    await assertStillServing(env);
  });
});
