// The dead-letter directory: events a backend refused for good are kept here instead of being
// retried forever or dropped. `<stateDir>/dead-letter/` holds, per batch, `<sink>-<time>-<seq>.ndjson`
// (the refused events' NDJSON lines, uncompressed: the whole batch when the receiver refused the
// request, only the refused events when it said which) and `<same>.json` (why, per event when the
// receiver said so). An operator can inspect and replay them.

import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type pino from 'pino';
import type { Batch, SinkStatus } from '../event';
import { fsyncDirectory, writeFileAtomic } from './durable-write';
import { backoffDelay, waitToRetry, type RetryPolicy } from './retry';
import { describeError, errorCode } from './sink-error';

/** One refused event and the receiver's reason for it. */
export interface DeadLetterItem {
  id: string;
  status: number | null;
  reason: string;
}

export interface DeadLetterMeta {
  sink: string;
  type: string;
  /** URL without credentials or query, or a file path. */
  endpoint: string;
  /** HTTP status, when the refusal was an HTTP answer. */
  status: number | null;
  /** Stable code, e.g. GUARD_HTTP_STATUS_400. */
  code: string;
  /** The first KiB of the response body (UTF-8, lossy). */
  responseBody: string;
  responseBodyTruncated: boolean;
  /** Per event, when the receiver said which events it refused (the .ndjson holds them in this order). */
  items?: DeadLetterItem[];
  seq: number;
  events: number;
  bytes: number;
  time: string;
}

/** File-name-safe sink name: config names are operator input. */
function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_') || 'sink';
}

/** ISO 8601 basic format (20250102T030405.678Z): no ':' in file names. */
function basicIsoTime(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '');
}

/** Writes both files atomically and durably; returns the path of the .ndjson file. */
export async function writeDeadLetter(
  stateDir: string,
  batch: Batch,
  meta: Omit<DeadLetterMeta, 'seq' | 'events' | 'bytes' | 'time'>,
  now: Date = new Date(),
): Promise<string> {
  const dir = join(stateDir, 'dead-letter');
  await fs.mkdir(dir, { recursive: true, mode: 0o750 });
  const stem = join(dir, `${safeName(meta.sink)}-${basicIsoTime(now)}-${batch.seq}`);
  const full: DeadLetterMeta = {
    ...meta,
    seq: batch.seq,
    events: batch.events,
    bytes: batch.bytes,
    time: now.toISOString(),
  };
  // Lines first: a .json beside it promises the .ndjson is complete.
  await writeFileAtomic(`${stem}.ndjson`, batch.body, 0o640);
  await writeFileAtomic(`${stem}.json`, `${JSON.stringify(full, null, 2)}\n`, 0o640);
  await fsyncDirectory(dir);
  return `${stem}.ndjson`;
}

/** A dead-letter file that could not be written (`failures` times in a row): logged, then waits out
 *  the backoff before the caller tries again — refused events are never dropped for want of disk. */
export async function waitToRetryDeadLetter(
  log: pino.Logger,
  state: SinkStatus,
  policy: RetryPolicy,
  failures: number,
  seq: number,
  err: unknown,
  signal: AbortSignal,
): Promise<void> {
  const delay = backoffDelay(failures, policy);
  log.error(
    { seq, code: 'GUARD_DEAD_LETTER_WRITE_FAILED', cause: errorCode(err), delayMs: delay },
    `cannot write the dead-letter file for refused events; retrying in ${delay} ms`,
  );
  await waitToRetry(state, `GUARD_DEAD_LETTER_WRITE_FAILED: ${describeError(err)}`, delay, signal);
}
