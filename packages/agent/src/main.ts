// guard-agent: runs as the unprivileged user `guard` and does everything the root helper must not:
// tailing through the descriptors the helper passes, parsing, redaction, batching, shipping,
// checkpoints and status.
import type { Server } from 'node:net';
import pino from 'pino';
import { checkConfig } from './config/check';
import { ConfigError, changesNeedingRestart, loadConfig } from './config/load';
import type { AgentConfig } from './config/types';
import type { Sink } from './event';
import { Pipeline } from './pipeline';
import { createSink } from './sinks/index';
import { closeStrayDescriptors } from './sources/descriptors';
import { HelperLink } from './sources/helper-link';
import { CheckpointStore } from './state/checkpoints';
import { MetricsExport } from './status/metrics-export';
import { buildStatus, serveStatus } from './status/status';

// First of all: descriptors inherited from whatever started us (logged once the logger exists).
const strays = closeStrayDescriptors();

const argv = process.argv.slice(2);
/** The value after `name`, when there is one that is not itself an option. */
const flag = (name: string): string | undefined => {
  const v = argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined;
  return v !== undefined && !v.startsWith('--') ? v : undefined;
};

if (argv.includes('--help')) {
  process.stdout.write('usage: guard-agent [--config FILE] [--check-config [FILE]]\n');
  process.exit(0);
}
// `--check-config FILE` checks FILE (as docs/configuration.md shows it); `--check-config` alone, the
// file --config names, else the default. A file that cannot be read fails the check.
const configPath = flag('--check-config') ?? flag('--config') ?? '/etc/guard/guard.conf';
if (argv.includes('--check-config')) {
  const r = checkConfig(configPath);
  for (const line of r.lines) (r.ok ? process.stdout : process.stderr).write(line + '\n');
  process.exit(r.ok ? 0 : 1);
}

const log = pino({
  base: { pid: process.pid, name: 'guard-agent' },
  timestamp: pino.stdTimeFunctions.isoTime,
});
if (strays.length > 0)
  log.warn({ descriptors: strays }, 'closed descriptors inherited from whatever started the agent');

function load(): AgentConfig {
  try {
    return loadConfig(configPath);
  } catch (e) {
    for (const p of e instanceof ConfigError ? e.problems : [(e as Error).message])
      log.fatal({ config: configPath }, p);
    throw e;
  }
}

// The agent exists to not be root: refuse rather than quietly run the whole parser stack as root.
if (process.getuid?.() === 0) {
  log.fatal('guard-agent must not run as root: run it as the user named in [agent] user (guard)');
  process.exit(1);
}

let cfg: AgentConfig;
try {
  cfg = load();
} catch {
  process.exit(78);
}
log.level = cfg.agent.logLevel;

interface Running {
  pipeline: Pipeline;
  sinks: Sink[];
  link: HelperLink;
  store: CheckpointStore;
}
const startedAt = new Date();
let running: Running;
let statusServer: Server | null = null;
let metrics: MetricsExport | null = null;

async function startAll(c: AgentConfig): Promise<Running> {
  const store = new CheckpointStore(c.agent.stateDir);
  const firstStart = !store.existed;
  if (firstStart) store.markStarted();
  const sinks = new Map<string, Sink>(
    c.sinks.map((s) => [
      s.name,
      createSink(s, { stateDir: c.agent.stateDir, logger: log, hostname: c.agent.hostname }),
    ]),
  );
  const link = new HelperLink(c.agent.helperSocket, log);
  const pipeline = new Pipeline(c, sinks, link, store, log, firstStart);
  await pipeline.start();
  log.info(
    { sources: c.sources.map((s) => s.name), sinks: c.sinks.map((s) => s.name), firstStart },
    'guard-agent running',
  );
  return { pipeline, sinks: [...sinks.values()], link, store };
}

async function stopAll(r: Running, graceMs: number): Promise<void> {
  await r.pipeline.stop(graceMs);
  r.store.close();
  await Promise.all(r.sinks.map((s) => s.close()));
  r.link.close();
}

const currentStatus = () =>
  buildStatus(running.pipeline, running.link, {
    user: cfg.agent.user,
    startedAt,
    config: configPath,
  });

async function main(): Promise<void> {
  running = await startAll(cfg);
  statusServer = await serveStatus(cfg.agent.statusSocket, currentStatus, log);
  metrics = new MetricsExport(cfg.metrics, currentStatus, log);
  await metrics.start();
}

let busy: Promise<void> = main().catch((e: Error) => {
  log.fatal({ err: e.stack }, 'cannot start');
  process.exit(1);
});

// SIGHUP: re-read the config; stop reading, let sinks deliver what they can, checkpoint, and start
// again from the checkpoints with the new sources and sinks. A bad config keeps the old one running.
process.on('SIGHUP', () => {
  busy = busy.then(async () => {
    let next: AgentConfig;
    try {
      next = load();
    } catch {
      log.error('reload failed: keeping the running configuration');
      return;
    }
    const restart = changesNeedingRestart(cfg, next);
    if (restart.length) {
      log.error(
        { keys: restart },
        'reload refused: these keys change only on a restart; keeping the running configuration',
      );
      return;
    }
    await stopAll(running, 2000);
    await metrics?.stop(false);
    cfg = next;
    log.level = cfg.agent.logLevel;
    running = await startAll(cfg);
    metrics = new MetricsExport(cfg.metrics, currentStatus, log);
    await metrics.start();
    log.info('configuration reloaded');
  });
});

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.once(sig, () => {
    log.info({ signal: sig }, 'stopping: delivering what is queued, then writing checkpoints');
    busy = busy.then(async () => {
      await stopAll(running, 5000);
      await metrics?.stop(true); // the file says guard_up 0 from now on
      statusServer?.close();
      log.info('stopped');
      process.exit(0);
    });
  });
}
