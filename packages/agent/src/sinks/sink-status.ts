import type { SinkStatus } from '../event';

/** A sink's status before its first batch. */
export function newSinkStatus(name: string, type: string, endpoint: string): SinkStatus {
  return {
    name, type, endpoint, lastSuccess: null, retries: 0, deliveredEvents: 0, deliveredBatches: 0,
    deadLetteredBatches: 0, lastError: null, retryingUntil: null,
  };
}
