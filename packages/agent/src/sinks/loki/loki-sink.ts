// Grafana Loki push API: POST <url>/loki/api/v1/push, JSON (gzip unless compression = none):
//
//   {"streams":[{"stream":{"host":"web-1","source":"auth"},"values":[["<ns>","<line>"],…]}]}
//
// Labels come from a bounded set named in config (host, source, parser, program, unit), never from
// per-line values. The line is guard's whole event (its NDJSON line), so `| json` works in LogQL and
// the event's id travels with it. The timestamp is the event's time in nanoseconds, with the
// event's file offset (mod 10^6) in the sub-millisecond digits: the same event always gets the same
// timestamp and line, so Loki drops a resend as a duplicate, and two events of one millisecond get
// different timestamps, so Loki's answer naming an ignored entry by its timestamp names one event.
//
// A batch goes as one request per stream: an ingester that ignores entries answers with the
// entries of one stream only ("… total ignored: N out of M for stream: {…}"), listing at most
// max_returned_errors (10) of them.
//
//   204                           → delivered
//   400 "total ignored: N out of M" → the entries it lists dead-lettered with their reason, the
//                                   others delivered (Loki accepted them: never sent again); when
//                                   it lists fewer than N, every unlisted entry is dead-lettered
//                                   too (some of them were accepted: kept, not lost nor duplicated)
//   429 "total ignored …"         → as 400, but the ignored entries are sent again (stream rate
//                                   limit); any other 429, 5xx, network → the request again
//   260 (block_ingestion_status_code) and other 2xx → retried: ingestion is blocked, nothing kept
//   413                           → split in halves
//   other 4xx                     → the request's events dead-lettered

import { hostname as osHostname } from 'node:os';
import type { LokiSinkConfig } from '../../config/types';
import type { Batch } from '../../event';
import { ByteWriter, Lit, TailKey } from '../core/byte-writer';
import {
  EventScan,
  ID as LINE_ID,
  MESSAGE as LINE_MESSAGE,
  OFFSET as LINE_OFFSET,
  TIME as LINE_TIME,
} from '../core/event-scan';
import {
  HttpCoreSink,
  parseRetryAfter,
  statusVerdict,
  type HttpSinkOptions,
} from '../core/http-core';
import { IsoTimeReader, type BatchLines } from '../core/lines';
import type { Answer, ItemRefusal, RequestContext, Verdict, WireFormat } from '../core/wire-format';

export const LOKI_LABELS = ['host', 'source', 'parser', 'program', 'unit'] as const;
export type LokiLabel = (typeof LOKI_LABELS)[number];

const retryable = (s: number): boolean => s === 408 || s === 429 || s >= 500;
const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const VALUE_HEAD = b('["');
const VALUE_MID = b('","');
const VALUE_TAIL = b('"]');
/** The pieces of an event line's head (event-scan.ts) as JSON string contents. */
const escaped = (piece: Buffer): Lit => Lit.of(piece.toString('latin1').replace(/["\\]/g, '\\$&'));
const HEAD_ID = escaped(LINE_ID);
const HEAD_TIME = escaped(LINE_TIME);
const HEAD_OFFSET = escaped(LINE_OFFSET);
const HEAD_MESSAGE = escaped(LINE_MESSAGE);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** What one batch's events are, for Loki: each event's stream, and each stream's labels JSON; and
 *  where the scan found each line's parts, so that encode() does not read the line twice. */
interface Streams {
  of: Int32Array;
  labels: string[];
  /** Each event's time in ms and file offset (mod 10^6): its timestamp in ns is both, as digits. */
  ms: Float64Array;
  offset: Int32Array;
  /** Where the message's contents start and end in the body (msgS -1: a line of another shape,
   *  escaped whole), 1 when they hold an escape; which escaped tail (tails) the line ends with. */
  msgS: Int32Array;
  msgE: Int32Array;
  msgEscaped: Uint8Array;
  /** Where the id and the time end (timeE -1: the head is escaped byte by byte). */
  idE: Int32Array;
  timeE: Int32Array;
  /** Where the line's tail starts, and which of tails it is. */
  tailS: Int32Array;
  tail: Int32Array;
  /** The distinct tails (`,"source":…}`) of the batch, as JSON string contents. */
  tails: Buffer[];
}

/** An event's timestamp in ns as decimal text: the time in ms, then the offset as six digits. */
function tsText(st: Streams, i: number): string {
  return `${st.ms[i]!}${String(st.offset[i]!).padStart(6, '0')}`;
}

interface Event {
  id?: unknown;
  time?: unknown;
  host?: unknown;
  source?: unknown;
  parser?: unknown;
  fields?: Record<string, unknown>;
}

/** Go's time.Time.String() of a UTC time in ns (how Loki names an ignored entry). */
export function goTimeString(ns: string): string {
  const whole = ns.length > 9 ? ns.slice(0, -9) : '0';
  const frac = ns.padStart(10, '0').slice(-9).replace(/0+$/, '');
  const d = new Date(Number(whole) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  return `${d.slice(0, 10)} ${d.slice(11, 19)}${frac ? `.${frac}` : ''} +0000 UTC`;
}

export class LokiFormat implements WireFormat {
  readonly type = 'loki';
  readonly contentType = 'application/json';
  readonly readsAnswer = 64 * 1024;
  readonly readsLines = true;
  readonly overlaps = true;
  private endpoint = '';
  private readonly scan = new EventScan();
  private readonly streamsOf = new WeakMap<BatchLines, Streams>();
  private readonly tailKey = new TailKey();
  private tail: Event = {};

  constructor(
    private readonly cfg: LokiSinkConfig,
    private readonly hostname: string,
  ) {}

  path(url: URL): string {
    const base = url.pathname.replace(/\/+$/, '').replace(/\/loki\/api\/v1\/push$/, '');
    this.endpoint = `${url.origin}${base}/loki/api/v1/push`;
    return `${base}/loki/api/v1/push${url.search}`;
  }

  headers(): Record<string, string> {
    return this.cfg.tenant === null ? {} : { 'x-scope-orgid': this.cfg.tenant };
  }

  private streams(lines: BatchLines): Streams {
    let st = this.streamsOf.get(lines);
    if (st !== undefined) return st;
    const n = lines.count;
    st = {
      of: new Int32Array(n),
      labels: [],
      ms: new Float64Array(n),
      offset: new Int32Array(n),
      msgS: new Int32Array(n),
      msgE: new Int32Array(n),
      msgEscaped: new Uint8Array(n),
      idE: new Int32Array(n),
      timeE: new Int32Array(n),
      tailS: new Int32Array(n),
      tail: new Int32Array(n),
      tails: [],
    };
    const index = new Map<string, number>();
    const { body, starts, ends } = lines;
    for (let i = 0; i < n; i++) {
      const labels = this.event(body, starts[i]!, ends[i]!, st, i);
      let k = index.get(labels);
      if (k === undefined) {
        k = st.labels.length;
        st.labels.push(labels);
        index.set(labels, k);
      }
      st.of[i] = k;
    }
    this.streamsOf.set(lines, st);
    return st;
  }

  private readonly times = new IsoTimeReader();
  /** Stream labels JSON by what they are made of (the file's tail, program, unit). */
  private readonly labelCache = new Map<string, string>();
  private tailVersion = 0;
  /** The labels of the current tail when they are made of it alone (no program or unit label). */
  private tailLabels: string | null = null;
  /** The current tail as JSON string contents, and the batch (Streams) that has it in its tails. */
  private tailEscaped = Buffer.alloc(0);
  private tailOwner: Streams | null = null;

  /** One event's stream labels (as JSON); its time, offset and parts into st at i. */
  private event(body: Buffer, s: number, e: number, st: Streams, i: number): string {
    const sc = this.scan;
    if (!sc.scan(body, s, e)) return this.parsedEvent(body, s, e, st, i);
    const tailLen = sc.tailE - sc.tailS;
    if (!this.tailKey.matches(body, sc.tailS, sc.tailE)) {
      // parsed before the key is kept: a tail that fails to parse is not cached as done
      this.tail = JSON.parse(`{${body.toString('utf8', sc.tailS + 1, sc.tailE)}`) as Event;
      this.tailKey.set(body, sc.tailS, sc.tailE);
      this.tailVersion++;
      this.tailLabels = null;
      const w = new ByteWriter(2 * tailLen + 16);
      escapeInto(w, this.tailKey.bytes, 0, tailLen);
      this.tailEscaped = Buffer.from(w.written());
      this.tailOwner = null;
    }
    if (this.tailOwner !== st) {
      this.tailOwner = st;
      st.tails.push(this.tailEscaped);
    }
    st.tail[i] = st.tails.length - 1;
    st.tailS[i] = sc.tailS;
    st.msgS[i] = sc.msgS;
    st.msgE[i] = sc.msgE;
    st.msgEscaped[i] = sc.msgEscaped ? 1 : 0;
    st.idE[i] = sc.idE;
    st.timeE[i] = sc.timeEscaped ? -1 : sc.timeE;
    st.ms[i] = this.times.ms(body, sc.timeS, sc.timeE) ?? Date.now();
    // The offset: the digits after the id's last ':'.
    let offset = 0;
    let p = sc.idE;
    while (p > sc.idS && body[p - 1]! >= 0x30 && body[p - 1]! <= 0x39) p--;
    for (let q = Math.max(p, sc.idE - 6); q < sc.idE; q++) offset = offset * 10 + body[q]! - 48;
    st.offset[i] = offset;
    if (!this.perLine) {
      this.tailLabels ??= this.labelsOf(this.tail, {});
      return this.tailLabels;
    }
    let program: string | undefined;
    let unit: string | undefined;
    for (let k = 0; k < sc.fieldCount; k++) {
      const o = k * 5;
      if (sc.f[o + 4] === 0) continue;
      const key = body.toString('latin1', sc.f[o]!, sc.f[o + 1]!);
      if (key === 'program') program = body.toString('utf8', sc.f[o + 2]!, sc.f[o + 3]!);
      else if (key === 'unit') unit = body.toString('utf8', sc.f[o + 2]!, sc.f[o + 3]!);
    }
    const cacheKey = `${this.tailVersion}\0${program ?? ''}\0${unit ?? ''}`;
    let labels = this.labelCache.get(cacheKey);
    if (labels === undefined) {
      if (this.labelCache.size > 10_000) this.labelCache.clear();
      labels = this.labelsOf(this.tail, { program, unit });
      this.labelCache.set(cacheKey, labels);
    }
    return labels;
  }

  private get perLine(): boolean {
    return this.cfg.labels.includes('program') || this.cfg.labels.includes('unit');
  }

  /** An event of another shape, parsed. */
  private parsedEvent(body: Buffer, s: number, e: number, st: Streams, i: number): string {
    let ev: Event;
    try {
      ev = JSON.parse(body.toString('utf8', s, e)) as Event;
    } catch {
      ev = {};
    }
    st.msgS[i] = -1;
    const [ms, offset] = timestamp(ev);
    st.ms[i] = ms;
    st.offset[i] = offset;
    return this.labelsOf(ev, ev.fields ?? {});
  }

  private labelsOf(ev: Event, fields: Record<string, unknown>): string {
    const labels: Record<string, string> = {};
    for (const l of this.cfg.labels) {
      const v =
        l === 'program' || l === 'unit'
          ? fields[l]
          : l === 'host'
            ? (ev.host ?? this.hostname)
            : ev[l as 'source' | 'parser'];
      if (typeof v === 'string' && v !== '') labels[l] = v;
    }
    if (Object.keys(labels).length === 0) labels.host = this.hostname; // Loki needs one label
    return JSON.stringify(labels);
  }

  group(_batch: Batch, lines: () => BatchLines): number[][] | null {
    const st = this.streams(lines());
    if (st.labels.length === 1) return null;
    const groups: number[][] = st.labels.map(() => []);
    for (let i = 0; i < st.of.length; i++) groups[st.of[i]!]!.push(i);
    return groups;
  }

  encode(
    _batch: Batch,
    lines: () => BatchLines,
    items: readonly number[] | null,
    w: ByteWriter,
  ): Buffer {
    const l = lines();
    const st = this.streams(l);
    const n = items === null ? l.count : items.length;
    // Events of each stream, in order (one stream a request unless encoded for a single stream).
    const byStream = new Map<number, number[]>();
    for (let k = 0; k < n; k++) {
      const i = items === null ? k : items[k]!;
      const s = st.of[i]!;
      let list = byStream.get(s);
      if (!list) byStream.set(s, (list = []));
      list.push(i);
    }
    w.text('{"streams":[');
    let firstStream = true;
    for (const [s, list] of byStream) {
      if (!firstStream) w.byte(0x2c);
      firstStream = false;
      w.text(`{"stream":${st.labels[s]!},"values":[`);
      for (let k = 0; k < list.length; k++) {
        const i = list[k]!;
        if (k > 0) w.byte(0x2c);
        w.bytes(VALUE_HEAD);
        putTimestamp(w, st.ms[i]!, st.offset[i]!);
        w.bytes(VALUE_MID);
        const ls = l.starts[i]!;
        const ms = st.msgS[i]!;
        if (ms < 0) escapeInto(w, l.body, ls, l.ends[i]!);
        else {
          // the line's own JSON escaped, but for the message without an escape (so without a
          // quote or a backslash: copied as it is) and the file's tail (escaped once); its head
          // `{"id":"…","time":"…","offset":N,"message":"` as escaped constants around the id,
          // time and offset (none holds a quote or a backslash: EventScan.scan)
          const te = st.timeE[i]!;
          if (te < 0) escapeInto(w, l.body, ls, ms);
          else {
            const ie = st.idE[i]!;
            w.lit(HEAD_ID);
            w.bytes(l.body, ls + LINE_ID.length, ie);
            w.lit(HEAD_TIME);
            w.bytes(l.body, ie + LINE_TIME.length, te);
            w.lit(HEAD_OFFSET);
            w.bytes(l.body, te + LINE_OFFSET.length, ms - LINE_MESSAGE.length);
            w.lit(HEAD_MESSAGE);
          }
          const me = st.msgE[i]!;
          if (st.msgEscaped[i] === 1) escapeInto(w, l.body, ms, me);
          else w.bytes(l.body, ms, me);
          escapeInto(w, l.body, me, st.tailS[i]!);
          w.bytes(st.tails[st.tail[i]!]!);
        }
        w.bytes(VALUE_TAIL);
      }
      w.text(']}');
    }
    w.text(']}');
    return w.written();
  }

  classify(a: Answer, ctx: RequestContext): Verdict {
    if (a.status === 204 || a.status === 200) return { kind: 'delivered' };
    if (a.status > 200 && a.status < 300)
      return {
        kind: 'retry',
        code: `GUARD_LOKI_STATUS_${a.status}`,
        message: `HTTP ${a.status} from ${this.endpoint}: not a success (Loki answers 260 while ingestion is blocked)`,
        retryAfterMs: parseRetryAfter(a.headers['retry-after']),
      };
    const text = a.body.toString('utf8');
    const total = /total ignored: (\d+) out of (\d+)/.exec(text);
    if ((a.status === 400 || a.status === 429) && total && Number(total[2]) === ctx.count) {
      // Each position's timestamp: Loki names an ignored entry by it.
      const st = this.streams(ctx.lines());
      const ts = Array.from({ length: ctx.count }, (_, pos) => tsText(st, ctx.items?.[pos] ?? pos));
      return this.ignored(text, Number(total[1]), ts, a.status === 429);
    }
    return statusVerdict(a, this.endpoint, retryable);
  }

  /** The verdict of an answer listing ignored entries. */
  private ignored(text: string, total: number, ts: string[], retry: boolean): Verdict {
    const listed = new Map<string, string>(); // Go time string → reason
    const re = /entry with timestamp (.+?) ignored, reason: '([\s\S]*?)'(?:,\n| for stream: )/g;
    let count = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      listed.set(m[1]!, m[2]!);
      count++;
    }
    const complete = count >= total;
    const hit: ItemRefusal[] = [];
    for (let pos = 0; pos < ts.length; pos++) {
      const reason = listed.get(goTimeString(ts[pos]!));
      if (reason !== undefined)
        hit.push({ pos, status: retry ? 429 : 400, reason: `Loki ignored it: ${reason}` });
      else if (!complete)
        hit.push({
          pos,
          status: retry ? 429 : 400,
          reason: `Loki ignored ${total} of ${ts.length} entries and listed only ${count}: this one may have been accepted`,
        });
    }
    if (retry)
      return {
        kind: 'partial',
        retry: hit.map((h) => h.pos),
        refused: [],
        retryCode: 'GUARD_LOKI_RATE_LIMITED',
      };
    return { kind: 'partial', retry: [], refused: hit, retryCode: null };
  }
}

/** The event's time in ms (now when it has none) and its file offset mod 10^6 (the sub-ms digits
 *  of its timestamp). */
function timestamp(ev: Event): [number, number] {
  const ms = typeof ev.time === 'string' ? Date.parse(ev.time) : NaN;
  const t = Number.isNaN(ms) ? Date.now() : ms;
  const id = typeof ev.id === 'string' ? ev.id : '';
  const offset = Number(/:(\d+)$/.exec(id)?.[1] ?? 0) % 1_000_000;
  return [t, offset];
}

/** tsText()'s digits written into w without a string: ms, then offset as six digits. */
function putTimestamp(w: ByteWriter, ms: number, offset: number): void {
  w.decimal(ms);
  w.decimal(offset, 6);
}

/** body[s, e) as the contents of a JSON string: `"` and `\` escaped (guard's lines hold no other
 *  character that needs it: control characters are escaped already). */
function escapeInto(w: ByteWriter, body: Buffer, s: number, e: number): void {
  w.ensure(2 * (e - s));
  const out = w.buf;
  let o = w.pos;
  for (let p = s; p < e; p++) {
    const c = body[p]!;
    if (c === QUOTE || c === BACKSLASH) out[o++] = BACKSLASH;
    out[o++] = c;
  }
  w.pos = o;
}

export class LokiSink extends HttpCoreSink {
  constructor(cfg: LokiSinkConfig, opts: HttpSinkOptions) {
    super(cfg, new LokiFormat(cfg, opts.hostname ?? osHostname()), opts);
  }
}
