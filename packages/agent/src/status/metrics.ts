// The agent's status as Prometheus metrics (text exposition format 0.0.4), for fleets: the same
// document `guardctl status` reads (status.ts), rendered as counters and gauges — no bookkeeping
// of its own. Written to a file for node_exporter's textfile collector and, when configured,
// served on a local HTTP endpoint (metrics-export.ts). Names: `guard_` prefix, `_total` for
// counters, base units (bytes, seconds); every family has HELP and TYPE. Counters start at 0 when
// the agent starts or reloads (Prometheus' rate() treats that as a reset).
//
// Label values: source and sink names come from the config, but a refused file's path from
// whoever could create a file where a glob matches. They are made visible first (status/visible.ts:
// every control, format and line-separator character becomes a \xHH or \uXXXX escape, as guardctl
// prints them), then escaped as the format requires (backslash and double quote; no newline is
// left): a hostile name can neither end a line nor a label, nor reach a terminal raw.
import { readdirSync, readFileSync } from 'node:fs';
import { version } from '../../package.json';
import type { AgentStatus, FileState } from './status';
import { agentTrouble } from './trouble';
import { visible } from './visible';

type Labels = Record<string, string>;
type Sample = [Labels, number];

/** A label value as the exposition format needs it (see the top of this file). */
export function labelValue(v: string): string {
  return visible(v).replace(/[\\"]/g, (c) => `\\${c}`);
}

function value(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(v);
}

/** Collects families in order; a family without samples is left out (node_exporter drops them). */
class Exposition {
  private readonly out: string[] = [];

  family(name: string, type: 'counter' | 'gauge', help: string, samples: Sample[]): void {
    if (samples.length === 0) return;
    this.out.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    this.out.push(`# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) {
      const l = Object.entries(labels)
        .map(([k, x]) => `${k}="${labelValue(x)}"`)
        .join(',');
      this.out.push(`${name}${l ? `{${l}}` : ''} ${value(v)}`);
    }
  }

  text(): string {
    return this.out.join('\n') + '\n';
  }
}

/** The process's own figures: open descriptors and their limit (/proc/self), resident memory. */
export interface ProcessFigures {
  openFds: number | null;
  maxFds: number | null;
  residentBytes: number;
}

export function processFigures(): ProcessFigures {
  let openFds: number | null = null;
  let maxFds: number | null = null;
  try {
    openFds = readdirSync('/proc/self/fd').length - 1; // less the one readdir itself held open
  } catch {
    /* no /proc: left out */
  }
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) maxFds = Number(m[1]);
  } catch {
    /* no /proc: left out */
  }
  return { openFds, maxFds, residentBytes: process.memoryUsage.rss() };
}

const FILE_STATES: FileState[] = ['flowing', 'idle', 'rotated', 'waiting', 'refused', 'no_match'];

/** The metrics text for one status document. `up` is false only in the file written at a stop. */
export function renderMetrics(s: AgentStatus, proc: ProcessFigures, up = true): string {
  const e = new Exposition();
  const started = Date.parse(s.agent.startedAt) / 1000;
  e.family('guard_up', 'gauge', '1 while the agent runs; 0 in the file it writes when it stops.', [
    [{}, up ? 1 : 0],
  ]);
  e.family('guard_build_info', 'gauge', 'The agent build: its version and Node.js version.', [
    [{ version, node_version: process.versions.node }, 1],
  ]);
  e.family('guard_agent_start_time_seconds', 'gauge', 'When the agent started (Unix time).', [
    [{}, started],
  ]);
  e.family(
    'guard_problems',
    'gauge',
    'Problems the agent sees now (the reasons guardctl status gives for degraded).',
    [[{}, agentTrouble(s).length]],
  );
  e.family('guard_agent_paused', 'gauge', '1 while reading is paused: the sinks are behind.', [
    [{}, s.agent.paused ? 1 : 0],
  ]);
  e.family('guard_agent_queue_bytes', 'gauge', 'Encoded events queued for all sinks.', [
    [{}, s.agent.queuedBytes],
  ]);
  e.family(
    'guard_agent_open_fds',
    'gauge',
    'Descriptors the agent holds open.',
    optional(proc.openFds),
  );
  e.family(
    'guard_agent_max_fds',
    'gauge',
    "The agent's limit of open descriptors.",
    optional(proc.maxFds),
  );
  e.family('guard_agent_resident_memory_bytes', 'gauge', "The agent's resident memory.", [
    [{}, proc.residentBytes],
  ]);
  e.family('guard_helper_connected', 'gauge', '1 while the agent is connected to guard-helper.', [
    [{}, s.helper.connected ? 1 : 0],
  ]);
  e.family(
    'guard_helper_refusals_total',
    'counter',
    'Requests guard-helper refused, by request and code (denied, symlink, not_found, ...).',
    (s.helper.refusals ?? []).map((r) => [{ op: r.op, code: r.code }, r.count]),
  );
  sourceFamilies(e, s);
  sinkFamilies(e, s);
  return e.text();
}

function optional(v: number | null): Sample[] {
  return v === null ? [] : [[{}, v]];
}

function sourceFamilies(e: Exposition, s: AgentStatus): void {
  const src = (x: AgentStatus['sources'][number]) => ({ source: x.name, type: x.type });
  const withTotals = s.sources.filter((x) => x.totals !== undefined);
  const total = (
    name: string,
    help: string,
    pick: (t: NonNullable<AgentStatus['sources'][number]['totals']>) => number,
    only = withTotals,
  ) =>
    e.family(
      name,
      'counter',
      help,
      only.map((x) => [src(x), pick(x.totals!)]),
    );
  total('guard_source_lines_read_total', 'Lines (journal: entries) read.', (t) => t.linesRead);
  total(
    'guard_source_bytes_read_total',
    'Bytes of complete lines read from files (file and audit sources).',
    (t) => t.bytesRead,
    withTotals.filter((x) => x.type !== 'journal'),
  );
  total(
    'guard_source_events_total',
    'Events made from the lines read and handed to the sinks.',
    (t) => t.eventsShipped,
  );
  total(
    'guard_source_events_filtered_total',
    'Lines dropped by include/exclude.',
    (t) => t.eventsFiltered,
  );
  e.family(
    'guard_source_files',
    'gauge',
    'Files of the source by state (as guardctl status shows them).',
    s.sources.flatMap((x) =>
      FILE_STATES.map((state): Sample => [
        { ...src(x), state },
        x.files.filter((f) => f.state === state).length,
      ]),
    ),
  );
  e.family(
    'guard_source_lag_bytes',
    'gauge',
    'Bytes written to the files and not yet acknowledged by every sink.',
    s.sources
      .filter((x) => x.type !== 'journal')
      .map((x) => [src(x), x.files.reduce((n, f) => n + (f.lagBytes ?? 0), 0)]),
  );
  e.family(
    'guard_source_lag_seconds',
    'gauge',
    'How long the most lagging file (journal) of the source has had unacknowledged data.',
    s.sources.map((x) => [
      src(x),
      Math.max(
        0,
        ...x.files.map((f) => f.lagSeconds ?? 0),
        ...(x.journals ?? []).map((j) => j.lagSeconds),
      ),
    ]),
  );
  e.family(
    'guard_source_unrecoverable_bytes_total',
    'counter',
    'Bytes lost to rotation or truncation that could not be recovered (file sources).',
    s.sources.filter((x) => x.rotation).map((x) => [src(x), x.rotation!.unrecoverableBytes]),
  );
  e.family(
    'guard_source_rotations_total',
    'counter',
    'Rotations seen (file sources).',
    s.sources.filter((x) => x.rotation).map((x) => [src(x), x.rotation!.rotations]),
  );
  e.family(
    'guard_file_refused',
    'gauge',
    '1 for each file guard-helper refuses now, with its code; the path is made visible and escaped.',
    s.sources.flatMap((x) =>
      x.files
        .filter((f) => f.state === 'refused')
        .map((f): Sample => [{ source: x.name, path: f.path, code: f.refusal?.code ?? '' }, 1]),
    ),
  );
}

function sinkFamilies(e: Exposition, s: AgentStatus): void {
  const per = (
    name: string,
    type: 'counter' | 'gauge',
    help: string,
    pick: (k: AgentStatus['sinks'][number]) => number,
  ) =>
    e.family(
      name,
      type,
      help,
      s.sinks.map((k) => [{ sink: k.name, type: k.type }, pick(k)]),
    );
  per(
    'guard_sink_events_delivered_total',
    'counter',
    'Events the backend acknowledged.',
    (k) => k.deliveredEvents,
  );
  per(
    'guard_sink_batches_delivered_total',
    'counter',
    'Batches the backend acknowledged.',
    (k) => k.deliveredBatches,
  );
  per(
    'guard_sink_bytes_delivered_total',
    'counter',
    'Bytes of the batches delivered, as encoded (NDJSON) before compression.',
    (k) => k.deliveredBytes ?? 0,
  );
  per(
    'guard_sink_retries_total',
    'counter',
    'Attempts that failed and were retried.',
    (k) => k.retries,
  );
  per(
    'guard_sink_dead_lettered_batches_total',
    'counter',
    'Batches (or parts of them) written to the dead-letter directory.',
    (k) => k.deadLetteredBatches,
  );
  per(
    'guard_sink_dead_lettered_events_total',
    'counter',
    'Events written to the dead-letter directory.',
    (k) => k.deadLetteredEvents ?? 0,
  );
  per(
    'guard_sink_dead_lettered_bytes_total',
    'counter',
    'Bytes of the batches resolved as dead-lettered, as encoded before compression.',
    (k) => k.deadLetteredBytes ?? 0,
  );
  per('guard_sink_queue_events', 'gauge', 'Events queued for the sink.', (k) => k.queuedEvents);
  per(
    'guard_sink_queue_bytes',
    'gauge',
    'Encoded bytes queued for the sink.',
    (k) => k.queuedBytes,
  );
  per('guard_sink_retrying', 'gauge', '1 while the sink is retrying a batch.', (k) =>
    k.retryingUntil ? 1 : 0,
  );
  per(
    'guard_sink_last_success_timestamp_seconds',
    'gauge',
    'When the sink last delivered a batch (Unix time); 0: not since the agent started.',
    (k) => (k.lastSuccess ? Date.parse(k.lastSuccess) / 1000 : 0),
  );
  // Kafka sinks: the brokers answering, and where each partition's acknowledged messages end.
  const kafka = s.sinks.filter((k) => k.brokersConnected !== undefined);
  e.family(
    'guard_sink_kafka_brokers_connected',
    'gauge',
    'Brokers of a Kafka sink that answered a request in the last minute.',
    kafka.map((k) => [{ sink: k.name }, k.brokersConnected!.length]),
  );
  e.family(
    'guard_sink_kafka_acked_offset',
    'gauge',
    'Offset of the last message the Kafka cluster acknowledged, per topic and partition.',
    kafka.flatMap((k) =>
      Object.entries(k.lastAckedOffsets ?? {}).map(([where, offset]): Sample => {
        const slash = where.lastIndexOf('/'); // topic/partition: a topic name holds no '/'
        const labels = {
          sink: k.name,
          topic: where.slice(0, slash),
          partition: where.slice(slash + 1),
        };
        return [labels, Number(offset)];
      }),
    ),
  );
}
