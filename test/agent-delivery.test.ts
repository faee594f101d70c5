// guard-agent end to end: the real helper as root, the real agent as a throwaway system user, shipping
// over HTTPS to a receiver whose CA was made for the test. The log directory is root-only (0700):
// the agent can read these files only through descriptors the helper passes.
import assert from 'node:assert/strict';
import {
  appendFileSync,
  copyFileSync,
  renameSync,
  truncateSync,
  writeFileSync,
  symlinkSync,
} from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  AgentProcess,
  readStatus,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';
import { sleep } from './lib/proc';

const syslogLine = (run: string, i: number) =>
  `2026-11-24T09:05:01.123456+00:00 testhost sshd[${1000 + (i % 50)}]: ${run} line ${i}`;

/** Appends `total` lines at about `perSecond`, calling `during(i)` between bursts (for rotations). */
async function writeAt(
  path: () => string,
  run: string,
  total: number,
  perSecond: number,
  during?: (i: number) => Promise<void> | void,
): Promise<void> {
  const burst = Math.max(1, Math.round(perSecond / 100));
  const t0 = Date.now();
  for (let i = 0; i < total; i += burst) {
    const n = Math.min(burst, total - i);
    appendFileSync(
      path(),
      Array.from({ length: n }, (_, k) => syslogLine(run, i + k)).join('\n') + '\n',
    );
    await during?.(i + n);
    const due = t0 + ((i + n) / perSecond) * 1000;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
  }
}

/** The numbers of `run`'s lines that arrived, checked for order per file and returned with counts. */
function arrived(env: AgentEnv, run: string): { seen: Set<number>; total: number } {
  const seen = new Set<number>();
  let total = 0;
  for (const e of env.receiver.events) {
    const m = new RegExp(`${run} line (\\d+)$`).exec(e.message);
    if (!m) continue;
    total++;
    seen.add(Number(m[1]));
  }
  return { seen, total };
}

function missing(seen: Set<number>, total: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < total; i++) if (!seen.has(i)) out.push(i);
  return out;
}

describe('guard-agent delivery (real helper as root, agent as a test user, HTTPS receiver)', () => {
  let env: AgentEnv;
  let agent: AgentProcess;
  before(async () => {
    env = await setupAgentEnv();
    writeFileSync(env.sb.path('logs/app.log'), '', { mode: 0o600 });
    agent = await AgentProcess.start(env);
  });
  after(async () => {
    await agent?.stop();
    await teardownAgentEnv(env);
  });

  it('ships lines appended to a root-only file, in order, parsed as syslog', async () => {
    const path = env.sb.path('logs/app.log');
    const lines = Array.from({ length: 500 }, (_, i) => syslogLine('order', i));
    appendFileSync(path, lines.join('\n') + '\n');
    await until(() => arrived(env, 'order').seen.size === 500, 20_000, '500 lines at the receiver');
    const got = env.receiver.events.filter((e) => e.message.includes('order line'));
    assert.deepEqual(
      got.map((e) => e.message),
      lines,
      'every line once, in file order',
    );
    const first = got[0]!;
    assert.equal(first.path, path);
    assert.equal(first.parser, 'syslog');
    assert.equal(first.time, '2026-11-24T09:05:01.123Z');
    assert.equal((first.fields as Record<string, unknown>).program, 'sshd');
    assert.equal((first.fields as Record<string, unknown>).pid, 1000);
    assert.match(first.id, /:\d+$/);
    assert.equal(new Set(got.map((e) => e.id)).size, 500, 'ids are unique');
    assert.ok(
      env.receiver.connections <= 2,
      `keep-alive: ${env.receiver.connections} TLS connections for ${env.receiver.requests.length} requests`,
    );
  });

  it('loses nothing through rename + create rotations while 20,000 lines/s are written', async () => {
    const path = env.sb.path('logs/app.log');
    let rotations = 0;
    const total = 100_000;
    await writeAt(
      () => path,
      'rename',
      total,
      20_000,
      (i) => {
        if (i % 25_000 < 200 && i > 200) {
          // about every 1.25 s: rename away (no longer matches *.log) and start a new file
          renameSync(path, env.sb.path(`logs/app.log.${++rotations}`));
          writeFileSync(path, '', { mode: 0o600 });
        }
      },
    );
    await until(
      () => arrived(env, 'rename').seen.size === total,
      60_000,
      `${total} lines after ${rotations} rotations`,
    ).catch((e: Error) => {
      const a = arrived(env, 'rename');
      throw new Error(
        `${e.message}: got ${a.seen.size}, missing e.g. ${missing(a.seen, total).slice(0, 10).join(',')}\n${agent.dump()}`,
      );
    });
    const a = arrived(env, 'rename');
    assert.equal(missing(a.seen, total).length, 0);
    assert.ok(rotations >= 3, `${rotations} rotations`);
    console.log(
      `rename rotation: ${total} lines, ${rotations} rotations, ${a.total - total} duplicates`,
    );
    assert.equal(a.total, total, 'no duplicates without a restart');
  });

  it('copytruncate: detects the truncation and ships the new content from its start', async () => {
    const path = env.sb.path('logs/app.log');
    const total = 60_000;
    let truncations = 0;
    await writeAt(
      () => path,
      'copytrunc',
      total,
      20_000,
      async (i) => {
        if (i % 20_000 < 200 && i > 200) {
          // copytruncate loses what the reader has not read before the truncate (logrotate's own
          // documentation says so); this checks what an agent can get right: noticing the truncation
          // and reading the new content from offset 0, once. So wait until it has caught up first.
          await until(
            () => arrived(env, 'copytrunc').seen.size >= i,
            20_000,
            'catch-up before copytruncate',
          );
          copyFileSync(path, env.sb.path(`logs/app.log.ct${++truncations}`));
          truncateSync(path, 0);
        }
      },
    );
    await until(
      () => arrived(env, 'copytrunc').seen.size === total,
      60_000,
      `${total} lines after ${truncations} copytruncates`,
    ).catch((e: Error) => {
      const a = arrived(env, 'copytrunc');
      throw new Error(
        `${e.message}: got ${a.seen.size}, missing e.g. ${missing(a.seen, total).slice(0, 10).join(',')}`,
      );
    });
    const a = arrived(env, 'copytrunc');
    assert.equal(a.total, total, `each line exactly once (${a.total} received for ${total})`);
    const truncationsSeen = async () =>
      (await readStatus(env)).sources[0].files.find((f: { path: string }) => f.path === path)
        ?.truncations;
    // the last truncate comes after the last line: the agent notices it on its next look
    await until(
      async () => (await truncationsSeen()) === truncations,
      5000,
      `${truncations} truncations in status (now ${await truncationsSeen()})`,
    );
  });

  it('ships odd bytes as one escaped event per line: invalid UTF-8, NUL, ESC, CR, a 1 MiB line', async () => {
    const path = env.sb.path('logs/app.log');
    const big = 'B'.repeat(1024 * 1024);
    appendFileSync(
      path,
      Buffer.concat([
        Buffer.from('odd1 bad utf8 \xff\xfe end\n', 'latin1'),
        Buffer.from('odd2 nul \0 here\n'),
        Buffer.from('odd3 esc \x1b[31mred\x1b[0m\n'),
        Buffer.from('odd4 cr\rmid\n'),
        Buffer.from(`odd5 ${big}\n`),
        Buffer.from('odd6 after the big one\n'),
      ]),
    );
    await until(
      () => env.receiver.events.some((e) => e.message.startsWith('odd6')),
      20_000,
      'the odd lines',
    );
    const odd = env.receiver.events.filter((e) => /^odd\d/.test(e.message));
    assert.deepEqual(
      odd.map((e) => e.message.slice(0, 4)),
      ['odd1', 'odd2', 'odd3', 'odd4', 'odd5', 'odd6'],
      'one event per line, none dropped',
    );
    const [u, nul, esc, cr, long] = odd;
    assert.equal(u!.message, 'odd1 bad utf8 \\xff\\xfe end');
    assert.equal(nul!.message, 'odd2 nul \\x00 here');
    assert.equal(esc!.message, 'odd3 esc \\x1b[31mred\\x1b[0m');
    assert.equal(cr!.message, 'odd4 cr\\x0dmid');
    for (const e of [u, nul, esc, cr])
      assert.ok(e!.flags?.includes('escaped'), `${e!.message} flagged escaped`);
    assert.ok(long!.flags?.includes('truncated'), 'the 1 MiB line is cut and flagged');
    assert.ok(
      long!.message.length <= 65536 && long!.message.length > 60000,
      `cut at max_line_bytes: ${long!.message.length}`,
    );
  });

  it('reports a file the helper refuses in status, with the code and reason', async () => {
    symlinkSync('/etc/shadow', env.sb.path('logs/evil.log'));
    await until(
      async () =>
        (await readStatus(env)).sources[0].files.some(
          (f: { state: string }) => f.state === 'refused',
        ),
      10_000,
      'the refusal in status',
    );
    const status = await readStatus(env);
    const evil = status.sources[0].files.find((f: { path: string }) => f.path.endsWith('evil.log'));
    assert.equal(evil.state, 'refused');
    assert.equal(evil.refusal.code, 'symlink');
    assert.match(evil.refusal.message, /symbolic link/);
    assert.equal(status.helper.connected, true);
    assert.equal(status.sinks[0].name, 'siem');
    assert.ok(status.sinks[0].deliveredEvents > 0);
  });
});
