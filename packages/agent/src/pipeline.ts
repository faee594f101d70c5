// sources → parsers → transforms → sinks, with acknowledgements flowing back to the checkpoints.
// Every event is encoded once; each sink batches on its own with one batch in flight (so in order);
// a chunk's bytes are checkpointed only when every sink has handled every event made from them.
// When sinks fall behind, reading pauses: the log files are the buffer, memory stays bounded.
import type { Logger } from 'pino';
import type { AgentConfig, BatchConfig, SourceConfig } from './config/types';
import type { Batch, Parser, Sink, SinkStatus } from './event';
import { auditEventBody } from './parsers/audit/encode';
import { AuditGrouper } from './parsers/audit/group';
import type { AuditEvent } from './parsers/audit/types';
import { isAscii } from 'node:buffer';
import { EventEncoder } from './encode';
import { decodeLine, type DecodedLine } from './parsers/escape';
import { hiddenFlags } from './parsers/hidden';
import { getParser } from './parsers/index';
import { FileSource } from './sources/file/file-source';
import { fileBudget, OpenFiles, openFileLimit } from './sources/file/open-files';
import {
  type Chunk,
  type FileTailer,
  lineEndOffset,
  type Ticket,
  type TicketOwner,
} from './sources/file/tailer';
import type { HelperLink } from './sources/helper-link';
import { journalSource, type JournalSource } from './sources/journal/journal-source';
import type { CheckpointStore } from './state/checkpoints';
import { compileFilter } from './transforms/filter';
import { compileRedactor, type Redactor } from './transforms/redact';

const READ_BYTES = 1 << 19;
/** Bytes of encoded events handed to the sinks at a time (processAscii). */
const BLOCK_BYTES = 64 * 1024;

/** What every event of one file ends with, and its id starts with; `ascii` when both are. */
interface FileTail {
  json: string;
  ascii: boolean;
  /** Flags of hidden characters in the tail (a file name with a bidi override), or null. */
  hidden: string[] | null;
  bytes: Buffer;
  idHead: Buffer;
}
const NON_ASCII = /[^\x00-\x7f]/;
/** Full batches a sink that prepares ahead (compresses) gets while one is in flight. Only one is
 *  ever sent at a time: a kill re-sends at most that one. */
const AHEAD = 2;

/** Control characters a regex's \s matches (processAudit). */
const REGEX_SPACE_CONTROL = /[\x0b\x0c\x0d]/;
/** Lines of a chunk scanned at a time (processAscii). */
const PIECE_BYTES = 64 * 1024;
/** The bytes a JSON string cannot hold as they are (or that send a line to decodeLine), but the
 *  '\n' between lines. */
const JSON_SPECIAL = [
  ...'"\\\x7f',
  ...Array.from({ length: 32 }, (_, c) => String.fromCharCode(c)).filter((c) => c !== '\n'),
];

/**
 * Marks dirty[k - k0] for each line k of starts[k0, k1) (piece text from buffer offset `from`) that
 * holds a JSON_SPECIAL character: one indexOf per character (a memchr over the piece, where one
 * regex over it cost several times as much), and at most one hit per line and character.
 */
export function markSpecial(
  text: string,
  from: number,
  starts: number[],
  k0: number,
  k1: number,
  dirty: Uint8Array,
): void {
  dirty.fill(0, 0, k1 - k0);
  for (const ch of JSON_SPECIAL) {
    for (let p = text.indexOf(ch); p >= 0;) {
      let lo = k0; // the line holding p: the last start ≤ from + p
      let hi = k1 - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (starts[mid]! <= from + p) lo = mid;
        else hi = mid - 1;
      }
      dirty[lo - k0] = 1;
      p = lo + 1 < k1 ? text.indexOf(ch, starts[lo + 1]! - from) : -1;
    }
  }
}

/**
 * The JSON line of an event on the string path: the shape of LogEvent (event.ts) written out, one
 * JSON.stringify per part and none per event. `timeJson` is already JSON; `tail` is the file's
 * `,"source":…}\n` (jsonTail). EventEncoder writes the same bytes for the lines it takes.
 */
function eventJson(
  key: string,
  offset: number,
  timeJson: string,
  message: string,
  fields: object | undefined,
  flags: readonly string[] | null,
  tail: string,
): string {
  return (
    `{"id":"${key}:${offset}","time":${timeJson},"offset":${offset},"message":${JSON.stringify(message)}` +
    `${fields ? `,"fields":${JSON.stringify(fields)}` : ''}${flags ? `,"flags":${JSON.stringify(flags)}` : ''}${tail}`
  );
}

/** [start, end) of every match of a global regex in text, flattened: [s0, e0, s1, e1, …]. */
function matchSpans(re: RegExp, text: string): number[] {
  const spans: number[] = [];
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    spans.push(m.index, m.index + m[0].length);
    if (m[0].length === 0) re.lastIndex++;
  }
  return spans;
}

/** Bytes of queued events, written into pooled segments as they are encoded (no object per event). */
class ByteQueue {
  private segs: { buf: Buffer; used: number }[] = [];
  private readPos = 0;
  private static readonly SEGMENT = 256 * 1024;

  /** Segments read to their end, kept for the next ones rather than left to the garbage collector
   *  (a freed buffer goes back to the system only when the collector gets to it). */
  private spares: { buf: Buffer; used: number }[] = [];
  private static readonly SPARES = 16; // 4 MiB: the default max_buffer_bytes, so a full queue that drains frees nothing

  private segment(room: number): { buf: Buffer; used: number } {
    const seg = room <= ByteQueue.SEGMENT ? this.spares.pop() : undefined;
    if (seg) {
      seg.used = 0;
      return seg;
    }
    return { buf: Buffer.allocUnsafe(Math.max(ByteQueue.SEGMENT, room)), used: 0 };
  }

  /** Appends the UTF-8 of s; returns its length in bytes. */
  write(s: string): number {
    const room = s.length * 3;
    let last = this.segs[this.segs.length - 1];
    if (!last || last.used + room > last.buf.length) {
      last = this.segment(room);
      this.segs.push(last);
    }
    const n = last.buf.write(s, last.used);
    last.used += n;
    return n;
  }

  /** Appends src[start, end). */
  writeBytes(src: Buffer, start: number, end: number): void {
    while (start < end) {
      let last = this.segs[this.segs.length - 1];
      if (!last || last.used === last.buf.length) {
        last = this.segment(1);
        this.segs.push(last);
      }
      const n = Math.min(end - start, last.buf.length - last.used);
      src.copy(last.buf, last.used, start, start + n);
      last.used += n;
      start += n;
    }
  }

  /** Removes the next `bytes` bytes and copies them to the start of `out`, which is long enough. */
  take(bytes: number, out: Buffer): Buffer {
    let done = 0;
    while (done < bytes) {
      const seg = this.segs[0]!;
      const n = Math.min(seg.used - this.readPos, bytes - done);
      seg.buf.copy(out, done, this.readPos, this.readPos + n);
      done += n;
      this.readPos += n;
      if (this.readPos === seg.used) {
        this.readPos = 0;
        if (this.segs.length > 1) {
          this.segs.shift();
          if (seg.buf.length === ByteQueue.SEGMENT && this.spares.length < ByteQueue.SPARES)
            this.spares.push(seg);
        } else {
          seg.used = 0; // the only segment, all read: reuse it
        }
      }
    }
    return out.subarray(0, bytes);
  }
}

/**
 * Per queued event: its size in bytes, its chunk's ticket, and the file offset just past its line,
 * in rings that grow (never shrink) rather than arrays sliced now and then, whose old copies piled
 * up in V8's large-object space until a full collection (14 MiB of the agent's peak RSS).
 */
export class EventRing {
  private cap = 1024;
  private sizes = new Float64Array(this.cap);
  private ends = new Float64Array(this.cap);
  private tickets: (Ticket | undefined)[] = new Array<Ticket | undefined>(this.cap);
  private head = 0;
  length = 0;

  push(size: number, ticket: Ticket, end: number): void {
    if (this.length === this.cap) this.grow();
    const i = (this.head + this.length) & (this.cap - 1);
    this.sizes[i] = size;
    this.tickets[i] = ticket;
    this.ends[i] = end;
    this.length++;
  }

  /** Size of the k-th event from the head. */
  size(k: number): number {
    return this.sizes[(this.head + k) & (this.cap - 1)]!;
  }

  /** Removes the first n events; returns their tickets and end offsets. */
  shift(n: number): { tickets: Ticket[]; ends: number[] } {
    const tickets = new Array<Ticket>(n);
    const ends = new Array<number>(n);
    for (let k = 0; k < n; k++) {
      const i = (this.head + k) & (this.cap - 1);
      tickets[k] = this.tickets[i]!;
      ends[k] = this.ends[i]!;
      this.tickets[i] = undefined;
    }
    this.head = (this.head + n) & (this.cap - 1);
    this.length -= n;
    return { tickets, ends };
  }

  private grow(): void {
    const cap = this.cap * 2;
    const sizes = new Float64Array(cap);
    const ends = new Float64Array(cap);
    const tickets = new Array<Ticket | undefined>(cap);
    for (let k = 0; k < this.length; k++) {
      const i = (this.head + k) & (this.cap - 1);
      sizes[k] = this.sizes[i]!;
      ends[k] = this.ends[i]!;
      tickets[k] = this.tickets[i];
    }
    this.sizes = sizes;
    this.ends = ends;
    this.tickets = tickets;
    this.head = 0;
    this.cap = cap;
  }
}

/** What the pipeline adds to a sink's own status: its queue, and the bytes of the batches it
 *  resolved (optional: an agent older than the metrics does not send them to guardctl). */
export interface RunnerStatus {
  queuedEvents: number;
  queuedBytes: number;
  deliveredBytes?: number;
  deadLetteredBytes?: number;
}

/** A batch cut from a runner's queue, with what acknowledging it needs. */
interface CutBatch {
  batch: Batch;
  tickets: Ticket[];
  ends: number[];
}

/** Queue and batching in front of one sink. A batch's body is cut from the byte queue in one copy. */
export class SinkRunner {
  private readonly bytesQ = new ByteQueue();
  private readonly events = new EventRing();
  queuedBytes = 0;
  /** Bytes of the batches the sink resolved (encoded NDJSON, before compression): the metrics'. */
  deliveredBytes = 0;
  deadLetteredBytes = 0;
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private seq = 0;

  constructor(
    readonly sink: Sink,
    private readonly batch: BatchConfig,
    private readonly signal: AbortSignal,
    private readonly onDone: (runner: SinkRunner, tickets: Ticket[], ends: number[]) => void,
    private readonly log: Logger,
  ) {}

  /** Events not yet cut into a batch. */
  private get uncut(): number {
    return this.events.length;
  }
  /** Events not yet handed to the sink (a batch cut ahead included). */
  get queuedEvents(): number {
    let n = this.uncut;
    for (const b of this.ahead) n += b.batch.events;
    return n;
  }

  push(json: string, ticket: Ticket, end: number): void {
    const before = this.uncut;
    const n = this.bytesQ.write(json);
    this.events.push(n, ticket, end);
    this.enqueued(n, before);
  }

  /** Appends `count` events at once: their JSON lines, src[start, end), their sizes and end offsets in
   *  sizes[0, count) and ends[0, count). */
  pushBytes(
    src: Buffer,
    start: number,
    end: number,
    sizes: Float64Array,
    ends: Float64Array,
    count: number,
    ticket: Ticket,
  ): void {
    const before = this.uncut;
    this.bytesQ.writeBytes(src, start, end);
    for (let i = 0; i < count; i++) {
      this.events.push(sizes[i]!, ticket, ends[i]!);
    }
    this.enqueued(end - start, before);
  }

  /**
   * After events were queued: a batch goes when one is full; else, with no batch in flight, once
   * the oldest queued event has waited batch_max_wait_ms (default 5: a coalescing window). While
   * one is in flight, events accumulate and go as the next batch as soon as it is answered (#20:
   * send at once when idle, batch only under load).
   */
  private enqueued(bytes: number, before: number): void {
    this.queuedBytes += bytes;
    if (before === 0) this.oldestAt = Date.now();
    if (this.queuedEvents >= this.batch.maxEvents || this.queuedBytes >= this.batch.maxBytes)
      this.kick();
    else if (this.inFlight === null) this.armTimer(this.batch.maxWaitMs);
  }

  /** When the oldest event not yet cut into a batch was queued (Date.now()). */
  private oldestAt = 0;

  private armTimer(ms: number): void {
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.kick();
    }, ms);
  }

  /** Sends the next batch if none is in flight. */
  kick(): void {
    if (this.signal.aborted) return;
    if (this.inFlight) {
      this.fillAhead();
      return;
    }
    const b = this.ahead.shift() ?? this.cut(false);
    if (b === null) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const { batch, tickets, ends } = b;
    this.inFlight = this.sink
      .send(batch, this.signal)
      .then(
        (outcome) => {
          this.queuedBytes -= batch.bytes;
          if (outcome === 'delivered') this.deliveredBytes += batch.bytes;
          else this.deadLetteredBytes += batch.bytes;
          this.onDone(this, tickets, ends);
        },
        (e: Error) => {
          if (!this.signal.aborted)
            this.log.error(
              { sink: this.sink.name, err: e.message },
              'sink failed a batch unexpectedly; it will be re-read',
            );
        },
      )
      .finally(() => {
        this.inFlight = null;
        if (
          this.ahead.length > 0 ||
          this.uncut >= this.batch.maxEvents ||
          this.queuedBytes >= this.batch.maxBytes
        )
          this.kick();
        else if (this.uncut > 0) {
          // What came while the batch was in flight goes now, unless its oldest event is newer
          // than the coalescing window: then when that is up.
          const due = this.oldestAt + this.batch.maxWaitMs - Date.now();
          if (due <= 0) this.kick();
          else this.armTimer(due);
        }
      });
    this.fillAhead(); // also when nothing more is queued meanwhile (reads paused: the queue is full)
  }

  /** Full batches cut ahead while one is in flight, so that the sink gets them ready (compresses
   *  them) meanwhile: with two, compressing is off the path from one answer to the next request. */
  private fillAhead(): void {
    while (this.ahead.length < AHEAD && this.sink.preparesAhead === true) {
      const next = this.cut(true);
      if (next === null) break;
      this.ahead.push(next);
      this.sink.prepare?.(next.batch);
    }
  }

  /** A batch is with the sink now. */
  get busy(): boolean {
    return this.inFlight !== null;
  }

  /** The next batches, cut while one is in flight (sinks that prepare ahead), oldest first. */
  private readonly ahead: CutBatch[] = [];

  /** Takes the next batch off the queue; with `full`, only a batch as big as the limits allow. */
  private cut(full: boolean): CutBatch | null {
    if (this.uncut === 0) return null;
    const ev = this.events;
    let count = 0;
    let bytes = 0;
    while (
      count < ev.length &&
      count < this.batch.maxEvents &&
      (count === 0 || bytes + ev.size(count) <= this.batch.maxBytes)
    ) {
      bytes += ev.size(count);
      count++;
    }
    if (full && count === ev.length && count < this.batch.maxEvents) return null; // may still grow
    const { tickets, ends } = ev.shift(count);
    if (ev.length > 0) this.oldestAt = Date.now(); // those left wait from now (under load: full)
    const batch: Batch = {
      seq: ++this.seq,
      events: tickets.length,
      bytes,
      body: this.bytesQ.take(bytes, this.bodyBuffer(bytes)),
    };
    return { batch, tickets, ends };
  }

  /**
   * Batch bodies are cut into a ring of AHEAD + 2 buffers rather than a new one per batch (a new
   * ~1 MiB buffer per batch kept tens of MiB of freed memory waiting for the garbage collector). A
   * body is written again AHEAD + 2 batches later, when at least the batch after it has been
   * answered: a batch Y is cut with nothing in flight (every earlier one answered), or ahead while
   * one is, and then the one in flight is Y − AHEAD or later, so Y − AHEAD − 1 and all before it
   * were answered. The sink is done with such a body (send() resolved, its compression long
   * finished), and so is the socket — HTTP/1.1 without pipelining writes a connection's requests in
   * order, so an answered later request means this one's bytes were all written, and a connection
   * given up on is closed with whatever it had still to write.
   */
  private bodyBuffer(bytes: number): Buffer {
    const i = this.bodyIx;
    this.bodyIx = (i + 1) % this.bodies.length;
    let b = this.bodies[i]!;
    if (b.length < bytes) b = this.bodies[i] = Buffer.allocUnsafe(Math.ceil(bytes / 65536) * 65536);
    return b;
  }
  private readonly bodies: Buffer[] = Array.from({ length: AHEAD + 2 }, () => Buffer.alloc(0));
  private bodyIx = 0;

  /** Resolves when what is in flight now has settled. */
  async idle(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

interface SourceRuntime {
  cfg: SourceConfig;
  /** auditd's log: records grouped into one event per msg=audit(time:serial). */
  audit: boolean;
  files: FileSource;
  parser: Parser;
  parserName: string;
  filter: ((m: string) => boolean) | null;
  runners: SinkRunner[];
  tags: string[] | undefined;
}

export interface PipelineTotals {
  linesRead: number;
  eventsShipped: number;
  eventsFiltered: number;
  bytesAcked: number;
}

/** One source's share of the totals (status and metrics). bytesRead: file and audit sources. */
export interface SourceTotals {
  linesRead: number;
  bytesRead: number;
  eventsShipped: number;
  eventsFiltered: number;
}

export class Pipeline {
  readonly sources: SourceRuntime[] = [];
  /** `type = journal` sources: their own readers, the same sinks and acknowledgements. */
  readonly journals: JournalSource[] = [];
  /** Sinks per source, by name: how many acknowledgements complete an event. */
  private readonly fanout = new Map<string, number>();
  readonly runners = new Map<string, SinkRunner>();
  readonly totals: PipelineTotals = {
    linesRead: 0,
    eventsShipped: 0,
    eventsFiltered: 0,
    bytesAcked: 0,
  };
  /** Per source name. pump() handles one file or journal at a time, so what the totals counted
   *  meanwhile is that source's (tally()): no per-line bookkeeping of its own. */
  readonly sourceTotals = new Map<string, SourceTotals>();
  private readonly abort = new AbortController();
  private readonly redact: Redactor | null;
  private pumping = false;
  /** Asked to pump while pumping: one more round. */
  private pumpAgain = false;
  private stopped = false;
  /** Log files open at once, agent-wide (sources/file/open-files.ts). */
  readonly openFiles: OpenFiles;
  paused = false;
  /** Pauses since the last one logged at info level, and when that was. */
  private pauses = 0;
  private pauseLoggedAt = -Infinity;

  constructor(
    private readonly cfg: AgentConfig,
    sinks: Map<string, Sink>,
    link: HelperLink,
    private readonly store: CheckpointStore,
    private readonly log: Logger,
    firstStart: boolean,
  ) {
    this.redact = compileRedactor(cfg.redact);
    for (const s of cfg.sinks) {
      const sink = sinks.get(s.name)!;
      this.runners.set(
        s.name,
        new SinkRunner(
          sink,
          s.batch,
          this.abort.signal,
          (r, tickets, ends) => this.acked(r, tickets, ends),
          log,
        ),
      );
    }
    // One read buffer for every file, the encoder's input area: pump() reads one file at a time and
    // handles each chunk before the next read (a partial last line is copied out of it).
    this.encoder = new EventEncoder(READ_BYTES + cfg.agent.maxLineBytes);
    const tailerOpts = {
      maxLineBytes: cfg.agent.maxLineBytes,
      partialLineTimeoutMs: cfg.agent.partialLineTimeoutMs,
      readBytes: READ_BYTES,
      scratch: (size: number) => this.encoder.input(size),
    };
    const budget = fileBudget(cfg.agent.maxOpenFiles, openFileLimit());
    this.openFiles = new OpenFiles(budget.max);
    (budget.clamped ? log.warn.bind(log) : log.info.bind(log))(
      { maxOpenFiles: budget.max, configured: cfg.agent.maxOpenFiles, rlimitNofile: budget.limit },
      budget.clamped
        ? 'max_open_files is above the descriptor limit less headroom: lowered'
        : 'log files held open at once',
    );
    for (const src of cfg.sources) {
      const runners = (src.sinks ?? cfg.sinks.map((s) => s.name)).map((n) => this.runners.get(n)!);
      this.fanout.set(src.name, runners.length);
      this.sourceTotals.set(src.name, {
        linesRead: 0,
        bytesRead: 0,
        eventsShipped: 0,
        eventsFiltered: 0,
      });
      if (src.type === 'journal') {
        const out = { queues: runners, redact: this.redact, totals: this.totals };
        this.journals.push(journalSource(cfg, src, out, link, log, firstStart));
        continue;
      }
      const audit = src.type === 'audit' || src.parser === 'audit';
      const parserName = audit ? 'audit' : src.parser;
      const tags = [...cfg.agent.tags, ...src.tags];
      const runtime: SourceRuntime = {
        cfg: src,
        files: new FileSource(
          src,
          link,
          store,
          tailerOpts,
          (t) => store.set(t.checkpoint()),
          log,
          firstStart,
          this.openFiles,
          cfg.agent,
        ),
        audit,
        parser: getParser(audit ? 'plain' : (parserName as 'syslog' | 'json' | 'plain')),
        parserName,
        filter: compileFilter(src.include, src.exclude),
        runners,
        tags: tags.length ? tags : undefined,
      };
      runtime.files.wake = () => void this.pump();
      if (audit) runtime.files.beforeFinish = (t) => this.endAudit(runtime, t);
      this.sources.push(runtime);
    }
  }

  get queuedBytes(): number {
    let n = 0;
    for (const r of this.runners.values()) n += r.queuedBytes;
    return n;
  }

  async start(): Promise<void> {
    await Promise.all([
      ...this.sources.map((s) => s.files.start()),
      ...this.journals.map((j) => j.start()),
    ]);
    // Rescans and rotation checks are the file sources' own (events, or polling as a fallback).
    // Reads are woken by the sources' events; the poll tick runs only while something needs it
    // (armTick). Checkpoints are saved (fsynced) within a second of changing, not every second.
    this.store.onDirty = () => {
      this.saveTimer ??= setTimeout(() => {
        this.saveTimer = null;
        try {
          this.store.save(true);
        } catch (e) {
          this.log.error({ err: (e as Error).message }, 'saving checkpoints failed');
          this.store.onDirty?.(); // again in a second
        }
      }, 1000);
    };
    this.store.onDirty();
    void this.pump();
  }

  private saveTimer: NodeJS.Timeout | null = null;
  private tick: NodeJS.Timeout | null = null;
  get tickArmed(): boolean {
    return this.tick !== null;
  }

  /**
   * The poll tick (every poll_interval_ms), armed after a pump only while reading needs it: a
   * source polling files, a file not read to its end or holding a partial line, a rotated file
   * being read, a journal, reads paused for the sinks. Otherwise reading waits for an event.
   */
  private armTick(): void {
    if (this.tick !== null || this.stopped) return;
    const needed =
      this.paused || this.journals.length > 0 || this.sources.some((s) => s.files.needsPolling);
    if (!needed) return;
    this.tick = setTimeout(() => {
      this.tick = null;
      void this.pump();
    }, this.cfg.agent.pollIntervalMs);
  }

  /** Reads every file that has grown, until none has or sinks push back. */
  private async pump(): Promise<void> {
    if (this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    this.reading.since = Date.now();
    try {
      await this.pumpNow();
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'reading failed; will try again');
    } finally {
      this.pumping = false;
      this.reading.since = 0;
      this.reading.passes++;
      this.reading.lastEnded = Date.now();
      this.armTick();
    }
  }

  /** The read loop (status): running since when, passes ended, the last one's end, the file being
   *  read and since when. Times are Date.now() (0: none), formatted only when the status is asked
   *  for: they are set on every pass and every file read. */
  readonly reading = {
    since: 0,
    passes: 0,
    lastEnded: 0,
    at: null as string | null,
    atSince: 0,
  };

  private async pumpNow(): Promise<void> {
    {
      for (let progress = true; (progress || this.pumpAgain) && !this.stopped;) {
        progress = false;
        this.pumpAgain = false;
        for (const s of this.sources) {
          for (const t of s.files.toRead()) {
            if (this.updatePaused()) return;
            this.reading.at = t.path;
            this.reading.atSince = Date.now();
            let chunk;
            try {
              chunk = await t.readChunk();
            } finally {
              this.reading.at = null;
            }
            const mark = { ...this.totals };
            if (s.audit) this.flushAudit(s, t);
            if (!chunk) {
              this.tally(s.cfg.name, mark, 0);
              s.files.atEnd(t);
              continue;
            }
            const bytes = chunk.ticket.endOffset - chunk.base; // before processAudit holds it back
            if (s.audit) this.processAudit(s, t, chunk);
            else this.process(s, t, chunk);
            this.tally(s.cfg.name, mark, bytes);
            progress = true;
          }
        }
        for (const j of this.journals) {
          if (this.updatePaused()) return;
          const mark = { ...this.totals };
          if (await j.read()) progress = true;
          this.tally(j.cfg.name, mark, 0);
        }
      }
    }
  }

  /** Adds what the totals counted since `mark` to source `name`'s own. */
  private tally(name: string, mark: PipelineTotals, bytes: number): void {
    const c = this.sourceTotals.get(name)!;
    c.linesRead += this.totals.linesRead - mark.linesRead;
    c.eventsShipped += this.totals.eventsShipped - mark.eventsShipped;
    c.eventsFiltered += this.totals.eventsFiltered - mark.eventsFiltered;
    c.bytesRead += bytes;
  }

  /** Backpressure with hysteresis: pause above max_buffer_bytes, resume below half of it. */
  private updatePaused(): boolean {
    const q = this.queuedBytes;
    const max = this.cfg.agent.maxBufferBytes;
    if (!this.paused && q > max) {
      this.paused = true;
      this.pauses++;
      // Catching up on a backlog pauses and resumes every few batches: each is a debug line, and an
      // info line at most once a minute says how often it happened (status shows `paused` live).
      const now = Date.now();
      if (now - this.pauseLoggedAt >= 60_000) {
        this.log.info(
          { queuedBytes: q, pauses: this.pauses },
          'sinks are behind: pausing reads (this line at most once a minute; pauses counts since the last)',
        );
        this.pauseLoggedAt = now;
        this.pauses = 0;
      } else {
        this.log.debug({ queuedBytes: q }, 'sinks are behind: pausing reads');
      }
    } else if (this.paused && q < max / 2) {
      this.paused = false;
      this.log.debug({ queuedBytes: q }, 'resuming reads');
    }
    return this.paused;
  }

  /**
   * Each line: decode, filter, redact, parse, encode once as a JSON line. The parts that are the
   * same for every event of a file (source, path, host, parser, tags) are encoded once per file.
   * A chunk of ASCII (nearly every log) takes processAscii; any other goes line by line.
   */
  private process(s: SourceRuntime, t: FileTailer, chunk: Chunk): void {
    const n = chunk.starts.length;
    const tail = this.jsonTail(s, t);
    if (n > 0 && tail.ascii && isAscii(chunk.buf.subarray(chunk.starts[0]!, chunk.ends[n - 1]!)))
      this.processAscii(s, t, chunk, tail);
    else this.processLines(s, t, chunk, tail.json);
    t.acknowledge(s.runners.length); // a chunk whose every line was filtered out is acknowledged at once
  }

  /**
   * The same events as processLines, with the work per chunk rather than per line where it can be:
   * one scan of the chunk for secrets (only the lines it hits go through the redactor), the events
   * of syslog and plain lines written as bytes by the EventEncoder (no string per line), and handed
   * to the sinks in blocks. A line the encoder declines, or that a scan hit, or that carries a flag,
   * is encoded by lineJson like any other.
   */
  private processAscii(s: SourceRuntime, t: FileTailer, chunk: Chunk, tail: FileTail): void {
    const { buf, base, starts, ends } = chunk;
    const n = starts.length;
    const now = new Date();
    const nowIso = JSON.stringify(now.toISOString());
    const ticket = chunk.ticket;
    const fanout = s.runners.length;
    const redact = this.redact;
    const encodable = s.parserName === 'syslog' || s.parserName === 'plain';
    const syslog = s.parserName === 'syslog';
    const enc = this.encoder;
    enc.begin(now, tail.idHead, tail.bytes, buf);
    // The events of the block being written: their sizes and the file offsets past their lines.
    let count = 0;
    let shipped = 0;
    let lastByEncoder = false; // else lineJson has set t.lastEventTime
    // The chunk is scanned a piece at a time: ≤ PIECE_BYTES of whole lines as one Latin-1 string
    // (a string of 512 KiB costs seven times as much to make), for secrets and for the bytes a JSON
    // string must escape (positions in the piece).
    let pieceEnd = 0;
    let pieceFrom = 0;
    let secrets: number[] | null = null;
    let pieceStart = 0;
    let si = 0;
    const flush = (): void => {
      if (count === 0) return;
      ticket.remaining += fanout * count;
      for (const r of s.runners)
        r.pushBytes(enc.out, enc.start, enc.pos, this.blockSizes, this.blockEnds, count, ticket);
      shipped += count;
      count = 0;
      enc.clear();
    };
    for (let k = 0; k < n; k++) {
      if (k === pieceEnd) {
        let e = k + 1;
        while (e < n && ends[e]! - starts[k]! <= PIECE_BYTES) e++;
        pieceEnd = e;
        pieceFrom = starts[k]!;
        const text = buf.toString('latin1', pieceFrom, ends[e - 1]!);
        secrets = redact?.prefilter ? matchSpans(redact.prefilter, text) : null;
        if (this.dirty.length < e - k)
          this.dirty = new Uint8Array(Math.max(e - k, this.dirty.length * 2));
        markSpecial(text, pieceFrom, starts, k, e, this.dirty);
        pieceStart = k;
        si = 0;
      }
      const ls = starts[k]!;
      const le = ends[k]!;
      const rs = ls - pieceFrom;
      const re = le - pieceFrom;
      let secret = false;
      if (secrets !== null) {
        while (si < secrets.length && secrets[si + 1]! <= rs) si += 2;
        secret = si < secrets.length && secrets[si]! < re;
      } else {
        secret = redact !== null; // custom patterns: every line goes through the redactor
      }
      const clean = this.dirty[k - pieceStart] === 0;
      const need = enc.bound(le - ls);
      if (enc.pos + need > enc.out.length) {
        flush();
        enc.reserve(need);
      }
      let p0 = enc.pos;
      let decoded: DecodedLine | null = null; // for the filter; lineJson takes it on
      let kept = false; // the filter has passed the line
      let done = false;
      if (encodable && !secret && chunk.flags?.has(k) !== true) {
        if (s.filter) {
          decoded = decodeLine(buf, ls, le);
          if (!decoded.escaped) {
            if (!s.filter(decoded.text)) {
              this.totals.eventsFiltered++;
              continue;
            }
            kept = true;
          }
        }
        done = enc.line(
          buf,
          ls,
          le > ls && buf[le - 1] === 0x0d ? le - 1 : le,
          base + ls,
          syslog,
          clean,
        );
      }
      if (!done) {
        const json = this.lineJson(s, t, chunk, k, now, nowIso, tail.json, decoded, kept);
        if (json === null) continue;
        if (enc.pos + json.length * 3 > enc.out.length) {
          flush();
          enc.reserve(json.length * 3);
        }
        p0 = enc.pos;
        enc.putString(json);
      }
      lastByEncoder = done;
      if (count === this.blockSizes.length) this.growBlock();
      this.blockSizes[count] = enc.pos - p0;
      this.blockEnds[count] = lineEndOffset(chunk, k);
      count++;
      if (enc.pos - enc.start >= BLOCK_BYTES) flush();
    }
    flush();
    this.totals.linesRead += n;
    this.totals.eventsShipped += shipped;
    if (lastByEncoder)
      t.lastEventTime = Number.isNaN(enc.lastTime)
        ? now.toISOString()
        : new Date(enc.lastTime).toISOString();
  }

  /** Line by line: any chunk that is not all ASCII. */
  private processLines(s: SourceRuntime, t: FileTailer, chunk: Chunk, tail: string): void {
    const now = new Date();
    const nowIso = JSON.stringify(now.toISOString());
    const ticket = chunk.ticket;
    const fanout = s.runners.length;
    for (let k = 0; k < chunk.starts.length; k++) {
      this.totals.linesRead++;
      const json = this.lineJson(s, t, chunk, k, now, nowIso, tail);
      if (json === null) continue;
      ticket.remaining += fanout;
      const end = lineEndOffset(chunk, k);
      for (const r of s.runners) r.push(json, ticket, end);
      this.totals.eventsShipped++;
    }
  }

  /**
   * The JSON line of line k of a chunk: decoded (unless the caller has: `decoded`), filtered (unless
   * `kept`: the filter has passed it), redacted, parsed. null when the filter drops it (counted).
   * Sets the tailer's lastEventTime.
   */
  private lineJson(
    s: SourceRuntime,
    t: FileTailer,
    chunk: Chunk,
    k: number,
    now: Date,
    nowIso: string,
    tail: string,
    decoded: DecodedLine | null = null,
    kept = false,
  ): string | null {
    const offset = chunk.base + chunk.starts[k]!;
    const { text, escaped } = decoded ?? decodeLine(chunk.buf, chunk.starts[k]!, chunk.ends[k]!);
    if (s.filter && !kept && !s.filter(text)) {
      this.totals.eventsFiltered++;
      return null;
    }
    const message = this.redact ? this.redact(text) : text;
    const parsed = s.parser(message, now);
    let flags = chunk.flags?.get(k) ?? null;
    const hidden = this.hiddenIn(s, t, message, parsed.fields);
    if (escaped || message !== text || parsed.flags || hidden) {
      flags = [
        ...(flags ?? []),
        ...(escaped ? ['escaped'] : []),
        ...(message !== text ? ['redacted'] : []),
        ...(parsed.flags ?? []),
        ...(hidden ?? []),
      ];
    }
    t.lastEventTime = parsed.time ?? now.toISOString();
    return eventJson(
      t.key,
      offset,
      parsed.time ? JSON.stringify(parsed.time) : nowIso,
      message,
      parsed.fields,
      flags,
      tail,
    );
  }

  /**
   * 'bidi' / 'invisible' (parsers/hidden.ts) when the event would carry such characters: in the
   * line, in what the JSON parser decoded from `\u` escapes, or in the file's path.
   */
  private hiddenIn(
    s: SourceRuntime,
    t: FileTailer,
    message: string,
    fields: object | undefined,
  ): string[] | null {
    let h = hiddenFlags(message);
    if (h === null && s.parserName === 'json' && fields && message.includes('\\u'))
      h = hiddenFlags(JSON.stringify(fields));
    const inTail = this.tails.get(t)?.hidden ?? null;
    if (inTail === null) return h;
    return h === null ? inTail : [...new Set([...h, ...inTail])];
  }

  private readonly encoder: EventEncoder;
  /** processAscii's block of events: sizes and end offsets (kept, not made per chunk). */
  private blockSizes = new Float64Array(1024);
  private blockEnds = new Float64Array(1024);
  private growBlock(): void {
    const sizes = new Float64Array(this.blockSizes.length * 2);
    const ends = new Float64Array(this.blockEnds.length * 2);
    sizes.set(this.blockSizes);
    ends.set(this.blockEnds);
    this.blockSizes = sizes;
    this.blockEnds = ends;
  }
  /** Per line of the piece processAscii is on: 1 when it holds a byte JSON must escape. */
  private dirty = new Uint8Array(1024);
  private readonly tails = new WeakMap<FileTailer, FileTail>();
  private jsonTail(s: SourceRuntime, t: FileTailer): FileTail {
    let tail = this.tails.get(t);
    if (tail === undefined) {
      const json =
        `,"source":${JSON.stringify(s.cfg.name)},"path":${JSON.stringify(t.path)},"host":${JSON.stringify(this.cfg.agent.hostname)},` +
        `"parser":"${s.parserName}"${s.tags ? `,"tags":${JSON.stringify(s.tags)}` : ''}}\n`;
      const idHead = `{"id":"${t.key}:`;
      tail = {
        json,
        ascii: !NON_ASCII.test(json + idHead),
        hidden: hiddenFlags(json),
        bytes: Buffer.from(json, 'latin1'),
        idHead: Buffer.from(idHead, 'latin1'),
      };
      this.tails.set(t, tail);
    }
    return tail;
  }

  private readonly auditState = new WeakMap<FileTailer, { grouper: AuditGrouper; safe: number }>();
  private audit(t: FileTailer): { grouper: AuditGrouper; safe: number } {
    let st = this.auditState.get(t);
    if (!st) this.auditState.set(t, (st = { grouper: new AuditGrouper(), safe: t.ackedOffset }));
    return st;
  }

  /**
   * Audit records: decoded, filtered and redacted per line like any other, then grouped into events.
   * As in processAscii, an ASCII chunk is scanned for secrets in pieces and only the lines a match
   * overlaps go through the redactor — unless a piece holds a control character that is white
   * space to a regex (VT, FF, a CR inside a line): escaped, it no longer is, so the scan of the raw
   * bytes could miss what the redactor would find in the line; such a piece goes line by line.
   * (auditd's own 0x1d separator is no white space: raw or escaped, no pattern matches across it.)
   */
  private processAudit(s: SourceRuntime, t: FileTailer, chunk: Chunk): void {
    const st = this.audit(t);
    const { buf, base, starts, ends } = chunk;
    const n = starts.length;
    const redact = this.redact;
    const scan =
      redact?.prefilter != null && n > 0 && isAscii(buf.subarray(starts[0]!, ends[n - 1]!))
        ? redact.prefilter
        : null;
    let pieceEnd = 0;
    let pieceFrom = 0;
    let secrets: number[] | null = null;
    let si = 0;
    for (let k = 0; k < n; k++) {
      this.totals.linesRead++;
      if (scan !== null && k === pieceEnd) {
        let e = k + 1;
        while (e < n && ends[e]! - starts[k]! <= PIECE_BYTES) e++;
        pieceEnd = e;
        pieceFrom = starts[k]!;
        const text = buf.toString('latin1', pieceFrom, ends[e - 1]!);
        secrets = REGEX_SPACE_CONTROL.test(text) ? null : matchSpans(scan, text);
        si = 0;
      }
      let secret = redact !== null;
      if (secrets !== null) {
        const rs = starts[k]! - pieceFrom;
        while (si < secrets.length && secrets[si + 1]! <= rs) si += 2;
        secret = si < secrets.length && secrets[si]! < ends[k]! - pieceFrom;
      }
      const { text } = decodeLine(buf, starts[k]!, ends[k]!);
      if (s.filter && !s.filter(text)) {
        this.totals.eventsFiltered++;
        continue;
      }
      const message = secret ? redact!(text) : text;
      const at = base + starts[k]!;
      const events = st.grouper.push(message, at, lineEndOffset(chunk, k), chunk.flags?.get(k));
      if (events.length > 0) this.emitAudit(s, t, st, events, chunk.ticket);
    }
    this.holdBack(st, chunk.ticket);
    t.acknowledge(s.runners.length);
  }

  /** Events whose records stopped coming (no closing record): shipped after the grouper's timeout. */
  private flushAudit(s: SourceRuntime, t: FileTailer): void {
    const st = this.auditState.get(t);
    if (!st || st.grouper.openEvents === 0) return;
    this.shipCompleted(s, t, st, st.grouper.flush(Date.now(), 2000));
  }

  /** Events completed between reads (a timeout, the end of a rotated file): shipped under a
   *  ticket of their own at the offset read to. */
  private shipCompleted(
    s: SourceRuntime,
    t: FileTailer,
    st: { grouper: AuditGrouper; safe: number },
    events: AuditEvent[],
  ): void {
    if (events.length === 0) return;
    const ticket = t.ticketHere();
    this.emitAudit(s, t, st, events, ticket);
    this.holdBack(st, ticket);
    t.acknowledge(s.runners.length);
  }

  /**
   * A rotated audit file is about to be finished: no record of it is coming any more, so the
   * events still open in its grouper are complete as they are. They are shipped, and the file
   * is finished only once they are acknowledged (false: not yet).
   */
  private endAudit(s: SourceRuntime, t: FileTailer): boolean {
    const st = this.auditState.get(t);
    if (!st || st.grouper.openEvents === 0) return true;
    this.shipCompleted(s, t, st, st.grouper.flushAll());
    return false;
  }

  /** The checkpoint may not pass a record whose event is still being put together. */
  private holdBack(st: { grouper: AuditGrouper }, ticket: Ticket): void {
    const open = st.grouper.oldestOpenOffset();
    if (open !== undefined && open < ticket.endOffset) ticket.endOffset = Math.max(open, 0);
  }

  /** The events one push() or flush() completed, in their order. */
  private emitAudit(
    s: SourceRuntime,
    t: FileTailer,
    st: { grouper: AuditGrouper; safe: number },
    events: AuditEvent[],
    ticket: Ticket,
  ): void {
    // Events complete out of offset order (interleaved stamps): what one lets the checkpoint pass
    // is its end, but never beyond an event still open, nor beyond one completed with it and
    // queued after it (the grouper no longer holds those: a batch ending between the two would
    // otherwise let the checkpoint skip the second's first records), and never backwards.
    const floors: number[] = new Array<number>(events.length);
    let floor = st.grouper.oldestOpenOffset() ?? Infinity;
    for (let i = events.length - 1; i >= 0; i--) {
      floors[i] = floor;
      floor = Math.min(floor, events[i]!.offset);
    }
    const tail = this.jsonTail(s, t);
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      st.safe = Math.max(st.safe, Math.min(ev.end, floors[i]!));
      const body = auditEventBody(ev, tail.hidden, s.cfg.auditRecords !== 'text');
      const json = `{"id":"${t.key}:${ev.offset}",${body}${tail.json}`;
      ticket.remaining += s.runners.length;
      for (const r of s.runners) r.push(json, ticket, st.safe);
      t.lastEventTime = ev.time || t.lastEventTime;
      this.totals.eventsShipped++;
    }
  }

  private acked(r: SinkRunner, tickets: Ticket[], ends: number[]): void {
    const touched = new Set<TicketOwner>();
    for (let i = 0; i < tickets.length;) {
      // a chunk's events are consecutive: a run at a time
      const t = tickets[i]!;
      let j = i + 1;
      while (j < tickets.length && tickets[j] === t) j++;
      t.remaining -= j - i;
      (t.delivered ??= new Map()).set(r, ends[j - 1]!);
      touched.add(t.tailer);
      i = j;
    }
    for (const tailer of touched) tailer.acknowledge(this.fanout.get(tailer.source)!);
    // Before this sink's next batch goes out: a kill now re-sends at most the batch in flight.
    this.store.save(false);
    if (this.paused && !this.updatePaused()) void this.pump();
  }

  sinkStatus(): (SinkStatus & RunnerStatus)[] {
    return [...this.runners.values()].map((r) => ({
      ...r.sink.status(),
      queuedEvents: r.queuedEvents,
      queuedBytes: r.queuedBytes,
      deliveredBytes: r.deliveredBytes,
      deadLetteredBytes: r.deadLetteredBytes,
    }));
  }

  /** Stops reading, gives sinks up to `graceMs` to deliver what is queued, then writes checkpoints. */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    if (this.tick) clearTimeout(this.tick);
    if (this.saveTimer) clearTimeout(this.saveTimer);
    for (const r of this.runners.values()) r.kick();
    const deadline = Date.now() + graceMs;
    // Until every queued batch has been answered, the one in flight included (aborting that one
    // would only send it again after the restart).
    while (
      Date.now() < deadline &&
      [...this.runners.values()].some((r) => r.queuedEvents > 0 || r.busy)
    ) {
      await Promise.race([
        Promise.all([...this.runners.values()].map((r) => r.idle())),
        new Promise((r) => setTimeout(r, 100)),
      ]);
      for (const r of this.runners.values()) r.kick();
    }
    this.abort.abort();
    for (const r of this.runners.values()) r.stop();
    for (const s of this.sources) for (const t of s.files.tailers()) this.store.set(t.checkpoint()); // acknowledged offsets only
    this.store.flushSync();
    for (const s of this.sources) s.files.close();
    for (const j of this.journals) j.stop(); // saves the acknowledged cursors
  }
}
