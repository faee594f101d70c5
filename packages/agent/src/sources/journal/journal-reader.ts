// One journal directory (a machine id, or a namespace `<id>.<ns>`), its /run and /var halves in one
// sd_journal so that libsystemd merges them and journald's boot-time flush is not read twice. It
// holds the descriptors the helper gave it (libsystemd gets copies), re-opens when the file set
// changes and seeks back to where it was, and records what every sink acknowledged as a cursor.
import { closeSync } from 'node:fs';
import type { Logger } from 'pino';
import { CURSOR_STRIDE, journalAddon, type JournalHandle } from '@guard/journal';
import type { Ticket } from '../file/tailer';
import { type Cursor, parseCursor, sameEntry, seqnumGap } from './cursor';
import { readHeader, STATE_ARCHIVED } from './header';

/** A journal file the helper opened for us. `fd` stays ours; libsystemd is handed copies. */
export interface HeldFile {
  path: string;
  fd: number;
  dev: string;
  ino: string;
}

/** A chunk of entries read at once; acknowledged when every event made from them is. */
export interface JournalTicket extends Ticket {
  /** Ordinal (entries consumed by this reader since it started) of the chunk's first entry. */
  readonly base: number;
  /** The cursors of the chunk's entries, CURSOR_STRIDE bytes each; slot `count` is the cursor of
   *  the last entry the chunk consumed (one filtered out included). */
  cursors: Buffer;
  readonly count: number;
}

export interface Gap {
  at: string;
  /** Entries lost; null when they cannot be counted (journald started a new sequence). */
  entries: number | null;
  /** The last entry shipped before the gap, and the first after it (their times). */
  after: string;
  resumedAt: string;
}

export interface ReaderOptions {
  source: string;
  /** `,"source":…}\n`: what every event line ends with. */
  tail: string;
  maxValueBytes: number;
  lists: string[][];
  /** Redaction's trigger words (BIT_SECRET), or none. */
  triggers: readonly string[];
  startAtEnd: boolean;
  onAcked: (r: JournalReader) => void;
  log: Logger;
}

/** Where one read's event lines go: the lines, their sizes, and meta (see journal.c, read). */
export class ReadArea {
  buf = Buffer.allocUnsafe(1 << 20);
  readonly sizes = new Float64Array(MAX_ENTRIES);
  readonly meta = new Int32Array(MAX_ENTRIES * 3);
  readonly ends = new Float64Array(MAX_ENTRIES);
  grow(need: number): void {
    this.buf = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
  }
}

/** One read: read()'s result, or the error it threw, and where it wrote. */
interface ReadResult {
  err: Error | null;
  r?: [number, number, boolean, number];
  area: ReadArea;
  cursors: Buffer;
}

/** Entries read at a time (one addon call). */
export const MAX_ENTRIES = 1024;

function cursorAt(buf: Buffer, slot: number): string {
  const at = slot * CURSOR_STRIDE;
  const end = buf.indexOf(0, at);
  return buf.toString('latin1', at, end < 0 || end > at + CURSOR_STRIDE ? at + CURSOR_STRIDE : end);
}

function iso(usec: number): string {
  return new Date(Math.floor(usec / 1000)).toISOString();
}

export class JournalReader {
  /** By `dev:ino`. */
  readonly files = new Map<string, HeldFile>();
  private handle: JournalHandle | null = null;
  /** The `dev:ino`s the open handle was given. */
  private openSet = '';
  /** The last entry read (not necessarily acknowledged): where a re-open seeks back to. */
  private readCursor: string | null;
  /** Every entry up to this one is acknowledged by every sink: what is saved. */
  ackedCursor: string | null;
  private ordinal = 0;
  private ackedOrdinal = 0;
  private readonly tickets: JournalTicket[] = [];
  private readonly spareCursors: Buffer[] = [];
  /** The areas chunks are read into: one lent to the caller (shipped from), the others free or
   *  read ahead into. */
  private readonly freeAreas = [new ReadArea(), new ReadArea(), new ReadArea()];
  private lent: ReadArea | null = null;
  /** A read ahead on libuv's pool (the handle is its thread's until it ends), and what the reads
   *  ahead found, in order. */
  private inFlight: Promise<void> | null = null;
  private readonly ready: ReadResult[] = [];
  /** Bumped when the handle is closed or re-opened: a read ahead of an older one is not taken. */
  private epoch = 0;
  /** hold()s not yet released: no read ahead is started meanwhile. */
  private holds = 0;
  atEnd = false;
  lastReadAt = 0;
  caughtUpAt = Date.now();
  lastError: string | null = null;
  readonly gaps = { count: 0, entries: 0, uncounted: 0, last: null as Gap | null };

  constructor(
    readonly key: string,
    private readonly opts: ReaderOptions,
    saved: string | null,
  ) {
    this.readCursor = saved;
    this.ackedCursor = saved;
  }

  /** What acknowledgements are routed by (Ticket's owner). */
  get source(): string {
    return this.opts.source;
  }

  get isOpen(): boolean {
    return this.handle !== null;
  }

  byPath(path: string): HeldFile | undefined {
    for (const f of this.files.values()) if (f.path === path) return f;
    return undefined;
  }

  /**
   * Takes the files the helper lists now (`listed`, by dev:ino; new ones already added with add()).
   * A held file no longer listed (vacuumed, or a name we no longer read) is kept while it still
   * holds entries after the last one read, so that a vacuum of files not read yet loses nothing we
   * had a descriptor for. Re-opens when the set changed.
   */
  sync(listed: Set<string>): void {
    const at = this.readCursor ? parseCursor(this.readCursor) : null;
    for (const [id, f] of this.files) {
      if (listed.has(id)) continue;
      const flushed = this.copied(f, at, listed);
      if (!flushed && this.stillNeeded(f, at)) continue;
      this.files.delete(id);
      if (this.handle === null) closeSync(f.fd);
      else this.dropped.push(f.fd); // libsystemd holds a copy until the re-open below
      this.opts.log.info(
        { source: this.opts.source, journal: this.key, path: f.path },
        flushed
          ? 'journal file gone, its entries copied to another (journald flushed /run to /var); closed'
          : 'journal file gone and read to its end; closed',
      );
    }
    const set = [...this.files.keys()].sort().join(',');
    if (set !== this.openSet) this.reopen(set);
    for (const fd of this.dropped.splice(0)) closeSync(fd);
  }
  private readonly dropped: number[] = [];

  add(f: HeldFile): void {
    this.files.set(`${f.dev}:${f.ino}`, f);
  }

  private stillNeeded(f: HeldFile, at: Cursor | null): boolean {
    if (at === null) return this.ordinal === 0; // nothing read yet: keep what we were given
    const h = readHeader(f.fd);
    if (h === null || h.entries === 0) return false;
    return h.seqnumId === at.s ? h.tailSeqnum > at.i : h.tailRealtime > at.t;
  }

  /**
   * True when the entries of `f` after `at` are in another listed file under another seqnum id:
   * journald flushed its /run journal to /var (the copies keep their boot id, timestamps and hash,
   * and get a new seqnum id) and removed it. The /run file is then dropped at once rather than read
   * to its end beside the copies: libsystemd orders entries of two sequences by time, then by hash,
   * and entries sharing a timestamp (a stdout stream's lines) would be read twice. The re-open
   * finds the last entry read among the copies (seekCursor).
   */
  private copied(f: HeldFile, at: Cursor | null, listed: Set<string>): boolean {
    if (at === null) return false;
    const h = readHeader(f.fd);
    if (h === null || h.seqnumId !== at.s) return false;
    for (const [id, g] of this.files) {
      if (g === f || !listed.has(id)) continue;
      const c = readHeader(g.fd);
      if (c === null || c.entries === 0 || c.seqnumId === h.seqnumId) continue;
      if (c.headRealtime <= at.t && c.tailRealtime >= h.tailRealtime) return true;
    }
    return false;
  }

  /**
   * The held files to hand libsystemd: never the files of the last entry's sequence together with
   * files of another sequence that overlap them in time (a flush under way: journald copying /run
   * to /var, see copied()). While the copies have not passed the last entry read, the /run side is
   * read; once they have, the copies.
   */
  private oneSequence(): HeldFile[] {
    const files = [...this.files.values()];
    const at = this.readCursor ? parseCursor(this.readCursor) : null;
    if (at === null) return files;
    const hdr = new Map(files.map((f) => [f, readHeader(f.fd)]));
    const ours = files.filter((f) => hdr.get(f)?.seqnumId === at.s);
    const copies = files.filter((f) => {
      const c = hdr.get(f);
      if (!c || c.entries === 0 || c.seqnumId === at.s) return false;
      return ours.some((a) => {
        const h = hdr.get(a)!;
        return c.headRealtime <= h.tailRealtime && c.tailRealtime >= h.headRealtime;
      });
    });
    if (copies.length === 0) return files;
    const passed = copies.some((f) => {
      const c = hdr.get(f)!;
      return c.headRealtime <= at.t && c.tailRealtime > at.t;
    });
    return files.filter((f) => (passed ? !ours.includes(f) : !copies.includes(f)));
  }

  /** True when a held file was archived since it was opened (journald rotated it). */
  rotated(): boolean {
    for (const f of this.files.values()) {
      if (this.archived.has(f.ino)) continue;
      if (readHeader(f.fd)?.state === STATE_ARCHIVED) return true;
    }
    return false;
  }
  /** Inodes known archived when the handle was last opened. */
  private archived = new Set<string>();

  private reopen(set: string): void {
    if (this.handle !== null) journalAddon().close(this.handle); // closes libsystemd's copies
    this.handle = null;
    this.dropAhead();
    this.openSet = set;
    this.archived = new Set();
    const held = this.oneSequence();
    if (held.length === 0) return;
    for (const f of held) if (readHeader(f.fd)?.state === STATE_ARCHIVED) this.archived.add(f.ino);
    const copies: number[] = [];
    try {
      const addon = journalAddon();
      for (const f of held) copies.push(addon.dup(f.fd));
      this.handle = addon.open(
        copies,
        this.opts.tail,
        this.opts.maxValueBytes,
        this.opts.lists,
        this.opts.triggers,
      );
      copies.length = 0; // libsystemd's now
      this.position();
    } catch (e) {
      for (const fd of copies) closeSync(fd); // still ours when the open failed
      if (this.handle !== null) journalAddon().close(this.handle);
      this.handle = null;
      const why = `cannot open the journal files: ${(e as Error).message}`;
      if (why !== this.lastError)
        this.opts.log.error(
          { source: this.opts.source, journal: this.key, err: (e as Error).message },
          'cannot open journal files (tried again at every rescan; logged again if the reason changes)',
        );
      this.lastError = why;
      this.openSet = ''; // try again at the next rescan
      return;
    }
    this.lastError = null;
    this.opts.log.info(
      {
        source: this.opts.source,
        journal: this.key,
        files: held.length,
        cursor: this.readCursor,
      },
      'reading journal',
    );
  }

  /** After an open: just after the last entry read, or at the head / tail when there is none. */
  private position(): void {
    const h = this.handle!;
    if (this.readCursor === null) {
      if (!this.opts.startAtEnd) return journalAddon().seekHead(h);
      const last = journalAddon().seekTail(h);
      if (last !== null) {
        this.readCursor = last;
        this.ackedCursor = last; // start_at = end: the entries before the first start are not shipped
        this.opts.onAcked(this);
      }
      return;
    }
    const landing = journalAddon().seekCursor(h, this.readCursor);
    if (landing === null) return; // nothing at or after it yet
    const saved = parseCursor(this.readCursor);
    const land = parseCursor(landing);
    if (saved === null || land === null) return;
    if (sameEntry(saved, land)) return journalAddon().skipOne(h);
    const lost = seqnumGap(saved, land);
    if (lost !== 0) this.recordGap(saved, land, lost);
  }

  /** Entries vacuumed before they were shipped: never silent. */
  private recordGap(saved: Cursor, land: Cursor, entries: number | null): void {
    const gap: Gap = {
      at: new Date().toISOString(),
      entries,
      after: iso(saved.t),
      resumedAt: iso(land.t),
    };
    this.gaps.count++;
    if (entries === null) this.gaps.uncounted++;
    else this.gaps.entries += entries;
    this.gaps.last = gap;
    this.opts.log.warn(
      { source: this.opts.source, journal: this.key, ...gap, seqnumId: land.s },
      entries === null
        ? 'journal entries may have been lost before they were shipped: the saved position is gone and the journal started a new sequence'
        : `journal gap: ${entries} entries were removed (vacuumed) before they were shipped`,
    );
  }

  /**
   * The next entries as event lines (see journal.c, read), in one of the reader's areas: the
   * chunk's ticket, how many lines, and the area they are in (the caller is done with it when it
   * calls next() again). Null when there is nothing new. Throws nothing: a read error is logged and
   * the journal re-opened at the next rescan.
   *
   * While the caller ships a full chunk, the next ones are read ahead into the other areas on a
   * thread of libuv's pool (readAsync), one after another while an area is free: libsystemd and
   * the encoding, most of an entry's CPU, then run beside the JavaScript that queues and sends.
   * Reading ahead stops at the end of the journal; a read ahead that found nothing is not kept
   * (the next call reads afresh, so a new entry is not a poll late).
   */
  async next(
    maxEntries: number,
  ): Promise<{ ticket: JournalTicket; count: number; filtered: number; area: ReadArea } | null> {
    if (this.lent !== null) this.freeAreas.push(this.lent);
    this.lent = null;
    while (this.ready.length === 0 && this.inFlight !== null) await this.inFlight;
    if (this.handle === null) return null;
    let got = this.ready.shift() ?? null;
    if (got !== null && got.err === null && got.r![0] + got.r![1] === 0) {
      this.putBack(got); // at the end when it was read: read again now
      got = null;
    }
    if (got === null) {
      const area = this.freeAreas.pop()!;
      const cursors = this.takeCursors(maxEntries);
      try {
        got = { err: null, r: this.readInto(area, cursors, maxEntries), area, cursors };
      } catch (e) {
        got = { err: e as Error, area, cursors };
      }
    } else if (got.err === null && got.r![3] > 0) {
      // an entry larger than the area (the last read ahead): grown, and read again here
      try {
        got.area.grow(got.r![3]);
        got.r = this.readInto(got.area, got.cursors, maxEntries, got.r![1]);
      } catch (e) {
        got.err = e as Error;
      }
    }
    const { area, cursors, r } = got;
    if (got.err !== null) {
      this.putBack(got);
      this.lastError = `read failed: ${got.err.message}`;
      this.opts.log.error(
        { source: this.opts.source, journal: this.key, err: got.err.message },
        'journal read failed; re-opening at the last entry read',
      );
      journalAddon().close(this.handle);
      this.handle = null;
      this.dropAhead();
      this.openSet = ''; // the next sync re-opens and seeks back
      return null;
    }
    const [count, filtered, atEnd] = r!;
    this.atEnd = atEnd && this.ready.length === 0;
    if (count + filtered === 0) {
      this.putBack(got);
      return null;
    }
    this.lent = area;
    this.lastReadAt = Date.now();
    this.readCursor = cursorAt(cursors, count);
    const ticket: JournalTicket = {
      tailer: this,
      generation: 0,
      base: this.ordinal,
      endOffset: this.ordinal + count + filtered,
      remaining: 0,
      delivered: null,
      cursors,
      count,
    };
    this.ordinal += count + filtered;
    this.tickets.push(ticket);
    if (!atEnd && this.ready.length === 0) this.readAhead(maxEntries);
    return { ticket, count, filtered, area };
  }

  /** read() into `area` until it fits one entry at least; throws what read() throws. `filtered`:
   *  entries a read that stopped at a too large one had already filtered out (counted here too). */
  private readInto(
    area: ReadArea,
    cursors: Buffer,
    maxEntries: number,
    filtered = 0,
  ): [number, number, boolean, number] {
    for (;;) {
      const r = journalAddon().read(
        this.handle!,
        area.buf,
        area.sizes,
        area.meta,
        cursors,
        maxEntries,
      );
      if (r[3] === 0) return [r[0], r[1] + filtered, r[2], 0];
      filtered += r[1];
      area.grow(r[3]);
    }
  }

  private takeCursors(maxEntries: number): Buffer {
    const c = this.spareCursors.pop();
    return c && c.length >= (maxEntries + 1) * CURSOR_STRIDE
      ? c
      : Buffer.allocUnsafe((maxEntries + 1) * CURSOR_STRIDE);
  }

  /** A read's area and cursors, not taken: free again. */
  private putBack(got: ReadResult): void {
    this.freeAreas.push(got.area);
    this.spareCursors.push(got.cursors);
  }

  /** Starts a read ahead when none is in flight, an area is free and nothing holds the handle;
   *  when it ends with a full chunk, the next one starts at once. */
  private readAhead(maxEntries: number): void {
    if (this.inFlight !== null || this.holds > 0 || this.handle === null) return;
    const area = this.freeAreas.pop();
    if (area === undefined) return;
    const epoch = this.epoch;
    const cursors = this.takeCursors(maxEntries);
    let resolve!: () => void;
    const flight = new Promise<void>((r) => (resolve = r));
    this.inFlight = flight;
    const done = (err: Error | null, r?: [number, number, boolean, number]): void => {
      if (this.inFlight === flight) this.inFlight = null;
      const got = { err, r, area, cursors };
      // read from a handle since closed or re-opened (that seeks back to the last entry taken)
      if (epoch !== this.epoch) this.putBack(got);
      else {
        this.ready.push(got);
        if (err === null && r![0] + r![1] > 0 && !r![2] && r![3] === 0) this.readAhead(maxEntries);
      }
      resolve();
    };
    try {
      journalAddon().readAsync(
        this.handle,
        area.buf,
        area.sizes,
        area.meta,
        cursors,
        maxEntries,
        done,
      );
    } catch (e) {
      done(e as Error); // not started: the next call takes the error (and re-opens)
    }
  }

  /** Waits for a read ahead in flight, and starts none until release(): the handle is then free
   *  for sync() to re-open. */
  async hold(): Promise<void> {
    this.holds++;
    while (this.inFlight !== null) await this.inFlight;
  }

  release(): void {
    this.holds--;
  }

  /**
   * Moves the acknowledged cursor, in order: past every chunk whose events every sink has handled,
   * then within the oldest open chunk up to the last entry all `fanout` sinks have handled.
   */
  acknowledge(fanout = 0): void {
    let moved: string | null = null;
    while (this.tickets.length > 0 && this.tickets[0]!.remaining <= 0) {
      const t = this.tickets.shift()!;
      this.ackedOrdinal = t.endOffset;
      moved = cursorAt(t.cursors, t.count);
      if (this.spareCursors.length < 8) this.spareCursors.push(t.cursors);
    }
    const head = this.tickets[0];
    if (head?.delivered && fanout > 0 && head.delivered.size === fanout) {
      const within = Math.min(...head.delivered.values());
      if (within > this.ackedOrdinal) {
        this.ackedOrdinal = within;
        moved = cursorAt(head.cursors, within - head.base - 1);
      }
    }
    if (moved === null) return;
    this.ackedCursor = moved;
    if (this.atEnd && this.tickets.length === 0) this.caughtUpAt = Date.now();
    this.opts.onAcked(this);
  }

  /** Entries and seconds the acknowledged cursor is behind the newest entry of the files held. */
  lag(): { entries: number; seconds: number; tail: string | null } {
    const acked = this.ackedCursor ? parseCursor(this.ackedCursor) : null;
    let entries = 0;
    let tailRealtime = 0;
    for (const f of this.files.values()) {
      const h = readHeader(f.fd);
      if (h === null) continue;
      tailRealtime = Math.max(tailRealtime, h.tailRealtime);
      if (acked === null) entries += h.entries;
      else if (h.seqnumId === acked.s) entries = Math.max(entries, h.tailSeqnum - acked.i);
    }
    const seconds = entries > 0 && acked !== null ? Math.max(0, (tailRealtime - acked.t) / 1e6) : 0;
    return {
      entries,
      seconds: Math.round(seconds),
      tail: tailRealtime > 0 ? iso(tailRealtime) : null,
    };
  }

  /** Forgets what was read ahead: the handle is closed or re-opened (at the last entry taken). */
  private dropAhead(): void {
    this.epoch++;
    for (const got of this.ready.splice(0)) this.putBack(got);
  }

  /** Closes the handle (a read in flight: when it ends) and the files. */
  close(): void {
    if (this.handle !== null) journalAddon().close(this.handle);
    this.handle = null;
    this.dropAhead();
    for (const f of this.files.values()) closeSync(f.fd);
    this.files.clear();
  }
}
