// What in the agent's status document is a problem: the reasons `guardctl status` reports as
// "degraded", and what the metrics count as guard_problems. One list, read by both.
import type { AgentStatus, JournalStatus } from './status';

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
 * The agent's own problems: not connected to the helper, reading paused (the buffer is full), a
 * refused file, a listing error, a journal in trouble, a sink in trouble. None: healthy, as far as
 * the agent can tell (guardctl adds what only it can see: the helper process and its socket).
 */
export function agentTrouble(a: AgentStatus): string[] {
  const why: string[] = [];
  if (!a.helper.connected)
    why.push(
      `agent: not connected to the helper${a.helper.lastError ? ` (${a.helper.lastError})` : ''}`,
    );
  if (a.agent.paused)
    why.push('agent: reading paused (the send buffer is full: the backend is slow or down)');
  for (const s of a.sources) {
    if (s.listError) why.push(`source ${s.name}: cannot list files: ${s.listError}`);
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
  return why;
}
