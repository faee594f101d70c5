// `guard-agent --check-config` and `guardctl check-config`: the same loader the agent starts with,
// its verdict as lines for a terminal. Exit status is the caller's: 0 when ok, else 1 (or EX_CONFIG).
import { ConfigError, loadConfig } from './load';
import type { AgentConfig, SinkConfig } from './types';

export function checkConfig(file: string): { ok: boolean; lines: string[] } {
  try {
    return { ok: true, lines: [summary(loadConfig(file))] };
  } catch (e) {
    if (e instanceof ConfigError) return { ok: false, lines: e.problems };
    throw e; // a bug in the loader, not a problem in the file: let it show its stack
  }
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** `/etc/guard/guard.conf: ok: 5 sources (syslog, auth, …, audit [audit]), 1 sink (local: file /var/lib/guard/out/events.ndjson)` */
export function summary(config: AgentConfig): string {
  const sources = config.sources
    .map((s) => (s.type === 'audit' ? `${s.name} [audit]` : s.name))
    .join(', ');
  const sinks = config.sinks.map((k) => `${k.name}: ${sinkTarget(k)}`).join(', ');
  return `${config.file}: ok: ${plural(config.sources.length, 'source')}${sources ? ` (${sources})` : ''}, ${plural(config.sinks.length, 'sink')} (${sinks})`;
}

function sinkTarget(k: SinkConfig): string {
  if (k.type === 'file') return `file ${k.path}`;
  if (k.type === 'kafka') return `kafka ${k.brokers.join(',')}`;
  if (k.type === 'syslog') return `syslog ${k.protocol}${k.tls ? '+tls' : ''} ${k.address}`;
  return `${k.type} ${k.url}`;
}
