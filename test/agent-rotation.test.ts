// Nothing lost through rotation, restarts and outages (#19): the real helper as root, the real agent
// as a test user, the real logrotate rotating files a daemon (test/fixtures/seq-writer.cjs) writes
// numbered lines to, and a receiver that counts every sequence number: missing and duplicated lines
// are counted exactly.
import assert from 'node:assert/strict';
import {
  appendFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import {
  AgentProcess,
  readStatus,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';
import { run, sleep, start } from './lib/proc';
import { repoRoot } from './lib/sandbox';

const line = (name: string, i: number) =>
  `2026-11-24T09:05:01.123456+00:00 testhost app[4242]: ${name} line ${i}`;

/** Exact counts of one run's lines at the receiver, by sequence number. */
function tally(env: AgentEnv, name: string, total: number) {
  const seen = new Uint32Array(total);
  const re = new RegExp(` ${name} line (\\d+)$`);
  let stray = 0;
  for (const e of env.receiver.events) {
    const m = re.exec(e.message);
    if (!m) continue;
    const i = Number(m[1]);
    if (i < total) seen[i]!++;
    else stray++;
  }
  let missing = 0;
  let duplicates = stray;
  const missingIds: number[] = [];
  for (let i = 0; i < total; i++) {
    if (seen[i] === 0) {
      missing++;
      missingIds.push(i);
    } else duplicates += seen[i]! - 1;
  }
  return { missing, duplicates, missingIds };
}

const describeTally = (t: ReturnType<typeof tally>) =>
  `${t.missing} missing (e.g. ${t.missingIds.slice(0, 10).join(',')}), ${t.duplicates} duplicates`;

async function allArrive(env: AgentEnv, name: string, total: number, ms: number): Promise<void> {
  await until(() => tally(env, name, total).missing === 0, ms, `every ${name} line`).catch(
    (e: Error) => {
      const t = tally(env, name, total);
      const first = t.missingIds[0]!;
      const near = env.receiver.events
        .filter((ev) => {
          const m = new RegExp(` ${name} line (\\d+)$`).exec(ev.message);
          return m && Math.abs(Number(m[1]) - first) <= 1;
        })
        .map((ev) => `${ev.message.slice(-20)} ${ev.id}`);
      const ids = new Map<number, string[]>();
      for (const ev of env.receiver.events) {
        const m = new RegExp(` ${name} line (\\d+)$`).exec(ev.message);
        if (m) ids.set(Number(m[1]), [...(ids.get(Number(m[1])) ?? []), ev.id]);
      }
      const dups = [...ids].filter(([, v]) => v.length > 1);
      const sample = [0, 1, 2, Math.floor(dups.length / 2), dups.length - 1]
        .map((k) => dups[k])
        .filter((d) => d !== undefined)
        .map(([i, v]) => `${i}: ${v.join(' ')}`);
      const holders = readdirSync(env.logs).filter((f) => {
        let text = readFileSync(join(env.logs, f));
        if (f.endsWith('.gz')) text = gunzipSync(text);
        return text.includes(` ${name} line ${first}\n`);
      });
      throw new Error(
        `${e.message}: ${describeTally(t)}; around the first: ${near.join(' | ')}; it is in ${holders.join(', ') || 'no file'}; duplicated: ${sample.join(' | ')}`,
      );
    },
  );
  await sleep(1500); // a duplicate still in flight lands now
}

/** A logging daemon: numbered lines at a steady rate, reopening its file on SIGHUP. */
class Writer {
  readonly done: Promise<void>;
  private constructor(
    readonly pid: number,
    done: Promise<void>,
  ) {
    this.done = done;
  }
  static async start(path: string, name: string, from: number, to: number, rate: number) {
    const p = start(process.execPath, [
      join(repoRoot, 'test/fixtures/seq-writer.cjs'),
      path,
      name,
      String(from),
      String(to),
      String(rate),
    ]);
    let out = '';
    const ready = new Promise<void>((resolve) =>
      p.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('ready')) resolve();
      }),
    );
    const done = new Promise<void>((resolve, reject) => {
      p.stdout!.on('data', () => {
        if (out.includes('done')) resolve();
      });
      p.once('exit', (code, signal) =>
        reject(new Error(`writer exited ${code ?? signal}: ${out}`)),
      );
    });
    await ready;
    return new Writer(p.pid!, done);
  }
}

/** A logrotate config for one file (root-owned, as logrotate wants), and running it. */
function logrotateConf(env: AgentEnv, name: string, file: string, directives: string[]): string {
  return env.sb.writeConfig(
    `etc/logrotate-${name}.conf`,
    `${file} {\n  missingok\n  rotate 1000\n${directives.map((d) => `  ${d}\n`).join('')}}\n`,
  );
}
async function logrotate(env: AgentEnv, conf: string): Promise<void> {
  const r = await run('logrotate', ['-f', '-s', env.sb.path('logrotate.state'), conf], {
    timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`logrotate failed (${r.code}): ${r.stderr}`);
}
/** postrotate: the writer reopens its file, and logrotate goes on (to compress) only once it has. */
const hup = (w: Writer, file: string) => [
  'postrotate',
  `  n=$(cat ${file}.reopened 2>/dev/null); kill -HUP ${w.pid} 2>/dev/null || exit 0`,
  `  for i in $(seq 500); do [ "$(cat ${file}.reopened 2>/dev/null)" != "$n" ] && break; sleep 0.01; done`,
  'endscript',
];

/** Rotates `conf` every `everyMs` until `stop` resolves; returns how many rotations ran. */
async function rotateWhile(
  env: AgentEnv,
  conf: string,
  everyMs: number,
  stop: Promise<void>,
): Promise<number> {
  let done = false;
  void stop.then(
    () => (done = true),
    () => (done = true),
  );
  let n = 0;
  for (let next = Date.now() + everyMs; !done; next += everyMs) {
    await sleep(Math.max(0, next - Date.now()));
    await logrotate(env, conf);
    n++;
  }
  await stop;
  return n;
}

function writeLines(path: string, name: string, from: number, to: number): void {
  let s = '';
  for (let i = from; i < to; i++) s += line(name, i) + '\n';
  appendFileSync(path, s, { mode: 0o600 });
}

const rotatedFiles = (env: AgentEnv, base: string) =>
  readdirSync(env.logs).filter(
    (f) => (f.startsWith(`${base}.`) || f.startsWith(`${base}-`)) && !f.endsWith('.reopened'),
  );

describe('fast rotation by logrotate: 5 runs of 200,000 lines at 25,000 lines/s, rotated every 200 ms', () => {
  let env: AgentEnv;
  let agent: AgentProcess;
  before(async () => {
    env = await setupAgentEnv();
    agent = await AgentProcess.start(env);
  });
  after(async () => {
    if (process.env.GUARD_DEBUG_LOG)
      writeFileSync(
        process.env.GUARD_DEBUG_LOG,
        agent.lines.map((l) => JSON.stringify(l)).join('\n') + '\n' + agent.stderr,
      );
    await agent?.stop();
    await teardownAgentEnv(env);
  });

  const variants: [string, string[]][] = [
    ['create', ['create 0600 root root']],
    ['compress + delaycompress', ['create 0600 root root', 'compress', 'delaycompress']],
    ['compress, no delaycompress', ['create 0600 root root', 'compress']],
    ['create', ['create 0600 root root']],
    ['compress, no delaycompress', ['create 0600 root root', 'compress']],
  ];
  variants.forEach(([kind, directives], k) => {
    it(`run ${k + 1} (${kind}): 0 missing, 0 duplicates`, async () => {
      const name = `fast${k}`;
      const file = join(env.logs, `${name}.log`);
      const total = 200_000;
      const w = await Writer.start(file, name, 0, total, 25_000);
      const conf = logrotateConf(env, name, file, [...directives, ...hup(w, file)]);
      const rotations = await rotateWhile(env, conf, 200, w.done);
      await allArrive(env, name, total, 90_000);
      const t = tally(env, name, total);
      console.log(
        `fast rotation run ${k + 1} (${kind}): ${rotations} rotations, ${rotatedFiles(env, `${name}.log`).length} generations on disk; ${describeTally(t)}`,
      );
      assert.equal(t.missing, 0);
      assert.equal(t.duplicates, 0);
    });
  });

  it('status counts the rotations and recovered generations', async () => {
    const st = await readStatus(env);
    const rot = st.sources[0].rotation;
    assert.ok(rot.rotations > 0, `rotations ${rot.rotations}`);
    assert.equal(rot.unrecoverableRanges, 0);
    console.log(
      `status: ${rot.rotations} rotations seen, ${rot.recoveredGenerations} generations recovered`,
    );
  });
});

describe('kill -9 three times while the sink is down for 20 s and logrotate compresses every second', () => {
  let env: AgentEnv;
  before(async () => {
    env = await setupAgentEnv();
  });
  after(async () => {
    await teardownAgentEnv(env);
  });

  it('0 missing, duplicates at most one batch per kill', async () => {
    const name = 'outage';
    const file = join(env.logs, 'app.log');
    const total = 150_000;
    writeFileSync(file, '', { mode: 0o600 });
    let agent = await AgentProcess.start(env);
    await env.receiver.down();
    const w = await Writer.start(file, name, 0, total, 7_500);
    const conf = logrotateConf(env, name, file, [
      'create 0600 root root',
      'compress',
      ...hup(w, file),
    ]);
    const rotating = rotateWhile(env, conf, 1000, w.done);
    for (let k = 0; k < 3; k++) {
      await sleep(5000);
      process.kill(agent.pid, 'SIGKILL');
      await agent.exited;
      agent = await AgentProcess.start(env);
    }
    const rotations = await rotating;
    await env.receiver.up();
    try {
      await allArrive(env, name, total, 120_000);
      const t = tally(env, name, total);
      console.log(
        `outage + 3 kills: ${rotations} rotations (compressed), ${rotatedFiles(env, 'app.log').length} generations; ${describeTally(t)}`,
      );
      assert.equal(t.missing, 0);
      assert.ok(t.duplicates <= 3 * 1000, `${t.duplicates} duplicates for 3 kills`);
    } finally {
      await agent.stop();
    }
  });
});

describe('rotations while the agent is stopped', () => {
  let env: AgentEnv;
  before(async () => {
    env = await setupAgentEnv();
  });
  after(async () => {
    await teardownAgentEnv(env);
  });

  it('graceful stop, 5 rotations (compress + delaycompress) with lines between, start: 0 missing, 0 duplicates', async () => {
    const name = 'stopped';
    const file = join(env.logs, 'app.log');
    writeLines(file, name, 0, 1000);
    let agent = await AgentProcess.start(env);
    await allArrive(env, name, 1000, 20_000);
    writeLines(file, name, 1000, 1500); // read or not when the stop comes: either way
    await agent.stop();
    const conf = logrotateConf(env, name, file, [
      'create 0600 root root',
      'compress',
      'delaycompress',
    ]);
    let n = 1500;
    for (let r = 0; r < 5; r++) {
      writeLines(file, name, n, n + 1000);
      n += 1000;
      await logrotate(env, conf);
    }
    writeLines(file, name, n, n + 1000);
    n += 1000;
    assert.deepEqual(
      rotatedFiles(env, 'app.log').sort(),
      ['app.log.1', 'app.log.2.gz', 'app.log.3.gz', 'app.log.4.gz', 'app.log.5.gz'],
      'the generations logrotate made',
    );
    agent = await AgentProcess.start(env);
    try {
      await allArrive(env, name, n, 30_000);
      const t = tally(env, name, n);
      assert.equal(t.missing, 0, describeTally(t));
      assert.equal(t.duplicates, 0, describeTally(t));
      const st = await readStatus(env);
      assert.ok(st.sources[0].rotation.recoveredGenerations >= 5, 'recovered generations counted');
    } finally {
      await agent.stop();
    }
  });

  it('dateext names and every supported compressor: a checkpointed generation finished, a never-seen one shipped whole', async () => {
    const compressors: [string, string[]][] = [
      ['gz', []],
      ['xz', ['compresscmd /usr/bin/xz', 'uncompresscmd /usr/bin/unxz', 'compressext .xz']],
      ['bz2', ['compresscmd /usr/bin/bzip2', 'uncompresscmd /usr/bin/bunzip2', 'compressext .bz2']],
      [
        'zst',
        [
          'compresscmd /usr/bin/zstd',
          'uncompresscmd /usr/bin/unzstd',
          'compressext .zst',
          'compressoptions -q',
        ],
      ],
      [
        'lz4',
        [
          'compresscmd /usr/bin/lz4',
          'uncompresscmd /usr/bin/lz4',
          'compressext .lz4',
          'compressoptions -q',
        ],
      ],
    ];
    let agent = await AgentProcess.start(env);
    const confs: string[] = [];
    for (const [ext, directives] of compressors) {
      const file = join(env.logs, `date-${ext}.log`);
      writeLines(file, `date${ext}`, 0, 1000);
      confs.push(
        logrotateConf(env, `date-${ext}`, file, [
          'create 0600 root root',
          'compress',
          'dateext',
          'dateformat -%Y%m%d-%s',
          ...directives,
        ]),
      );
    }
    await until(
      () => compressors.every(([ext]) => tally(env, `date${ext}`, 1000).missing === 0),
      20_000,
      'the first 1000 lines of each file',
    );
    await agent.stop();
    for (const [k, [ext]] of compressors.entries()) {
      const file = join(env.logs, `date-${ext}.log`);
      writeLines(file, `date${ext}`, 1000, 2000); // after the checkpoint: finished from the generation
      await logrotate(env, confs[k]!);
      writeLines(file, `date${ext}`, 2000, 3000); // never seen as the live file: shipped whole
    }
    await sleep(1100); // dateformat has seconds: the second rotation gets a name of its own
    for (const [k, [ext]] of compressors.entries()) {
      await logrotate(env, confs[k]!);
      writeLines(join(env.logs, `date-${ext}.log`), `date${ext}`, 3000, 3500);
    }
    for (const [ext] of compressors) {
      const gens = rotatedFiles(env, `date-${ext}.log`);
      assert.equal(gens.length, 2, `two generations: ${gens.join(', ')}`);
      assert.ok(
        gens.every((g) => /-\d{8}-\d+\.[a-z0-9]+$/.test(g) && g.endsWith(`.${ext}`)),
        gens.join(', '),
      );
    }
    agent = await AgentProcess.start(env);
    try {
      await until(
        () => compressors.every(([ext]) => tally(env, `date${ext}`, 3500).missing === 0),
        30_000,
        'every line of each file',
      ).catch(() => undefined); // the counts below say which
      await sleep(1500);
      for (const [ext] of compressors) {
        const t = tally(env, `date${ext}`, 3500);
        assert.equal(t.missing, 0, `${ext}: ${describeTally(t)}`);
        assert.equal(t.duplicates, 0, `${ext}: ${describeTally(t)}`);
      }
    } finally {
      await agent.stop();
    }
  });
});

describe('history that predates guard', () => {
  let env: AgentEnv;
  before(async () => {
    env = await setupAgentEnv();
  });
  after(async () => {
    await teardownAgentEnv(env);
  });

  it('generations that exist when the source is first tracked are not shipped, also after restarts and rotations; later ones are', async () => {
    const file = join(env.logs, 'app.log');
    writeLines(`${file}.2`, 'hist', 0, 500);
    await run('gzip', [`${file}.2`]);
    writeLines(`${file}.1`, 'hist', 500, 1000);
    writeLines(file, 'live', 0, 1000);
    let agent = await AgentProcess.start(env);
    await allArrive(env, 'live', 1000, 20_000);
    let st = await readStatus(env);
    assert.equal(st.sources[0].rotation.historyGenerations, 2);
    await agent.stop();
    // rotated while stopped: the history moves to .2.gz and .3.gz, the live file becomes .1
    const conf = logrotateConf(env, 'hist', file, [
      'create 0600 root root',
      'compress',
      'delaycompress',
    ]);
    writeLines(file, 'live', 1000, 1500);
    await logrotate(env, conf);
    writeLines(file, 'live', 1500, 2000);
    agent = await AgentProcess.start(env);
    try {
      await allArrive(env, 'live', 2000, 20_000);
      const t = tally(env, 'live', 2000);
      assert.equal(t.missing, 0, describeTally(t));
      assert.equal(t.duplicates, 0, describeTally(t));
      assert.equal(tally(env, 'hist', 1000).missing, 1000, 'no line of the history shipped');
      assert.deepEqual(rotatedFiles(env, 'app.log').sort(), [
        'app.log.1',
        'app.log.2.gz',
        'app.log.3.gz',
      ]);
      st = await readStatus(env);
      assert.ok(st.sources[0].rotation.trackedSince, 'the boundary is in the status');
    } finally {
      await agent.stop();
    }
  });
});

describe('start_at = end (the default) on the first run, and a rotation before any restart', () => {
  let env: AgentEnv;
  before(async () => {
    env = await setupAgentEnv({
      sources: (e) =>
        ['[source.app]', 'type = file', `paths = ${e.logs}/*.log`, 'parser = syslog', ''].join(
          '\n',
        ),
    });
  });
  after(async () => {
    await teardownAgentEnv(env);
  });

  it('the history is skipped; the file that replaces it is read from its first line', async () => {
    // The first listing's files start at their end; a file that later takes the same path (a
    // rename rotation weeks after the install, before any restart) is new and starts at 0.
    const file = join(env.logs, 'app.log');
    writeLines(file, 'hist', 0, 100);
    const agent = await AgentProcess.start(env);
    try {
      await agent.waitFor((l) => l.msg === 'tailing file');
      writeLines(file, 'live', 0, 10);
      await allArrive(env, 'live', 10, 15_000);
      renameSync(file, `${file}.1`);
      writeLines(file, 'live', 10, 110); // the daemon reopens its log and writes at once
      await sleep(1000);
      writeLines(file, 'live', 110, 120);
      await allArrive(env, 'live', 120, 20_000);
      const t = tally(env, 'live', 120);
      assert.equal(t.missing, 0, describeTally(t));
      assert.equal(t.duplicates, 0, describeTally(t));
      assert.equal(
        tally(env, 'hist', 100).missing,
        100,
        'the history before the start: not shipped',
      );
    } finally {
      await agent.stop();
    }
  });
});

describe('a quiet file rotated while reads are paused', () => {
  let env: AgentEnv;
  before(async () => {
    env = await setupAgentEnv({ agentKeys: ['max_buffer_bytes = 65536'] });
  });
  after(async () => {
    await teardownAgentEnv(env);
  });

  it('is not closed unread: its lines arrive after the sink is back (0 missing, 0 duplicates)', async () => {
    const name = 'quiet';
    const file = join(env.logs, 'app.log');
    writeFileSync(file, '', { mode: 0o600 });
    const agent = await AgentProcess.start(env);
    try {
      await env.receiver.down();
      writeLines(file, name, 0, 5000); // far over max_buffer_bytes: reads pause
      await until(async () => (await readStatus(env)).agent.paused === true, 15_000, 'paused');
      renameSync(file, `${file}.1`);
      writeFileSync(file, '', { mode: 0o600 });
      const fresh = statSync(file).ino;
      await agent.waitFor((l) => l.msg === 'tailing file' && l.ino === String(fresh), 10_000);
      writeLines(file, name, 5000, 6000); // into the new file, which the agent saw empty
      await sleep(500);
      renameSync(`${file}.1`, `${file}.2`);
      renameSync(file, `${file}.1`);
      writeFileSync(file, '', { mode: 0o600 });
      await sleep(8000); // longer than a rotated file's quiet period
      await env.receiver.up();
      await allArrive(env, name, 6000, 60_000);
      const t = tally(env, name, 6000);
      assert.equal(t.missing, 0, describeTally(t));
      assert.equal(t.duplicates, 0, describeTally(t));
    } finally {
      await agent.stop();
    }
  });
});

describe('an inode reused by a new file while the agent is stopped', () => {
  let env: AgentEnv;
  before(async () => {
    env = await setupAgentEnv();
  });
  after(async () => {
    await teardownAgentEnv(env);
  });

  it('is not resumed at the old file’s offset: 0 missing, 0 duplicates', async () => {
    const name = 'reuse';
    const file = join(env.logs, 'app.log');
    writeFileSync(file, '', { mode: 0o600 });
    let agent = await AgentProcess.start(env);
    await agent.waitFor((l) => l.msg === 'tailing file', 10_000); // opened while empty
    writeLines(file, name, 0, 1000);
    await allArrive(env, name, 1000, 20_000);
    await agent.stop();
    const ino = statSync(file).ino;
    renameSync(file, `${file}.1`);
    await run('gzip', [`${file}.1`]); // the old inode is freed
    // Force the reuse: ext4 hands out the lowest free inode of the directory's group; files that
    // take other inodes are kept until the new app.log has the old one.
    const spare: string[] = [];
    for (let i = 0; i < 2000 && !existsSync(file); i++) {
      const p = join(env.logs, `spare-${i}`);
      writeFileSync(p, '', { mode: 0o600 });
      if (statSync(p).ino === ino) renameSync(p, file);
      else spare.push(p);
    }
    for (const p of spare) unlinkSync(p);
    assert.ok(existsSync(file), `no new file got inode ${ino} (filesystem does not reuse inodes?)`);
    assert.equal(statSync(file).ino, ino, 'the new app.log has the old inode');
    writeLines(file, name, 1000, 3000);
    agent = await AgentProcess.start(env);
    try {
      await allArrive(env, name, 3000, 30_000);
      const t = tally(env, name, 3000);
      assert.equal(t.missing, 0, describeTally(t));
      assert.equal(t.duplicates, 0, describeTally(t));
      const opened = agent.lines.find(
        (l) => l.msg === 'tailing file' && String(l.path).endsWith('/app.log'),
      );
      assert.equal(opened?.resumed, false, 'the old checkpoint was not taken for the new file');
    } finally {
      await agent.stop();
    }
  });
});

describe('copytruncate while the agent is behind (reads paused)', () => {
  let env: AgentEnv;
  before(async () => {
    env = await setupAgentEnv({ agentKeys: ['max_buffer_bytes = 65536'] });
  });
  after(async () => {
    await teardownAgentEnv(env);
  });

  it('misses only lines written between logrotate’s copy and its truncation, and logs each truncation', async () => {
    const name = 'ct';
    const file = join(env.logs, 'app.log');
    const total = 40_000;
    writeFileSync(file, '', { mode: 0o600 });
    const agent = await AgentProcess.start(env);
    try {
      await env.receiver.down();
      const w = await Writer.start(file, name, 0, total, 5_000);
      const conf = logrotateConf(env, name, file, ['copytruncate']);
      const rotations = await rotateWhile(env, conf, 1500, w.done);
      await env.receiver.up();
      await until(
        async () => {
          const st = await readStatus(env);
          return st.sources[0].files.every(
            (f: { state: string; lagBytes?: number }) => f.state !== 'waiting' && f.lagBytes === 0,
          );
        },
        60_000,
        'caught up',
      );
      await sleep(7000); // rotated copies finish after their quiet period
      // Every line still in a file on disk must have arrived: the lost ones are in no file.
      const onDisk = new Set<number>();
      for (const f of [...rotatedFiles(env, 'app.log'), 'app.log']) {
        for (const l of readFileSync(join(env.logs, f), 'utf8').split('\n')) {
          const m = / line (\d+)$/.exec(l);
          if (m) onDisk.add(Number(m[1]));
        }
      }
      const t = tally(env, name, total);
      const lostOnDisk = t.missingIds.filter((i) => onDisk.has(i));
      const ranges = t.missingIds.filter((i, k) => k === 0 || t.missingIds[k - 1] !== i - 1).length;
      const truncations = agent.lines.filter((l) => l.msg?.toString().startsWith('file truncated'));
      console.log(
        `copytruncate behind: ${rotations} rotations, ${truncations.length} truncations logged; ${describeTally(t)} in ${ranges} range(s), ${lostOnDisk.length} of them still on disk`,
      );
      assert.equal(
        lostOnDisk.length,
        0,
        `lines missing that are still on disk: ${lostOnDisk.slice(0, 10).join(',')}`,
      );
      assert.equal(truncations.length, rotations, 'one log line per truncation');
      const windows = agent.lines.filter(
        (l) =>
          l.msg?.toString().startsWith('copytruncate window') ||
          String(l.why).startsWith('copytruncate:'),
      );
      assert.equal(windows.length, rotations, 'each copy/truncate window logged');
      assert.ok(
        ranges <= rotations,
        `${ranges} missing ranges for ${rotations} copy/truncate windows`,
      );
      assert.equal(t.duplicates, 0, describeTally(t));
      const st = await readStatus(env);
      assert.equal(st.sources[0].rotation.truncations, rotations);
      assert.equal(st.sources[0].rotation.copytruncateWindows, rotations);
    } finally {
      await agent.stop();
    }
  });
});
