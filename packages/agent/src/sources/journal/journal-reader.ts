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
   * Reads the next entries as event lines into `out` (see journal.c, read). Returns the chunk's
   * ticket and how many lines, or null when there is nothing new. Throws nothing: a read error is
   * logged and the journal re-opened at the next rescan.
   */
  read(
    out: { buf: Buffer; sizes: Float64Array; meta: Int32Array; grow: (need: number) => void },
    maxEntries: number,
  ): { ticket: JournalTicket; count: number; filtered: number } | null {
    if (this.handle === null) return null;
    const cursors = this.spareCursors.pop() ?? Buffer.allocUnsafe((maxEntries + 1) * CURSOR_STRIDE);
    let r: [number, number, boolean, number];
    try {
      for (;;) {
        r = journalAddon().read(this.handle, out.buf, out.sizes, out.meta, cursors, maxEntries);
        if (r[3] === 0) break;
        out.grow(r[3]);
      }
    } catch (e) {
      this.spareCursors.push(cursors);
      this.lastError = `read failed: ${(e as Error).message}`;
      this.opts.log.error(
        { source: this.opts.source, journal: this.key, err: (e as Error).message },
        'journal read failed; re-opening at the last entry read',
      );
      journalAddon().close(this.handle);
      this.handle = null;
      this.openSet = ''; // the next sync re-opens and seeks back
      return null;
    }
    const [count, filtered, atEnd] = r;
    this.atEnd = atEnd;
    if (count + filtered === 0) {
      this.spareCursors.push(cursors);
      return null;
    }
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
    return { ticket, count, filtered };
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

  close(): void {
    if (this.handle !== null) journalAddon().close(this.handle);
    this.handle = null;
    for (const f of this.files.values()) closeSync(f.fd);
    this.files.clear();
  }
}
