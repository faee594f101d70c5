// The `watch` op (docs/protocol.md): the agent sends an inotify instance of its own, and the helper
// adds watches on the allowed directories of a source to it, and nothing else (the instance and its
// watches are charged to the agent, never to root). Each helper here runs in its own private mount
// namespace with a root-only directory bind-mounted inside the watched tree, under both open paths
// (openat2, and the component walk forced by a seccomp filter). The agent's side is a raw Python
// client (test/fixtures/watch-peer.py) that reads the kernel's own list of the instance's watches
// (/proc/self/fdinfo), tries to add a watch of its own, and reads the events.
import { readdirSync, readlinkSync } from 'node:fs';
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { appendFileSync, lstatSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { PROTOCOL_VERSION } from '@guard/protocol/wire';
import { assertRefused, legitOpen, setupEnv, teardownEnv, type Env } from './lib/env';
import { Helper, inMountNamespace, onlyWalk } from './lib/helper';
import { hello, reply, runPeer, type Action } from './lib/peer';
import { killPid, sleep, start } from './lib/proc';

const IN_MODIFY = 0x2;
const IN_CREATE = 0x100;
const IN_MOVED_FROM = 0x40;
const IN_MOVED_TO = 0x80;
const DIRS_OVER_LIMIT = 4097;

interface PeerLine {
  reply?: null | {
    ok?: boolean;
    error?: string;
    message?: string;
    watches?: { wd: number; dir: string }[];
  };
  fds?: number;
  inodes?: number[];
  inodesAfter?: number[];
  addWatch?: number | string;
  ready?: boolean;
  events?: { wd: number; mask: number; cookie: number; name: string }[];
  closed?: boolean;
}

/** A peer line as assertRefused reads a reply: its JSON, and whether a descriptor came with it. */
const refusal = (l: PeerLine | undefined) => ({
  json: l?.reply ?? undefined,
  gotFd: (l?.fds ?? 0) > 0,
});

/** Runs watch-peer.py as the agent; `onReady` acts while the peer waits for events. */
async function watchPeer(
  env: Env,
  socket: string,
  source: string,
  rounds: number,
  onReady?: () => void | Promise<void>,
  user = env.agent,
  send: 'instance' | 'none' | 'pipe' | 'two' = 'instance',
): Promise<PeerLine[]> {
  const stop = onReady ? 'stop.marker' : '-';
  const child: ChildProcess = start(
    '/usr/bin/python3',
    [
      env.sb.watchPeerPy,
      socket,
      String(PROTOCOL_VERSION),
      source,
      env.sb.path('secret'),
      stop,
      String(rounds),
      send,
    ],
    { user },
  );
  const lines: PeerLine[] = [];
  let buf = '';
  let err = '';
  let acted: Promise<void> | null = null;
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) {
      const line = JSON.parse(buf.slice(0, i)) as PeerLine;
      lines.push(line);
      if (line.ready) acted = Promise.resolve(onReady?.());
    }
  });
  const timer = setTimeout(() => killPid(child.pid, 'SIGKILL'), 30_000);
  const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
  clearTimeout(timer);
  await acted;
  assert.equal(code, 0, `watch-peer.py exited ${code}: ${err}`);
  return lines;
}

describe('guard-helper watch: an inotify instance on the allowed directories only', () => {
  let env: Env;
  const helpers: Helper[] = [];
  before(async () => {
    env = await setupEnv({
      layout: (e) => {
        const sb = e.sb;
        // a root-only tree the agent cannot read itself
        sb.mkdir('logs/w', 0o700);
        sb.mkdir('logs/w/a', 0o700);
        sb.file('logs/w/a/x.log', 'one\n', 0o600);
        sb.mkdir('logs/w/b', 0o755);
        sb.mkdir('logs/w/.ssh', 0o700); // matched by *, but deny-listed as a whole
        sb.mkdir('logs/w/mnt', 0o755); // the secret is bind-mounted here in the helper's namespace
        sb.symlink(`${sb.dir}/secret`, 'logs/w/link'); // a symlinked directory is never descended
        sb.file('logs/w/top.log', 'top\n', 0o600);
        // an allowed root that is itself a symlink to the secret
        sb.symlink(`${sb.dir}/secret`, 'logs/linkroot');
        sb.mkdir('logs/many', 0o755);
        // with logs/many itself, one directory over the limit
        for (let i = 1; i < DIRS_OVER_LIMIT; i++) sb.mkdir(`logs/many/d${i}`);
        // the race: the attacker swaps a directory and a symlink to the secret in logs/app
        sb.mkdir('logs/app/d', 0o755, e.attacker);
        sb.symlink(`${sb.dir}/secret`, 'logs/app/l', e.attacker);
      },
      extraConfig: (e) => {
        const s = e.sb.dir;
        return [
          '[source.w]',
          `paths = ${s}/logs/w/*/*.log, ${s}/logs/w/*.log`,
          '[source.linked]',
          `paths = ${s}/logs/linkroot/*.log`,
          '[source.many]',
          `paths = ${s}/logs/many/*/*.log`,
          '[source.race]',
          `paths = ${s}/logs/app/*/*.log`,
        ].join('\n');
      },
    });
  });
  after(async () => {
    for (const h of helpers) await h.stop();
    await teardownEnv(env);
  });

  it("refuses a watch without the agent's instance, with a pipe instead, or with two descriptors (one on any other request: helper-peers); the helper keeps no instance", async () => {
    const inotifyHeld = () =>
      readdirSync(`/proc/${env.helper.pid}/fd`).filter((n) => {
        try {
          return readlinkSync(`/proc/${env.helper.pid}/fd/${n}`) === 'anon_inode:inotify';
        } catch {
          return false;
        }
      }).length;
    const none = await watchPeer(env, env.socket, 'w', 1, undefined, env.agent, 'none');
    assertRefused(refusal(none[0]), 'bad_request', 'watch without a descriptor');
    assert.deepEqual(none[0]?.inodes, [], 'nothing watched');
    const pipe = await watchPeer(env, env.socket, 'w', 1, undefined, env.agent, 'pipe');
    assertRefused(refusal(pipe[0]), 'unsupported', 'a pipe, not an instance');
    assert.match(String(pipe[0]?.reply?.message), /EINVAL/);
    const two = await watchPeer(env, env.socket, 'w,w', 1, undefined, env.agent, 'two');
    assertRefused(refusal(two[0]), 'bad_request', 'two descriptors');
    // the next request finds the connection closed (or its reply is the end of the stream)
    assert.ok(
      two[1]?.closed === true || two[1]?.reply === null,
      `the connection was not closed after two descriptors: ${JSON.stringify(two)}`,
    );
    // three watches the helper made in the agent's instances, then nothing left in the helper
    const ok = await watchPeer(env, env.socket, 'w,w,w', 1);
    assert.deepEqual(
      ok.map((l) => [l.reply?.ok, l.fds]),
      [
        [true, 0],
        [true, 0],
        [true, 0],
      ],
      'each watch answered without a descriptor',
    );
    assert.equal(inotifyHeld(), 0, 'the helper holds an inotify instance');
    const n = await env.helper.settleFds(env.baselineFds);
    assert.ok(n <= env.baselineFds, `helper holds ${n} descriptors, ${env.baselineFds} before`);
    assert.ok(env.helper.events('refused').some((e) => e.code === 'unsupported'));
    await legitOpen(env, env.helper, env.socket);
  });

  for (const path of ['openat2', 'walk'] as const) {
    describe(`open path ${path}`, () => {
      let helper: Helper;
      let socket: string;
      let baseline: number;
      // every instance and directory descriptor is closed once the reply is sent
      const assertNoLeak = async () => {
        const n = await helper.settleFds(baseline);
        assert.ok(n <= baseline, `helper holds ${n} descriptors, ${baseline} before`);
      };
      before(async () => {
        const s = env.sb.dir;
        socket = env.sb.path('run', `watch-${path}.sock`);
        helper = await Helper.start({
          ...env.helperOptions,
          socket,
          prefix: [
            ...inMountNamespace(`mount --bind '${s}/secret' '${s}/logs/w/mnt'`),
            ...(path === 'walk' ? onlyWalk : []),
          ],
        });
        helpers.push(helper);
        assert.equal(helper.events('listening')[0]?.open_path, path);
        await legitOpen(env, helper, socket);
        await sleep(300);
        baseline = helper.fdCount();
      });

      it('watches the roots and matched directories only; the agent cannot add its own; events arrive from a root-only directory', async () => {
        const w = env.sb.path('logs/w');
        const lines = await watchPeer(env, socket, 'w', 1, async () => {
          await sleep(50);
          appendFileSync(`${w}/a/x.log`, 'two\n');
          writeFileSync(`${w}/a/new-${path}.log`, 'new\n', { mode: 0o600 });
          renameSync(`${w}/a/new-${path}.log`, `${w}/a/renamed-${path}.log`);
          writeFileSync(`${w}/not-a-log-${path}.txt`, 'x'); // a name no pattern matches: seen too
          writeFileSync(`${w}/stop.marker`, '');
        });
        const [first, ready, done] = lines;
        assert.equal(first?.reply?.ok, true, JSON.stringify(first));
        assert.equal(first?.fds, 0, "no descriptor comes back: the instance is the agent's");
        const watches = first?.reply?.watches ?? [];
        assert.deepEqual(watches.map((x) => x.dir).sort(), [w, `${w}/a`, `${w}/b`]);
        // the kernel's list: exactly these directories, by inode (not .ssh, mnt, link or the secret)
        const ino = (p: string) => statSync(p).ino;
        assert.deepEqual(
          first?.inodes,
          [w, `${w}/a`, `${w}/b`].map(ino).sort((x, y) => x - y),
        );
        // the agent has no read access to the secret: the instance it holds does not help it
        assert.equal(first?.addWatch, 'EACCES');
        assert.deepEqual(first?.inodesAfter, first?.inodes, 'no watch was added by the agent');
        assert.equal(ready?.ready, true);
        const wd = (dir: string) => watches.find((x) => x.dir === dir)?.wd;
        const events = done?.events ?? [];
        const has = (dir: string, mask: number, name: string) =>
          events.find((e) => e.wd === wd(dir) && (e.mask & mask) !== 0 && e.name === name);
        assert.ok(has(`${w}/a`, IN_MODIFY, 'x.log'), `append: ${JSON.stringify(events)}`);
        assert.ok(has(`${w}/a`, IN_CREATE, `new-${path}.log`), 'create');
        const from = has(`${w}/a`, IN_MOVED_FROM, `new-${path}.log`);
        const to = has(`${w}/a`, IN_MOVED_TO, `renamed-${path}.log`);
        assert.ok(from && to && from.cookie === to.cookie, 'rename: a pair with one cookie');
        assert.ok(
          has(w, IN_CREATE, `not-a-log-${path}.txt`),
          `unmatched names: ${JSON.stringify(events)}`,
        );
        assert.ok(has(w, IN_MODIFY | IN_CREATE, 'stop.marker'));
        assert.equal(helper.events('watching').length >= 1, true);
        await legitOpen(env, helper, socket);
        await assertNoLeak();
      });

      it('refuses an unknown source, an audit source without the group, a symlinked root, too many directories', async () => {
        const lines = await watchPeer(env, socket, 'nope,linked,many,audit,w', 1);
        const r = (i: number) => refusal(lines[i]);
        assertRefused(r(0), 'not_allowed', 'unknown source');
        assertRefused(r(1), 'not_found', 'symlinked allowed root');
        assertRefused(r(2), 'limit', 'too many directories');
        assert.match(
          String(lines[2]?.reply?.message),
          new RegExp(`over ${DIRS_OVER_LIMIT - 1} dir`),
        );
        assert.equal(lines[3]?.reply?.ok, true, 'audit source, agent in the audit group');
        assert.equal(lines[4]?.reply?.ok, true, 'the connection goes on after refusals');
        // without the audit group (no supplementary groups at all)
        const noAudit = await watchPeer(env, socket, 'audit,w', 1, undefined, {
          ...env.agent,
          groups: 'clear',
        });
        assertRefused(refusal(noAudit[0]), 'audit_group', 'without the group');
        assert.deepEqual(noAudit[0]?.inodes, [], 'nothing watched for the audit source');
        assert.equal(noAudit[1]?.reply?.ok, true);
        for (const code of ['not_allowed', 'not_found', 'limit', 'audit_group'])
          assert.ok(
            helper.events('refused').some((e) => e.code === code && e.op === 'watch'),
            `refusal ${code} logged`,
          );
        await legitOpen(env, helper, socket);
        await assertNoLeak();
      });

      it('never watches the secret a directory swapped for a symlink points to (race)', async () => {
        const app = env.sb.path('logs/app');
        const swapper = start('/usr/bin/python3', [env.sb.swapPy, app, 'd', 'l'], {
          user: env.attacker,
        });
        let lines: PeerLine[];
        try {
          await sleep(200);
          lines = await watchPeer(env, socket, 'race', 30);
        } finally {
          killPid(swapper.pid, 'SIGTERM');
        }
        const secret = statSync(env.sb.path('secret')).ino;
        const allowed = new Set([statSync(app).ino]);
        for (const name of ['d', 'l']) {
          const st = lstatSync(`${app}/${name}`, { throwIfNoEntry: false });
          if (st?.isDirectory()) allowed.add(st.ino);
        }
        let watchedDir = 0;
        for (const line of lines.filter((l) => l.reply)) {
          assert.equal(line.reply?.ok, true, JSON.stringify(line));
          assert.ok(
            !line.inodes?.includes(secret),
            `the secret was watched: ${JSON.stringify(line)}`,
          );
          for (const i of line.inodes ?? []) assert.ok(allowed.has(i), `watched inode ${i}`);
          if ((line.inodes?.length ?? 0) > 1) watchedDir++;
        }
        assert.equal(lines.filter((l) => l.reply).length, 30);
        console.log(`[race: ${watchedDir} of 30 instances also watched the swapped directory]`);
        await legitOpen(env, helper, socket);
        await assertNoLeak();
      });
    });
  }
});
