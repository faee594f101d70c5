// The generic HTTP(S) sink: guard's own NDJSON, POSTed as the pipeline cut it (gzip by default),
// on the HTTP sink core (../core/http-core.ts). What an answer means here:
//
//   2xx                      → delivered (the receiver has no way to say more)
//   408, 429, 5xx, network,  → retry the same body: exponential backoff with full jitter;
//   TLS, timeout, 1xx/3xx      Retry-After honoured (≤ 10 min)
//   413                      → the batch in two halves, each sent on its own
//   401/403                  → re-read token_file once: retry if the token changed, else as below
//   any other 4xx            → the batch to the dead-letter directory, 'dead_lettered'

import type { HttpSinkConfig } from '../../config/types';
import type { Batch } from '../../event';
import { HttpCoreSink, statusVerdict, type HttpSinkOptions } from '../core/http-core';
import type { BatchLines } from '../core/lines';
import type { Answer, Verdict, WireFormat } from '../core/wire-format';

export { Pool, poolRequest, parseRetryAfter, RETRY_AFTER_CAP_MS } from '../core/http-core';
export type { HttpSinkOptions } from '../core/http-core';

/** 408, 429 and every 5xx are worth another try; other 4xx are the request's fault. */
export const retryableStatus = (s: number): boolean => s === 408 || s === 429 || s >= 500;

class NdjsonFormat implements WireFormat {
  readonly type = 'http';
  readonly contentType = 'application/x-ndjson';
  readonly readsAnswer = 0;
  readonly readsLines = false;
  private endpoint = '';

  path(url: URL): string {
    this.endpoint = `${url.origin}${url.pathname}`;
    return `${url.pathname}${url.search}`;
  }

  encode(batch: Batch, lines: () => BatchLines, items: readonly number[] | null): Buffer {
    // guard's NDJSON is the batch as the pipeline cut it: nothing to write.
    return items === null ? batch.body : lines().ndjson(items);
  }

  classify(a: Answer): Verdict {
    return statusVerdict(a, this.endpoint, retryableStatus);
  }
}

export class HttpSink extends HttpCoreSink {
  constructor(cfg: HttpSinkConfig, opts: HttpSinkOptions) {
    super(cfg, new NdjsonFormat(), opts);
  }
}
