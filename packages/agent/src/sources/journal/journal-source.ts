// A `[source.NAME] type = journal`: the systemd journal, read through descriptors guard-helper
// opens (the agent's user is not in systemd-journal and cannot open the files itself). The helper
// lists the journal files; they are grouped into one JournalReader per journal directory (machine
// id or namespace; /run and /var of one machine together). The pipeline calls read() like it reads
// files; the events are written by the addon, in C, and only the few that filters or redaction must
// look at are handled here one by one.
import { basename, dirname } from 'node:path';
import { closeSync } from 'node:fs';
import { HelperRefusal } from '@guard/protocol/client';
import type { Logger } from 'pino';
import { BIT_SECRET } from '@guard/journal';
import type { AgentConfig, SourceConfig } from '../../config/types';
import { compileFilter } from '../../transforms/filter';
import { PREFILTER_TRIGGERS, type Redactor } from '../../transforms/redact';
import type { HelperLink } from '../helper-link';
import type { Ticket } from '../file/tailer';
import { CursorStore } from './cursor-store';
import { readHeader, STATE_ARCHIVED } from './header';
import {
  type HeldFile,
  JournalReader,
  type JournalTicket,
  MAX_ENTRIES,
  type ReadArea,
} from './journal-reader';

/** Where the events go: a sink's queue (the pipeline's SinkRunner). */
export interface EventQueue {
  push(json: string, ticket: Ticket, end: number): void;
  pushBytes(
    src: Buffer,
    start: number,
    end: number,
    sizes: Float64Array,
    ends: Float64Array,
    count: number,
    ticket: Ticket,
  ): void;
}

export interface JournalOutput {
  queues: readonly EventQueue[];
  redact: Redactor | null;
  filter: ((message: string) => boolean) | null;
  totals: { linesRead: number; eventsShipped: number; eventsFiltered: number };
}

export interface JournalAgentOptions {
  hostname: string;
  tags: string[] | undefined;
  maxValueBytes: number;
  rescanIntervalMs: number;
}

export interface Refusal {
  code: string;
  message: string;
  since: string;
}

/** One CursorStore per state directory, shared by the journal sources (and kept across reloads). */
const stores = new Map<string, CursorStore>();
function cursorStore(stateDir: string): CursorStore {
  let s = stores.get(stateDir);
  if (!s) stores.set(stateDir, (s = new CursorStore(stateDir)));
  return s;
}

/** The journal source of `[source.NAME] type = journal`, its events going to `out.queues`. */
export function journalSource(
  cfg: AgentConfig,
  src: SourceConfig,
  out: Omit<JournalOutput, 'filter'>,
  link: HelperLink,
  log: Logger,
  firstStart: boolean,
): JournalSource {
  const tags = [...cfg.agent.tags, ...src.tags];
  const agent = {
    hostname: cfg.agent.hostname,
    tags: tags.length ? tags : undefined,
    maxValueBytes: cfg.agent.maxLineBytes,
    rescanIntervalMs: cfg.agent.rescanIntervalMs,
  };
  const output = { ...out, filter: compileFilter(src.include, src.exclude) };
  return new JournalSource(
    src,
    link,
    cursorStore(cfg.agent.stateDir),
    output,
    agent,
    log,
    firstStart,
  );
}

export class JournalSource {
  readonly readers = new Map<string, JournalReader>();
  readonly refused = new Map<string, Refusal>();
  lastListError: string | null = null;
  listTruncated = false;
  private lastRescan = 0;
  private refreshing: Promise<void> | null = null;
  private readonly lists: string[][];
  private syncedAt = Date.now();
  private durableAt = Date.now();

  constructor(
    readonly cfg: SourceConfig,
    private readonly link: HelperLink,
    private readonly store: CursorStore,
    private readonly out: JournalOutput,
    private readonly agent: JournalAgentOptions,
    private readonly log: Logger,
    /** True only on the agent's very first start: start_at applies (to the journals found then). */
    private firstStart: boolean,
  ) {
    const j = cfg.journal!;
    this.lists = [j.units, j.excludeUnits, j.identifiers, j.excludeIdentifiers];
  }

  /** What every event of one journal directory ends with: `path` is `journal:<directory>`. */
  private tailOf(key: string): string {
    return (
      `,"source":${JSON.stringify(this.cfg.name)},"path":${JSON.stringify(`journal:${key}`)},` +
      `"host":${JSON.stringify(this.agent.hostname)},"parser":"journal"` +
      `${this.agent.tags ? `,"tags":${JSON.stringify(this.agent.tags)}` : ''}}\n`
    );
  }

  /** First look at the files: readers opened (and positioned) before the first read. */
  async start(): Promise<void> {
    await this.refresh();
  }

  /** The journal directory a file belongs to: its directory's name (machine id, `<id>.<ns>`). */
  static keyOf(path: string): string {
    return basename(dirname(path));
  }

  private keep(path: string): boolean {
    if (!path.endsWith('.journal')) return false;
    return this.cfg.journal!.userJournals || !basename(path).startsWith('user-');
  }

  /** Asks the helper for the files, opens the new ones, and lets each reader re-open if its set changed. */
  private async refresh(): Promise<void> {
    this.lastRescan = Date.now();
    let files: string[];
    try {
      const reply = await this.link.call((c) => c.listAll(this.cfg.name));
      files = reply.files.filter((p) => this.keep(p));
      this.listTruncated = reply.truncated === true;
      this.lastListError = null;
    } catch (e) {
      this.lastListError =
        e instanceof HelperRefusal ? `${e.code}: ${e.message}` : (e as Error).message;
      this.log.warn(
        { source: this.cfg.name, err: this.lastListError },
        'cannot list journal files',
      );
      return;
    }
    const listed = new Map<string, Set<string>>();
    for (const path of files) {
      const key = JournalSource.keyOf(path);
      let r = this.readers.get(key);
      if (!r) {
        const saved = this.store.get(`${this.cfg.name}/${key}`)?.cursor ?? null;
        r = new JournalReader(
          key,
          {
            source: this.cfg.name,
            tail: this.tailOf(key),
            maxValueBytes: this.agent.maxValueBytes,
            lists: this.lists,
            triggers: this.out.redact?.prefilter ? PREFILTER_TRIGGERS : [],
            startAtEnd: saved === null && this.firstStart && this.cfg.startAt === 'end',
            onAcked: (rd) => {
              this.store.set(`${this.cfg.name}/${rd.key}`, rd.ackedCursor!);
              this.store.save(false);
            },
            log: this.log,
          },
          saved,
        );
        this.readers.set(key, r);
      }
      const ids = listed.get(key) ?? new Set<string>();
      listed.set(key, ids);
      const held = r.byPath(path);
      // A held file keeps its name until it is archived; then the name is the new active file's.
      if (held && readHeader(held.fd)?.state !== STATE_ARCHIVED) {
        ids.add(`${held.dev}:${held.ino}`);
        continue;
      }
      const f = await this.open(path);
      if (f === null) continue;
      const id = `${f.dev}:${f.ino}`;
      const same = r.files.get(id);
      if (same) {
        closeSync(f.fd); // a file we hold, under its new (archived) name
        same.path = path;
      } else {
        r.add(f);
      }
      ids.add(id);
    }
    for (const [key, r] of this.readers) {
      await r.hold(); // no read ahead in flight while the handle may be re-opened
      try {
        r.sync(listed.get(key) ?? new Set());
      } finally {
        r.release();
      }
    }
    this.syncedAt = Date.now();
    this.firstStart = false; // a journal directory that appears later is read from its beginning
  }

  private async open(path: string): Promise<HeldFile | null> {
    try {
      const { reply, fd } = await this.link.call((c) => c.open(path));
      this.refused.delete(path);
      return { path, fd, dev: reply.dev, ino: reply.ino };
    } catch (e) {
      if (!(e instanceof HelperRefusal)) {
        this.log.warn({ path, err: (e as Error).message }, 'cannot ask the helper');
        return null;
      }
      if (e.code === 'not_found') return null; // vacuumed between list and open
      if (!this.refused.has(path))
        this.log.error(
          { source: this.cfg.name, path, code: e.code, reason: e.message },
          'helper refused a journal file',
        );
      this.refused.set(path, {
        code: e.code,
        message: e.message,
        since: this.refused.get(path)?.since ?? new Date().toISOString(),
      });
      return null;
    }
  }

  /** Reads one chunk from each reader; true when anything was read. Rescans in the background. */
  async read(): Promise<boolean> {
    const due = Date.now() - this.lastRescan >= this.agent.rescanIntervalMs;
    let progress = false;
    for (const r of this.readers.values()) {
      const got = await r.next(MAX_ENTRIES);
      if (got === null) {
        const since = Date.now() - this.syncedAt;
        if ((!r.isOpen && since > 1000) || (r.atEnd && since > 200 && r.rotated()))
          this.rescanSoon();
        continue;
      }
      progress = true;
      this.emit(got.area, got.ticket, got.count, got.filtered);
    }
    if (due) this.rescanSoon();
    if (Date.now() - this.durableAt >= 1000) {
      this.durableAt = Date.now();
      this.store.save(true); // fsync once a second, as the file checkpoints
    }
    return progress;
  }

  private rescanSoon(): void {
    this.refreshing ??= this.refresh()
      .catch((e: Error) =>
        this.log.error({ source: this.cfg.name, err: e.message }, 'journal rescan failed'),
      )
      .finally(() => {
        this.refreshing = null;
      });
  }

  /**
   * Hands a chunk's event lines to the sinks: runs of lines as they are, in one copy; a line that
   * the filter must see, or that redaction must (it holds a possible secret, or its JSON is not its
   * text), is decoded, handled and encoded again.
   */
  private emit(area: ReadArea, ticket: JournalTicket, count: number, filtered: number): void {
    const { buf, sizes, meta, ends } = area;
    const { queues, redact, filter, totals } = this.out;
    const fanout = queues.length;
    totals.linesRead += count + filtered;
    totals.eventsFiltered += filtered;
    for (let k = 0; k < count; k++) ends[k] = ticket.base + k + 1;
    let runFrom = 0; // first line of the run being collected
    let runStart = 0; // its byte offset
    let pos = 0;
    const flush = (to: number, toByte: number): void => {
      const n = to - runFrom;
      if (n === 0) return;
      ticket.remaining += fanout * n;
      for (const q of queues)
        q.pushBytes(
          buf,
          runStart,
          toByte,
          sizes.subarray(runFrom, to),
          ends.subarray(runFrom, to),
          n,
          ticket,
        );
      totals.eventsShipped += n;
    };
    for (let k = 0; k < count; k++) {
      const size = sizes[k]!;
      // Redaction: the addon marked the entries whose values hold a word every built-in match holds
      // (custom patterns: every entry).
      const slow =
        filter !== null ||
        (redact !== null && (redact.prefilter === null || (meta[3 * k + 2]! & BIT_SECRET) !== 0));
      if (slow) {
        flush(k, pos);
        const json = this.handleOne(buf.toString('utf8', pos, pos + size));
        if (json === null) {
          totals.eventsFiltered++;
        } else {
          ticket.remaining += fanout;
          for (const q of queues) q.push(json, ticket, ends[k]!);
          totals.eventsShipped++;
        }
        runFrom = k + 1;
        runStart = pos + size;
      }
      pos += size;
    }
    flush(count, pos);
    ticket.tailer.acknowledge(fanout); // a chunk whose every entry was filtered out is done now
  }

  /** One event line through the filter (its message) and redaction (every string in it). */
  private handleOne(json: string): string | null {
    const ev = JSON.parse(json) as {
      message: string;
      fields: Record<string, unknown>;
      flags?: string[];
    };
    if (this.out.filter && !this.out.filter(ev.message)) return null;
    const redact = this.out.redact;
    if (redact === null) return json;
    let changed = false;
    const clean = (v: unknown): unknown => {
      if (typeof v === 'string') {
        const r = redact(v);
        if (r !== v) changed = true;
        return r;
      }
      return Array.isArray(v) ? v.map(clean) : v;
    };
    ev.message = clean(ev.message) as string;
    for (const k of Object.keys(ev.fields)) ev.fields[k] = clean(ev.fields[k]);
    if (!changed) return json;
    ev.flags = [...(ev.flags ?? []), 'redacted'];
    return JSON.stringify(ev) + '\n';
  }

  /** Saves what is acknowledged, closes the files. */
  stop(): void {
    for (const r of this.readers.values()) {
      if (r.ackedCursor !== null) this.store.set(`${this.cfg.name}/${r.key}`, r.ackedCursor);
      r.close();
    }
    this.store.save(true);
  }
}
