// Micro-benchmark of the journal addon alone (no helper, no sinks): the files of a private journald
// holding N numbered entries, opened here as root and read start to end with the addon's read(), as
// the agent reads them. For working on packages/journal; `npm run bench -- --runs 15,16` is the
// figure that counts.
//   node --import tsx bench/journal-micro.ts [entries] [rounds]
import { execFileSync } from 'node:child_process';
import { existsSync, openSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PREFILTER_TRIGGERS } from '../packages/agent/src/transforms/redact';
import { CURSOR_STRIDE, journalAddon } from '../packages/journal/src/index';
import { PrivateJournald } from '../test/lib/journald';
import { Sandbox } from '../test/lib/sandbox';

const entries = Number(process.argv[2] ?? 200_000);
const rounds = Number(process.argv[3] ?? 5);
const corpus = `/tmp/guard-journal-micro-${entries}`;

async function makeCorpus(): Promise<void> {
  const sb = new Sandbox();
  try {
    const jd = await PrivateJournald.start(sb, 'journal');
    for (let k = 0; k < entries; k += 50_000)
      await jd.numbered('bench', k, Math.min(entries, k + 50_000));
    await jd.stop();
    execFileSync('cp', ['-a', jd.machineDir, `${corpus}.tmp`]);
    execFileSync('mv', [`${corpus}.tmp`, corpus]);
  } finally {
    sb.cleanup();
  }
}

async function main(): Promise<void> {
  if (!existsSync(corpus)) await makeCorpus();
  const files = readdirSync(corpus)
    .filter((f) => f.endsWith('.journal'))
    .map((f) => join(corpus, f));
  const addon = journalAddon();
  const tail = ',"source":"journal","path":"journal:x","host":"web-01","parser":"journal"}\n';
  let out = Buffer.allocUnsafe(1 << 20);
  const sizes = new Float64Array(1024);
  const meta = new Int32Array(1024 * 3);
  const cursors = Buffer.allocUnsafe(1025 * CURSOR_STRIDE);
  for (let round = 0; round < rounds; round++) {
    const h = addon.open(
      files.map((f) => openSync(f, 'r')),
      tail,
      65536,
      [[], [], [], []],
      process.env.NO_TRIGGERS ? [] : PREFILTER_TRIGGERS,
    );
    addon.seekHead(h);
    const t0 = process.cpuUsage();
    const w0 = process.hrtime.bigint();
    let n = 0;
    let bytes = 0;
    for (;;) {
      const [count, filtered, , need] = addon.read(h, out, sizes, meta, cursors, 1024);
      if (need > 0) {
        out = Buffer.allocUnsafe(need * 2);
        continue;
      }
      if (count + filtered === 0) break;
      n += count;
      for (let k = 0; k < count; k++) bytes += sizes[k]!;
    }
    const cpu = process.cpuUsage(t0);
    const wall = Number(process.hrtime.bigint() - w0) / 1e9;
    addon.close(h);
    const us = (cpu.user + cpu.system) / n;
    console.log(
      `round ${round}: ${n} entries, ${(bytes / n).toFixed(0)} B/event, ${us.toFixed(2)} µs CPU/entry (${(cpu.system / n).toFixed(2)} in the kernel), ${Math.round(n / wall).toLocaleString('en')} entries/s wall`,
    );
  }
}

void main();
