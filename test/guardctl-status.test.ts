// guardctl status against the real helper (root) and the real agent (a test user): healthy,
// degraded by a refused file, down when the agent stops; --json; run by a member of the agent's
// group (read-only: works) and by an unrelated user (a clear permission error); and its terminal
// behaviour in a real pseudo-terminal (node-pty), at 80 and 200 columns.
import assert from 'node:assert/strict';
import { appendFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { spawn as ptySpawn } from 'node-pty';
import {
  AgentProcess,
  readStatus,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';
import { cleanEnv, run, type RunAs } from './lib/proc';
import type { TestUser } from './lib/users';

const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
const visible = (s: string) => Array.from(s.replace(ANSI, '')).length;

describe('guardctl status (real helper as root, real agent as a test user)', () => {
  let env: AgentEnv;
  let agent: AgentProcess;
  let member: TestUser;
  let stranger: TestUser;
  const line = (i: number) => `2026-11-24T09:05:01.123456+00:00 testhost app[1]: status line ${i}`;

  before(async () => {
    env = await setupAgentEnv();
    member = env.users.user('mem', [env.agent.group]);
    stranger = env.users.user('str');
    writeFileSync(env.sb.path('logs/app.log'), `${line(0)}\n`, { mode: 0o600 });
    agent = await AgentProcess.start(env);
    await until(
      async () => {
        const s = await readStatus(env);
        return (
          s.sinks[0].deliveredEvents >= 1 &&
          s.sources[0].files.some((f: { state: string }) => f.state === 'flowing')
        );
      },
      15_000,
      'the first line delivered',
    );
  });
  after(async () => {
    await agent?.stop();
    await teardownAgentEnv(env);
  });

  const args = (...extra: string[]) => [
    env.sb.guardctlJs,
    'status',
    '--status-socket',
    env.statusSocket,
    '--helper-socket',
    env.sb.path('run/helper.sock'),
    ...extra,
  ];
  const guardctl = (extra: string[] = [], user?: RunAs) =>
    run(process.execPath, args(...extra), user ? { user } : {});
  const keepFlowing = () => appendFileSync(env.sb.path('logs/app.log'), `${line(1)}\n`);

  /** Runs guardctl status in a real pseudo-terminal of `cols` columns; returns its output and exit code. */
  function inPty(
    cols: number,
    extraEnv: Record<string, string> = {},
  ): Promise<{ out: string; code: number }> {
    return new Promise((resolve) => {
      const p = ptySpawn(process.execPath, args(), {
        cols,
        rows: 60,
        cwd: '/',
        env: { ...cleanEnv, TERM: 'xterm-256color', ...extraEnv } as Record<string, string>,
      });
      let out = '';
      p.onData((d) => {
        out += d;
      });
      p.onExit(({ exitCode }) => setTimeout(() => resolve({ out, code: exitCode }), 50));
    });
  }

  it('healthy: exit 0, the file flowing, the sink, helper and agent shown; piped output has no ANSI', async () => {
    keepFlowing();
    const r = await guardctl();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^guard: healthy$/m);
    assert.match(
      r.stdout,
      new RegExp(`app\\s+${env.sb.path('logs/app.log').replace(/[.]/g, '\\.')}\\s+flowing`),
    );
    assert.match(
      r.stdout,
      new RegExp(
        `^helper\\s+\\d+\\s+root \\(0\\)\\s+socket .*helper\\.sock 0660 root:${env.agent.group}`,
        'm',
      ),
    );
    assert.match(
      r.stdout,
      new RegExp(`^agent\\s+${agent.pid}\\s+${env.agent.name} \\(${env.agent.uid}\\)\\s+up `, 'm'),
    );
    assert.match(r.stdout, /^siem\s+http https:\/\/127\.0\.0\.1:\d+/m);
    assert.doesNotMatch(r.stdout, /\x1b\[/, 'no ANSI when piped');
  });

  it('--json parses and says healthy', async () => {
    keepFlowing();
    const r = await guardctl(['--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as Record<string, any>;
    assert.equal(j.health, 'healthy');
    assert.deepEqual(j.reasons, []);
    assert.equal(j.agent.pid, agent.pid);
    assert.equal(j.agent.user, env.agent.name);
    assert.equal(j.helper.uid, 0);
    assert.equal(j.helper.socket.mode, '0660');
    assert.equal(j.sources[0].files[0].state, 'flowing');
    assert.equal(j.sinks[0].name, 'siem');
  });

  it('in a real terminal (node-pty): colours, and no line wider than 80 or 200 columns', async () => {
    // a long path, so that 80 columns must cut something
    const longName = `${'very-long-directory-name-'.repeat(3)}app.log`;
    writeFileSync(env.sb.path('logs', longName), `${line(2)}\n`, { mode: 0o600 });
    await until(
      async () =>
        (await readStatus(env)).sources[0].files.some((f: { path: string }) =>
          f.path.endsWith(longName),
        ),
      10_000,
      'the long file in status',
    );
    for (const cols of [80, 200]) {
      keepFlowing();
      const { out, code } = await inPty(cols);
      assert.equal(code, 0, out);
      assert.match(
        out,
        /\x1b\[1;32mguard: healthy\x1b\[0m/,
        `coloured verdict at ${cols} cols: ${JSON.stringify(out.slice(0, 200))}`,
      );
      assert.match(out, /\x1b\[32mflowing\x1b\[0m/);
      const lines = out.split(/\r?\n/);
      for (const l of lines)
        assert.ok(
          visible(l) <= cols,
          `${cols} cols: a line of ${visible(l)}: ${l.replace(ANSI, '')}`,
        );
      if (cols === 80)
        assert.ok(
          lines.some((l) => l.includes('…')),
          'the long path cut in the middle at 80 columns',
        );
      else
        assert.ok(
          lines.some((l) => l.includes(longName)),
          'the long path whole at 200 columns',
        );
    }
    const plain = await inPty(80, { NO_COLOR: '1' });
    assert.doesNotMatch(
      plain.out.replace(/\x1b\[\?[0-9;]*[a-z]/g, ''),
      /\x1b\[[0-9;]*m/,
      'NO_COLOR: no colours on a terminal',
    );
  });

  it("works for a member of the agent's group (read-only: no root needed)", async () => {
    keepFlowing();
    const r = await guardctl([], member);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^guard: healthy$/m);
    assert.match(r.stdout, /flowing/);
    assert.match(r.stdout, /guard rules: unknown \(needs root\)/);
  });

  it('an unrelated user gets a clear permission error, exit 2', async () => {
    const r = await guardctl([], stranger);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      new RegExp(
        `^guardctl status: permission_denied: cannot read ${env.statusSocket} as ${stranger.name} .*member of group`,
      ),
    );
  });

  it('a refused file: degraded, exit 1, naming the file and the reason', async () => {
    symlinkSync('/etc/shadow', env.sb.path('logs/evil.log'));
    await until(
      async () =>
        (await readStatus(env)).sources[0].files.some(
          (f: { state: string }) => f.state === 'refused',
        ),
      10_000,
      'the refusal in status',
    );
    const r = await guardctl();
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^guard: degraded: source app: .*evil\.log refused \(symlink: /m);
    assert.match(r.stdout, /evil\.log\s+refused\s+-\s+-\s+-\s+symlink: /);
    const j = JSON.parse((await guardctl(['--json'])).stdout) as {
      health: string;
      reasons: string[];
    };
    assert.equal(j.health, 'degraded');
  });

  it('agent stopped: down, exit 2', async () => {
    await agent.stop();
    const r = await guardctl();
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /^guard: down: agent: .*agent\.sock: (no status socket|connection refused)/m,
    );
    assert.match(r.stdout, /^agent\s+unreachable/m);
  });
});
