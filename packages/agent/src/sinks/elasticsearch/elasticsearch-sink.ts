// Elasticsearch and OpenSearch `_bulk`. Every event is a `create` with `_id` = "<host>:<event id>",
// so an event sent again (after a crash, a timeout, a retried item) is answered 409 — already
// there — and counts as delivered: a resend never makes a second document.
//
// What an answer means here (the Bulk API answers 200 even when items failed):
//   200, "errors": false           → delivered
//   200, "errors": true, per item  → 2xx and 409: delivered; 429 and 5xx: sent again (only those,
//                                    after a backoff); anything else (400 mapping errors, …): that
//                                    event dead-lettered with ES's error type and reason
//   413 (http.max_content_length)  → split in halves
//   408, 429, 5xx, network         → the request again (Retry-After honoured)
//   other 4xx                      → the request's events dead-lettered

import type { ElasticsearchSinkConfig } from '../../config/types';
import type { Batch } from '../../event';
import type { ByteWriter } from '../core/byte-writer';
import { HttpCoreSink, statusVerdict, type HttpSinkOptions } from '../core/http-core';
import { eventHead, type BatchLines } from '../core/lines';
import type { Answer, ItemRefusal, RequestContext, Verdict, WireFormat } from '../core/wire-format';
import { hostname as osHostname } from 'node:os';

const ascii = (s: string): Buffer => Buffer.from(s, 'utf8');
const ACTION_HEAD = ascii('{"create":{"_index":"');
const ID_KEY = ascii('","_id":"');
const ACTION_TAIL = ascii('"}}\n');
const NL = 0x0a;

const retryable = (s: number): boolean => s === 408 || s === 429 || s >= 500;

/** The index name for a day: the pattern's %Y %m %d from `YYYY-MM-DD`. */
function indexFor(pattern: string, ymd: string): string {
  return pattern
    .replace(/%Y/g, ymd.slice(0, 4))
    .replace(/%m/g, ymd.slice(5, 7))
    .replace(/%d/g, ymd.slice(8, 10));
}

const DATE = /^\d{4}-\d{2}-\d{2}/;

export class ElasticsearchFormat implements WireFormat {
  readonly type = 'elasticsearch';
  readonly contentType = 'application/x-ndjson';
  /** A bulk answer names every item; with filter_path ~30 bytes each. */
  readonly readsAnswer = 64 * 1024 * 1024;
  readonly readsLines = true;
  readonly overlaps = true;
  private readonly dated: boolean;
  private readonly hostId: Buffer;
  private lastDay: Buffer = Buffer.alloc(10);
  private lastIndex: Buffer;
  private endpoint = '';

  constructor(
    private readonly cfg: ElasticsearchSinkConfig,
    hostname: string,
  ) {
    this.dated = /%[Ymd]/.test(cfg.index);
    this.lastIndex = ascii(this.dated ? indexFor(cfg.index, today()) : cfg.index);
    // JSON string contents: the host name is operator input.
    this.hostId = ascii(`${JSON.stringify(hostname).slice(1, -1)}:`);
  }

  path(url: URL): string {
    const base = url.pathname.replace(/\/+$/, '');
    const q = new URLSearchParams(url.search);
    // Only what the classifier reads: the answer shrinks from ~150 to ~30 bytes an event.
    q.set('filter_path', 'errors,items.*.status,items.*.error.type,items.*.error.reason');
    if (this.cfg.pipeline !== null) q.set('pipeline', this.cfg.pipeline);
    this.endpoint = `${url.origin}${base}/_bulk`;
    return `${base}/_bulk?${q.toString()}`;
  }

  encode(
    batch: Batch,
    lines: () => BatchLines,
    items: readonly number[] | null,
    w: ByteWriter,
  ): Buffer {
    const l = lines();
    const { body, starts, ends } = l;
    w.ensure(batch.bytes * 2);
    const n = items === null ? l.count : items.length;
    for (let k = 0; k < n; k++) {
      const i = items === null ? k : items[k]!;
      const s = starts[i]!;
      const e = ends[i]!;
      const h = eventHead(body, s, e);
      w.bytes(ACTION_HEAD);
      w.bytes(
        this.dated ? this.index(body, h.timeStart, h.timeEnd, h.parsed?.time) : this.lastIndex,
      );
      w.bytes(ID_KEY);
      w.bytes(this.hostId);
      if (h.parsed) w.text(JSON.stringify(h.parsed.id).slice(1, -1));
      else w.bytes(body, h.idStart, h.idEnd);
      w.bytes(ACTION_TAIL);
      w.bytes(body, s, e);
      w.byte(NL); // the Bulk API wants the last line to end in a newline too
    }
    return w.written();
  }

  /** The index of an event whose time is body[ts, te) (or `parsed`): cached per day. */
  private index(body: Buffer, ts: number, te: number, parsed: string | undefined): Buffer {
    const last = this.lastDay;
    if (parsed === undefined && te - ts >= 10) {
      let same = true;
      for (let k = 0; k < 10; k++)
        if (body[ts + k] !== last[k]) {
          same = false;
          break;
        }
      if (same) return this.lastIndex;
    }
    const day =
      parsed !== undefined
        ? ascii(DATE.test(parsed) ? parsed.slice(0, 10) : today())
        : te - ts >= 10
          ? Buffer.from(body.subarray(ts, ts + 10))
          : ascii(today());
    const ymd = day.toString('latin1');
    this.lastDay = day;
    this.lastIndex = ascii(indexFor(this.cfg.index, DATE.test(ymd) ? ymd : today()));
    return this.lastIndex;
  }

  classify(a: Answer, ctx: RequestContext): Verdict {
    if (a.status !== 200) return statusVerdict(a, this.endpoint, retryable);
    // {"errors":false,…: nothing to look at item by item (filter_path puts errors first).
    const head = a.body.toString('latin1', 0, 64);
    if (/^\{\s*"errors"\s*:\s*false\b/.test(head) && !a.truncated) return { kind: 'delivered' };
    let parsed: { errors?: unknown; items?: unknown };
    try {
      parsed = JSON.parse(a.body.toString('utf8')) as typeof parsed;
    } catch {
      return badAnswer(this.endpoint, a.truncated ? 'cut short' : 'not JSON');
    }
    if (parsed.errors === false) return { kind: 'delivered' };
    if (!Array.isArray(parsed.items)) return badAnswer(this.endpoint, 'without items');
    // Every event must be accounted for: one missing from the answer would count as delivered.
    if (parsed.items.length !== ctx.count)
      return badAnswer(this.endpoint, `about ${parsed.items.length} items, not ${ctx.count}`);
    const retry: number[] = [];
    const refused: ItemRefusal[] = [];
    parsed.items.forEach((item: unknown, pos: number) => {
      const op = Object.values((item ?? {}) as Record<string, unknown>)[0] as
        { status?: unknown; error?: { type?: unknown; reason?: unknown } } | undefined;
      const status = typeof op?.status === 'number' ? op.status : 0;
      if ((status >= 200 && status < 300) || status === 409) return; // 409: created before
      if (status === 429 || status >= 500 || status === 0) {
        retry.push(pos);
        return;
      }
      const err = op?.error;
      refused.push({
        pos,
        status,
        reason: `${status} ${String(err?.type ?? 'error')}: ${String(err?.reason ?? '')}`.slice(
          0,
          1000,
        ),
      });
    });
    return { kind: 'partial', retry, refused, retryCode: 'GUARD_ES_ITEMS_REJECTED' };
  }
}

function today(): string {
  return new Date().toISOString().slice(0, 10);
}

function badAnswer(endpoint: string, why: string): Verdict {
  return {
    kind: 'retry',
    code: 'GUARD_ES_BAD_ANSWER',
    message: `the bulk answer from ${endpoint} was ${why}`,
    retryAfterMs: null,
  };
}

export class ElasticsearchSink extends HttpCoreSink {
  constructor(cfg: ElasticsearchSinkConfig, opts: HttpSinkOptions) {
    super(cfg, new ElasticsearchFormat(cfg, opts.hostname ?? osHostname()), opts);
  }
}
