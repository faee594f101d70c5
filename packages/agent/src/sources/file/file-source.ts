// A `[source.NAME]`: which files match (helper `list`, since `guard` cannot read restricted
// directories), one tailer per file (helper `open`), rotation by the path's identity changing
// (helper `stat`). A rotated file keeps its descriptor and is read to its end before it is closed,
// so nothing is lost even when it was already renamed, compressed or unlinked.
//
// The rotation set: a live path implies its rotated generations as logrotate names them (`NAME.1`,
// `NAME.2.gz`, `NAME-20261124`, …), which the helper lists and serves for a `file` source. They make
// correctness independent of seeing every rotation: after each rotation seen, each rescan and at
// start, every generation is identified by its first bytes (decompressed when compressed) and is
//  - being read already (a tailer holds its content): nothing to do;
//  - the content of a tailer waiting for it (a checkpoint from before a restart, or the unread rest
//    of a file truncated by copytruncate): that tailer goes on from its offset in it;
//  - finished (read to its end and acknowledged), or history (it existed when guard began to track
//    this source, kept in the state so that the boundary survives restarts): left alone;
//  - none of these: a generation that lived and was rotated between two looks. Shipped whole.
// Every rotation, truncation, recovered generation and unrecoverable byte range is logged and counted
// for `guardctl status`.
//
// Many files, few descriptors, no polling (docs/operations.md, "Many files"): a source learns what
// changed from an inotify instance guard-helper made with watches on its allowed directories
// (dir-events.ts) and reads only the files an event named; without one (`watch = off`, a refusal,
// a file system without inotify) it polls as before, and status says why. Descriptors are bounded
// agent-wide (open-files.ts): a live file read to its end and idle for close_idle_after_ms, or any
// such file while others wait for a descriptor, is closed ("parked") and reopened through the
// helper when it changes — its identity ({dev, ino} and first bytes) checked, reading on from the
// same offset. A parked file renamed or replaced meanwhile is a rotation: its content is found again
// among the rotated generations by its first bytes, like a file rotated while the agent was stopped.
import { closeSync, fstatSync, readlinkSync } from 'node:fs';
import { type HelperClient, HelperRefusal } from '@guard/protocol/client';
import { splitGeneration } from '@guard/protocol/wire';
import type { Logger } from 'pino';
import type { AgentSection, SourceConfig } from '../../config/types';
import {
  type CheckpointStore,
  FINGERPRINT_BYTES,
  type FinishedFile,
  fingerprintOf,
  headMatches,
  readHead,
  type SourceState,
} from '../../state/checkpoints';
import { DescriptorRejected } from '../descriptors';
import type { HelperLink } from '../helper-link';
import {
  type ByteSource,
  compressedHead,
  compressionOf,
  FdSource,
  StreamSource,
} from './byte-source';
import {
  type DirChange,
  DirWatch,
  IN_CREATE,
  IN_DELETE,
  IN_MOVED_FROM,
  IN_MOVED_TO,
} from './dir-events';
import type { FileHolder, OpenFiles } from './open-files';
import { FileTailer, type TailerOptions } from './tailer';

/** How a source learns of changes, and why (status). */
export interface WatchStatus {
  mode: 'events' | 'polling';
  /** Why it polls (`watch = off`, the helper's refusal, an error); null when on events. */
  why: string | null;
  directories: number;
  events: number;
  overflows: number;
  rewatches: number;
}

/** What a file source needs of the agent's settings (config/types.ts). */
export type FileSourceSettings = Pick<
  AgentSection,
  | 'rescanIntervalMs'
  | 'rotateCheckIntervalMs'
  | 'closeIdleAfterMs'
  | 'watch'
  | 'watchRescanIntervalMs'
>;

/** A file read within this long is kept on the read list (a partial line, an audit event closing). */
const LINGER_MS = 3000;
/** At most one new watch per source this often (each is a walk of its directories in the helper). */
const REWATCH_GAP_MS = 10_000;
/** Closed files reopened at once (helper requests in flight) when a burst of changes names many. */
const REOPEN_AT_ONCE = 16;
/** Events about names are gathered this long before the helper is asked for the list again. */
const EVENT_RESCAN_DELAY_MS = 200;

export interface Refusal {
  code: string;
  message: string;
  since: string;
}

/** A byte range that could not be shipped, and why. `bytes` null: the size cannot be known. */
export interface Unrecoverable {
  path: string;
  file: string;
  fromOffset: number;
  bytes: number | null;
  why: string;
  at: string;
}

/** What `guardctl status` shows of a source's rotation set. */
export interface RotationStats {
  rotations: number;
  truncations: number;
  recoveredGenerations: number;
  /** copytruncate rotations whose copy was read to its end (each window logged). */
  copytruncateWindows: number;
  unrecoverableRanges: number;
  unrecoverableBytes: number;
  /** The latest unrecoverable ranges (at most 20). */
  unrecoverable: Unrecoverable[];
  /** Since when the source's rotated generations are tracked (older ones predate guard). */
  trackedSince: string | null;
  /** Generations that existed when their live path was first tracked: not shipped. */
  historyGenerations: number;
}

/** How long a rotated file must stay unchanged and fully acknowledged before it is closed. */
const ROTATED_QUIET_MS = 5000;
/** A decompressor that fails this many times on the same generation: its rest is unrecoverable. */
const MAX_FAILURES = 3;
/** Compressed generations decompressed at a time per source (each holds up to 1 MiB, and a
 *  process for the compressors other than gzip); the others wait for a later scan. */
const MAX_STREAMS = 2;
/** A finished record whose file no complete scan found for this long is forgotten. */
const FORGET_AFTER_MS = 60_000;
/** A tailer waiting for its content that no scan has found for this long is given up. */
const DETACHED_GIVE_UP_MS = 60_000;

/** A compressed generation read from `offset`; its descriptor closed if no decompressor starts. */
function streamOf(fd: number, ext: string, offset: number): StreamSource {
  try {
    return new StreamSource(fd, ext, offset);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** The live path a rotated generation belongs to (logrotate's names, docs/protocol.md). */
export function generationBase(path: string): string | null {
  return splitGeneration(path)?.base ?? null;
}

/** A generation as last examined: its identity, size and first (decompressed) bytes. */
interface Generation {
  path: string;
  dev: string;
  ino: string;
  size: number;
  head: Buffer;
  ext: string | null;
  mtimeMs: number;
}

/** A Set that calls `onAdd` after each add. */
class ArmingSet<T> extends Set<T> {
  constructor(private readonly onAdd: () => void) {
    super();
  }
  override add(v: T): this {
    super.add(v);
    this.onAdd?.(); // undefined while Set's constructor runs
    return this;
  }
}

/** A source with no bytes left: lets a tailer whose content cannot be found finish its acks. */
class EndedSource implements ByteSource {
  readonly complete = true;
  readonly failure = null;
  constructor(private readonly end: number) {}
  size(): Promise<number> {
    return Promise.resolve(this.end);
  }
  read(): Promise<number> {
    return Promise.resolve(0);
  }
  close(): void {}
}

export class FileSource implements FileHolder {
  /** The file each path currently names. */
  readonly current = new Map<string, FileTailer>();
  /** Rotated away from their path, rotated generations, and tailers waiting for their content.
   *  Each one added arms the source's quick tick (reaping, giving up), which stops once none is left. */
  readonly draining = new ArmingSet<FileTailer>(() => this.armQuick());
  /** Files the helper refused, with its reason: shown in status, retried on every rescan. */
  readonly refused = new Map<string, Refusal>();
  /** Paths that disappeared by rotation: their successor is looked for on every rotation check. */
  private readonly vanished = new Set<string>();
  listTruncated = false;
  lastListError: string | null = null;
  /** Paths that match but wait for a descriptor (more files than max_open_files), oldest first. */
  readonly unopened = new Set<string>();
  readonly watchStatus: WatchStatus = {
    mode: 'polling',
    why: 'not started',
    directories: 0,
    events: 0,
    overflows: 0,
    rewatches: 0,
  };
  /** Told when there is something to read (events mode): the pipeline's pump. */
  wake: () => void = () => undefined;
  /**
   * Asked before a rotated file is finished (closed, its checkpoint replaced by a finished
   * record): false when the reader still held something of it — an audit event no record of the
   * file will complete now — and has just handed it on (the file is in flight again; the reaper
   * comes back once it is acknowledged).
   */
  beforeFinish: (t: FileTailer) => boolean = () => true;
  private watch: DirWatch | null = null;
  /** Files an event named, to read (events mode), until read to their end and quiet. */
  private readonly dirty = new Set<FileTailer>();
  /** Parked files known to have changed, waiting for a descriptor. */
  private readonly backlog = new Set<FileTailer>();
  /** Paths whose identity an event says to compare (created, moved, deleted). */
  private readonly toCheck = new Set<string>();
  /** The paths the very first listing found whose file is not opened yet: `start_at` applies to
   *  that first file of each, not to what later replaces it. */
  private firstPaths: Set<string> | null = null;
  private timers: NodeJS.Timeout[] = [];
  private soon = new Map<string, NodeJS.Timeout>();
  private stopped = false;
  readonly stats: RotationStats = {
    rotations: 0,
    truncations: 0,
    recoveredGenerations: 0,
    copytruncateWindows: 0,
    unrecoverableRanges: 0,
    unrecoverableBytes: 0,
    unrecoverable: [],
    trackedSince: null,
    historyGenerations: 0,
  };
  private readonly opts: TailerOptions;
  /** Generations examined, by dev:ino. */
  private readonly seen = new Map<string, Generation>();
  /** Decompressor failures per generation (dev:ino). */
  private readonly failures = new Map<string, number>();
  /** Finished records no complete scan found a file for, since when. */
  private readonly unseen = new Map<FinishedFile, number>();
  /** Copytruncate windows: the live size last seen before the truncation, per tailer. */
  private readonly windows = new Map<FileTailer, number>();
  /** Maintenance (list, stat, open, reap) runs one at a time. */
  private chain: Promise<unknown> = Promise.resolve();
  private checkQueued = false;
  private claimed = false;

  constructor(
    readonly cfg: SourceConfig,
    private readonly link: HelperLink,
    private readonly store: CheckpointStore,
    tailerOpts: TailerOptions,
    private readonly onAcked: (t: FileTailer) => void,
    private readonly log: Logger,
    /** True only on the agent's very first start (no checkpoints at all): start_at applies. */
    private firstStart: boolean,
    private readonly openFiles: OpenFiles,
    private readonly settings: FileSourceSettings,
  ) {
    openFiles.register(this);
    this.opts = { ...tailerOpts, onTruncated: (t, size) => this.truncated(t, size) };
    this.stats.trackedSince = store.sourceState(cfg.name)?.since ?? null;
    this.stats.historyGenerations =
      store.sourceState(cfg.name)?.finished.filter((f) => f.why === 'history').length ?? 0;
  }

  *tailers(): Iterable<FileTailer> {
    yield* this.current.values();
    yield* this.draining;
  }

  /** What the maintenance chain runs now, and since when (status: a standstill shows here). */
  busyWith: { task: string; since: string } | null = null;
  lastAdmitAt: string | null = null;

  /** Files waiting for a descriptor (changed closed files, new files, rotated generations), files
   *  on the read list, rotated files being read. */
  get queues(): {
    backlog: number;
    unopened: number;
    generationsWaiting: number;
    readList: number;
    rotated: number;
  } {
    return {
      backlog: this.backlog.size,
      unopened: this.unopened.size,
      generationsWaiting: this.generationsWaiting,
      readList: this.dirty.size,
      rotated: this.draining.size,
    };
  }

  private exclusive<T>(fn: () => Promise<T>, task = 'maintenance'): Promise<T> {
    const step = async (): Promise<T> => {
      this.busyWith = { task, since: new Date().toISOString() };
      try {
        return await fn();
      } finally {
        this.busyWith = null;
      }
    };
    const run = this.chain.then(step, step);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** The tailer reading this inode through a descriptor, if any. */
  private holding(dev: string, ino: string): FileTailer | undefined {
    // plain loops, not the tailers() generator: this runs for every file opened, over every file
    for (const t of this.current.values())
      if (t.ino === ino && t.dev === dev && (t.src instanceof FdSource || t.parked)) return t;
    for (const t of this.draining)
      if (t.ino === ino && t.dev === dev && t.src instanceof FdSource) return t;
    return undefined;
  }

  /** Finds the files that match now, starts tailing the new ones, and looks at the generations. */
  rescan(): Promise<void> {
    return this.exclusive(() => this.rescanNow());
  }

  private async rescanNow(): Promise<void> {
    let files: string[];
    let generations: string[];
    try {
      const reply = await this.link.call((c) => c.listAll(this.cfg.name));
      files = reply.files;
      generations = reply.generations ?? [];
      this.listTruncated = reply.truncated === true;
      this.lastListError = null;
    } catch (e) {
      this.lastListError =
        e instanceof HelperRefusal ? `${e.code}: ${e.message}` : (e as Error).message;
      this.log.warn({ source: this.cfg.name, err: this.lastListError }, 'cannot list source files');
      // Generations are looked at again with the next listing: till then no room is kept for them.
      this.generationsWaiting = 0;
      this.openFiles.setGenerationsWaiting(this, 0);
      return;
    }
    if (this.listTruncated && !this.truncationLogged)
      this.log.warn(
        { source: this.cfg.name, listed: files.length },
        'the helper cut the list of files short: files past it are not shipped (guardctl status shows it)',
      );
    this.truncationLogged = this.listTruncated;
    if (this.firstStart && this.firstPaths === null) this.firstPaths = new Set(files);
    this.firstStart = false;
    const listed = new Set(files);
    for (const path of this.unopened) if (!listed.has(path)) this.unopened.delete(path);
    for (const path of files) if (!this.current.has(path)) this.unopened.add(path);
    await this.admitNow();
    // At start, checkpoints and generations are matched once every live file has been looked at: a
    // live file not opened yet may be the content a checkpoint names. After that, generations are
    // looked at whatever waits for a descriptor (a rotated file's content must not wait for new files).
    if (this.unopened.size > 0 && !this.claimed) {
      this.claimPending = true;
      return;
    }
    this.claimPending = false;
    if (!this.claimed) this.claimCheckpoints(files);
    await this.scanGenerations(generations);
  }
  private truncationLogged = false;
  /** A listing ended with files not opened yet: checkpoints and generations wait for them. */
  private claimPending = false;

  /** Opens waiting files while there are descriptors to spare: parked files that changed first. */
  private async admitNow(): Promise<void> {
    this.lastAdmitAt = new Date().toISOString();
    // Open files nobody reads (idle, on events) are closed for the waiting ones; at most once a
    // second, since it looks at every file (files read to their end give theirs up themselves).
    const now = Date.now();
    if (
      this.openFiles.roomForFiles <= 0 &&
      this.backlog.size + this.unopened.size > 0 &&
      now - this.lastReclaim >= 1000
    ) {
      this.lastReclaim = now;
      const want = this.backlog.size + this.unopened.size;
      this.openFiles.reclaim(want);
      // Nothing could be closed: every open file has something unread. They are read (and give
      // their descriptors up at their end) even if no event named them: never a standstill.
      if (this.openFiles.roomForFiles <= 0)
        for (const t of this.current.values())
          if (t.src instanceof FdSource && !this.dirty.has(t)) this.markDirty(t);
    }
    // At most the room there is now: descriptors given back meanwhile are another pass's (so that
    // one pass never runs through thousands of files while the pump frees descriptors under it).
    let n = this.openFiles.roomForFiles;
    // Changed closed files first, but never all the room while new files wait too.
    let forBacklog = this.unopened.size > 0 ? Math.ceil(n / 2) : n;
    // Reopened a few at a time (requests pipelined on the helper link: one at a time, a burst of
    // changes to thousands of closed files took minutes on a loaded machine, a round trip each).
    let batch: Promise<boolean>[] = [];
    for (const t of this.backlog) {
      if (forBacklog-- <= 0 || n-- <= 0 || this.openFiles.roomForFiles <= 0 || this.stopped) break;
      this.backlog.delete(t);
      batch.push(this.openFiles.reserve(() => this.unparkFile(t)));
      if (batch.length >= REOPEN_AT_ONCE) {
        await Promise.all(batch);
        batch = [];
      }
    }
    await Promise.all(batch);
    for (const path of this.unopened) {
      if (n-- <= 0 || this.openFiles.roomForFiles <= 0 || this.stopped) break;
      this.unopened.delete(path);
      if (!this.current.has(path)) await this.openFiles.reserve(() => this.openPath(path));
    }
    // Still waiting: again as soon as there is room, else in a second (idle files closed then).
    if (this.backlog.size + this.unopened.size > 0)
      if (this.openFiles.roomForFiles > 0) this.admit();
      else this.after('admit-later', 1000, () => this.admitNow()); // not 'admit': that one is at once
    this.openFiles.setWaiting(this, this.waitingFiles());
    if (this.unopened.size === 0 && this.claimPending) {
      this.claimPending = false;
      this.rescanSoon(0);
    }
  }

  private lastReclaim = 0;

  /** Files wait for descriptors: admitted soon (one pass at a time). */
  admit(): void {
    if (this.backlog.size + this.unopened.size === 0) return;
    this.after('admit', 0, () => this.admitNow());
  }

  /**
   * Closes up to n of this source's open live files read to their end, idle longest first; with
   * `idleMs`, only those idle that long. Returns how many it closed.
   */
  parkIdle(n: number, idleMs = 0, now = Date.now()): number {
    const idle: FileTailer[] = [];
    // Not those on the read list (a change reported since their last read): closing them would
    // only send them to the back of the queue for a descriptor, and a file read to its end gives
    // its descriptor up itself while others wait (atEnd). Closing and reopening files that were
    // never read in between, ahead of the new files waiting, starved those (#20's stall).
    for (const t of this.current.values())
      if (this.parkable(t) && now - Math.max(t.lastReadAt, t.openedAt) >= idleMs) idle.push(t);
    if (idle.length > n) idle.sort((a, b) => a.lastReadAt - b.lastReadAt);
    let parked = 0;
    for (const t of idle.slice(0, n)) {
      this.park(t);
      parked++;
    }
    return parked;
  }

  /** A live file read to its end, no partial line held, not named by an event since. */
  private parkable(t: FileTailer): boolean {
    return (
      t.src instanceof FdSource &&
      !t.rotated &&
      !t.busy &&
      !t.holdsPartial &&
      t.offset >= t.size &&
      !this.dirty.has(t) &&
      !(this.audit && Date.now() - t.lastReadAt < LINGER_MS) // an audit event may still close
    );
  }

  private get audit(): boolean {
    return this.cfg.type === 'audit' || this.cfg.parser === 'audit';
  }

  private park(t: FileTailer): void {
    t.park();
    this.dirty.delete(t);
    this.parkedCount++;
  }
  /** Files closed while idle since the start (status). */
  parkedCount = 0;
  reopenedCount = 0;

  /**
   * A parked file changed: its descriptor again through the helper, if it is still the same file
   * ({dev, ino} and its first bytes); else it was replaced while closed (a rotation).
   */
  private async unparkFile(t: FileTailer): Promise<void> {
    if (!t.parked || this.current.get(t.path) !== t) return;
    let reply, fd: number;
    try {
      ({ reply, fd } = await this.link.call((c) => c.open(t.path)));
    } catch (e) {
      if (e instanceof HelperRefusal && e.code === 'not_found') {
        this.goneWhileParked(t, 'removed');
        return;
      }
      this.log.warn(
        { source: this.cfg.name, path: t.path, err: (e as Error).message },
        'cannot reopen a file closed while idle; will try again',
      );
      this.backlog.add(t);
      this.after('admit-later', 1000, () => this.admitNow());
      return;
    }
    if (reply.dev !== t.dev || reply.ino !== t.ino) {
      closeSync(fd);
      this.goneWhileParked(t, 'replaced');
      if (!this.current.has(t.path)) this.unopened.add(t.path);
      return;
    }
    this.unparkOn(t, fd, reply.size);
    this.reopenedCount++;
    this.markDirty(this.current.get(t.path) ?? t);
  }

  /** A parked file's descriptor again; other first bytes by now are a truncation, reported with
   *  the size it had when it was closed (unpark() sets the new one). */
  private unparkOn(t: FileTailer, fd: number, size: number): void {
    const lastSize = t.size;
    t.unpark(fd, size);
    if (!t.headStillMatches()) this.truncated(t, size, lastSize);
  }

  /**
   * A parked file's path names another file now, or nothing: it was rotated (or removed) while
   * closed. It waits, like a file rotated while the agent was stopped, for the rotated generation
   * that has its first bytes, and goes on from its offset there.
   */
  private goneWhileParked(t: FileTailer, how: 'removed' | 'replaced'): void {
    this.rotate(t.path, t);
    t.parked = false;
    t.detached = { since: Date.now(), lastSize: t.size, why: `closed while idle, then ${how}` };
    this.rescanSoon();
  }

  /** Runs fn (once, however often asked) after ms, in the maintenance chain. */
  private after(key: string, ms: number, fn: () => Promise<void>): void {
    if (this.soon.has(key) || this.stopped) return;
    this.soon.set(
      key,
      setTimeout(() => {
        this.soon.delete(key);
        void this.exclusive(fn, key).catch((e: Error) =>
          this.log.warn({ source: this.cfg.name, err: e.message }, `${key} failed`),
        );
      }, ms),
    );
  }

  private rescanSoon(ms = EVENT_RESCAN_DELAY_MS): void {
    this.after('rescan', ms, () => this.rescanNow());
  }

  private markDirty(t: FileTailer): void {
    t.wakes++;
    this.dirty.add(t);
    this.wake();
    this.armQuick();
  }

  /** The files to read now: every open one when polling; those events named (and rotated ones
   *  still being read) on events. */
  toRead(): FileTailer[] {
    if (this.watchStatus.mode === 'polling') return [...this.tailers()];
    const out: FileTailer[] = [];
    for (const t of this.dirty) {
      t.wakesAtRead = t.wakes;
      out.push(t);
    }
    for (const t of this.draining) if (t.src !== null) out.push(t);
    return out;
  }

  /**
   * A file read to its end (readChunk gave nothing). Polling: look at its path for a rotation now.
   * Events: off the read list once quiet (no event since the read began, no partial line). Either
   * way, while others wait for a descriptor, a live file read to its end gives its own up.
   */
  atEnd(t: FileTailer): void {
    if (this.watchStatus.mode === 'polling') {
      this.dirty.delete(t); // every open file is read on every poll: no read list
      // A live file read to its end: the writer may have moved on to a new one. Look now rather
      // than at the next rotation check (prompt, not needed for correctness).
      if (!t.rotated && t.lastReadAt > t.lastRotationLook) {
        t.lastRotationLook = t.lastReadAt;
        this.checkSoon();
      }
    } else if (
      t.wakes === t.wakesAtRead &&
      !t.holdsPartial &&
      !(t.src !== null && t.offset < t.size) && // a read that returned early (busy): again
      !(this.audit && Date.now() - t.lastReadAt < LINGER_MS) // an audit event may still close
    )
      this.dirty.delete(t);
    if (this.openFiles.pressure && this.parkable(t)) {
      this.park(t);
      this.openFiles.admitAll();
    }
  }

  /** Starts learning of changes (the helper's watch, else polling) and the source's timers. */
  async start(): Promise<void> {
    await this.startWatch();
    await this.rescan();
    const s = this.settings;
    // A task still queued or running when its next turn comes skips that turn: with many files a
    // round can take longer than its interval, and the maintenance chain must not grow without end.
    const every = (ms: number, fn: () => Promise<void>) => {
      let pending = false;
      this.timers.push(
        setInterval(() => {
          if (pending || this.stopped) return;
          pending = true;
          void this.exclusive(fn, 'periodic')
            .catch((e: Error) =>
              this.log.error({ source: this.cfg.name, err: e.message }, 'periodic task failed'),
            )
            .finally(() => {
              pending = false;
            });
        }, ms),
      );
    };
    this.armQuick();
    // The safety net on events: a slow look at everything (a missed event costs latency, not data).
    every(s.watchRescanIntervalMs, async () => {
      if (
        this.watchStatus.mode === 'polling' &&
        this.settings.watch === 'auto' &&
        this.watch === null
      )
        await this.startWatch(); // a refusal (`rate`, `limit`) may not last
      if (this.watchStatus.mode === 'events') await this.sweep();
      else this.armQuick();
    });
    every(Math.min(s.closeIdleAfterMs, 60_000), () => {
      this.parkIdle(Infinity, s.closeIdleAfterMs);
      return Promise.resolve();
    });
  }

  private quick: NodeJS.Timeout | null = null;
  private lastPollRescan = 0;

  /**
   * The quick tick (every rotate_check_interval_ms), only while there is something for it: when
   * polling, the rotation check (and every rescan_interval_ms the list); on events, the rotation
   * check of open files while one has unread data (an event says a file changed, not that it was
   * copied and truncated meanwhile: with reads paused behind a sink, only this check sees the
   * truncation, as polling does); rotated files to reap or to give up on. On events with nothing
   * unread or rotated it does not run at all (idle costs nothing).
   */
  private armQuick(): void {
    if (this.quick !== null || this.stopped) return;
    if (this.watchStatus.mode !== 'polling' && this.draining.size === 0 && this.dirty.size === 0)
      return;
    this.quick = setTimeout(() => {
      void this.exclusive(async () => {
        const now = Date.now();
        if (this.watchStatus.mode === 'polling') {
          if (now - this.lastPollRescan >= this.settings.rescanIntervalMs) {
            this.lastPollRescan = now;
            await this.rescanNow();
          }
          await this.checkRotationNow();
        } else if (this.dirty.size > 0) await this.checkRotationNow(false);
        if (this.draining.size > 0) await this.reapNow(Date.now());
      }, 'quick')
        .catch((e: Error) =>
          this.log.error({ source: this.cfg.name, err: e.message }, 'periodic task failed'),
        )
        .finally(() => {
          this.quick = null;
          this.armQuick();
        });
    }, this.settings.rotateCheckIntervalMs);
  }

  /** Something to read that no event announces (the pipeline polls while so): a file named by an
   *  event not read to its end yet (or holding a partial line, or an audit event that may still
   *  close), a rotated file being read (its writes come under its new name), or polling. */
  get needsPolling(): boolean {
    if (this.watchStatus.mode === 'polling' || this.dirty.size > 0) return true;
    for (const t of this.draining) if (t.src !== null) return true;
    return false;
  }

  /**
   * The safety net: everything looked at again — the list, every path's identity and every
   * parked file's size (a change whose event was missed, lost to an overflow or never sent, is
   * found here), every open file's size.
   */
  private async sweep(): Promise<void> {
    await this.rescanNow();
    await this.checkRotationNow(true);
    for (const t of this.current.values()) if (t.src !== null) this.markDirty(t);
  }

  private async startWatch(): Promise<void> {
    this.watch?.close();
    this.watch = null;
    const ws = this.watchStatus;
    if (this.settings.watch === 'off') {
      Object.assign(ws, { mode: 'polling', why: 'watch = off', directories: 0 });
      this.armQuick();
      return;
    }
    let got: { fd: number; watches: { wd: number; dir: string }[] };
    try {
      got = await this.link.call((c) => watchOf(c, this.cfg.name));
    } catch (e) {
      const why = e instanceof HelperRefusal ? `${e.code}: ${e.message}` : (e as Error).message;
      if (ws.mode === 'events' || ws.why !== why)
        this.log.warn(
          { source: this.cfg.name, err: why },
          'no directory watch from the helper: polling each file instead',
        );
      Object.assign(ws, { mode: 'polling', why, directories: 0 });
      this.armQuick();
      return;
    }
    try {
      this.watch = new DirWatch(
        got.fd,
        got.watches,
        (c) => this.onDirChange(c),
        (e) => this.watchFailed(e),
      );
    } catch (e) {
      closeSync(got.fd);
      Object.assign(ws, { mode: 'polling', why: (e as Error).message, directories: 0 });
      this.armQuick();
      return;
    }
    const was = ws.mode;
    Object.assign(ws, { mode: 'events', why: null, directories: got.watches.length });
    if (was !== 'events')
      this.log.info(
        { source: this.cfg.name, directories: got.watches.length },
        'watching the source’s directories for changes',
      );
  }

  private lastRewatch = 0;

  private watchFailed(e: Error): void {
    this.watch = null;
    Object.assign(this.watchStatus, { mode: 'polling', why: `watch failed: ${e.message}` });
    this.armQuick();
    this.log.warn({ source: this.cfg.name, err: e.message }, 'directory watch failed: polling');
  }

  /** A fresh watch (a directory appeared or went away, events were lost), then a full look. */
  private rewatchSoon(): void {
    // Each watch is a walk of the source's directories in the helper: one per source per
    // REWATCH_GAP_MS at most, however many directories come and go.
    const wait = Math.max(EVENT_RESCAN_DELAY_MS, this.lastRewatch + REWATCH_GAP_MS - Date.now());
    this.after('rewatch', wait, async () => {
      this.lastRewatch = Date.now();
      this.watchStatus.rewatches++;
      await this.startWatch();
      // A full look whatever the reason: events between the old watch and the new one are lost.
      await this.sweep();
    });
  }

  private onDirChange(c: DirChange): void {
    this.watchStatus.events = this.watch?.events ?? this.watchStatus.events;
    if (c.kind === 'overflow') {
      this.watchStatus.overflows++;
      this.log.warn(
        { source: this.cfg.name },
        'directory watch overflowed (events lost): looking at every file again',
      );
      for (const t of this.current.values()) if (t.parked) this.changedParked(t);
      this.rewatchSoon();
      return;
    }
    if (c.kind === 'rewatch') {
      this.log.info({ source: this.cfg.name, why: c.why }, 'asking for a fresh directory watch');
      this.rewatchSoon();
      return;
    }
    const t = this.current.get(c.path);
    const names = IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM;
    if (t === undefined) {
      // A new name, or one renamed or removed: the list (and the generations) again.
      if (c.mask & names && !this.unopened.has(c.path)) this.rescanSoon();
      // A write to a rotated file still being read comes under its new name (NAME.1).
      else if (this.draining.size > 0) this.wake();
      return;
    }
    if (c.mask & names) {
      this.toCheck.add(c.path);
      this.after('check', EVENT_RESCAN_DELAY_MS, () => this.checkPathsNow());
    }
    if (t.parked) {
      // Only a write says its content changed. A name event (removed, renamed) is the identity
      // check's above; counted as a change, it made the give-up report a loss for a file whose
      // every line was shipped.
      if ((c.mask & names) === 0) this.changedParked(t);
    } else this.markDirty(t);
  }

  private changedParked(t: FileTailer): void {
    t.wakes++;
    t.changedWhileParked = true;
    this.backlog.add(t);
    this.openFiles.setWaiting(this, this.waitingFiles());
    this.admit();
  }

  /** The paths events named (created, moved, deleted): compared with what is read. */
  private async checkPathsNow(): Promise<void> {
    const paths = [...this.toCheck];
    this.toCheck.clear();
    let rotated = false;
    for (const path of paths) {
      const t = this.current.get(path);
      if (t) rotated = (await this.checkOne(path, t, true)) || rotated;
    }
    if (rotated) await this.rescanNow();
  }

  /**
   * At start: the checkpoints of this source that no live file took are files rotated while the
   * agent was not running (or a copytruncate's unread rest). Each becomes a tailer waiting for the
   * generation that holds its content.
   */
  private claimCheckpoints(files: string[]): void {
    this.claimed = true;
    const taken = new Set([...this.tailers()].map((t) => t.key));
    for (const cp of this.store.all()) {
      if (taken.has(cp.key)) continue;
      if (cp.source !== undefined ? cp.source !== this.cfg.name : !files.includes(cp.path))
        continue;
      const t = new FileTailer(
        this.cfg.name,
        cp.path,
        null,
        cp.dev,
        cp.ino,
        { offset: cp.offset, checkpoint: cp },
        this.opts,
        this.onAcked,
      );
      t.rotated = true;
      t.detached = { since: Date.now(), lastSize: -1, why: 'restart' };
      this.draining.add(t);
      this.log.info(
        { source: this.cfg.name, path: cp.path, key: cp.key, offset: cp.offset },
        'checkpoint of a file no longer at its path: looking for it among the rotated generations',
      );
    }
  }

  /** Compares each path's identity with the descriptor we hold; a new identity is a rotation. */
  checkRotation(): Promise<void> {
    return this.exclusive(() => this.checkRotationNow());
  }

  /** A rotation check soon (a live file was read to its end): rotation is seen within a poll. */
  checkSoon(): void {
    if (this.checkQueued) return;
    this.checkQueued = true;
    void this.exclusive(async () => {
      this.checkQueued = false;
      await this.checkRotationNow();
    }).catch((e: Error) => this.log.warn({ err: e.message }, 'rotation check failed'));
  }

  /** `parked`: parked files too (polling, or after lost events): their size tells of a change. */
  private async checkRotationNow(parked = true): Promise<void> {
    let rotated = false;
    for (const [path, t] of [...this.current])
      if (parked || !t.parked) rotated = (await this.checkOne(path, t, parked)) || rotated;
    for (const path of [...this.vanished])
      if (!this.current.has(path) && !this.unopened.has(path)) {
        if (!(await this.openFiles.reserve(() => this.openPath(path, true))))
          this.unopened.add(path);
      }
    // Whatever else rotated since the last look is among the generations now.
    if (rotated || [...this.draining].some((t) => t.src === null)) await this.rescanNow();
  }

  /** Compares a path's identity with the file read as it; true when it was rotated. */
  private async checkOne(path: string, t: FileTailer, parked: boolean): Promise<boolean> {
    try {
      const id = await this.link.call((c) => c.stat(path));
      if (id.dev === t.dev && id.ino === t.ino) {
        if (t.parked) {
          if (parked && id.size !== t.size) this.changedParked(t);
          return false;
        }
        // Same file: its size is re-read even while reads are paused (for drained() and a
        // copytruncate's window), and its first bytes are checked (truncated and rewritten past
        // our offset before we looked is a truncation too).
        await t.refreshSize();
        if (t.src instanceof FdSource && !t.headStillMatches()) this.truncated(t, t.size);
        // grown past what was read with no event seen (lost, or never sent): read it now
        else if (t.src !== null && t.size > t.offset && this.watchStatus.mode === 'events')
          this.markDirty(t);
        return false;
      }
      if (t.parked) this.goneWhileParked(t, 'replaced');
      else this.rotate(path, t);
      if (!(await this.openFiles.reserve(() => this.openPath(path)))) this.unopened.add(path);
      return true;
    } catch (e) {
      if (e instanceof HelperRefusal && e.code === 'not_found') {
        if (t.parked) this.goneWhileParked(t, 'removed');
        else this.rotate(path, t);
        return true;
      }
      this.log.warn({ path, err: (e as Error).message }, 'rotation check failed');
      return false;
    }
  }

  private rotate(path: string, t: FileTailer): void {
    this.current.delete(path);
    t.rotated = true;
    this.draining.add(t);
    this.vanished.add(path);
    this.stats.rotations++;
    this.log.info(
      { source: this.cfg.name, path, dev: t.dev, ino: t.ino, offset: t.offset },
      'file rotated; reading the old one to its end',
    );
  }

  /**
   * The file is shorter than what was read, or its first bytes changed: copytruncate (or a writer
   * that truncated it). The live descriptor goes to a new tailer from offset 0; this content waits
   * for the copy (a rotated generation with its first bytes) to finish its unread rest.
   * `lastSize`: the size last seen before the content changed.
   */
  private truncated(t: FileTailer, size: number, lastSize = t.size): void {
    if (!(t.src instanceof FdSource)) {
      // A compressed generation that ends before the offset reached: the rest was read from the
      // live file before it was truncated (a copytruncate's copy). Nothing more to read here:
      // its descriptor (and decompressor) is given up.
      t.src?.close();
      t.attach(new EndedSource(t.offset), t.file, t.dev, t.ino);
      return;
    }
    const src = t.detach('truncated');
    this.stats.truncations++;
    t.truncations++;
    this.windows.set(t, lastSize);
    this.log.warn(
      {
        source: this.cfg.name,
        path: t.path,
        readTo: t.offset,
        acknowledgedTo: t.ackedOffset,
        lastSeenSize: lastSize,
        sizeNow: size,
      },
      'file truncated (copytruncate?): reading it again from 0, and its unread rest from the rotated copy',
    );
    const next = new FileTailer(
      this.cfg.name,
      t.path,
      src,
      t.dev,
      t.ino,
      { offset: 0, checkpoint: null },
      this.opts,
      this.onAcked,
    );
    next.truncations = t.truncations;
    if (this.current.get(t.path) === t) this.current.set(t.path, next);
    else {
      this.draining.delete(t);
      next.rotated = true;
      this.draining.add(next);
    }
    t.rotated = true;
    this.draining.add(t);
    this.markDirty(next); // read from 0 now, not at the next event
    this.checkSoon();
  }

  /**
   * Closes rotated files that are read to the end (their size re-read first) and acknowledged:
   * a file read through a descriptor after it was quiet a while, a compressed one at its end.
   */
  reapDrained(now = Date.now()): Promise<void> {
    return this.exclusive(() => this.reapNow(now));
  }

  private async reapNow(now: number): Promise<void> {
    for (const t of [...this.draining]) {
      const src = t.src;
      if (src === null) {
        this.maybeGiveUp(t, now);
        continue;
      }
      await t.refreshSize();
      if (src.failure !== null && t.offset >= t.size && !t.inFlight) {
        this.decompressFailed(t, src.failure);
        continue;
      }
      if (!t.drained || t.busy) continue; // a read under way: never close its descriptor under it
      if (src instanceof FdSource ? now - t.lastReadAt <= ROTATED_QUIET_MS : !src.complete)
        continue;
      if (!this.beforeFinish(t)) continue;
      this.finish(t);
    }
  }

  /** A rotated file done: closed, its checkpoint replaced by a finished record. */
  private finish(t: FileTailer): void {
    this.draining.delete(t);
    t.close();
    const window = this.windows.get(t);
    if (window !== undefined) {
      this.windows.delete(t);
      this.copytruncateWindow(t, window);
    }
    const st = this.sourceState();
    if (t.fingerprint.fingerprintBytes > 0) {
      // one record per file: a file finished again (written to after it was closed) replaces it
      st.finished = st.finished.filter((f) => f.key !== t.key);
      st.finished.push({
        ...t.fingerprint,
        size: t.offset,
        key: t.key,
        why: 'shipped',
        at: new Date().toISOString(),
      });
      this.store.touch();
    }
    this.store.delete(t.key);
    this.log.info(
      { source: this.cfg.name, path: t.path, file: t.file, key: t.key, offset: t.offset },
      'rotated file read to its end; closed',
    );
  }

  /**
   * What copytruncate wrote after its copy and before its truncation is in neither file. Its size
   * cannot be known from the files: what is known lost is what the agent saw in the live file
   * (`lastSize`, re-read at every rotation check) past the copy's end and past what it read.
   */
  private copytruncateWindow(t: FileTailer, lastSize: number): void {
    this.stats.copytruncateWindows++;
    if (lastSize > t.offset) {
      this.unrecoverable(
        t,
        t.offset,
        lastSize - t.offset,
        'copytruncate: written after logrotate copied the file and before it truncated it (at least this many bytes; more may have been written after the last look)',
      );
      return;
    }
    this.log.warn(
      {
        source: this.cfg.name,
        path: t.path,
        copy: t.file,
        copyEnd: t.offset,
        lastSeenSize: lastSize,
      },
      'copytruncate window: the copy is read to its end; lines written after the copy and before the truncation, if any, are in neither file and cannot be measured',
    );
  }

  private unrecoverable(t: FileTailer, from: number, bytes: number | null, why: string): void {
    const u: Unrecoverable = {
      path: t.path,
      file: t.file,
      fromOffset: from,
      bytes,
      why,
      at: new Date().toISOString(),
    };
    this.stats.unrecoverableRanges++;
    this.stats.unrecoverableBytes += bytes ?? 0;
    this.stats.unrecoverable.push(u);
    if (this.stats.unrecoverable.length > 20) this.stats.unrecoverable.shift();
    this.log.error({ source: this.cfg.name, ...u }, 'bytes lost: cannot be recovered');
  }

  private decompressFailed(t: FileTailer, why: string): void {
    const id = `${t.dev}:${t.ino}`;
    const n = (this.failures.get(id) ?? 0) + 1;
    this.failures.set(id, n);
    t.src?.close();
    t.detach(`decompressing failed: ${why}`);
    this.log.warn(
      { source: this.cfg.name, path: t.path, file: t.file, offset: t.offset, err: why, attempt: n },
      'decompressing a rotated generation failed; will try again',
    );
    if (n >= MAX_FAILURES) {
      this.unrecoverable(t, t.offset, null, `${t.file} cannot be decompressed past here: ${why}`);
      t.attach(new EndedSource(t.offset), t.file, t.dev, t.ino);
    }
  }

  private maybeGiveUp(t: FileTailer, now: number): void {
    const d = t.detached!;
    if (now - d.since < DETACHED_GIVE_UP_MS || !this.scannedSince(d.since)) return;
    if (d.why.startsWith('closed while idle') && !t.changedWhileParked) {
      // Read to its end when it was closed, and no change reported since: nothing known unread.
      this.log.info(
        { source: this.cfg.name, path: t.path, key: t.key, offset: t.offset, why: d.why },
        'a file closed while idle is gone, with nothing written to it since as far as the agent saw',
      );
      t.attach(new EndedSource(t.offset), t.file, t.dev, t.ino);
      return;
    }
    const window = this.windows.get(t);
    this.windows.delete(t);
    this.unrecoverable(
      t,
      t.offset,
      window !== undefined ? Math.max(0, window - t.offset) : null,
      d.why === 'restart'
        ? 'no rotated generation has this file’s first bytes: it was deleted, or rotated out of the set'
        : `no rotated copy has this file’s first bytes (${d.why})`,
    );
    t.attach(new EndedSource(t.offset), t.file, t.dev, t.ino);
  }

  private lastCompleteScan = 0;
  private scannedSince(t: number): boolean {
    return this.lastCompleteScan > t;
  }

  /** This source's rotation-set state; created (the boundary set) the first time it is tracked. */
  private sourceState(): SourceState {
    let st = this.store.sourceState(this.cfg.name);
    if (!st) {
      st = { since: new Date().toISOString(), finished: [] };
      this.store.setSourceState(this.cfg.name, st);
      this.stats.trackedSince = st.since;
    }
    return st;
  }

  /** Looks at every rotated generation (see the top of this file). */
  private async scanGenerations(paths: string[]): Promise<void> {
    const started = Date.now();
    // The first time the source is tracked, the generations that exist predate guard.
    const first = this.store.sourceState(this.cfg.name) === undefined;
    const st = this.sourceState();
    const since = Date.parse(st.since);
    // A file opened while short or empty has a short fingerprint until it is read: extended now,
    // so that its content is recognised under a generation's name (not shipped a second time).
    for (const t of this.tailers()) if (t.src instanceof FdSource) t.extendFingerprint(Infinity);
    let complete = !this.listTruncated;
    const heads: Buffer[] = [];
    // Uncompressed first: while logrotate compresses NAME.1, the descriptor of NAME.1 has it whole.
    const ordered = [
      ...paths.filter((p) => compressionOf(p) === null),
      ...paths.filter((p) => compressionOf(p) !== null),
    ];
    let history = 0;
    let later = false;
    this.generationsWaiting = 0;
    for (const path of ordered) {
      const base = generationBase(path);
      if (base === null) continue;
      let gen: Generation | 'held' | null;
      try {
        gen = await this.examine(path);
      } catch (e) {
        complete = false;
        this.log.warn(
          { source: this.cfg.name, file: path, err: (e as Error).message },
          'cannot examine a rotated generation',
        );
        continue;
      }
      if (gen === 'held') continue; // read through a descriptor already
      if (gen === null) {
        complete = false; // renamed or removed meanwhile: its content may be under a name not listed
        continue;
      }
      heads.push(gen.head);
      let verdict;
      try {
        verdict = await this.place(gen, base, st, first || gen.mtimeMs < since);
      } catch (e) {
        complete = false;
        this.log.warn(
          { source: this.cfg.name, file: path, err: (e as Error).message },
          'cannot open a rotated generation',
        );
        continue;
      }
      if (verdict === 'history') history++;
      if (verdict === 'later') complete = false;
      if (verdict === 'later') later = true;
    }
    this.openFiles.setWaiting(this, this.waitingFiles());
    this.openFiles.setGenerationsWaiting(this, this.generationsWaiting);
    if (history > 0) {
      this.stats.historyGenerations += history;
      this.log.info(
        { source: this.cfg.name, since: st.since, historyGenerations: history },
        'rotated generations that existed when guard began to track this source, or were last written before, predate guard: not shipped',
      );
    }
    if (complete) {
      // Finished records no file has any more (rotated out of the set) are forgotten.
      for (const t of this.current.values())
        if (t.src instanceof FdSource) heads.push(readHead(t.src.fd));
      // A directory listing can miss a file renamed while it is read: a record is forgotten only
      // when no complete scan has found its file for a minute.
      const keep = st.finished.filter((f) => {
        if (heads.some((h) => headMatches(h, f))) {
          this.unseen.delete(f);
          return true;
        }
        const since = this.unseen.get(f) ?? started;
        this.unseen.set(f, since);
        return started - since < FORGET_AFTER_MS;
      });
      if (keep.length !== st.finished.length) {
        st.finished = keep;
        this.store.setSourceState(this.cfg.name, st);
      }
      this.lastCompleteScan = started;
    }
    if (first || history > 0) this.store.save(true);
    // A generation left for later (decompressors busy, renamed meanwhile): looked at again soon,
    // not only when the next event names something (on events nothing else would ask).
    if (later) this.rescanSoon(1000);
  }

  /**
   * Stats a generation and, when its identity is new (or it grew), reads its first bytes through a
   * descriptor from the helper. null: gone, or read through a descriptor we hold already.
   */
  private async examine(path: string): Promise<Generation | 'held' | null> {
    let id;
    try {
      id = await this.link.call((c) => c.stat(path));
    } catch (e) {
      if (e instanceof HelperRefusal && e.code === 'not_found') return null;
      throw e;
    }
    if (this.holding(id.dev, id.ino)) return 'held';
    const key = `${id.dev}:${id.ino}`;
    const ext = compressionOf(path);
    const known = this.seen.get(key);
    if (
      known &&
      known.size === id.size &&
      (known.head.length >= FINGERPRINT_BYTES || ext === null)
    ) {
      known.path = path;
      return known;
    }
    const opened = await this.openGeneration(path);
    if (opened === null) return null;
    const fd = opened.fd;
    if (opened.dev !== id.dev || opened.ino !== id.ino) {
      closeSync(fd); // renamed between the stat and the open: the next scan sees it as it is
      return null;
    }
    try {
      let head: Buffer;
      if (ext === null) head = readHead(fd);
      else {
        const h = await compressedHead(fd, ext);
        if (h.failure !== null) throw new Error(`decompressing its first bytes: ${h.failure}`);
        head = h.head;
      }
      const gen = {
        path,
        dev: id.dev,
        ino: id.ino,
        size: id.size,
        head,
        ext,
        mtimeMs: fstatSync(fd).mtimeMs,
      };
      this.seen.set(key, gen);
      return gen;
    } finally {
      closeSync(fd);
    }
  }

  private async openGeneration(
    path: string,
  ): Promise<{ fd: number; dev: string; ino: string } | null> {
    try {
      const { fd, reply } = await this.link.call((c) => c.open(path));
      return { fd, dev: reply.dev, ino: reply.ino };
    } catch (e) {
      if (e instanceof HelperRefusal && e.code === 'not_found') return null;
      throw e;
    }
  }

  /** Decides what a generation is (the list at the top of this file) and acts on it. */
  private async place(
    gen: Generation,
    base: string,
    st: SourceState,
    /** It existed when the source was first tracked, or was last written before: it predates guard. */
    history: boolean,
  ): Promise<'reading' | 'resumed' | 'finished' | 'history' | 'new' | 'later'> {
    for (const t of this.tailers())
      if ((t.src !== null || t.parked) && headMatches(gen.head, t.fingerprint)) return 'reading';
    // Decompressing is bounded: each stream holds up to 1 MiB, and a process but for gzip.
    const busy =
      gen.ext !== null &&
      [...this.draining].filter((t) => t.src instanceof StreamSource).length >= MAX_STREAMS;
    const waiting = [...this.draining].find(
      (t) => t.src === null && headMatches(gen.head, t.fingerprint),
    );
    if (waiting)
      return !busy && (await this.withRoom(() => this.resume(waiting, gen))) ? 'resumed' : 'later';
    const done = st.finished.find((f) => headMatches(gen.head, f));
    if (done) {
      // The same file, finished and then written to again (a writer that kept its descriptor past
      // the quiet period): the rest is shipped from where it ended.
      if (
        gen.ext === null &&
        done.why === 'shipped' &&
        done.key?.startsWith(`${gen.dev}.${gen.ino}.`) === true &&
        gen.size > done.size
      ) {
        if (!(await this.withRoom(() => this.shipGeneration(gen, base, done.size)))) return 'later';
      }
      return 'finished';
    }
    if (history) {
      st.finished.push({
        ...fingerprintOf(gen.head),
        size: gen.size,
        why: 'history',
        at: new Date().toISOString(),
      });
      this.store.touch();
      return 'history';
    }
    if (gen.head.length === 0) return 'finished'; // empty: nothing to ship
    return !busy && (await this.withRoom(() => this.shipGeneration(gen, base, 0)))
      ? 'new'
      : 'later';
  }

  /**
   * Opens a generation for reading (resume, ship) within the descriptor bound: false when there is
   * no room now. Idle files are closed for it; while generations wait, files read to their end
   * give their descriptors up, and the scan looks again in a second.
   */
  private async withRoom(open: () => Promise<boolean>): Promise<boolean> {
    if (this.openFiles.room <= 0) this.openFiles.reclaim(1);
    let opened = false;
    const ran = await this.openFiles.reserve(async () => {
      opened = await open();
    });
    if (!ran) this.generationsWaiting++;
    return opened;
  }

  /** Generations the last scan left for want of a descriptor. */
  private generationsWaiting = 0;

  /** Files of this source waiting for a descriptor: parked ones changed, new ones, generations. */
  private waitingFiles(): number {
    return this.backlog.size + this.unopened.size + this.generationsWaiting;
  }

  /**
   * Opens a generation again for reading (its size updated); null when the path names another file
   * by now (renamed meanwhile: the next scan finds it under its new name).
   */
  private async reopen(gen: Generation): Promise<number | null> {
    let reply, fd: number;
    try {
      ({ reply, fd } = await this.link.call((c) => c.open(gen.path)));
    } catch (e) {
      if (e instanceof HelperRefusal && e.code === 'not_found') return null;
      throw e;
    }
    if (reply.dev !== gen.dev || reply.ino !== gen.ino) {
      closeSync(fd);
      return null;
    }
    gen.size = reply.size;
    return fd;
  }

  /** A tailer waiting for its content goes on from its offset in this generation. */
  private async resume(t: FileTailer, gen: Generation): Promise<boolean> {
    const fd = await this.reopen(gen);
    if (fd === null) return false;
    let src: ByteSource;
    if (gen.ext !== null) src = streamOf(fd, gen.ext, t.offset);
    else if (gen.size >= t.offset) src = new FdSource(fd);
    else {
      // The copy ends before what was read (the rest came from the live file before the truncation).
      closeSync(fd);
      src = new EndedSource(t.offset);
    }
    t.attach(src, gen.path, gen.dev, gen.ino);
    this.wake();
    this.stats.recoveredGenerations++;
    this.log.info(
      {
        source: this.cfg.name,
        path: t.path,
        file: gen.path,
        key: t.key,
        offset: t.offset,
        compressed: gen.ext !== null,
      },
      'finishing a file from its rotated generation',
    );
    return true;
  }

  /** A generation never read as the live file: shipped whole (or from `offset`) as a file of `base`. */
  private async shipGeneration(gen: Generation, base: string, offset: number): Promise<boolean> {
    const fd = await this.reopen(gen);
    if (fd === null) return false;
    const src = gen.ext === null ? new FdSource(fd) : streamOf(fd, gen.ext, offset);
    const t = new FileTailer(
      this.cfg.name,
      base,
      src,
      gen.dev,
      gen.ino,
      { offset, checkpoint: null, head: gen.head },
      this.opts,
      this.onAcked,
    );
    t.file = gen.path;
    t.rotated = true;
    this.draining.add(t);
    this.wake();
    this.stats.recoveredGenerations++;
    this.log.warn(
      {
        source: this.cfg.name,
        path: base,
        file: gen.path,
        offset,
        compressed: gen.ext !== null,
        key: t.key,
      },
      offset === 0
        ? 'shipping a rotated generation never read as the live file (it lived between two looks)'
        : 'shipping what was written to a rotated file after it was closed',
    );
    return true;
  }

  private async openPath(path: string, quietIfMissing = false): Promise<void> {
    let reply, fd: number;
    try {
      ({ reply, fd } = await this.link.call((c) => c.open(path)));
    } catch (e) {
      if (!(e instanceof HelperRefusal)) {
        this.log.warn({ path, err: (e as Error).message }, 'cannot ask the helper');
        return;
      }
      if (e.code === 'not_found') {
        this.refused.delete(path);
        if (!quietIfMissing) this.vanished.delete(path);
        this.firstPaths?.delete(path); // a file that appears there later is new: read from its start
        return;
      }
      if (!this.refused.has(path))
        this.log.error(
          { source: this.cfg.name, path, code: e.code, reason: e.message },
          'helper refused a file',
        );
      this.refused.set(path, {
        code: e.code,
        message: e.message,
        since: this.refused.get(path)?.since ?? new Date().toISOString(),
      });
      return;
    }
    this.refused.delete(path);
    this.vanished.delete(path);
    // `start_at = end` is for the files the first listing found, not for what later replaces them
    // at the same path (a rotation before the first restart): asked once per path.
    const firstFile = this.firstPaths?.delete(path) === true;
    let same = this.holding(reply.dev, reply.ino);
    if (
      same?.parked &&
      same.path !== path &&
      !headMatches(readHead(fd, same.fingerprint.fingerprintBytes), same.fingerprint)
    ) {
      // Another name, other first bytes: not the file closed while idle renamed, but a new file
      // the kernel gave that file's inode number after it was removed. That one is gone (its
      // tailer waits for its content, as for any parked file removed); this one is new.
      this.goneWhileParked(same, 'removed');
      same = undefined;
    }
    if (same?.parked) {
      // a file closed while idle, under this name too: its descriptor again (first bytes checked)
      this.unparkOn(same, fd, reply.size);
      this.markDirty(same);
      return;
    }
    if (same) {
      // already tailing this inode: under another name (syslog.1 after a rotation), or back at its path
      closeSync(fd);
      if (same.path === path && this.draining.delete(same)) {
        same.rotated = false;
        this.current.set(path, same);
      }
      return;
    }
    const head = readHead(fd);
    for (const w of this.draining) {
      if (w.src !== null || w.parked || w.dev !== reply.dev || w.ino !== reply.ino) continue;
      if (!headMatches(head, w.fingerprint)) continue;
      // The content a tailer waits for, under a name this source matches too (a file closed
      // while idle, then renamed: logrotate's `extension .log` with `*.log`): that tailer goes on
      // reading it. A second tailer under the same key shipped it again after a crash, once the
      // waiting one had given up and finished the key at its own offset.
      w.attach(new FdSource(fd), path, reply.dev, reply.ino);
      w.size = reply.size;
      this.log.info(
        { source: this.cfg.name, path: w.path, file: path, key: w.key, offset: w.offset },
        'content of a file closed while idle found under another name; reading it there',
      );
      this.wake();
      return;
    }
    const checkpoint = this.store.find(head, reply.dev, reply.ino);
    // A file finished under another name that a pattern matches too (an audit source's
    // `audit.log.[0-9]*`): what was shipped of it is not shipped again.
    const done = checkpoint
      ? undefined
      : this.store
          .sourceState(this.cfg.name)
          ?.finished.find(
            (f) =>
              f.why === 'shipped' &&
              f.key?.startsWith(`${reply.dev}.${reply.ino}.`) === true &&
              headMatches(head, f),
          );
    const offset = checkpoint
      ? checkpoint.offset <= reply.size
        ? checkpoint.offset
        : 0
      : done
        ? Math.min(done.size, reply.size)
        : firstFile && this.cfg.startAt === 'end'
          ? reply.size
          : 0;
    const t = new FileTailer(
      this.cfg.name,
      path,
      fd,
      reply.dev,
      reply.ino,
      { offset, checkpoint, head },
      this.opts,
      this.onAcked,
    );
    t.size = reply.size;
    this.current.set(path, t);
    this.markDirty(t);
    this.log.info(
      {
        source: this.cfg.name,
        path,
        dev: reply.dev,
        ino: reply.ino,
        offset,
        resumed: checkpoint !== null,
      },
      'tailing file',
    );
  }

  close(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    if (this.quick) clearTimeout(this.quick);
    for (const t of this.soon.values()) clearTimeout(t);
    this.soon.clear();
    this.watch?.close();
    this.watch = null;
    this.openFiles.unregister(this);
    for (const t of this.tailers()) t.close();
    this.current.clear();
    this.draining.clear();
  }
}

/**
 * The helper's `watch` op (docs/protocol.md): an inotify descriptor and the directories it watches.
 * The descriptor is checked before use, as `open`'s are (sources/descriptors.ts): a compromised or
 * fake helper could hand over a socket or a file instead; anything but an inotify instance is closed
 * unread and refused.
 */
async function watchOf(
  c: HelperClient,
  source: string,
): Promise<{ fd: number; watches: { wd: number; dir: string }[] }> {
  const got = await c.watch(source);
  let what = '';
  try {
    what = readlinkSync(`/proc/self/fd/${got.fd}`);
  } catch {
    /* refused below */
  }
  if (what !== 'anon_inode:inotify') {
    try {
      closeSync(got.fd);
    } catch {
      /* not ours to keep either way */
    }
    throw new DescriptorRejected(
      `the helper's watch descriptor is ${what || 'unreadable'}, not an inotify instance: closed unread`,
    );
  }
  return got;
}
