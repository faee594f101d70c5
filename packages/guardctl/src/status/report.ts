// The status report: what guardctl gathered (the agent's own status document, the helper as seen
// from /proc and its socket, auditd), and the health verdict drawn from it.
import type { AgentStatus } from '@guard/agent/src/status/status';
import { agentTrouble } from '@guard/agent/src/status/trouble';

export { journalTrouble, sinkTrouble } from '@guard/agent/src/status/trouble';

export type Health = 'healthy' | 'degraded' | 'down';

export interface HelperView {
  /** null: not found */
  pid: number | null;
  /** how the pid was found */
  foundBy: 'pid file' | 'proc' | null;
  uid: number | null;
  user: string | null;
  /** set when uid is null although pid is known: e.g. "cannot see (/proc is mounted hidepid)" */
  uidNote: string | null;
  socket: {
    path: string;
    exists: boolean;
    isSocket: boolean;
    mode: string | null;
    owner: string | null;
    group: string | null;
    error: string | null;
  };
}

export interface AuditView {
  auditdRunning: boolean | null;
  /** number of loaded rules tagged guard-; null: not known (noted) */
  guardRules: number | null;
  guardRulesNote: string | null;
  /** true: an audit source has files flowing; false: refused with audit_group; null: no audit source / not known */
  accessGranted: boolean | null;
  accessNote: string | null;
}

export interface StatusReport {
  statusSocket: string;
  /** null when the status socket could not be read (agentError says why) */
  agent: AgentStatus | null;
  agentError: string | null;
  helper: HelperView;
  audit: AuditView;
}

/**
 * down: the agent's status socket cannot be read, or the helper is not running / has no socket.
 * degraded: a refused file, a source matching nothing, a listing error, a sink in trouble, reading
 * paused (the buffer is full), or the agent not connected to the helper. Else healthy.
 */
export function classify(r: StatusReport): { health: Health; reasons: string[] } {
  const down: string[] = [];
  if (r.agent === null) down.push(`agent: ${r.agentError ?? 'status unavailable'}`);
  if (r.helper.pid === null) down.push('helper: not running');
  if (!r.helper.socket.exists) down.push(`helper: no socket at ${r.helper.socket.path}`);
  else if (!r.helper.socket.isSocket) down.push(`helper: ${r.helper.socket.path} is not a socket`);
  if (down.length) return { health: 'down', reasons: down };

  const why = agentTrouble(r.agent!);
  return why.length ? { health: 'degraded', reasons: why } : { health: 'healthy', reasons: [] };
}

export const HEALTH_EXIT: Record<Health, number> = { healthy: 0, degraded: 1, down: 2 };

/** `--json`: the whole report, in one object. */
export function statusJson(r: StatusReport): Record<string, unknown> {
  const { health, reasons } = classify(r);
  return {
    health,
    reasons,
    helper: r.helper,
    agent: r.agent
      ? {
          reachable: true,
          statusSocket: r.statusSocket,
          ...r.agent.agent,
          helperLink: r.agent.helper,
          totals: r.agent.totals,
        }
      : { reachable: false, statusSocket: r.statusSocket, error: r.agentError },
    audit: r.audit,
    sources: r.agent?.sources ?? [],
    sinks: r.agent?.sinks ?? [],
  };
}
