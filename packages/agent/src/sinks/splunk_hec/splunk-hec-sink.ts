// Splunk HTTP Event Collector: POST <url>/services/collector/event, one JSON envelope a line
// `{"time","host","source","sourcetype","index","event","fields"}` with guard's event as `event`
// and its id as the indexed field `guard_id` (HEC has no idempotency key: a resend duplicates,
// and `guard_id` is what a search deduplicates by).
//
// With acknowledgements (the default; Splunk Enterprise, the token must have indexer
// acknowledgement on) a 200 only starts the wait: it carries an ackId, which guard polls at
// /services/collector/ack on its channel (X-Splunk-Request-Channel, a UUID per agent start) until
// Splunk says it is indexed. Only then is the batch delivered. Splunk keeps acks in memory: after
// its restart an ack never turns true, and after ack_timeout_ms the request is sent again.
// Without acknowledgements (Splunk Cloud) HEC's 200 means only "the data looked valid".
//
//   200 {"code":0[,"ackId":N]}     → delivered (acks: once /ack says true)
//   400 code 6 invalid-event-number→ that event dead-lettered, the others sent again at once
//   400 code 10, 11, 14 (channel,  → retried: a configuration mismatch between guard and the token,
//       acks disabled)               shown in status; nothing is dead-lettered for it
//   413                            → split in halves
//   503 (9: busy, 18, 19 …), 5xx,  → the request again (Retry-After honoured)
//   429, 408, network
//   other 4xx                      → the request's events dead-lettered

import { randomUUID } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import type { SplunkHecSinkConfig } from '../../config/types';
import type { Batch } from '../../event';
import type { ByteWriter } from '../core/byte-writer';
import { HttpCoreSink, statusVerdict, type HttpSinkOptions } from '../core/http-core';
import { eventHead, stringEnd, type BatchLines } from '../core/lines';
import { sleep } from '../retry';
import type { Answer, RequestContext, Verdict, WireFormat } from '../core/wire-format';
import type pino from 'pino';

const ascii = (s: string): Buffer => Buffer.from(s, 'utf8');
const TIME_KEY = ascii('{"time":');
const SOURCE_KEY = ascii(',"source":"');
const EVENT_KEY = ascii(',"event":');
const FIELDS_KEY = ascii(',"fields":{"guard_id":"');
const TAIL = ascii('"}}\n');
const PATH_KEY = ascii(',"path":"');
const QUOTE = 0x22;

const retryable = (s: number): boolean => s === 408 || s === 429 || s >= 500;
/** HEC codes that say guard and the token disagree about channels or acks: nothing an event did. */
const CONFIG_CODES = new Set([10, 11, 14]);
/** Longest pause between two /ack polls of one request. */
const ACK_POLL_MAX_MS = 1000;
/** Longest wait before a request's first /ack poll. */
const ACK_FIRST_POLL_MAX_MS = 20;

/** Epoch seconds (with milliseconds) of an ISO 8601 UTC time `YYYY-MM-DDTHH:MM:SS[.mmm]Z`. */
function epochText(iso: string): string | null {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return null;
  return (ms / 1000).toFixed(3);
}

export class SplunkHecFormat implements WireFormat {
  readonly type = 'splunk_hec';
  readonly contentType = 'application/json';
  readonly readsAnswer = 64 * 1024;
  readonly readsLines = true;
  readonly overlaps = true;
  readonly channel = randomUUID();
  /** `,"host":…,"sourcetype":…[,"index":…]` — the same for every event of this agent. */
  private readonly constant: Buffer;
  private lastSecond = Buffer.alloc(19);
  private lastEpoch: Buffer = Buffer.alloc(0);
  private endpoint = '';
  private ackPath = '';
  private warnedNoAck = false;
  /**
   * How long a request waits for its first /ack poll, learned (awaitAck): halved while first polls
   * find their ack, down to none; doubled while they come too early, up to 20 ms (the fixed wait
   * of the first version). At most three batches are in flight
   * (http-core.ts), so this wait bounds the sink's throughput: a fixed 20 ms held it under 50
   * batches a second with one in flight against an indexer that acks at once; a slow indexer is
   * polled as before (20 ms, then doubling), never later.
   */
  private firstPollMs = ACK_FIRST_POLL_MAX_MS;

  constructor(
    private readonly cfg: SplunkHecSinkConfig,
    hostname: string,
    private readonly log: pino.Logger,
  ) {
    this.constant = ascii(
      `,"host":${JSON.stringify(hostname)},"sourcetype":${JSON.stringify(cfg.sourcetype)}` +
        (cfg.index !== null ? `,"index":${JSON.stringify(cfg.index)}` : ''),
    );
  }

  path(url: URL): string {
    const base = url.pathname.replace(/\/+$/, '').replace(/\/services\/collector(\/event)?$/, '');
    this.endpoint = `${url.origin}${base}/services/collector/event`;
    this.ackPath = `${base}/services/collector/ack?channel=${this.channel}`;
    return `${base}/services/collector/event${url.search}`;
  }

  headers(): Record<string, string> {
    return { 'x-splunk-request-channel': this.channel };
  }

  encode(
    _batch: Batch,
    lines: () => BatchLines,
    items: readonly number[] | null,
    w: ByteWriter,
  ): Buffer {
    const l = lines();
    const { body, starts, ends } = l;
    const n = items === null ? l.count : items.length;
    for (let k = 0; k < n; k++) {
      const i = items === null ? k : items[k]!;
      const s = starts[i]!;
      const e = ends[i]!;
      const h = eventHead(body, s, e);
      w.bytes(TIME_KEY);
      this.epoch(w, body, h.timeStart, h.timeEnd, h.parsed?.time);
      w.bytes(this.constant);
      // source: the file the event was read from (its "path", already JSON string contents).
      const p = lastIndexOf(body, PATH_KEY, s, e);
      if (p > s) {
        const vs = p + PATH_KEY.length;
        const ve = stringEnd(body, vs, e);
        if (ve > vs) {
          w.bytes(SOURCE_KEY);
          w.bytes(body, vs, ve);
          w.byte(QUOTE);
        }
      }
      w.bytes(EVENT_KEY);
      w.bytes(body, s, e);
      w.bytes(FIELDS_KEY);
      if (h.parsed) w.text(JSON.stringify(h.parsed.id).slice(1, -1));
      else w.bytes(body, h.idStart, h.idEnd);
      w.bytes(TAIL);
    }
    return w.written();
  }

  /** HEC's time: epoch seconds with milliseconds, written to `w`; the seconds cached per second of
   *  the ISO time (`YYYY-MM-DDTHH:MM:SS.mmmZ` as guard writes it; anything else through Date.parse). */
  private epoch(
    w: ByteWriter,
    body: Buffer,
    ts: number,
    te: number,
    parsed: string | undefined,
  ): void {
    if (parsed !== undefined || te - ts !== 24 || body[ts + 19] !== 0x2e || body[te - 1] !== 0x5a) {
      w.text(
        epochText(parsed ?? body.toString('latin1', ts, te)) ?? (Date.now() / 1000).toFixed(3),
      );
      return;
    }
    const last = this.lastSecond;
    let same = true;
    for (let k = 0; k < 19; k++)
      if (body[ts + k] !== last[k]) {
        same = false;
        break;
      }
    if (!same) {
      body.copy(last, 0, ts, ts + 19);
      const whole = Date.parse(`${last.toString('latin1')}Z`);
      this.lastEpoch = Buffer.from(Number.isNaN(whole) ? '' : String(whole / 1000), 'latin1');
    }
    if (this.lastEpoch.length === 0) {
      w.text((Date.now() / 1000).toFixed(3));
      return;
    }
    w.bytes(this.lastEpoch);
    w.bytes(body, ts + 19, ts + 23); // ".mmm"
  }

  async classify(a: Answer, ctx: RequestContext): Promise<Verdict> {
    const reply = hecReply(a.body);
    if (a.status === 200) {
      if (!this.cfg.acknowledgements) return { kind: 'delivered' };
      if (typeof reply?.ackId !== 'number') {
        if (!this.warnedNoAck) {
          this.warnedNoAck = true;
          this.log.warn(
            { code: 'GUARD_HEC_NO_ACK' },
            'HEC answered without an ackId: indexer acknowledgement is off for this token, so a 200 only means the data looked valid; enable it on the token, or set acknowledgements = false to say so',
          );
        }
        return { kind: 'delivered' };
      }
      return this.awaitAck(reply.ackId, ctx);
    }
    const code = typeof reply?.code === 'number' ? reply.code : null;
    if (a.status === 400 && code !== null && CONFIG_CODES.has(code))
      return {
        kind: 'retry',
        code: `GUARD_HEC_CODE_${code}`,
        message: `HEC refused the request: ${String(reply?.text)} (code ${code}); check acknowledgements against the token's indexer acknowledgement setting`,
        retryAfterMs: null,
      };
    const bad = reply?.['invalid-event-number'];
    if (a.status === 400 && typeof bad === 'number' && bad >= 0 && bad < ctx.count) {
      // HEC stops at the first invalid event; whether it kept those before it is not said, so all
      // but the invalid one go again (a duplicate rather than a loss).
      const retry: number[] = [];
      for (let p = 0; p < ctx.count; p++) if (p !== bad) retry.push(p);
      return {
        kind: 'partial',
        retry,
        refused: [{ pos: bad, status: 400, reason: `HEC code ${code}: ${String(reply?.text)}` }],
        retryCode: null,
        immediate: true,
      };
    }
    return statusVerdict(a, this.endpoint, retryable);
  }

  /** Polls /ack for one ackId until it is true (delivered) or ack_timeout_ms passes (send again). */
  private async awaitAck(ackId: number, ctx: RequestContext): Promise<Verdict> {
    const started = performance.now();
    const deadline = started + this.cfg.ackTimeoutMs;
    const query = Buffer.from(JSON.stringify({ acks: [ackId] }));
    let delay = this.firstPollMs;
    let polls = 0;
    let last = 'not yet indexed';
    while (performance.now() < deadline) {
      if (delay > 0)
        await sleep(Math.min(delay, Math.max(0, deadline - performance.now())), ctx.signal);
      delay = Math.min(Math.max(delay * 2, 1), ACK_POLL_MAX_MS);
      polls++;
      let a: Answer;
      try {
        a = await ctx.post(this.ackPath, query, this.headers());
      } catch (err) {
        last = `ack poll failed: ${(err as Error).message}`;
        continue;
      }
      const reply = hecReply(a.body);
      if (a.status === 200) {
        const acks = reply?.acks as Record<string, unknown> | undefined;
        if (acks?.[String(ackId)] === true) {
          // The first poll found it: the next request's may go sooner (down to at once, as soon as
          // the 200 came); it came too early: later (up to ACK_FIRST_POLL_MAX_MS). The wait
          // settles where the first poll just finds the ack (an indexer that acks at once is
          // polled at once; one that takes a second, after 20 ms, then doubling).
          if (polls > 1)
            this.firstPollMs = Math.min(ACK_FIRST_POLL_MAX_MS, Math.max(1, this.firstPollMs * 2));
          else this.firstPollMs = this.firstPollMs < 1 ? 0 : this.firstPollMs / 2;
          return { kind: 'delivered' };
        }
        continue;
      }
      last = `ack poll answered HTTP ${a.status}: ${a.body.toString('utf8').slice(0, 200)}`;
      // An unknown channel (Splunk restarted and forgot it): the ack will never come.
      if (a.status === 400 && reply?.code === 11) break;
    }
    return {
      kind: 'retry',
      code: 'GUARD_HEC_ACK_TIMEOUT',
      message: `ackId ${ackId} not acknowledged within ack_timeout_ms (${this.cfg.ackTimeoutMs} ms; ${last}); sending the request again`,
      retryAfterMs: 1,
    };
  }
}

function hecReply(body: Buffer): Record<string, unknown> | null {
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The last `needle` in body[from, to), or -1: a backward scan (the path is near the line's end). */
function lastIndexOf(body: Buffer, needle: Buffer, from: number, to: number): number {
  const n = needle.length;
  const first = needle[0]!;
  for (let p = to - n; p >= from; p--) {
    if (body[p] !== first) continue;
    let k = 1;
    while (k < n && body[p + k] === needle[k]) k++;
    if (k === n) return p;
  }
  return -1;
}

export class SplunkHecSink extends HttpCoreSink {
  constructor(cfg: SplunkHecSinkConfig, opts: HttpSinkOptions) {
    const log = opts.logger.child({ sink: cfg.name, sinkType: 'splunk_hec' });
    super(cfg, new SplunkHecFormat(cfg, opts.hostname ?? osHostname(), log), opts);
  }
}
