// The event path's races (#20): the real helper's inotify watch, the real agent under a small
// descriptor bound (max_open_files = 16 for 150 files: nearly every file is closed while idle,
// "parked", and reopened through the helper when an event names it). Appends race renames and
// logrotate-style shifts (NAME.1 → NAME.2, NAME → NAME.1, a line written to the old file after the
// rename, then the new NAME) at random moments, so events land while files are parked, being
// reopened, being checked or being read. Then the agent is stopped (SIGSTOP) while more events are
// made than the kernel queues (IN_Q_OVERFLOW): the events lost must lose no line. Every line
// carries a sequence number; the receiver's events are counted by it: 0 missing, 0 duplicates.
import assert from 'node:assert/strict';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { after, describe, it } from 'node:test';
import {
  AgentProcess,
  readStatus,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';
import { sleep } from './lib/proc';

const FILES = 150;
const RESCAN_MS = 10_000;

class Corpus {
  next = 0;
  /** The file each line went to, by sequence number (what a failure names). */
  readonly where: string[] = [];
  line(path: string): string {
    this.where.push(path);
    return `seq ${this.next++} of ${path}\n`;
  }
  write(path: string, n = 1): void {
    let text = '';
    for (let i = 0; i < n; i++) text += this.line(path);
    appendFileSync(path, text);
  }
}

function tally(env: AgentEnv, total: number): { missing: number[]; duplicates: number } {
  const seen = new Uint16Array(total);
  let duplicates = 0;
  for (const e of env.receiver.events) {
    const m = /^seq (\d+) /.exec(e.message);
    if (!m) continue;
    const i = Number(m[1]);
    if (i >= total || seen[i]! > 0) duplicates++;
    else seen[i] = 1;
  }
  const missing: number[] = [];
  for (let i = 0; i < total; i++) if (seen[i] === 0) missing.push(i);
  return { missing, duplicates };
}

/** A deterministic pseudo-random sequence (the same races every run for a given seed). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** logrotate by hand (no generation removed: a line rotated away unread would be gone for any
 *  reader): NAME.k → NAME.k+1, NAME → NAME.1; the writer, still holding the old file, adds a line
 *  to it, then opens NAME anew. */
const generations = new Map<string, number>();
function rotate(c: Corpus, p: string): void {
  const n = generations.get(p) ?? 0;
  for (let k = n; k >= 1; k--) renameSync(`${p}.${k}`, `${p}.${k + 1}`);
  generations.set(p, n + 1);
  renameSync(p, `${p}.1`);
  c.write(`${p}.1`);
  c.write(p);
}

describe('event path: appends racing renames while files are parked', { timeout: 600_000 }, () => {
  let env: AgentEnv | undefined;
  let agent: AgentProcess | undefined;
  after(async () => {
    if (agent && (agent as { stopped?: boolean }).stopped !== true)
      try {
        process.kill(agent.pid, 'SIGCONT');
      } catch {
        /* gone */
      }
    await agent?.stop();
    await teardownAgentEnv(env);
  });

  it('every line once: appends racing renames, then an overflowed queue', async () => {
    env = await setupAgentEnv({
      agentKeys: [
        'max_open_files = 16',
        'close_idle_after_ms = 1000',
        `watch_rescan_interval_ms = ${RESCAN_MS}`,
      ],
      sources: (e) =>
        [
          '[source.race]',
          'type = file',
          `paths = ${e.logs}/r/*.log`,
          'parser = plain',
          'start_at = beginning',
          '',
        ].join('\n'),
    });
    const dir = `${env.logs}/r`;
    mkdirSync(dir, { mode: 0o700 });
    const c = new Corpus();
    const paths = Array.from({ length: FILES }, (_, i) => `${dir}/f${i}.log`);
    for (const p of paths) c.write(p);
    agent = new AgentProcess(env);
    await agent.waitFor((l) => l.msg === 'guard-agent running', 60_000);
    const e = env;
    const arrive = async (what: string, ms: number): Promise<number> => {
      const t0 = Date.now();
      await until(() => tally(e, c.next).missing.length === 0, ms, what).catch((err: Error) => {
        const t = tally(e, c.next);
        writeFileSync(
          `/tmp/agent-file-events-${process.pid}.log`,
          agent!.lines.map((l) => JSON.stringify(l)).join('\n'),
        );
        throw new Error(
          `${err.message}: ${t.missing.length} of ${c.next} missing (${t.missing
            .slice(0, 12)
            .map((i) => `${i} in ${c.where[i]}`)
            .join(', ')}), ` +
            `${t.duplicates} duplicates; agent log in /tmp/agent-file-events-${process.pid}.log`,
        );
      });
      return Date.now() - t0;
    };
    await arrive('the first line of every file', 60_000);
    await sleep(2500); // idle past close_idle_after_ms: files parked

    // 1. Races: appends and rotations at random moments, in bursts and trickles.
    const r = rng(20);
    for (let round = 0; round < 12; round++) {
      for (let k = 0; k < 40; k++) {
        const p = paths[Math.floor(r() * FILES)]!;
        if (r() < 0.3) rotate(c, p);
        else c.write(p, 1 + Math.floor(r() * 3));
        if (r() < 0.2) await sleep(Math.floor(r() * 30));
      }
      await sleep(Math.floor(r() * (round % 3 === 0 ? 1500 : 300)));
    }
    const raced = await arrive('the lines written while racing renames', 60_000);

    // 2. An overflowed queue: the agent stopped while more events are made than the kernel keeps.
    const queued = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
    const st0 = await readStatus(e);
    process.kill(agent.pid, 'SIGSTOP');
    try {
      // Alternating files: consecutive identical events are merged by the kernel, these are not.
      for (let n = 0; n <= queued + FILES;) {
        for (const p of paths) {
          c.write(p);
          n++;
        }
      }
      for (let i = 0; i < 20; i++) rotate(c, paths[(i * 7) % FILES]!);
    } finally {
      process.kill(agent.pid, 'SIGCONT');
    }
    const overflowed = await arrive('the lines written while the agent was stopped', 120_000);
    const st1 = await readStatus(e);
    const overflows = (s: any): number => s.sources[0].watch.overflows as number;
    assert.ok(overflows(st1) > overflows(st0), 'the queue overflowed');

    await sleep(1500); // a duplicate still in flight lands now
    const t = tally(e, c.next);
    assert.deepEqual(t.missing, [], 'missing');
    assert.equal(t.duplicates, 0, 'duplicates');
    const lost = agent.lines.filter((l) => l.msg === 'bytes lost: cannot be recovered');
    assert.deepEqual(lost, [], 'no byte range given up');
    const st = await readStatus(e);
    assert.equal(st.sources[0].watch.mode, 'events');
    console.log(
      `${c.next} lines, 0 missing, 0 duplicates; races caught up in ${raced} ms, the overflow in ` +
        `${overflowed} ms (${overflows(st1) - overflows(st0)} overflows)`,
    );
  });
});

/** A fresh agent whose one file (logs/NAME, 5 lines, all shipped) has been closed while idle. */
async function parkedFile(
  made: { env: AgentEnv; agent: AgentProcess }[],
  keys: string[],
  name: string,
) {
  const env = await setupAgentEnv({ agentKeys: ['close_idle_after_ms = 1000', ...keys] });
  const c = new Corpus();
  const path = `${env.logs}/${name}`;
  c.write(path, 5);
  const w = { env, agent: await AgentProcess.start(env) };
  made.push(w);
  await until(() => tally(env, c.next).missing.length === 0, 15_000, `${name}'s lines`);
  await until(
    async () => (await readStatus(env)).sources[0].idleClosed.closed >= 1,
    15_000,
    `${name} closed while idle`,
  );
  return { ...w, c, path, w };
}

describe(
  'a file closed while idle, then removed, replaced or renamed',
  { timeout: 600_000 },
  () => {
    const made: { env: AgentEnv; agent: AgentProcess }[] = [];
    after(async () => {
      for (const { env, agent } of made) {
        await agent.stop();
        await teardownAgentEnv(env);
      }
    });

    it('removed with every line shipped: no loss reported once the agent gives up on it', async () => {
      const { env, agent, c, path } = await parkedFile(made, [], 'c.log');
      unlinkSync(path); // a delete event for a parked file: nothing written since it was read
      // The agent gives up on content it cannot find after 60 s (DETACHED_GIVE_UP_MS) and a scan.
      await until(
        () => agent.lines.some((l) => String(l.msg).startsWith('a file closed while idle is gone')),
        120_000,
        'the give-up, as no loss',
      ).catch((e: Error) => {
        const lost = agent.lines.filter((l) => String(l.msg).includes('lost'));
        throw new Error(`${e.message}; logged instead: ${JSON.stringify(lost).slice(0, 600)}`);
      });
      const st = await readStatus(env);
      assert.equal(st.sources[0].rotation.unrecoverableRanges, 0, 'nothing reported lost');
      assert.deepEqual(tally(env, c.next), { missing: [], duplicates: 0 });
    });

    it("its inode number reused by a new file: the new file's lines under its own path", async () => {
      // Polling: the quick tick lists (and opens) new files before it compares the parked file's
      // path, so b.log, with a.log's old inode number, is met first as "the inode of a parked file".
      const { env, c, path: a } = await parkedFile(made, ['watch = off'], 'a.log');
      const b = `${env.logs}/b.log`;
      const ino = statSync(a).ino;
      unlinkSync(a);
      // ext4 hands a freed inode number out again at once: create files until one gets it.
      const spare: string[] = [];
      for (let i = 0; i < 3000 && !existsSync(b); i++) {
        const p = `${env.logs}/spare${i}`;
        writeFileSync(p, '', { mode: 0o600 });
        if (statSync(p).ino === ino) renameSync(p, b);
        else spare.push(p);
      }
      for (const p of spare) unlinkSync(p);
      assert.ok(
        existsSync(b),
        `no new file got inode ${ino} back: this test needs a file system that reuses them`,
      );
      const first = c.next;
      c.write(b, 20);
      await until(() => tally(env, c.next).missing.length === 0, 20_000, "b.log's lines");
      await sleep(1000);
      const paths = new Set(
        env.receiver.events
          .filter((e) => Number(/^seq (\d+) /.exec(e.message)?.[1]) >= first)
          .map((e) => e.path as string),
      );
      assert.deepEqual([...paths], [b], "b.log's lines under b.log");
      assert.deepEqual(tally(env, c.next), { missing: [], duplicates: 0 });
      const st = await readStatus(env);
      assert.equal(st.sources[0].rotation.truncations, 0, 'no truncation made up');
    });

    it('written to and renamed to a name the glob matches: nothing shipped twice after a crash', async () => {
      // logrotate's `extension .log` with a `*.log` glob: a.log → a-old.log is a new match, not a
      // generation name. One tailer must own the content: a second one under the same checkpoint
      // key was undone when the first gave up on it (60 s), and a crash then re-shipped its lines.
      const { env, c, path: a, w } = await parkedFile(made, [], 'a.log');
      process.kill(w.agent.pid, 'SIGSTOP');
      try {
        c.write(a, 3);
        renameSync(a, `${env.logs}/a-old.log`);
      } finally {
        process.kill(w.agent.pid, 'SIGCONT');
      }
      await until(
        () => tally(env, c.next).missing.length === 0,
        15_000,
        'the lines written before the rename',
      );
      await sleep(70_000); // past the 60 s after which a tailer waiting for its content gives up
      process.kill(w.agent.pid, 'SIGKILL');
      await w.agent.exited;
      w.agent = await AgentProcess.start(env);
      await sleep(5_000);
      assert.deepEqual(tally(env, c.next), { missing: [], duplicates: 0 });
    });
  },
);
