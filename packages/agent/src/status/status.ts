// What `guardctl status` shows: the agent, every source and file, every sink — one JSON document,
// served on a Unix socket (0660 guard:guard) to whoever connects.
import { createServer, type Server } from 'node:net';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import type { Logger } from 'pino';
import type { SinkStatus } from '../event';
import type { Pipeline, RunnerStatus, SourceTotals } from '../pipeline';
import type { FileSource, RotationStats, WatchStatus } from '../sources/file/file-source';
import type { HelperLink } from '../sources/helper-link';
import type { JournalSource } from '../sources/journal/journal-source';

/** `waiting`: the content of a file that is no longer at its path (a restart, copytruncate), until
 *  the rotated generation holding it is found. */
export type FileState = 'flowing' | 'idle' | 'rotated' | 'waiting' | 'refused' | 'no_match';

export interface FileStatus {
  path: string;
  state: FileState;
  offset?: number;
  size?: number;
  lagBytes?: number;
  lagSeconds?: number;
  lastEventTime?: string | null;
  truncations?: number;
  /** The rotated generation read now, when it is not `path` itself. */
  file?: string;
  refusal?: { code: string; message: string; since: string };
  /** false: closed while idle (reopened when it changes) or not opened yet (waiting for a
   *  descriptor); absent: open. */
  open?: false;
}

/** One journal directory of a `type = journal` source (one reader). */
export interface JournalStatus {
  /** The directory's name: a machine id, or `<machine id>.<namespace>`. */
  directory: string;
  state: 'flowing' | 'idle' | 'error';
  /** The journal files held (descriptors from the helper). */
  files: string[];
  /** Every entry up to this one is acknowledged by every sink (null: nothing yet). */
  cursor: string | null;
  lagEntries: number;
  lagSeconds: number;
  /** The newest entry's time in the files held. */
  newestEntry: string | null;
  /** Entries removed by journald (vacuum) before they were shipped: each gap logged with its size. */
  gaps: {
    count: number;
    entries: number;
    uncounted: number;
    last: { at: string; entries: number | null; after: string; resumedAt: string } | null;
  };
  error: string | null;
}

export function journalStatus(j: JournalSource): {
  files: FileStatus[];
  journals: JournalStatus[];
} {
  const journals: JournalStatus[] = [];
  for (const r of j.readers.values()) {
    const lag = r.lag();
    journals.push({
      directory: r.key,
      state:
        r.lastError !== null ? 'error' : Date.now() - r.lastReadAt < 10_000 ? 'flowing' : 'idle',
      files: [...r.files.values()].map((f) => f.path).sort(),
      cursor: r.ackedCursor,
      lagEntries: lag.entries,
      lagSeconds: lag.seconds,
      newestEntry: lag.tail,
      gaps: { ...r.gaps },
      error: r.lastError,
    });
  }
  const files: FileStatus[] = [...j.refused].map(([path, refusal]) => ({
    path,
    state: 'refused',
    refusal,
  }));
  if (journals.length === 0 && files.length === 0)
    for (const pattern of j.cfg.paths) files.push({ path: pattern, state: 'no_match' });
  return { files, journals };
}

export interface AgentStatus {
  agent: {
    pid: number;
    uid: number;
    user: string;
    startedAt: string;
    uptimeSeconds: number;
    config: string;
    paused: boolean;
    queuedBytes: number;
    /** The read loop: running since when (null: waiting), passes ended, the last one's end, and
     *  whether the poll tick is armed. */
    reading?: {
      since: string | null;
      passes: number;
      lastEnded: string | null;
      /** The file being read now, and since when. */
      at: string | null;
      atSince: string | null;
      tickArmed: boolean;
    };
    /** Log files open now, the bound (max_open_files or RLIMIT_NOFILE less headroom), files waiting
     *  for a descriptor. */
    openFiles?: { open: number; max: number; peak: number; waiting: number };
  };
  /** openPath: the resolver the helper said it uses in its hello reply (null until connected) */
  helper: {
    socket: string;
    connected: boolean;
    lastError: string | null;
    openPath: string | null;
    /** The helper's refusals since the agent started, by request and code. */
    refusals?: { op: string; code: string; count: number }[];
  };
  sources: {
    name: string;
    type: string;
    patterns: string[];
    listError: string | null;
    listTruncated: boolean;
    files: FileStatus[];
    /** Rotations, truncations, recovered generations and unrecoverable ranges (agents since #19). */
    rotation?: RotationStats;
    journals?: JournalStatus[];
    /** This source's lines read, bytes read (file and audit), events handed to sinks and filtered. */
    totals?: SourceTotals;
    /** How changes are learnt: the helper's directory watch, or polling and why. */
    watch?: WatchStatus;
    /** Files closed while idle since the start, and reopened since. */
    idleClosed?: { closed: number; reopened: number };
    /** What an operator must know (a listing cut short, a watch refused for its size): each makes
     *  `guardctl status` degraded. */
    problems?: string[];
  }[];
  sinks: (SinkStatus & RunnerStatus)[];
  totals: { linesRead: number; eventsShipped: number; eventsFiltered: number };
}

export function buildStatus(
  p: Pipeline,
  link: HelperLink,
  meta: { user: string; startedAt: Date; config: string },
): AgentStatus {
  const now = Date.now();
  const status: AgentStatus = {
    agent: {
      pid: process.pid,
      uid: process.getuid?.() ?? -1,
      user: meta.user,
      startedAt: meta.startedAt.toISOString(),
      uptimeSeconds: Math.round((now - meta.startedAt.getTime()) / 1000),
      config: meta.config,
      paused: p.paused,
      queuedBytes: p.queuedBytes,
      reading: {
        since: isoOrNull(p.reading.since),
        passes: p.reading.passes,
        lastEnded: isoOrNull(p.reading.lastEnded),
        at: p.reading.at,
        atSince: isoOrNull(p.reading.atSince),
        tickArmed: p.tickArmed,
      },
      openFiles: {
        open: p.openFiles.open,
        max: p.openFiles.max,
        peak: p.openFiles.peak,
        waiting: p.openFiles.waitingTotal,
      },
    },
    helper: {
      socket: link.socketPath,
      connected: link.connected,
      lastError: link.lastError,
      openPath: link.openPath,
      refusals: [...link.refusals.values()].map((r) => ({ ...r })),
    },
    sources: p.sources.map((s) => {
      const files: FileStatus[] = [];
      for (const t of s.files.tailers()) {
        const lag = t.lagBytes;
        files.push({
          path: t.path,
          state: t.state,
          offset: t.ackedOffset,
          size: t.size,
          lagBytes: lag,
          lagSeconds: lag > 0 ? Math.round((now - t.caughtUpAt) / 1000) : 0,
          lastEventTime: t.lastEventTime,
          truncations: t.truncations,
          ...(t.file !== t.path ? { file: t.file } : {}),
          ...(t.src === null ? { open: false as const } : {}),
        });
      }
      for (const [path, refusal] of s.files.refused)
        files.push({ path, state: 'refused', refusal });
      for (const path of s.files.unopened) files.push({ path, state: 'idle', open: false });
      if (files.length === 0)
        for (const pattern of s.cfg.paths) files.push({ path: pattern, state: 'no_match' });
      return {
        name: s.cfg.name,
        type: s.cfg.type,
        patterns: s.cfg.paths,
        listError: s.files.lastListError,
        listTruncated: s.files.listTruncated,
        files,
        rotation: s.files.stats,
        totals: { ...p.sourceTotals.get(s.cfg.name)! },
        watch: { ...s.files.watchStatus },
        idleClosed: {
          closed: s.files.parkedCount,
          reopened: s.files.reopenedCount,
          ...s.files.queues,
          busyWith: s.files.busyWith,
          lastAdmitAt: s.files.lastAdmitAt,
        },
        problems: sourceProblems(s.files),
      };
    }),
    sinks: p.sinkStatus(),
    totals: {
      linesRead: p.totals.linesRead,
      eventsShipped: p.totals.eventsShipped,
      eventsFiltered: p.totals.eventsFiltered,
    },
  };
  for (const j of p.journals)
    status.sources.push({
      name: j.cfg.name,
      type: j.cfg.type,
      patterns: j.cfg.paths,
      listError: j.lastListError,
      listTruncated: j.listTruncated,
      ...journalStatus(j),
      totals: { ...p.sourceTotals.get(j.cfg.name)! },
    });
  return status;
}

/** Serves the status document: connect, read one JSON line, done. */
export function serveStatus(path: string, status: () => AgentStatus, log: Logger): Promise<Server> {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    /* nothing there */
  }
  const server = createServer((conn) => {
    conn.on('error', () => undefined);
    conn.end(JSON.stringify(status()) + '\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const old = process.umask(0o117);
    server.listen(path, () => {
      process.umask(old);
      chmodSync(path, 0o660);
      log.info({ socket: path }, 'status socket listening');
      resolve(server);
    });
  });
}

/** A source's problems for `guardctl status` (each one also logged when it began). */
export function sourceProblems(f: FileSource): string[] {
  const out: string[] = [];
  if (f.listTruncated)
    out.push(
      'the helper cut the list of matching files short (too many directory entries): files past it are not shipped',
    );
  const w = f.watchStatus;
  if (w.mode === 'polling' && w.why !== null && /^(limit|rate):/.test(w.why))
    out.push(`no directory watch (${w.why}): every file is polled`);
  return out;
}

/** A Date.now() time as ISO 8601, or null for 0 (none). */
function isoOrNull(ms: number): string | null {
  return ms > 0 ? new Date(ms).toISOString() : null;
}
