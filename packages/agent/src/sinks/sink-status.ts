import type { SinkStatus } from '../event';

/** A sink's status before its first batch. */
export function newSinkStatus(name: string, type: string, endpoint: string): SinkStatus {
  return {
    name,
    type,
    endpoint,
    lastSuccess: null,
    retries: 0,
    deliveredEvents: 0,
    deliveredBatches: 0,
    deadLetteredBatches: 0,
    deadLetteredEvents: 0,
    lastError: null,
    retryingUntil: null,
  };
}

/** A batch delivered: counted, and the time of the last success. */
export function markDelivered(state: SinkStatus, events: number): void {
  state.lastSuccess = new Date().toISOString();
  state.deliveredBatches += 1;
  state.deliveredEvents += events;
}
