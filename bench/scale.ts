// Runs 18–21 of `npm run bench` (#20, many files): what an idle agent costs, and how long 10,000
// files take to ship, each beside the same with polling forced (`watch = off`, files never closed:
// the agent's behaviour before the directory watch) in the same invocation.
//   18. idle CPU per minute (agent + helper), 5 sources of one file each
//   19. idle CPU per minute, 1,000 files under one glob
//   20. idle CPU per minute, 10,000 files under one glob
//   21. 10,000 files: time until every file's first line is shipped, agent RSS and descriptors
// The sink is the local file sink (no network: what is measured is the sources' cost).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Helper } from '../test/lib/helper';
import { profileLines, summarizeProfile } from './profile';
import { sleep, start } from '../test/lib/proc';
import type { Sandbox } from '../test/lib/sandbox';
import type { TestUser } from '../test/lib/users';

export interface ScaleWorld {
  sb: Sandbox;
  agent: TestUser;
  auditGroup: string;
  /** node options the agent runs with (its unit's). */
  nodeArgs: string[];
  runs: Set<number>;
  /** Seconds each idle measurement lasts (scaled to a minute). */
  idleSeconds: number;
  /** --profile: the agent runs under `node --cpu-prof` (into the sandbox's profiles/), and where
   *  its idle window's CPU goes is printed. */
  profileDir: string | null;
}

export interface ScaleResult {
  run: number;
  what: string;
  mode: 'events' | 'polling (before)';
  files: number;
  /** The first idle window, from 5 s after every first line was shipped. */
  idleCpuSPerMin: IdleCpu;
  /** The window after it. */
  steadyCpuSPerMin: IdleCpu;
  firstLinesSeconds: number | null;
  agentRssMiB: number;
  agentFds: number;
}

/** CPU seconds a minute over an idle window. */
interface IdleCpu {
  agent: number;
  helper: number;
  total: number;
  /** The agent's by thread name (the main thread is `node`). */
  agentThreads: string;
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

function cpuS(pid: number, tid?: string): number {
  try {
    const stat = readFileSync(tid ? `/proc/${pid}/task/${tid}/stat` : `/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** CPU seconds by thread name (/proc/PID/task/TID: comm and stat), summed over threads of a name. */
function cpuByThread(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const s = cpuS(pid, tid);
      if (!Number.isNaN(s)) out.set(name, (out.get(name) ?? 0) + s);
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}

function fds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Lines in the file sink's output (and its rotated files). */
function shipped(out: string): number {
  let n = 0;
  let names: string[];
  try {
    names = readdirSync(out);
  } catch {
    return 0;
  }
  for (const f of names) {
    const b = readFileSync(join(out, f));
    for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  }
  return n;
}

interface Setup {
  name: string;
  /** [source name, glob] */
  sources: [string, string][];
  /** Files to create, each with one line. */
  files: string[];
}

async function measure(
  w: ScaleWorld,
  run: number,
  what: string,
  setup: Setup,
  polling: boolean,
): Promise<ScaleResult> {
  const tag = `${setup.name}-${polling ? 'poll' : 'watch'}`;
  const state = w.sb.mkdir(`state/scale-${tag}`, 0o750, { uid: w.agent.uid, gid: w.agent.gid });
  const s = w.sb.dir;
  const conf = [
    '[agent]',
    `user = ${w.agent.name}`,
    `helper_socket = ${s}/run/helper-${tag}.sock`,
    `status_socket = ${s}/run/agent/${tag}.sock`,
    `state_dir = ${state}`,
    // polling: as the agent was before #20 (every file open, polled, never closed)
    ...(polling ? ['watch = off', 'close_idle_after_ms = 86400000'] : []),
    '',
    '[helper]',
    `audit_group = ${w.auditGroup}`,
    '',
    ...setup.sources.flatMap(([name, glob]) => [
      `[source.${name}]`,
      'type = file',
      `paths = ${glob}`,
      'parser = syslog',
      'start_at = beginning',
      '',
    ]),
    '[sink.out]',
    'type = file',
    `path = ${state}/out/events.ndjson`,
    '',
  ].join('\n');
  const config = w.sb.writeConfig(`etc/guard-${tag}.conf`, conf, 0o640, {
    uid: 0,
    gid: w.agent.gid,
  });
  const helper = await Helper.start({
    helperJs: w.sb.helperJs,
    config,
    socket: w.sb.path(`run/helper-${tag}.sock`),
  });
  const t0 = Date.now();
  const profile = w.profileDir ? `agent-scale-${tag}.cpuprofile` : null;
  const profArgs = profile
    ? ['--cpu-prof', `--cpu-prof-dir=${w.sb.path('profiles')}`, `--cpu-prof-name=${profile}`]
    : [];
  const agent = start(
    process.execPath,
    [...w.nodeArgs, ...profArgs, w.sb.agentJs, '--config', config],
    { user: w.agent },
  );
  const monoUs = () => Number(process.hrtime.bigint() / 1000n);
  const window = { from: 0, to: 0 };
  agent.stdout?.resume();
  agent.stderr?.resume();
  try {
    const deadline = Date.now() + 600_000;
    let firstLines: number | null = null;
    while (Date.now() < deadline) {
      if (agent.exitCode !== null) throw new Error(`guard-agent exited ${agent.exitCode}`);
      if (shipped(join(state, 'out')) >= setup.files.length) {
        firstLines = (Date.now() - t0) / 1000;
        break;
      }
      await sleep(200);
    }
    if (firstLines === null) throw new Error('not every first line was shipped in 10 minutes');
    const rss = rssMiB(agent.pid!);
    const open = fds(agent.pid!);
    await sleep(5000); // settled: checkpoints written, rotated generations looked at
    // Two windows: the first minute after the last line (V8 shrinks the heap the burst grew then:
    // a few full collections, once) and the one after it (what idling costs from then on).
    const measureWindow = async (): Promise<IdleCpu> => {
      const a0 = cpuS(agent.pid!);
      const h0 = cpuS(helper.pid);
      const threads0 = cpuByThread(agent.pid!);
      if (window.from === 0) window.from = monoUs();
      await sleep(w.idleSeconds * 1000);
      window.to = monoUs();
      const perMin = 60 / w.idleSeconds;
      const agentS = (cpuS(agent.pid!) - a0) * perMin;
      const helperS = (cpuS(helper.pid) - h0) * perMin;
      const threads = [...cpuByThread(agent.pid!)]
        .map(([name, t]) => [name, (t - (threads0.get(name) ?? 0)) * perMin] as const)
        .filter(([, t]) => t > 0)
        .sort((a, b) => b[1] - a[1])
        .map(([name, t]) => `${name} ${t.toFixed(2)}`);
      return {
        agent: Math.round(agentS * 1000) / 1000,
        helper: Math.round(helperS * 1000) / 1000,
        total: Math.round((agentS + helperS) * 1000) / 1000,
        agentThreads: threads.join(', ') || 'none',
      };
    };
    const first = await measureWindow();
    const steady = await measureWindow();
    return {
      run,
      what,
      mode: polling ? 'polling (before)' : 'events',
      files: setup.files.length,
      idleCpuSPerMin: first,
      steadyCpuSPerMin: steady,
      firstLinesSeconds: Math.round(firstLines * 10) / 10,
      agentRssMiB: rss,
      agentFds: open,
    };
  } finally {
    agent.kill('SIGTERM');
    await new Promise((r) => (agent.exitCode !== null ? r(null) : agent.once('exit', r)));
    await helper.stop();
    if (profile && window.to > 0) {
      const { top, ms } = summarizeProfile(w.sb.path('profiles', profile), 25, window);
      console.log(
        `\nthe agent's idle window (${ms} ms sampled), ${profile}:\n${profileLines(top)}`,
      );
    }
  }
}

function filesUnder(dir: string, n: number): string[] {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = join(dir, `vhost${i}.log`);
    writeFileSync(p, `2026-12-05T10:00:00.000000+00:00 web nginx[42]: first line of ${p}\n`);
    out.push(p);
  }
  return out;
}

/** Runs 18–21 (those in w.runs); a table's rows and the figures for results-latest.json. */
export async function scaleRuns(
  w: ScaleWorld,
  log: (s: string) => void,
): Promise<{ results: ScaleResult[]; errors: string[] }> {
  const results: ScaleResult[] = [];
  const errors: string[] = [];
  const setups: [number, string, () => Setup][] = [
    [
      18,
      'idle, 5 sources of one file',
      () => {
        const names = ['syslog', 'auth', 'kern', 'dpkg', 'app'];
        const files = names.flatMap((n) => filesUnder(w.sb.path(`logs/scale5/${n}`), 1));
        return {
          name: 'five',
          sources: names.map((n) => [n, w.sb.path(`logs/scale5/${n}/*.log`)]),
          files,
        };
      },
    ],
    [
      19,
      'idle, 1,000 files under one glob',
      () => ({
        name: 'k1',
        sources: [['vhosts', w.sb.path('logs/scale1k/*.log')]],
        files: filesUnder(w.sb.path('logs/scale1k'), 1000),
      }),
    ],
    [
      20,
      'idle, 10,000 files under one glob (and run 21: shipping them)',
      () => ({
        name: 'k10',
        sources: [['vhosts', w.sb.path('logs/scale10k/*.log')]],
        files: filesUnder(w.sb.path('logs/scale10k'), 10_000),
      }),
    ],
  ];
  for (const [run, what, make] of setups) {
    if (!w.runs.has(run) && !(run === 20 && w.runs.has(21))) continue;
    const setup = make();
    for (const polling of [false, true]) {
      const t = Date.now();
      const label = `${run}. ${what}, ${polling ? 'polling forced (before)' : 'directory watch'}`;
      try {
        const r = await measure(w, run, what, setup, polling);
        results.push(r);
        log(`${label} … ${((Date.now() - t) / 1000).toFixed(1)} s`);
      } catch (e) {
        log(`${label} … FAILED`);
        errors.push(`${label}: ${(e as Error).message}`);
      }
    }
    for (const f of setup.files) rmSync(f, { force: true });
  }
  return { results, errors };
}

/** The table of runs 18–21. */
export function scaleTable(results: ScaleResult[]): string[][] {
  const rows = [
    [
      'run',
      'files',
      'mode',
      'idle CPU s/min agent + helper: first minute',
      'then',
      'first lines of all shipped',
      'agent RSS',
      'agent fds',
      'agent s/min by thread: first minute; then',
    ],
  ];
  for (const r of results)
    rows.push([
      String(r.run),
      r.files.toLocaleString('en'),
      r.mode,
      `${r.idleCpuSPerMin.agent} + ${r.idleCpuSPerMin.helper} = ${r.idleCpuSPerMin.total}`,
      `${r.steadyCpuSPerMin.agent} + ${r.steadyCpuSPerMin.helper} = ${r.steadyCpuSPerMin.total}`,
      r.firstLinesSeconds === null ? '-' : `${r.firstLinesSeconds} s`,
      `${r.agentRssMiB} MiB`,
      String(r.agentFds),
      `${r.idleCpuSPerMin.agentThreads}; ${r.steadyCpuSPerMin.agentThreads}`,
    ]);
  return rows;
}

/** #20's targets: idle CPU per minute, agent + helper, on the directory watch. */
export function scaleTargets(
  results: ScaleResult[],
): { target: string; run: string; value: string; met: boolean }[] {
  const out = [];
  for (const r of results) {
    if (r.mode !== 'events') continue;
    const limit = r.files <= 5 ? 0.05 : r.files >= 10_000 ? 0.3 : null;
    if (limit === null) continue;
    const before = results.find((b) => b.run === r.run && b.mode !== 'events');
    out.push({
      target: `idle CPU ≤ ${limit} s/min (agent + helper), ${r.files.toLocaleString('en')} files`,
      run: `${r.run}. ${r.what}`,
      // Met or not by the second window (idling from then on); the first minute after the burst
      // (a one-off: V8 shrinking the heap the burst grew) is shown beside it.
      value:
        `${r.steadyCpuSPerMin.total} s/min, first minute after the last line ${r.idleCpuSPerMin.total}` +
        (before ? ` (polling: ${before.steadyCpuSPerMin.total})` : ''),
      met: r.steadyCpuSPerMin.total <= limit,
    });
  }
  return out;
}
