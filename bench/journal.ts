// The journal runs' (15 and 16) figures beyond the common table: CPU per entry once the first
// entries arrived (the agent's start-up, ~0.1 s of CPU, is 0.5 µs an entry of 200,000: a fixed
// cost, not a per-entry one) and the machine's load average, which the wall-clock rates depend on
// on a shared machine.

export interface JournalSteady {
  /** Load average (1 min) when the run started. */
  load: number;
  /** CPU seconds before the first entry reached the receiver (start-up, the first read). */
  startCpuS: number;
  /** µs of CPU per entry from the first entry received to the last. */
  usCpuPerEntrySteady: number;
}

/** From a process's [time ms, cpu s] samples (every 100 ms) and the receiver's first arrival: the
 *  CPU up to the last sample before the first entry arrived is the start's, the rest is divided by
 *  all the entries (those of the first request are in both: ≤ 0.5 % of 200,000). */
export function steady(
  history: [number, number][],
  d: { firstAt: number },
  entries: number,
  load: number,
): JournalSteady {
  let atFirst = 0;
  for (const [t, c] of history) if (t <= d.firstAt) atFirst = c;
  const total = history.length ? history[history.length - 1]![1] : 0;
  return {
    load: Math.round(load * 10) / 10,
    startCpuS: Math.round(atFirst * 100) / 100,
    usCpuPerEntrySteady: Math.round(((total - atFirst) * 1e6 * 100) / entries) / 100,
  };
}

export function journalSteadyTable(
  runs: { run: string; linesPerS: number; usCpuPerLine: number; journal?: JournalSteady }[],
): string {
  const lines = [
    'journal runs: load average (1 min) at the start, CPU before the first entry arrived, CPU per entry after it:',
  ];
  for (const r of runs)
    lines.push(
      `  ${r.run}: load ${r.journal!.load}, ${r.linesPerS.toLocaleString('en')} entries/s, ${r.usCpuPerLine} µs CPU/entry in all, start ${r.journal!.startCpuS} s, ${r.journal!.usCpuPerEntrySteady} µs CPU/entry after the first entry`,
    );
  return lines.join('\n');
}
