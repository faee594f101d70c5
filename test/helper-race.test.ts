// Attack 4: a check-then-open race. The attacker, owner of the log directory, swaps a regular log
// file and a symlink to a root-only secret with renameat2(RENAME_EXCHANGE) in a tight loop while the
// agent opens the log file 10,000+ times and reads the first bytes of every descriptor it gets.
// A helper that resolves the path and then opens it hands out the secret within seconds; one that
// opens without following any link and checks the descriptor hands out none.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, beforeEach, describe, it, type TestContext } from 'node:test';
import {
  agentPeer,
  ensureHealthyHelper,
  assertStillServing,
  setupEnv,
  teardownEnv,
  type Env,
} from './lib/env';
import { loopResult, open, type LoopResult } from './lib/peer';
import { killPid, sleep, start } from './lib/proc';

const OPENS = 10000;

describe('guard-helper under a rename race', () => {
  let env: Env;
  before(async () => {
    env = await setupEnv({
      layout: (e) => {
        const s = e.sb.dir;
        const att = e.attacker;
        // leaf race: <S>/logs/app/a.log <-> <S>/logs/app/evil.log (symlink to the secret); both names match *.log
        e.sb.symlink(`${s}/secret/secret.txt`, 'logs/app/evil.log', att);
        // directory race: <S>/logs/att/d (a directory holding a.log) <-> <S>/logs/att/e (symlink to <S>/secret, which holds a secret a.log)
        e.sb.mkdir('logs/att', 0o755, att);
        e.sb.mkdir('logs/att/d', 0o755, att);
        e.sb.file('logs/att/d/a.log', e.publicText, 0o644, att);
        e.sb.symlink(`${s}/secret`, 'logs/att/e', att);
        // list race: <S>/logs/lst/d (a directory) <-> <S>/logs/lst/x (symlink to a root-only directory
        // whose file names are themselves secret); the source's pattern descends one directory level
        e.sb.mkdir('logs/lst', 0o755, att);
        e.sb.mkdir('logs/lst/d', 0o755, att);
        e.sb.file('logs/lst/d/a.log', e.publicText, 0o644, att);
        e.sb.mkdir('names', 0o700);
        e.sb.file('names/TOPSECRET-NAME.log', 'x', 0o600);
        e.sb.symlink(`${s}/names`, 'logs/lst/x', att);
      },
      extraConfig: (e) =>
        [
          '[source.att]',
          'type = file',
          `paths = ${e.sb.dir}/logs/att/d/*.log`,
          '',
          '[source.lst]',
          'type = file',
          `paths = ${e.sb.dir}/logs/lst/*/*.log`,
        ].join('\n'),
    });
  });
  after(async () => {
    await teardownEnv(env);
  });
  beforeEach(async () => {
    await ensureHealthyHelper(env);
  });

  async function startSwapper(
    dir: string,
    a: string,
    b: string,
  ): Promise<{ child: ChildProcess; stop: () => Promise<{ swaps: number; errors: number }> }> {
    const child = start('/usr/bin/python3', [env.sb.swapPy, dir, a, b], { user: env.attacker });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    const deadline = Date.now() + 10000;
    while (!out.includes('ready') && child.exitCode === null && Date.now() < deadline)
      await sleep(20);
    assert.ok(out.includes('ready'), `swapper did not start: ${out} ${err}`);
    const closed = new Promise<void>((r) => child.once('close', () => r()));
    return {
      child,
      stop: async () => {
        killPid(child.pid, 'SIGTERM');
        const t = setTimeout(() => killPid(child.pid, 'SIGKILL'), 3000);
        await closed;
        clearTimeout(t);
        const line = out.trim().split('\n').pop() ?? '';
        try {
          return JSON.parse(line) as { swaps: number; errors: number };
        } catch {
          throw new Error(`swapper output: ${out} ${err}`);
        }
      },
    };
  }

  async function race(
    t: TestContext,
    label: string,
    dir: string,
    a: string,
    b: string,
    target: string,
  ): Promise<void> {
    const swapper = await startSwapper(dir, a, b);
    let res: LoopResult;
    let counts: { swaps: number; errors: number };
    try {
      const out = await agentPeer(
        env,
        [
          { a: 'connect' },
          {
            a: 'loop',
            n: OPENS,
            window: 16,
            reqs: [open(target)],
            read: 32,
            secret: 'SECRET-',
            idleTimeout: 20000,
          },
        ],
        180000,
      );
      res = loopResult(out, 1);
      assert.equal(out.unexpectedFds, 0, 'descriptors came with refusals');
    } finally {
      counts = await swapper.stop();
    }
    const summary =
      `${label}: ${res.replies} opens in ${res.ms} ms while the attacker made ${counts.swaps} swaps: ` +
      `${res.granted} granted, refused ${JSON.stringify(res.refused)}, contents ${JSON.stringify(res.heads)}, secrets handed out: ${res.secrets}`;
    t.diagnostic(summary);
    console.log(summary);
    assert.equal(res.secrets, 0, `SECRET HANDED OUT: ${summary}`);
    assert.equal(res.fdOnRefusal, 0, 'a refusal came with a descriptor');
    assert.equal(res.okOpenWithoutFd, 0, 'a grant came without a descriptor');
    assert.equal(
      res.opMismatch,
      0,
      `a reply named another op: ${JSON.stringify(res.firstMismatch)}`,
    );
    assert.equal(res.closed, false, `the helper closed the connection: ${JSON.stringify(res)}`);
    assert.equal(res.stalled, false, `the helper stopped answering: ${JSON.stringify(res)}`);
    assert.equal(res.replies, OPENS);
    for (const head of Object.keys(res.heads))
      assert.ok(
        env.publicText.startsWith(head),
        `unexpected content handed out: ${JSON.stringify(head)}`,
      );
    // the race was real: the attacker kept swapping and both outcomes happened
    assert.ok(counts.swaps > 1000, `the attacker swapped only ${counts.swaps} times`);
    assert.ok(res.granted > 0, 'never granted: the race did not exercise the open path');
    assert.ok(res.replies - res.granted > 0, 'never refused: the swap never won a lookup');
  }

  it(`hands out no secret over ${OPENS} opens while the leaf is swapped with a symlink`, async (t) => {
    await race(
      t,
      'leaf swap',
      env.sb.path('logs/app'),
      'a.log',
      'evil.log',
      env.sb.path('logs/app/a.log'),
    );
    await assertStillServing(env);
  });

  it(`hands out no secret over ${OPENS} opens while a directory on the way is swapped with a symlink`, async (t) => {
    await race(
      t,
      'directory swap',
      env.sb.path('logs/att'),
      'd',
      'e',
      env.sb.path('logs/att/d/a.log'),
    );
    await assertStillServing(env);
  });
  it('list never names a file found through a directory swapped for a symlink mid-walk', async (t) => {
    const dir = env.sb.path('logs/lst');
    const swapper = await startSwapper(dir, 'd', 'x');
    let res: LoopResult;
    try {
      const out = await agentPeer(
        env,
        [
          { a: 'connect' },
          {
            a: 'loop',
            n: 3000,
            window: 8,
            reqs: [{ op: 'list', source: 'lst' }],
            leak: 'TOPSECRET-NAME',
            idleTimeout: 20000,
          },
        ],
        180000,
      );
      res = loopResult(out, 1);
    } finally {
      await swapper.stop();
    }
    const summary = `list race: ${res.replies} lists, ${res.otherOk} answered, refused ${JSON.stringify(res.refused)}, secret names leaked: ${res.leaks ?? 0}`;
    t.diagnostic(summary);
    console.log(summary);
    assert.equal(res.replies, 3000);
    assert.equal(res.leaks ?? 0, 0, `A NAME FROM A ROOT-ONLY DIRECTORY WAS LISTED: ${summary}`);
    await assertStillServing(env);
  });
});
