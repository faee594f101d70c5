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
import { closeSync, fstatSync } from 'node:fs';
import { HelperRefusal } from '@guard/protocol/client';
import { splitGeneration } from '@guard/protocol/wire';
import type { Logger } from 'pino';
import type { SourceConfig } from '../../config/types';
import {
  type CheckpointStore,
  FINGERPRINT_BYTES,
  type FinishedFile,
  fingerprintOf,
  headMatches,
  readHead,
  type SourceState,
} from '../../state/checkpoints';
import type { HelperLink } from '../helper-link';
import {
  type ByteSource,
  compressedHead,
  compressionOf,
  FdSource,
  StreamSource,
} from './byte-source';
import { FileTailer, type TailerOptions } from './tailer';

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

export class FileSource {
  /** The file each path currently names. */
  readonly current = new Map<string, FileTailer>();
  /** Rotated away from their path, rotated generations, and tailers waiting for their content. */
  readonly draining = new Set<FileTailer>();
  /** Files the helper refused, with its reason: shown in status, retried on every rescan. */
  readonly refused = new Map<string, Refusal>();
  /** Paths that disappeared by rotation: their successor is looked for on every rotation check. */
  private readonly vanished = new Set<string>();
  listTruncated = false;
  lastListError: string | null = null;
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
  ) {
    this.opts = { ...tailerOpts, onTruncated: (t, size) => this.truncated(t, size) };
    this.stats.trackedSince = store.sourceState(cfg.name)?.since ?? null;
    this.stats.historyGenerations =
      store.sourceState(cfg.name)?.finished.filter((f) => f.why === 'history').length ?? 0;
  }

  *tailers(): Iterable<FileTailer> {
    yield* this.current.values();
    yield* this.draining;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** The tailer reading this inode through a descriptor, if any. */
  private holding(dev: string, ino: string): FileTailer | undefined {
    for (const t of this.tailers())
      if (t.src instanceof FdSource && t.dev === dev && t.ino === ino) return t;
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
      return;
    }
    for (const path of files) if (!this.current.has(path)) await this.openPath(path);
    this.firstStart = false;
    if (!this.claimed) this.claimCheckpoints(files);
    await this.scanGenerations(generations);
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

  private async checkRotationNow(): Promise<void> {
    let rotated = false;
    for (const [path, t] of [...this.current]) {
      try {
        const id = await this.link.call((c) => c.stat(path));
        if (id.dev === t.dev && id.ino === t.ino) {
          // Same file: its size is re-read even while reads are paused (for drained() and a
          // copytruncate's window), and its first bytes are checked (truncated and rewritten past
          // our offset before we looked is a truncation too).
          await t.refreshSize();
          if (t.src instanceof FdSource && !t.headStillMatches()) this.truncated(t, t.size);
          continue;
        }
        this.rotate(path, t);
        rotated = true;
        await this.openPath(path);
      } catch (e) {
        if (e instanceof HelperRefusal && e.code === 'not_found') {
          this.rotate(path, t);
          rotated = true;
        } else this.log.warn({ path, err: (e as Error).message }, 'rotation check failed');
      }
    }
    for (const path of [...this.vanished])
      if (!this.current.has(path)) await this.openPath(path, true);
    // Whatever else rotated since the last look is among the generations now.
    if (rotated || [...this.draining].some((t) => t.src === null)) await this.rescanNow();
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
   */
  private truncated(t: FileTailer, size: number): void {
    if (!(t.src instanceof FdSource)) {
      // A compressed generation that ends before the offset reached: the rest was read from the
      // live file before it was truncated (a copytruncate's copy). Nothing more to read here.
      t.attach(new EndedSource(t.offset), t.file, t.dev, t.ino);
      return;
    }
    const lastSize = t.size;
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
      if (!t.drained) continue;
      if (src instanceof FdSource ? now - t.lastReadAt <= ROTATED_QUIET_MS : !src.complete)
        continue;
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
    }
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
      if (t.src !== null && headMatches(gen.head, t.fingerprint)) return 'reading';
    // Decompressing is bounded: each stream holds up to 1 MiB, and a process but for gzip.
    const busy =
      gen.ext !== null &&
      [...this.draining].filter((t) => t.src instanceof StreamSource).length >= MAX_STREAMS;
    const waiting = [...this.draining].find(
      (t) => t.src === null && headMatches(gen.head, t.fingerprint),
    );
    if (waiting) return !busy && (await this.resume(waiting, gen)) ? 'resumed' : 'later';
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
        if (!(await this.shipGeneration(gen, base, done.size))) return 'later';
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
    return !busy && (await this.shipGeneration(gen, base, 0)) ? 'new' : 'later';
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
    if (gen.ext !== null) src = new StreamSource(fd, gen.ext, t.offset);
    else if (gen.size >= t.offset) src = new FdSource(fd);
    else {
      // The copy ends before what was read (the rest came from the live file before the truncation).
      closeSync(fd);
      src = new EndedSource(t.offset);
    }
    t.attach(src, gen.path, gen.dev, gen.ino);
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
    const src = gen.ext === null ? new FdSource(fd) : new StreamSource(fd, gen.ext, offset);
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
    const same = this.holding(reply.dev, reply.ino);
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
        : this.firstStart && this.cfg.startAt === 'end'
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
    for (const t of this.tailers()) t.close();
    this.current.clear();
    this.draining.clear();
  }
}
