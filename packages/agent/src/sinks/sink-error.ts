// Errors a sink reports. Like undici's, each carries a stable `code` that logs, `guardctl status`
// and operators match on; the message is one sentence a person can act on.

export class SinkError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SinkError';
    this.code = code;
  }
}

/** What send() rejects with when its signal aborts (shutdown); the same name and code as Node's own. */
export class SinkAbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(cause: unknown) {
    super('the send was aborted before the batch was handled', { cause });
    this.name = 'AbortError';
  }
}

/** The stable code of anything thrown: ours, undici's (UND_ERR_…), Node's (ECONNREFUSED, ENOSPC, TLS codes). */
export function errorCode(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    // undici wraps a failed connect in a plain error whose cause holds the system error.
    const cause = (err as { cause?: unknown }).cause;
    if (cause !== undefined && cause !== err) {
      const inner = errorCode(cause);
      if (inner !== 'GUARD_UNKNOWN_ERROR') return inner;
    }
  }
  return 'GUARD_UNKNOWN_ERROR';
}

/** `CODE: message`, the form kept in SinkStatus.lastError: the code first so a tool can match on it. */
export function describeError(err: unknown): string {
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return message === '' || message === code ? code : `${code}: ${message}`;
}
