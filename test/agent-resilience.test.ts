// guard-agent when things go wrong: killed with SIGKILL mid-run, the backend down or refusing, a
// reload. At-least-once: nothing may be missing; duplicates are bounded by what was in flight.
import assert from 'node:assert/strict';
import {
  appendFileSync,
  createWriteStream,
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  AgentProcess,
  agentConfig,
  readStatus,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';
import { Helper } from './lib/helper';
import { sleep } from './lib/proc';

const line = (run: string, i: number) =>
  `2026-11-24T09:05:01.123456+00:00 testhost sshd[4242]: ${run} line ${i}`;

function count(
  env: AgentEnv,
  run: string,
  total: number,
): { distinct: number; received: number; missing: number[] } {
  const seen = new Uint8Array(total);
  let received = 0;
  const re = new RegExp(`${run} line (\\d+)$`);
  for (const e of env.receiver.events) {
    const m = re.exec(e.message);
    if (!m) continue;
    received++;
    seen[Number(m[1])] = 1;
  }
  const missing: number[] = [];
  for (let i = 0; i < total && missing.length < 20; i++) if (!seen[i]) missing.push(i);
  return { distinct: seen.reduce((a, b) => a + b, 0), received, missing };
}

async function writeLines(path: string, run: string, from: number, to: number): Promise<void> {
  const out = createWriteStream(path, { flags: 'a' });
  const step = 10_000;
  for (let i = from; i < to; i += step) {
    const chunk =
      Array.from({ length: Math.min(step, to - i) }, (_, k) => line(run, i + k)).join('\n') + '\n';
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) =>
    out.end((e?: Error | null) => (e ? reject(e) : resolve())),
  );
}

describe('guard-agent killed with SIGKILL during a 1,000,000-line run', () => {
  let env: AgentEnv;
  before(async () => {
    env = await setupAgentEnv();
  });
  after(async () => {
    await teardownAgentEnv(env);
  });

  it('restarted after each kill: zero lines missing, duplicates at most one batch per kill', async () => {
    const total = 1_000_000;
    const path = env.sb.path('logs/big.log');
    writeFileSync(path, '', { mode: 0o600 });
    await writeLines(path, 'kill', 0, total);
    const kills: number[] = [];
    let agent = await AgentProcess.start(env);
    // Kill at pseudo-random points while it works through the file, restart each time.
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let k = 0; k < 5; k++) {
      const target = Math.round(total * (0.1 + 0.16 * k + 0.1 * rand()));
      await until(
        () => env.receiver.events.length >= target,
        120_000,
        `${target} events before kill ${k + 1}`,
      );
      await sleep(Math.round(rand() * 200));
      process.kill(agent.pid, 'SIGKILL');
      await agent.exited;
      kills.push(env.receiver.events.length);
      agent = await AgentProcess.start(env);
    }
    await until(() => count(env, 'kill', total).distinct === total, 180_000, 'every line').catch(
      (e: Error) => {
        const c = count(env, 'kill', total);
        throw new Error(
          `${e.message}: ${c.distinct} distinct, missing e.g. ${c.missing.join(',')}`,
        );
      },
    );
    await sleep(1000); // anything still in flight lands now and would count as a duplicate
    await agent.stop();
    const c = count(env, 'kill', total);
    const duplicates = c.received - total;
    console.log(
      `SIGKILL run: ${total} lines, ${kills.length} kills at ${kills.join(', ')} events; ${duplicates} duplicates (batch size 1000)`,
    );
    assert.equal(c.missing.length, 0);
    assert.ok(
      duplicates <= kills.length * 1000,
      `${duplicates} duplicates for ${kills.length} kills: more than one batch per kill`,
    );
    // ids are stable across restarts: every duplicate carries the id of its first delivery
    const byId = new Map<string, string>();
    for (const e of env.receiver.events) {
      const prev = byId.get(e.id);
      assert.ok(prev === undefined || prev === e.message, `id ${e.id} names two different lines`);
      byId.set(e.id, e.message);
    }
    assert.equal(byId.size, total, 'one id per line');
  });
});

describe('guard-agent when the backend fails', () => {
  let env: AgentEnv;
  let agent: AgentProcess;
  const path = () => env.sb.path('logs/app.log');
  before(async () => {
    env = await setupAgentEnv();
    writeFileSync(path(), '', { mode: 0o600 });
    agent = await AgentProcess.start(env);
  });
  after(async () => {
    await agent?.stop();
    await teardownAgentEnv(env);
  });

  it('backend down for 60 s: reading pauses or waits, nothing is lost after it returns', async () => {
    await env.receiver.down();
    await writeLines(path(), 'down', 0, 50_000);
    await sleep(30_000);
    const mid = await readStatus(env);
    assert.ok(mid.sinks[0].lastError, 'status shows the sink failing');
    assert.ok(mid.sinks[0].retries > 0, 'and retrying');
    await writeLines(path(), 'down', 50_000, 100_000);
    await sleep(30_000);
    const late = await readStatus(env);
    // 100,000 encoded events are well over max_buffer_bytes (4 MiB): the files are the buffer now
    assert.equal(
      late.agent.paused,
      true,
      `reading paused with ${late.agent.queuedBytes} bytes queued`,
    );
    assert.ok(
      late.agent.queuedBytes < 24 * 1024 * 1024,
      `queued ${late.agent.queuedBytes} bytes: bounded`,
    );
    const upAt = new Date().toISOString();
    await env.receiver.up();
    await until(
      () => count(env, 'down', 100_000).distinct === 100_000,
      60_000,
      'every line after the backend returned',
    );
    const after = await readStatus(env);
    assert.ok(
      after.sinks[0].lastSuccess >= upAt,
      `delivering again: last success ${after.sinks[0].lastSuccess}`,
    );
    assert.equal(after.agent.paused, false);
  });

  it('SIGTERM while the last batch is in flight: the agent waits for its answer, and a restart sends nothing again', async () => {
    env.receiver.mode = { kind: 'slow', ms: 2000 };
    const before = env.receiver.requests.length;
    appendFileSync(
      path(),
      Array.from({ length: 100 }, (_, i) => line('term', i)).join('\n') + '\n',
    );
    await until(
      () => count(env, 'term', 100).distinct === 100,
      15_000,
      'the batch at the receiver, not yet answered',
    );
    assert.equal(env.receiver.requests.length - before, 1, 'one batch');
    const t0 = Date.now();
    await agent.stop('SIGTERM'); // 5 s of grace: enough for the 2 s answer
    assert.ok(
      Date.now() - t0 >= 1000,
      `stopped after ${Date.now() - t0} ms: it waited for the answer`,
    );
    env.receiver.mode = { kind: 'ok' };
    agent = await AgentProcess.start(env);
    appendFileSync(path(), line('term', 100) + '\n');
    await until(() => count(env, 'term', 101).distinct === 101, 15_000, 'a line after the restart');
    await sleep(1000);
    assert.equal(
      count(env, 'term', 101).received,
      101,
      'the batch answered before the stop was not sent again',
    );
  });

  it('backend answering 500: retried until it recovers, nothing lost', async () => {
    env.receiver.mode = { kind: 'status', code: 500 };
    await writeLines(path(), 'e500', 0, 5000);
    await until(
      () => env.receiver.requests.filter((r) => r.status === 500).length >= 3,
      20_000,
      'three 500s',
    );
    env.receiver.mode = { kind: 'ok' };
    await until(
      () => count(env, 'e500', 5000).distinct === 5000,
      30_000,
      'every line after the 500s',
    );
  });

  it('backend answering 429 with Retry-After: 3: waits at least that long, nothing lost', async () => {
    env.receiver.mode = { kind: 'status', code: 429, retryAfter: '3' };
    const before429 = env.receiver.requests.length;
    appendFileSync(
      path(),
      Array.from({ length: 100 }, (_, i) => line('e429', i)).join('\n') + '\n',
    );
    await until(
      () => env.receiver.requests.slice(before429).some((r) => r.status === 429),
      10_000,
      'a 429',
    );
    const first429 = env.receiver.requests.slice(before429).find((r) => r.status === 429)!.at;
    await sleep(500);
    env.receiver.mode = { kind: 'ok' };
    await until(() => count(env, 'e429', 100).distinct === 100, 20_000, 'every line after the 429');
    const next = env.receiver.requests.find((r) => r.at > first429)!;
    assert.ok(
      next.at - first429 >= 2900,
      `next attempt ${next.at - first429} ms after the 429 (Retry-After: 3)`,
    );
  });

  it('backend answering 400: that batch is dead-lettered, shown in status, and shipping goes on', async () => {
    env.receiver.mode = { kind: 'status', code: 400 };
    appendFileSync(path(), line('e400', 0) + '\n');
    await until(
      async () => (await readStatus(env)).sinks[0].deadLetteredBatches >= 1,
      15_000,
      'a dead-lettered batch in status',
    );
    env.receiver.mode = { kind: 'ok' };
    const dir = `${env.state}/dead-letter`;
    const files = readdirSync(dir).filter((f) => f.endsWith('.ndjson'));
    assert.ok(
      files.some((f) => readFileSync(`${dir}/${f}`, 'utf8').includes('e400 line 0')),
      `the batch is in ${dir}: ${files.join(', ')}`,
    );
    appendFileSync(path(), line('after400', 0) + '\n');
    await until(() => count(env, 'after400', 1).distinct === 1, 15_000, 'the next line delivered');
    assert.equal(
      count(env, 'e400', 1).distinct,
      0,
      'the refused batch was not retried into the backend',
    );
  });
});

describe('guard-agent reloads on SIGHUP', () => {
  let env: AgentEnv;
  before(async () => {
    env = await setupAgentEnv();
  });
  after(async () => {
    await teardownAgentEnv(env);
  });

  it('picks up a changed config without losing or re-reading its position', async () => {
    const path = env.sb.path('logs/app.log');
    writeFileSync(path, '', { mode: 0o600 });
    const agent = await AgentProcess.start(env);
    try {
      await writeLines(path, 'hup', 0, 20_000);
      await until(() => count(env, 'hup', 20_000).distinct === 20_000, 30_000, 'the first half');
      env.sb.writeConfig(
        'etc/guard.conf',
        agentConfig(env, { agentKeys: ['tags = reloaded'] }),
        0o640,
        { uid: 0, gid: env.agent.gid },
      );
      process.kill(agent.pid, 'SIGHUP');
      await agent.waitFor((l) => l.msg === 'configuration reloaded', 15_000);
      await writeLines(path, 'hup', 20_000, 40_000);
      await until(() => count(env, 'hup', 40_000).distinct === 40_000, 30_000, 'the second half');
      const c = count(env, 'hup', 40_000);
      assert.equal(
        c.received,
        40_000,
        `no line re-read after the reload (${c.received - 40_000} duplicates)`,
      );
      const tagged = env.receiver.events.filter(
        (e) => /hup line (\d+)$/.test(e.message) && Number(/(\d+)$/.exec(e.message)![1]) >= 20_000,
      );
      assert.ok(
        tagged.every((e) => (e.tags as string[] | undefined)?.includes('reloaded')),
        'the new config applies to new lines',
      );
      assert.ok(existsSync(env.statusSocket));
    } finally {
      await agent.stop();
    }
  });
});

/** One audit source on `paths`, read from the start. */
const auditSource = (paths: string): string =>
  ['[source.audit]', 'type = audit', `paths = ${paths}`, 'start_at = beginning', ''].join('\n');

describe('guard-agent killed with SIGKILL while grouping a large audit log', () => {
  let env: AgentEnv;
  before(async () => {
    env = await setupAgentEnv({
      sources: (e) => auditSource(`${e.logs}/audit.log`),
    });
  });
  after(async () => {
    await teardownAgentEnv(env);
  });

  it('every event arrives whole while events complete out of order, duplicates at most one batch per kill', async () => {
    // 60,000 events of five records each. In every group of 50, one "slow" event stays open while
    // the other 49 come and complete (its first four records, then 49 whole events, then its
    // PROCTITLE): events complete out of offset order, and a checkpoint that moved past an open
    // event's first records would lose them at the next kill.
    const total = 60_000;
    const rec = (n: number) => {
      const stamp = `msg=audit(${1700000000 + Math.floor(n / 1000)}.${String(n % 1000).padStart(3, '0')}:${n})`;
      return [
        `type=SYSCALL ${stamp}: arch=c000003e syscall=59 success=yes exit=0 items=1 ppid=1 pid=${n} auid=1000 uid=0 comm="ls" exe="/usr/bin/ls" key="guard-priv"`,
        `type=EXECVE ${stamp}: argc=2 a0="ls" a1="event${n}"`,
        `type=CWD ${stamp}: cwd="/"`,
        `type=PATH ${stamp}: item=0 name="/usr/bin/ls" inode=1 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL`,
        `type=PROCTITLE ${stamp}: proctitle=6C73`,
      ];
    };
    const out = createWriteStream(env.sb.path('logs/audit.log'), { mode: 0o600 });
    for (let g = 0; g < total; g += 50) {
      const slow = rec(g);
      const lines = [...slow.slice(0, 4)];
      for (let n = g + 1; n < g + 50; n++) lines.push(...rec(n));
      lines.push(slow[4]!);
      out.write(lines.join('\n') + '\n');
    }
    await new Promise<void>((resolve) => out.end(resolve));
    const seen = () => {
      const ids = new Set<number>();
      let received = 0;
      for (const e of env.receiver.events as unknown as {
        fields?: { argv?: string[]; records?: unknown[] };
      }[]) {
        const m = /^event(\d+)$/.exec(e.fields?.argv?.[1] ?? '');
        if (!m) continue;
        received++;
        ids.add(Number(m[1]));
        assert.equal(e.fields!.records!.length, 5, 'each event whole: five records');
      }
      return { ids, received };
    };
    let agent = await AgentProcess.start(env);
    const kills: number[] = [];
    for (let k = 0; k < 4; k++) {
      const target = Math.round(total * (0.15 + 0.2 * k));
      await until(
        () => env.receiver.events.length >= target,
        120_000,
        `${target} events before kill ${k + 1}`,
      );
      process.kill(agent.pid, 'SIGKILL');
      await agent.exited;
      kills.push(env.receiver.events.length);
      agent = await AgentProcess.start(env);
    }
    await until(() => seen().ids.size === total, 120_000, 'every audit event').catch((e: Error) => {
      const s = seen();
      const missing: number[] = [];
      for (let i = 0; i < total && missing.length < 10; i++) if (!s.ids.has(i)) missing.push(i);
      throw new Error(`${e.message}: ${s.ids.size} of ${total}, missing e.g. ${missing.join(',')}`);
    });
    await sleep(1000);
    await agent.stop();
    const { received } = seen();
    console.log(
      `SIGKILL audit run: ${total} events, ${kills.length} kills at ${kills.join(', ')} events; ${received - total} duplicates`,
    );
    assert.ok(
      received - total <= kills.length * 1000,
      `${received - total} duplicates for ${kills.length} kills`,
    );
  });
});

describe('guard-agent killed with SIGKILL while auditd rotates its log mid-event', () => {
  let env: AgentEnv;
  before(async () => {
    env = await setupAgentEnv({
      sources: (e) => auditSource(`${e.logs}/audit.log, ${e.logs}/audit.log.[0-9]*`),
    });
  });
  after(async () => {
    await teardownAgentEnv(env);
  });

  it('every record arrives: events completed together, events split by rotations, three kills', async () => {
    // Groups of 7 interleaved events, each with its SYSCALL then its PATH and no closing record:
    // the next group's first record, 3 s later in log time, completes all 7 in one step (their
    // checkpoint offsets interleave, and batches of 1,000 events end between them). Every 40th
    // group is cut by a rotation as auditd does it (audit.log → audit.log.1 → .2 …, a new
    // audit.log): its SYSCALLs in the rotated file, its PATHs in the new one.
    const groups = 2_400;
    const per = 7;
    const sys = (n: number, sec: number) =>
      `type=SYSCALL msg=audit(${sec}.000:${n}): arch=c000003e syscall=2 success=no exit=-13 items=1 ppid=1 pid=${n} auid=1000 uid=1000 comm="cat" exe="/usr/bin/cat" key="guard-access"`;
    const path = (n: number, sec: number) =>
      `type=PATH msg=audit(${sec}.000:${n}): item=0 name="/etc/f${n}" inode=${n} dev=fe:00 mode=0100600 nametype=NORMAL`;
    const log = env.sb.path('logs/audit.log');
    let rotations = 0;
    const rotate = () => {
      for (let k = rotations; k >= 1; k--) renameSync(`${log}.${k}`, `${log}.${k + 1}`);
      renameSync(log, `${log}.1`);
      writeFileSync(log, '', { mode: 0o600 });
      rotations++;
    };
    writeFileSync(log, '', { mode: 0o600 });
    const writer = (async () => {
      for (let g = 0; g < groups; g++) {
        const sec = 1700000000 + 3 * g;
        const first = g * per;
        const a: string[] = [];
        const b: string[] = [];
        for (let n = first; n < first + per; n++) a.push(sys(n, sec));
        for (let n = first; n < first + per; n++) b.push(path(n, sec));
        appendFileSync(log, a.join('\n') + '\n');
        if (g % 40 === 20 && rotations < 6) rotate();
        appendFileSync(log, b.join('\n') + '\n');
        if (g % 100 === 99) await sleep(20);
      }
    })();
    const records = () => {
      const got = new Map<string, number>();
      for (const e of env.receiver.events)
        for (const l of String(e.message).split('\n')) got.set(l, (got.get(l) ?? 0) + 1);
      return got;
    };
    const expected: string[] = [];
    for (let g = 0; g < groups; g++)
      for (let n = g * per; n < (g + 1) * per; n++)
        expected.push(sys(n, 1700000000 + 3 * g), path(n, 1700000000 + 3 * g));
    let agent = await AgentProcess.start(env);
    for (let k = 0; k < 3; k++) {
      const target = Math.round(groups * per * (0.2 + 0.25 * k));
      await until(
        () => env.receiver.events.length >= target,
        120_000,
        `${target} events, kill ${k + 1}`,
      );
      process.kill(agent.pid, 'SIGKILL');
      await agent.exited;
      agent = await AgentProcess.start(env);
    }
    await writer;
    // the last group completes by the agent's clock (2 s without another record)
    const missing = () => {
      const got = records();
      return expected.filter((l) => !got.has(l));
    };
    await until(() => missing().length === 0, 120_000, 'every record').catch((e: Error) => {
      const m = missing();
      throw new Error(
        `${e.message}: ${m.length} of ${expected.length} missing, e.g. ${m.slice(0, 3).join(' | ')}`,
      );
    });
    await sleep(1000);
    await agent.stop();
    const got = records();
    let dup = 0;
    for (const l of expected) dup += got.get(l)! - 1;
    console.log(
      `SIGKILL audit rotation run: ${expected.length} records in ${groups * per} events, ${rotations} rotations, 3 kills: 0 missing, ${dup} duplicate records`,
    );
    assert.equal(missing().length, 0);
  });
});

describe('guard-agent while guard-helper restarts', () => {
  let env: AgentEnv;
  before(async () => {
    env = await setupAgentEnv();
  });
  after(async () => {
    await teardownAgentEnv(env);
  });

  it('keeps shipping through the descriptors it holds, and picks up a rotation once the helper is back', async () => {
    const path = env.sb.path('logs/app.log');
    writeFileSync(path, '', { mode: 0o600 });
    const agent = await AgentProcess.start(env);
    try {
      appendFileSync(path, line('hr', 0) + '\n');
      await until(() => count(env, 'hr', 1).distinct === 1, 15_000, 'the first line');
      const opts = env.helper.opts;
      process.kill(env.helper.pid, 'SIGKILL'); // the helper dies: the agent's descriptors stay valid
      await env.helper.exited;
      appendFileSync(
        path,
        Array.from({ length: 99 }, (_, i) => line('hr', i + 1)).join('\n') + '\n',
      );
      await until(
        () => count(env, 'hr', 100).distinct === 100,
        15_000,
        'lines written while the helper is down',
      );
      env.helper = await Helper.start(opts);
      renameSync(path, env.sb.path('logs/app.log.1'));
      writeFileSync(path, '', { mode: 0o600 });
      appendFileSync(
        path,
        Array.from({ length: 100 }, (_, i) => line('hr', i + 100)).join('\n') + '\n',
      );
      await until(
        () => count(env, 'hr', 200).distinct === 200,
        20_000,
        'lines of the new file after the helper came back',
      );
      const status = await readStatus(env);
      assert.equal(status.helper.connected, true, 'reconnected');
      assert.equal(count(env, 'hr', 200).received, 200, 'no duplicates');
    } finally {
      await agent.stop();
    }
  });
});
