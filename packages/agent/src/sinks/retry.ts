// Waiting between attempts: exponential backoff with full jitter, and a sleep that an abort
// signal ends at once (shutdown must not wait out a ten-minute Retry-After).

import type { SinkStatus } from '../event';
import { SinkAbortError } from './sink-error';

export interface RetryPolicy {
  initialMs: number;
  maxMs: number;
  /** For tests; Math.random by default. */
  random?: () => number;
}

/**
 * Delay before the next attempt after `failures` consecutive failures (1 = the first failure):
 * uniformly random in [0, min(maxMs, initialMs · 2^(failures-1))] ("full jitter"), so that many
 * agents cut off by the same outage do not come back in lockstep.
 */
export function backoffDelay(failures: number, policy: RetryPolicy): number {
  const exponent = Math.min(Math.max(failures - 1, 0), 30);
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** exponent);
  return Math.round((policy.random ?? Math.random)() * ceiling);
}

/**
 * Resolves after at least `ms` milliseconds of monotonic time (re-arming if a timer fires early),
 * rejects with a SinkAbortError as soon as `signal` aborts.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new SinkAbortError(signal.reason));
      return;
    }
    const deadline = performance.now() + ms;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new SinkAbortError(signal.reason));
    };
    const check = (): void => {
      const left = deadline - performance.now();
      if (left <= 0) {
        signal.removeEventListener('abort', onAbort);
        resolve();
      } else {
        timer = setTimeout(check, Math.ceil(left));
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
    check();
  });
}

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new SinkAbortError(signal.reason);
}

/** `p`'s outcome, or a SinkAbortError as soon as `signal` aborts (`p` itself goes on). */
export function untilAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
  throwIfAborted(signal);
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(new SinkAbortError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}

/** Waits `delayMs` before the next attempt, showing it in the sink's status meanwhile: one more
 *  retry, the error that caused it, and until when it waits. */
export async function waitToRetry(
  state: SinkStatus,
  lastError: string,
  delayMs: number,
  signal: AbortSignal,
): Promise<void> {
  state.retries += 1;
  state.lastError = lastError;
  state.retryingUntil = new Date(Date.now() + delayMs).toISOString();
  try {
    await sleep(delayMs, signal);
  } finally {
    state.retryingUntil = null;
  }
}
