// What one sink type contributes to the HTTP sink core (http-core.ts): Vector's encoder +
// request builder + RetryLogic, as one object per destination. The core does the rest once:
// connections, TLS, auth, compression, backoff, Retry-After, 413 splitting, dead-lettering.

import type { IncomingHttpHeaders } from 'node:http';
import type { Batch } from '../../event';
import type { ByteWriter } from './byte-writer';
import type { BatchLines } from './lines';

/** The receiver's answer to one request. */
export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body, as much as the format asked for (readsAnswer), else the first KiB. */
  body: Buffer;
  truncated: boolean;
}

/** One item of a request the receiver refused for good: `pos` is its place in the request. */
export interface ItemRefusal {
  pos: number;
  status: number | null;
  reason: string;
}

/** What an answer means for the events of the request it answers. */
export type Verdict =
  | { kind: 'delivered' }
  /** Send the same request again after a backoff (or exactly retryAfterMs). */
  | { kind: 'retry'; code: string; message: string; retryAfterMs: number | null }
  /** Every item refused for good: dead-letter them with this reason. */
  | { kind: 'refused'; code: string; reason: string }
  /** 413: send the items in two halves (one item alone that is too large is refused). */
  | { kind: 'too_large' }
  /** Some items delivered, some to send again (positions in the request), some refused. */
  | {
      kind: 'partial';
      retry: number[];
      refused: ItemRefusal[];
      /** Why the others are retried (for status and logs); null when nothing is retried. */
      retryCode: string | null;
      /** When the retried ones may go again right away (nothing failed: e.g. HEC skipped them). */
      immediate?: boolean;
    };

/** What a classifier may do beyond reading the answer (Splunk HEC polls /ack on the same pool). */
export interface RequestContext {
  /** Items in the request. */
  readonly count: number;
  /** The request's items (indexes of the batch's lines; null: every event of the batch). */
  readonly items: readonly number[] | null;
  lines(): BatchLines;
  readonly signal: AbortSignal;
  post(path: string, body: Buffer, headers: Record<string, string>): Promise<Answer>;
}

export interface WireFormat {
  /** The sink type, as in config (`type = …`). */
  readonly type: string;
  readonly contentType: string;
  /** True when encoding a batch means going through its events (worth doing ahead, off the path
   *  from one answer to the next request); false for NDJSON sent as the pipeline cut it. */
  readonly readsLines: boolean;
  /**
   * True when batches may be in flight together (the receiver does not care in which order they
   * arrive): prepare() then sends a batch while the ones before it are answered. Checkpoints still
   * move in order; a kill re-sends up to three batches instead of one.
   */
  readonly overlaps?: boolean;
  /** Bytes of an answer's body the classifier needs (0: a 2xx body is not read). */
  readonly readsAnswer: number;
  /** The request's path and query, relative to the url's origin. */
  path(url: URL): string;
  /** Extra headers every request carries. */
  headers?(): Record<string, string>;
  /**
   * The body for `items` (indexes of the batch's lines), or for every event of the batch when
   * `items` is null — a format that sends NDJSON returns batch.body itself then, and never asks
   * for `lines()`. Written into `out` (reset, and the core's until the request is answered).
   */
  encode(
    batch: Batch,
    lines: () => BatchLines,
    items: readonly number[] | null,
    out: ByteWriter,
  ): Buffer;
  /**
   * When a batch must go as several requests (Loki: one stream a request, so that an answer
   * naming refused entries is about that request alone): the items of each, in order. null or
   * absent: one request of every event.
   */
  group?(batch: Batch, lines: () => BatchLines): number[][] | null;
  classify(answer: Answer, ctx: RequestContext): Verdict | Promise<Verdict>;
}
