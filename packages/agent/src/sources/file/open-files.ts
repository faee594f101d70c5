// How many log files the agent holds open at once, across all its sources. The agent must never run
// into its descriptor limit (EMFILE would fail an `open` reply's descriptor, a sink's socket or a
// checkpoint write): files are bounded below RLIMIT_NOFILE, with headroom for everything else. Past
// the bound, files idle longest are closed and reopened through the helper when they change.
import { readFileSync } from 'node:fs';
import { fdSources } from './byte-source';

/** Descriptors kept for what is not a log file: sinks' sockets, the helper link, journal files,
 *  decompressors' pipes, checkpoint slots, the status socket and its clients, Node's own. */
export const HEADROOM = 128;
/** Never fewer than this many files at once, whatever the limit says. */
const MIN_FILES = 16;

/** The soft RLIMIT_NOFILE of this process (Node raises it to the hard limit at start), or null. */
export function openFileLimit(limits = '/proc/self/limits'): number | null {
  let text: string;
  try {
    text = readFileSync(limits, 'latin1');
  } catch {
    return null;
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (!m) return null;
  return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
}

/** The bound: `configured` (0 = automatic) but never past the limit less the headroom. */
export function fileBudget(
  configured: number,
  limit: number | null,
): { max: number; limit: number | null; clamped: boolean } {
  const ceiling = limit === null ? 1024 - HEADROOM : Math.max(MIN_FILES, limit - HEADROOM);
  if (configured === 0) return { max: ceiling, limit, clamped: false };
  return { max: Math.min(configured, ceiling), limit, clamped: configured > ceiling };
}

/** What the budget asks of a source: to close idle files, to open waiting ones. */
export interface FileHolder {
  parkIdle(n: number): number;
  admit(): void;
}

/** The agent-wide count of open log files (every FdSource); sources wait for room. */
export class OpenFiles {
  /** Files waiting for a descriptor, per source. */
  private readonly waiting = new Map<FileHolder, number>();
  private readonly holders = new Set<FileHolder>();
  private notifying = false;

  constructor(readonly max: number) {
    fdSources.onClose = () => this.gave();
  }

  get open(): number {
    return fdSources.open;
  }

  /** Opens asked of the helper and not answered yet (by any source): counted as open, so that
   *  two sources admitting files at once do not both take the same room. */
  pending = 0;

  /** The most files open at once since the agent started (never above max: the status shows it). */
  get peak(): number {
    return fdSources.peak;
  }

  get room(): number {
    return this.max - this.open - this.pending;
  }

  /** Runs `open` (which may make one FdSource) if there is room, counted as pending meanwhile;
   *  false when there was none. Every open of a log file goes through here. */
  async reserve(open: () => Promise<void>): Promise<boolean> {
    if (this.room <= 0) return false;
    this.pending++;
    try {
      await open();
    } finally {
      this.pending--;
    }
    return true;
  }

  /** True when some source has files waiting for a descriptor: files read to their end give theirs
   *  up at once then. */
  get pressure(): boolean {
    for (const n of this.waiting.values()) if (n > 0) return true;
    return false;
  }

  get waitingTotal(): number {
    let n = 0;
    for (const v of this.waiting.values()) n += v;
    return n;
  }

  register(h: FileHolder): void {
    this.holders.add(h);
  }

  unregister(h: FileHolder): void {
    this.holders.delete(h);
    this.waiting.delete(h);
    this.generations.delete(h);
  }

  setWaiting(h: FileHolder, n: number): void {
    this.waiting.set(h, n);
  }

  /** Rotated generations waiting for a descriptor, per source: they go before new files. */
  private readonly generations = new Map<FileHolder, number>();

  setGenerationsWaiting(h: FileHolder, n: number): void {
    this.generations.set(h, n);
  }

  /** The room new and reopened files may take: what generations wait for is kept for them (a
   *  rotated file's rest must not wait behind a stream of new files, nor be removed meanwhile). */
  get roomForFiles(): number {
    let n = 0;
    for (const v of this.generations.values()) n += v;
    return this.room - n;
  }

  /** Asks every source to close idle files until n are closed (or none is idle). */
  reclaim(n: number): void {
    for (const h of this.holders) {
      if (n <= 0) return;
      n -= h.parkIdle(n);
    }
  }

  /** Every source with files waiting gets to open them (after a descriptor was given back). */
  admitAll(): void {
    for (const [h, n] of this.waiting) if (n > 0) h.admit();
  }

  private gave(): void {
    if (this.notifying) return;
    this.notifying = true;
    queueMicrotask(() => {
      this.notifying = false;
      this.admitAll();
    });
  }
}
