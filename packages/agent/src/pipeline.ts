// sources → parsers → transforms → sinks, with acknowledgements flowing back to the checkpoints.
// Every event is encoded once; each sink batches on its own with one batch in flight (so in order);
// a chunk's bytes are checkpointed only when every sink has handled every event made from them.
// When sinks fall behind, reading pauses: the log files are the buffer, memory stays bounded.
import type { Logger } from 'pino';
import type { AgentConfig, BatchConfig, SourceConfig } from './config/types';
import type { Batch, Parser, Sink, SinkStatus } from './event';
import { AuditGrouper } from './parsers/audit/group';
import type { AuditEvent } from './parsers/audit/types';
import { decodeLine } from './parsers/escape';
import { getParser } from './parsers/index';
import { FileSource } from './sources/file/file-source';
import type { Chunk, FileTailer, Ticket } from './sources/file/tailer';
import type { HelperLink } from './sources/helper-link';
import type { CheckpointStore } from './state/checkpoints';
import { compileFilter } from './transforms/filter';
import { compileRedactor } from './transforms/redact';

const READ_BYTES = 1 << 20;

/** Bytes of queued events, written into pooled segments as they are encoded (no object per event). */
class ByteQueue {
  private segs: { buf: Buffer; used: number }[] = [];
  private readPos = 0;
  private static readonly SEGMENT = 256 * 1024;

  /** Appends the UTF-8 of s; returns its length in bytes. */
  write(s: string): number {
    let last = this.segs[this.segs.length - 1];
    if (!last || last.used + s.length * 3 > last.buf.length) {
      last = { buf: Buffer.allocUnsafe(Math.max(ByteQueue.SEGMENT, s.length * 3)), used: 0 };
      this.segs.push(last);
    }
    const n = last.buf.write(s, last.used);
    last.used += n;
    return n;
  }

  /** Removes the next `bytes` bytes and returns them as one Buffer (one copy). */
  take(bytes: number): Buffer {
    const out = Buffer.allocUnsafe(bytes);
    let done = 0;
    while (done < bytes) {
      const seg = this.segs[0]!;
      const n = Math.min(seg.used - this.readPos, bytes - done);
      seg.buf.copy(out, done, this.readPos, this.readPos + n);
      done += n;
      this.readPos += n;
      if (this.readPos === seg.used) {
        this.readPos = 0;
        if (this.segs.length > 1) this.segs.shift();
        else seg.used = 0; // the only segment, all read: reuse it
      }
    }
    return out;
  }
}

/** Queue and batching in front of one sink. A batch's body is cut from the byte queue in one copy. */
class SinkRunner {
  private readonly bytesQ = new ByteQueue();
  /** Per queued event: its size in bytes, its chunk's ticket, and the file offset just past its line. */
  private sizes: number[] = [];
  private tickets: Ticket[] = [];
  private ends: number[] = [];
  private head = 0;
  queuedBytes = 0;
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private seq = 0;

  constructor(readonly sink: Sink, private readonly batch: BatchConfig, private readonly signal: AbortSignal,
    private readonly onDone: (runner: SinkRunner, tickets: Ticket[], ends: number[]) => void, private readonly log: Logger) {}

  get queuedEvents(): number { return this.sizes.length - this.head; }

  push(json: string, ticket: Ticket, end: number): void {
    const n = this.bytesQ.write(json);
    this.sizes.push(n);
    this.tickets.push(ticket);
    this.ends.push(end);
    this.queuedBytes += n;
    if (this.queuedEvents >= this.batch.maxEvents || this.queuedBytes >= this.batch.maxBytes) this.kick();
    else this.timer ??= setTimeout(() => { this.timer = null; this.kick(); }, this.batch.maxWaitMs);
  }

  /** Sends the next batch if none is in flight. */
  kick(): void {
    if (this.inFlight || this.queuedEvents === 0 || this.signal.aborted) return;
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    let end = this.head;
    let bytes = 0;
    while (end < this.sizes.length && end - this.head < this.batch.maxEvents && (end === this.head || bytes + this.sizes[end]! <= this.batch.maxBytes)) {
      bytes += this.sizes[end]!;
      end++;
    }
    const tickets = this.tickets.slice(this.head, end);
    const ends = this.ends.slice(this.head, end);
    this.head = end;
    if (this.head > 4096 && this.head * 2 > this.sizes.length) { // compact now and then, not per event
      this.sizes = this.sizes.slice(this.head);
      this.tickets = this.tickets.slice(this.head);
      this.ends = this.ends.slice(this.head);
      this.head = 0;
    }
    const batch: Batch = { seq: ++this.seq, events: tickets.length, bytes, body: this.bytesQ.take(bytes) };
    this.inFlight = this.sink.send(batch, this.signal).then(() => {
      this.queuedBytes -= bytes;
      this.onDone(this, tickets, ends);
    }, (e: Error) => {
      if (!this.signal.aborted) this.log.error({ sink: this.sink.name, err: e.message }, 'sink failed a batch unexpectedly; it will be re-read');
    }).finally(() => {
      this.inFlight = null;
      if (this.queuedEvents >= this.batch.maxEvents || this.queuedBytes >= this.batch.maxBytes) this.kick();
      else if (this.queuedEvents > 0) this.timer ??= setTimeout(() => { this.timer = null; this.kick(); }, this.batch.maxWaitMs);
    });
  }

  /** Resolves when what is in flight now has settled. */
  async idle(): Promise<void> { while (this.inFlight) await this.inFlight; }

  stop(): void { if (this.timer) clearTimeout(this.timer); this.timer = null; }
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

export interface PipelineTotals { linesRead: number; eventsShipped: number; eventsFiltered: number; bytesAcked: number }

export class Pipeline {
  readonly sources: SourceRuntime[] = [];
  readonly runners = new Map<string, SinkRunner>();
  readonly totals: PipelineTotals = { linesRead: 0, eventsShipped: 0, eventsFiltered: 0, bytesAcked: 0 };
  private readonly abort = new AbortController();
  private readonly redact: ((t: string) => string) | null;
  private timers: NodeJS.Timeout[] = [];
  private pumping = false;
  private stopped = false;
  paused = false;
  private readonly sourceByName = new Map<string, SourceRuntime>();

  constructor(private readonly cfg: AgentConfig, sinks: Map<string, Sink>, link: HelperLink,
    private readonly store: CheckpointStore, private readonly log: Logger, firstStart: boolean) {
    this.redact = compileRedactor(cfg.redact);
    for (const s of cfg.sinks) {
      const sink = sinks.get(s.name)!;
      this.runners.set(s.name, new SinkRunner(sink, s.batch, this.abort.signal, (r, tickets, ends) => this.acked(r, tickets, ends), log));
    }
    const tailerOpts = { maxLineBytes: cfg.agent.maxLineBytes, partialLineTimeoutMs: cfg.agent.partialLineTimeoutMs, readBytes: READ_BYTES };
    for (const src of cfg.sources) {
      const audit = src.type === 'audit' || src.parser === 'audit';
      const parserName = audit ? 'audit' : src.parser;
      const tags = [...cfg.agent.tags, ...src.tags];
      const runtime: SourceRuntime = {
        cfg: src,
        files: new FileSource(src, link, store, tailerOpts, (t) => store.set(t.checkpoint()), log, firstStart),
        audit,
        parser: getParser(audit ? 'plain' : (parserName as 'syslog' | 'json' | 'plain')),
        parserName,
        filter: compileFilter(src.include, src.exclude),
        runners: (src.sinks ?? cfg.sinks.map((s) => s.name)).map((n) => this.runners.get(n)!),
        tags: tags.length ? tags : undefined,
      };
      this.sources.push(runtime);
      this.sourceByName.set(src.name, runtime);
    }
  }

  get queuedBytes(): number {
    let n = 0;
    for (const r of this.runners.values()) n += r.queuedBytes;
    return n;
  }

  async start(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.files.rescan()));
    const a = this.cfg.agent;
    const every = (ms: number, fn: () => Promise<void> | void) => {
      const t = setInterval(() => { void Promise.resolve(fn()).catch((e: Error) => this.log.error({ err: e.message }, 'periodic task failed')); }, ms);
      this.timers.push(t);
    };
    every(a.rescanIntervalMs, () => Promise.all(this.sources.map((s) => s.files.rescan())).then(() => undefined));
    every(a.rotateCheckIntervalMs, async () => {
      for (const s of this.sources) { await s.files.checkRotation(); s.files.reapDrained(); }
    });
    every(a.pollIntervalMs, () => this.pump());
    every(1000, () => this.store.save(true));
    void this.pump();
  }

  /** Reads every file that has grown, until none has or sinks push back. */
  private async pump(): Promise<void> {
    if (this.pumping || this.stopped) return;
    this.pumping = true;
    try {
      for (let progress = true; progress && !this.stopped;) {
        progress = false;
        for (const s of this.sources) {
          for (const t of [...s.files.tailers()]) {
            if (this.updatePaused()) return;
            const chunk = await t.readChunk();
            if (s.audit) this.flushAudit(s, t);
            if (!chunk) continue;
            if (s.audit) this.processAudit(s, t, chunk);
            else this.process(s, t, chunk);
            progress = true;
          }
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Backpressure with hysteresis: pause above max_buffer_bytes, resume below half of it. */
  private updatePaused(): boolean {
    const q = this.queuedBytes;
    const max = this.cfg.agent.maxBufferBytes;
    if (!this.paused && q > max) { this.paused = true; this.log.info({ queuedBytes: q }, 'sinks are behind: pausing reads'); }
    else if (this.paused && q < max / 2) { this.paused = false; this.log.info({ queuedBytes: q }, 'resuming reads'); }
    return this.paused;
  }

  /**
   * Each line: decode, filter, redact, parse, encode once as a JSON line. The parts that are the
   * same for every event of a file (source, path, host, parser, tags) are encoded once per file.
   */
  private process(s: SourceRuntime, t: FileTailer, chunk: Chunk): void {
    const now = new Date();
    const nowStr = now.toISOString();
    const nowIso = JSON.stringify(nowStr);
    const ticket = chunk.ticket;
    const fanout = s.runners.length;
    const tail = this.jsonTail(s, t);
    const lines = chunk.lines;
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i]!;
      const end = i + 1 < lines.length ? lines[i + 1]!.offset : ticket.endOffset;
      this.totals.linesRead++;
      const { text, escaped } = decodeLine(l.buf, l.start, l.end);
      if (s.filter && !s.filter(text)) { this.totals.eventsFiltered++; continue; }
      const message = this.redact ? this.redact(text) : text;
      const parsed = s.parser(message, now);
      let flags = l.flags;
      if (escaped || message !== text || parsed.flags) {
        flags = [...(flags ?? []), ...(escaped ? ['escaped'] : []), ...(message !== text ? ['redacted'] : []), ...(parsed.flags ?? [])];
      }
      // The shape of LogEvent (event.ts), written out: one JSON.stringify per string, none per event.
      const json = `{"id":"${t.key}:${l.offset}","time":${parsed.time ? JSON.stringify(parsed.time) : nowIso},"offset":${l.offset},` +
        `"message":${JSON.stringify(message)}${parsed.fields ? `,"fields":${JSON.stringify(parsed.fields)}` : ''}` +
        `${flags ? `,"flags":${JSON.stringify(flags)}` : ''}${tail}`;
      ticket.remaining += fanout;
      for (const r of s.runners) r.push(json, ticket, end);
      t.lastEventTime = parsed.time ?? nowStr;
      this.totals.eventsShipped++;
    }
    t.acknowledge(fanout); // a chunk whose every line was filtered out is acknowledged at once
  }

  private readonly tails = new WeakMap<FileTailer, string>();
  private jsonTail(s: SourceRuntime, t: FileTailer): string {
    let tail = this.tails.get(t);
    if (tail === undefined) {
      tail = `,"source":${JSON.stringify(s.cfg.name)},"path":${JSON.stringify(t.path)},"host":${JSON.stringify(this.cfg.agent.hostname)},` +
        `"parser":"${s.parserName}"${s.tags ? `,"tags":${JSON.stringify(s.tags)}` : ''}}\n`;
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

  /** Audit records: decoded, filtered and redacted per line like any other, then grouped into events. */
  private processAudit(s: SourceRuntime, t: FileTailer, chunk: Chunk): void {
    const st = this.audit(t);
    const lines = chunk.lines;
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i]!;
      const end = i + 1 < lines.length ? lines[i + 1]!.offset : chunk.ticket.endOffset;
      this.totals.linesRead++;
      const { text } = decodeLine(l.buf, l.start, l.end);
      if (s.filter && !s.filter(text)) { this.totals.eventsFiltered++; continue; }
      const message = this.redact ? this.redact(text) : text;
      for (const ev of st.grouper.push(message, l.offset, end)) this.emitAudit(s, t, st, ev, chunk.ticket);
    }
    this.holdBack(st, chunk.ticket);
    t.acknowledge(s.runners.length);
  }

  /** Events whose records stopped coming (no closing record): shipped after the grouper's timeout. */
  private flushAudit(s: SourceRuntime, t: FileTailer): void {
    const st = this.auditState.get(t);
    if (!st || st.grouper.openEvents === 0) return;
    const events = st.grouper.flush(Date.now(), 2000);
    if (events.length === 0) return;
    const ticket = t.ticketHere();
    for (const ev of events) this.emitAudit(s, t, st, ev, ticket);
    this.holdBack(st, ticket);
    t.acknowledge(s.runners.length);
  }

  /** The checkpoint may not pass a record whose event is still being put together. */
  private holdBack(st: { grouper: AuditGrouper }, ticket: Ticket): void {
    const open = st.grouper.oldestOpenOffset();
    if (open !== undefined && open < ticket.endOffset) ticket.endOffset = Math.max(open, 0);
  }

  private emitAudit(s: SourceRuntime, t: FileTailer, st: { grouper: AuditGrouper; safe: number }, ev: AuditEvent, ticket: Ticket): void {
    // Events complete out of offset order (interleaved stamps): what this one lets the checkpoint
    // pass is its end, but never beyond an event still open, and never backwards.
    const open = st.grouper.oldestOpenOffset();
    st.safe = Math.max(st.safe, Math.min(ev.end, open ?? ev.end));
    const { records, offset, end: _end, raw, flags, ...summary } = ev as AuditEvent & { raw?: string };
    const message = raw ?? records.map((r) => r.raw).join('\n');
    const fields = { ...summary, records: records.map((r) => ({ type: r.type, fields: r.fields, enriched: r.enriched })) };
    const json = `{"id":"${t.key}:${offset}","time":${JSON.stringify(ev.time || new Date().toISOString())},"offset":${offset},` +
      `"message":${JSON.stringify(message)},"fields":${JSON.stringify(fields)}${flags?.length ? `,"flags":${JSON.stringify(flags)}` : ''}${this.jsonTail(s, t)}`;
    ticket.remaining += s.runners.length;
    for (const r of s.runners) r.push(json, ticket, st.safe);
    t.lastEventTime = ev.time || t.lastEventTime;
    this.totals.eventsShipped++;
  }

  private acked(r: SinkRunner, tickets: Ticket[], ends: number[]): void {
    const touched = new Set<FileTailer>();
    for (let i = 0; i < tickets.length; i++) {
      const t = tickets[i]!;
      t.remaining--;
      (t.delivered ??= new Map()).set(r, ends[i]!);
      touched.add(t.tailer);
    }
    for (const tailer of touched) tailer.acknowledge(this.sourceByName.get(tailer.source)!.runners.length);
    // Before this sink's next batch goes out: a kill now re-sends at most the batch in flight.
    this.store.save(false);
    if (this.paused && !this.updatePaused()) void this.pump();
  }

  sinkStatus(): (SinkStatus & { queuedEvents: number; queuedBytes: number })[] {
    return [...this.runners.values()].map((r) => ({ ...r.sink.status(), queuedEvents: r.queuedEvents, queuedBytes: r.queuedBytes }));
  }

  /** Stops reading, gives sinks up to `graceMs` to deliver what is queued, then writes checkpoints. */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    for (const r of this.runners.values()) r.kick();
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && [...this.runners.values()].some((r) => r.queuedEvents > 0)) {
      await Promise.race([Promise.all([...this.runners.values()].map((r) => r.idle())), new Promise((r) => setTimeout(r, 100))]);
      for (const r of this.runners.values()) r.kick();
    }
    this.abort.abort();
    for (const r of this.runners.values()) r.stop();
    for (const s of this.sources) for (const t of s.files.tailers()) this.store.set(t.checkpoint()); // acknowledged offsets only
    this.store.flushSync();
    for (const s of this.sources) s.files.close();
  }
}
