// Reads one file's content, splitting it into lines: through a descriptor the helper gave us, with
// positional reads, or (a compressed rotated generation) through a decompressed stream. Knows
// nothing of parsing or sinks: it hands out raw lines with their offsets, and is told which bytes
// every sink has acknowledged (tickets), which is what its checkpoint records.
//
// A tailer is one file's *content* (its key and fingerprint), not one descriptor: when that content
// moves (copytruncate left the unread rest in a copy; after a restart it is a rotated generation,
// maybe compressed) the tailer is detached from its source and attached to the one that has it now,
// and goes on from where it was, its acknowledgements in flight included.
import {
  type Checkpoint,
  FINGERPRINT_BYTES,
  type Fingerprint,
  fingerprintOf,
  headMatches,
  readHead,
} from '../../state/checkpoints';
import { type ByteSource, FdSource } from './byte-source';

/** Whose events a ticket stands for (a file's tailer, a journal's reader): told of acknowledgements. */
export interface TicketOwner {
  readonly source: string;
  acknowledge(fanout?: number): void;
}

/** The bytes of one chunk of lines; acknowledged when every event made from them is. */
export interface Ticket {
  readonly tailer: TicketOwner;
  /** A truncation starts a new generation: acknowledgements of the old one no longer move the checkpoint. */
  readonly generation: number;
  /** The file offset just past the last byte this chunk consumed (lowered by a source that must
   *  hold back part of it, such as an audit record whose event is not complete yet). */
  endOffset: number;
  /** Events (times sinks) still to be acknowledged. */
  remaining: number;
  /** Per sink: the end offset of the last of this chunk's events it has handled (a chunk can span batches). */
  delivered: Map<unknown, number> | null;
}

/**
 * The complete lines of one read, without an object per line: line k is `buf[starts[k], ends[k])`
 * (without its '\n'), at file offset `base + starts[k]`. `buf` may be a buffer the reader reuses:
 * use the chunk before the next read.
 */
export interface Chunk {
  buf: Buffer;
  base: number;
  starts: number[];
  ends: number[];
  /** Flags of the few lines that have any ('truncated', 'partial'), by line index. */
  flags: Map<number, string[]> | null;
  ticket: Ticket;
}

/** File offset just past line k of a chunk (its newline included): where the next line starts. */
export function lineEndOffset(c: Chunk, k: number): number {
  return k + 1 < c.starts.length ? c.base + c.starts[k + 1]! : c.ticket.endOffset;
}

export interface TailerOptions {
  maxLineBytes: number;
  partialLineTimeoutMs: number;
  readBytes: number;
  /** A buffer of at least `size` bytes to read into, which the caller may reuse once the chunk is
   *  handled (the pipeline shares one among its files, read one at a time). Default: a new one. */
  scratch?: (size: number) => Buffer;
  /** Called instead of starting over at 0 when the file is found shorter than the read offset, or
   *  its first bytes changed (copytruncate): the caller moves the live descriptor to a new tailer. */
  onTruncated?: (t: FileTailer, size: number) => void;
}

export type TailerState = 'flowing' | 'idle' | 'rotated' | 'waiting';

export class FileTailer {
  /** Next byte to read. */
  private readOffset: number;
  /** Every byte before this is acknowledged by every sink. */
  ackedOffset: number;
  size = 0;
  private generation = 0;
  private partial: Buffer | null = null;
  private partialSince = 0;
  /** A partial line was shipped: the next line read is its rest, flagged 'continuation'. */
  private continuing = false;
  /** Inside a line longer than maxLineBytes: its head was shipped (flagged), the rest is skipped. */
  private skipping = false;
  private readonly tickets: Ticket[] = [];
  private reading = false;
  private closed = false;
  /** Set when the path now names another file: read to the end, then close. */
  rotated = false;
  truncations = 0;
  lastReadAt = 0;
  /** lastReadAt when a rotation check was last asked for on reaching the end (the pipeline). */
  lastRotationLook = 0;
  lastEventTime: string | null = null;
  caughtUpAt = Date.now();
  key: string;
  private fp: Fingerprint;
  /** Where the bytes come from now; null while detached (waiting for the file that has them). */
  src: ByteSource | null;
  /** The file read now: `path`, or the rotated generation that holds this content. */
  file: string;
  /** When it was detached (copytruncate, restart), and the live size last seen before. */
  detached: { since: number; lastSize: number; why: string } | null = null;
  /** Closed while idle (its descriptor given back, open-files.ts); reopened through the helper when
   *  it changes. Unlike a detached tailer, its content is known to be at its path. */
  parked = false;
  /** The directory watch said it changed while parked (a write, or a rename away). */
  changedWhileParked = false;
  /** Changes the directory watch reported (file-source.ts: a read that started before the last
   *  one does not clear the mark). */
  wakes = 0;
  /** `wakes` when the pump last took it off the read list. */
  wakesAtRead = -1;
  openedAt = Date.now();

  constructor(
    readonly source: string,
    /** The live path this content was written under: what its events carry as `path`. */
    readonly path: string,
    src: number | ByteSource | null,
    public dev: string,
    public ino: string,
    start: { offset: number; checkpoint: Checkpoint | null; head?: Buffer },
    private readonly opts: TailerOptions,
    private readonly onAcked: (t: FileTailer) => void,
  ) {
    this.src = typeof src === 'number' ? new FdSource(src) : src;
    this.file = path;
    this.fp = start.checkpoint
      ? {
          fingerprint: start.checkpoint.fingerprint,
          fingerprintBytes: start.checkpoint.fingerprintBytes,
        }
      : fingerprintOf(start.head ?? this.readHead());
    this.key = start.checkpoint?.key ?? this.keyOf();
    this.readOffset = start.offset;
    this.ackedOffset = start.offset;
  }

  /** `${dev}.${ino}.${fingerprint8}`: fixed when the file's first bytes are first seen. */
  private keyOf(): string {
    return `${this.dev}.${this.ino}.${this.fp.fingerprint.slice(0, 8)}`;
  }

  private readHead(): Buffer {
    return this.src instanceof FdSource ? readHead(this.src.fd) : Buffer.alloc(0);
  }

  /** The descriptor read now, for a file read through one. */
  get fd(): number {
    return this.src instanceof FdSource ? this.src.fd : -1;
  }

  get fingerprint(): Fingerprint {
    return this.fp;
  }

  /** Where reading is: the next byte to read. */
  get offset(): number {
    return this.readOffset;
  }

  get state(): TailerState {
    if (this.parked) return 'idle';
    if (this.src === null) return 'waiting';
    if (this.rotated) return 'rotated';
    return Date.now() - this.lastReadAt < 10_000 ? 'flowing' : 'idle';
  }

  /** True when the first bytes of the file read through a descriptor are this content's (or a
   *  read is under way, which sees a truncation itself). */
  headStillMatches(): boolean {
    if (!(this.src instanceof FdSource) || this.fp.fingerprintBytes === 0 || this.reading)
      return true;
    return headMatches(readHead(this.src.fd, this.fp.fingerprintBytes), this.fp);
  }

  /**
   * A short fingerprint (the file was shorter than FINGERPRINT_BYTES when first seen) is extended as
   * the file grows, so that a checkpoint never matches another file that merely starts the same.
   */
  extendFingerprint(size = this.size): void {
    if (this.fp.fingerprintBytes >= FINGERPRINT_BYTES || size <= this.fp.fingerprintBytes) return;
    if (!(this.src instanceof FdSource)) return;
    const wasEmpty = this.fp.fingerprintBytes === 0;
    this.fp = fingerprintOf(readHead(this.src.fd));
    if (wasEmpty) this.key = this.keyOf(); // nothing was read yet: no event carries the old key
  }

  /** A partial last line is held: the tailer must be read again after partial_line_timeout_ms. */
  get holdsPartial(): boolean {
    return this.partial !== null;
  }

  /** True while a read is under way (its descriptor is in use). */
  get busy(): boolean {
    return this.reading;
  }

  /** Closes the descriptor of a file read to its end; reopen() goes on from the same offset. */
  park(): void {
    if (!(this.src instanceof FdSource) || this.reading || this.partial !== null) return;
    this.src.close();
    this.src = null;
    this.parked = true;
    this.changedWhileParked = false;
  }

  /** A parked file's descriptor again (the caller has checked it is the same file). */
  unpark(fd: number, size: number): void {
    this.src = new FdSource(fd);
    this.parked = false;
    this.size = size;
    this.openedAt = Date.now();
  }

  /** Takes the source away (copytruncate: the live descriptor now has other content). */
  detach(why: string): ByteSource | null {
    const src = this.src;
    this.src = null;
    this.parked = false;
    this.detached = { since: Date.now(), lastSize: this.size, why };
    return src;
  }

  /** Goes on reading this content from `src` (the file `file`), at the offset reached. */
  attach(src: ByteSource, file: string, dev: string, ino: string): void {
    this.src = src;
    this.file = file;
    this.dev = dev;
    this.ino = ino;
    this.detached = null;
  }

  /** Re-reads the size (reads are paused while sinks are behind, so it may be stale). */
  async refreshSize(): Promise<number> {
    if (this.src && !this.reading) this.size = await this.src.size();
    return this.size;
  }

  /** Bytes not yet acknowledged by every sink, as of the last look at the file's size. */
  get lagBytes(): number {
    return Math.max(0, this.size - this.ackedOffset);
  }

  /** True when there is nothing more to read right now and nothing waiting for acknowledgement
   *  (as of the last look at the size: refreshSize() first). */
  get drained(): boolean {
    return (
      this.src !== null &&
      this.readOffset >= this.size &&
      this.partial === null &&
      this.tickets.length === 0
    );
  }

  /** Bytes read but not yet acknowledged by every sink, or still to be handed to them. */
  get inFlight(): boolean {
    return this.tickets.length > 0;
  }

  checkpoint(): Checkpoint {
    return {
      path: this.path,
      source: this.source,
      dev: this.dev,
      ino: this.ino,
      key: this.key,
      ...this.fp,
      offset: this.ackedOffset,
      updated: new Date().toISOString(),
    };
  }

  /**
   * Reads what was appended since the last call (at most opts.readBytes) and returns its complete
   * lines; null when there is nothing new. Detects truncation (copytruncate): size below our offset.
   */
  async readChunk(now = Date.now()): Promise<Chunk | null> {
    const src = this.src;
    if (this.reading || this.closed || src === null) return null;
    this.reading = true;
    try {
      const size = await src.size();
      if (size < this.readOffset) {
        if (this.opts.onTruncated) {
          this.opts.onTruncated(this, size); // this.size still the last size seen before
          return null;
        }
        this.truncated();
      }
      this.size = size;
      this.extendFingerprint(size);
      if (size === this.readOffset) return this.flushPartial(now);
      const want = Math.min(this.opts.readBytes, size - this.readOffset);
      const head = this.partial ? this.partial.length : 0;
      const buf = this.opts.scratch
        ? this.opts.scratch(head + want)
        : Buffer.allocUnsafe(head + want);
      if (this.partial) this.partial.copy(buf, 0);
      const bytesRead = await src.read(buf, head, want, this.readOffset);
      if (bytesRead === 0) return this.flushPartial(now);
      const base = this.readOffset - head;
      this.readOffset += bytesRead;
      this.lastReadAt = now;
      return this.split(buf.subarray(0, head + bytesRead), base, now);
    } finally {
      this.reading = false;
    }
  }

  private truncated(): void {
    this.truncations++;
    this.generation++;
    this.readOffset = 0;
    this.ackedOffset = 0;
    this.partial = null;
    this.skipping = false;
    this.continuing = false;
    this.fp = fingerprintOf(this.readHead());
  }

  /** Splits buf (whose first byte is at file offset base) into lines; keeps an unfinished last line. */
  private split(buf: Buffer, base: number, now: number): Chunk {
    const starts: number[] = [];
    const ends: number[] = [];
    let flags: Map<number, string[]> | null = null;
    // The rest of a line shipped as 'partial' (its writer stalled mid-line) must not pass for a
    // line of its own: flagged too.
    const first = (): void => {
      if (!this.continuing) return;
      this.continuing = false;
      const f = (flags ??= new Map()).get(starts.length);
      if (f) f.push('continuation');
      else flags.set(starts.length, ['continuation']);
    };
    const cut = (start: number): void => {
      (flags ??= new Map()).set(starts.length, ['truncated']);
      first();
      starts.push(start);
      ends.push(start + max);
    };
    const max = this.opts.maxLineBytes;
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
      if (this.skipping)
        this.skipping = false; // the tail of an over-long line ends here
      else if (nl - start > max) cut(start);
      else {
        first();
        starts.push(start);
        ends.push(nl);
      }
      start = nl + 1;
    }
    if (start < buf.length) {
      if (this.skipping)
        start = buf.length; // still inside the over-long line: consume and drop the rest
      else if (buf.length - start >= max) {
        cut(start);
        this.skipping = true;
        start = buf.length;
      }
    }
    this.partial = start < buf.length ? Buffer.from(buf.subarray(start)) : null;
    if (this.partial && this.partialSince === 0) this.partialSince = now;
    if (!this.partial) this.partialSince = 0;
    return { buf, base, starts, ends, flags, ticket: this.ticket(base + start) };
  }

  /** A last line without its newline is shipped, flagged 'partial', once it has waited long enough. */
  private flushPartial(now: number): Chunk | null {
    if (!this.partial || now - this.partialSince < this.opts.partialLineTimeoutMs) return null;
    const p = this.partial;
    const offset = this.readOffset - p.length;
    this.partial = null;
    this.partialSince = 0;
    const flags = this.continuing ? ['partial', 'continuation'] : ['partial'];
    this.continuing = true;
    return {
      buf: p,
      base: offset,
      starts: [0],
      ends: [p.length],
      flags: new Map([[0, flags]]),
      ticket: this.ticket(this.readOffset),
    };
  }

  /** A ticket for events made without new bytes (an audit event completed by a timeout). */
  ticketHere(): Ticket {
    return this.ticket(this.readOffset - (this.partial?.length ?? 0));
  }

  private ticket(endOffset: number): Ticket {
    const t: Ticket = {
      tailer: this,
      generation: this.generation,
      endOffset,
      remaining: 0,
      delivered: null,
    };
    this.tickets.push(t);
    return t;
  }

  /**
   * Moves the acknowledged offset, in order: past every chunk whose events every sink has handled,
   * then, within the oldest chunk still open, up to the last line every one of its `fanout` sinks has
   * handled (so a checkpoint can follow each batch, not each 1 MiB read).
   */
  acknowledge(fanout = 0): void {
    let moved = false;
    while (this.tickets.length > 0 && this.tickets[0]!.remaining <= 0) {
      const t = this.tickets.shift()!;
      if (t.generation === this.generation) {
        this.ackedOffset = t.endOffset;
        moved = true;
      }
    }
    const head = this.tickets[0];
    if (
      head?.delivered &&
      head.generation === this.generation &&
      fanout > 0 &&
      head.delivered.size === fanout
    ) {
      const within = Math.min(...head.delivered.values());
      if (within > this.ackedOffset) {
        this.ackedOffset = within;
        moved = true;
      }
    }
    if (moved) {
      if (this.ackedOffset >= this.size) this.caughtUpAt = Date.now();
      this.onAcked(this);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.src?.close();
  }
}
