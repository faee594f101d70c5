// Self time by function from a V8 .cpuprofile (`node --cpu-prof`), for `npm run bench --profile`.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/**
 * The top n functions by self time, in % of the samples counted. With `window` (microseconds of
 * the monotonic clock, as `process.hrtime.bigint() / 1000n` in the bench process reads it: V8
 * stamps samples from the same clock), only the samples taken inside it; `ms` is their sum.
 */
export function summarizeProfile(
  file: string,
  n = 25,
  window?: { from: number; to: number },
): { top: { fn: string; selfPct: number }[]; ms: number } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: ProfileNode[];
    startTime: number;
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<string, number>();
  let total = 0;
  let at = p.startTime;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    at += dt;
    if (window && (at < window.from || at > window.to)) return;
    const c = byId.get(id)!.callFrame;
    const where = c.url ? `${c.url.replace(/^.*\//, '')}:${c.lineNumber + 1}` : '';
    const key = `${c.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  const top = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, t]) => ({ fn, selfPct: Math.round((t / total) * 1000) / 10 }));
  return { top, ms: Math.round(total / 100) / 10 };
}

/** The summary as lines for the console. */
export function profileLines(top: { fn: string; selfPct: number }[]): string {
  return top.map((x) => `  ${x.selfPct.toFixed(1).padStart(5)}%  ${x.fn}`).join('\n');
}
