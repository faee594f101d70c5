// The status report: what guardctl gathered (the agent's own status document, the helper as seen
// from /proc and its socket, auditd), and the health verdict drawn from it.
import type { AgentStatus, JournalStatus } from '@guard/agent/src/status/status';

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

/** A sink error counts only while it is current: never delivered yet, retrying now, or batches lost to dead-letter. */
export function sinkTrouble(s: AgentStatus['sinks'][number]): string | null {
  if (s.deadLetteredBatches > 0)
    return `${s.deadLetteredBatches} batch${s.deadLetteredBatches === 1 ? '' : 'es'} dead-lettered${s.lastError ? ` (${s.lastError})` : ''}`;
  if (s.retryingUntil) return `retrying${s.lastError ? `: ${s.lastError}` : ''}`;
  // The agent keeps lastError after a later success and gives it no time, so an error followed by
  // a success is history, not trouble.
  if (s.lastError && s.lastSuccess === null) return `never delivered: ${s.lastError}`;
  return null;
}

/** A journal directory's problems: a read error, and entries lost in gaps since the agent started
 *  (journald removed them before they were shipped — never silent). */
export function journalTrouble(source: string, j: JournalStatus): string[] {
  const why: string[] = [];
  if (j.error) why.push(`source ${source}: journal ${j.directory}: ${j.error}`);
  if (j.gaps.count > 0) {
    const n = `${j.gaps.entries} entries${j.gaps.uncounted ? ` and ${j.gaps.uncounted} gap(s) of unknown size` : ''}`;
    why.push(
      `source ${source}: journal ${j.directory}: ${n} removed by journald before they were shipped (last gap ${j.gaps.last?.at ?? '?'})`,
    );
  }
  return why;
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

  const a = r.agent!;
  const why: string[] = [];
  if (!a.helper.connected)
    why.push(
      `agent: not connected to the helper${a.helper.lastError ? ` (${a.helper.lastError})` : ''}`,
    );
  if (a.agent.paused)
    why.push('agent: reading paused (the send buffer is full: the backend is slow or down)');
  for (const s of a.sources) {
    if (s.listError) why.push(`source ${s.name}: cannot list files: ${s.listError}`);
    for (const p of s.problems ?? []) why.push(`source ${s.name}: ${p}`);
    for (const f of s.files) {
      if (f.state === 'refused')
        why.push(
          `source ${s.name}: ${f.path} refused (${f.refusal?.code ?? '?'}: ${f.refusal?.message ?? 'no reason given'})`,
        );
      // no_match is not a fault: the table shows it, but a pattern for a file this host does not
      // write (Debian 12 has no /var/log/syslog without rsyslog) must not keep guard "degraded".
    }
    for (const j of s.journals ?? []) why.push(...journalTrouble(s.name, j));
  }
  for (const k of a.sinks) {
    const t = sinkTrouble(k);
    if (t) why.push(`sink ${k.name}: ${t}`);
  }
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
