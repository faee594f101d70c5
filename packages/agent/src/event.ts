// The data that flows through the agent: sources → parsers → transforms → sinks, and the
// acknowledgements that flow back to the checkpoints.

/** One input line (or one audit event), as shipped. Serialised once, as one NDJSON line. */
export interface LogEvent {
  /** Stable across restarts and re-reads: `${fileKey}:${offset}`; a backend may drop duplicates by it. */
  id: string;
  /** When it happened: from the line when the parser found a timestamp, else when it was read (ISO 8601). */
  time: string;
  /** Name of the `[source.NAME]` section. */
  source: string;
  /** The file it was read from. */
  path: string;
  /** Byte offset of the line's first byte in that file. */
  offset: number;
  /** The host it was read on (config `[agent] hostname`, default os.hostname()). */
  host: string;
  /** The line's text: valid UTF-8, control characters and invalid bytes escaped (see parsers/escape.ts). */
  message: string;
  /** Which parser produced `fields`: 'syslog' | 'json' | 'plain' | 'audit'. */
  parser: string;
  /** What the parser extracted (syslog: program, pid, hostname, …; json: the object). */
  fields?: Record<string, unknown>;
  /** Anything unusual: 'unparsed' (shipped as plain text), 'truncated' (over max_line_bytes), 'escaped',
   *  'partial' (flushed without a newline after a timeout), 'continuation' (the rest of a partial
   *  line), 'redacted', 'malformed_sd' (RFC 5424), 'bidi' and 'invisible' (hostile characters). */
  flags?: string[];
  /** Tags from config ([agent] tags and [source.NAME] tags). */
  tags?: string[];
}

/** What a parser returns for one line; the pipeline fills in the rest of the LogEvent. */
export interface Parsed {
  time?: string;
  fields?: Record<string, unknown>;
  flags?: string[];
}

/** A parser: pure, synchronous, never throws — a line it does not understand is flagged 'unparsed'. */
export type Parser = (message: string, now: Date) => Parsed;

/** A batch handed to a sink: the NDJSON encoding of its events, each line ending in '\n'. */
export interface Batch {
  /** Monotonic per sink, for logs and status. */
  readonly seq: number;
  readonly events: number;
  readonly bytes: number;
  /** The events' NDJSON lines, concatenated once by the pipeline (not per sink, not per event). */
  readonly body: Buffer;
}

export type SendOutcome = 'delivered' | 'dead_lettered';

export interface SinkStatus {
  name: string;
  type: string;
  /** URL (without credentials) or file path. */
  endpoint: string;
  lastSuccess: string | null;
  /** Retries since start. */
  retries: number;
  deliveredEvents: number;
  deliveredBatches: number;
  deadLetteredBatches: number;
  /** Events written to the dead-letter directory (sinks that refuse per event count them here). */
  deadLetteredEvents?: number;
  lastError: string | null;
  /** Set while the sink is retrying a batch: when the next attempt is due. */
  retryingUntil: string | null;
  /** Kafka sinks: brokers that answered a request in the last minute (host:port). */
  brokersConnected?: string[];
  /** Kafka sinks: per "topic/partition", the offset of the last message the cluster acknowledged. */
  lastAckedOffsets?: Record<string, string>;
}

/**
 * A destination. The pipeline batches and calls send() with at most one batch in flight per sink,
 * so batches are delivered in order. send() resolves only when the batch is durably handled:
 * acknowledged by the backend ('delivered') or written to the dead-letter file ('dead_lettered');
 * it retries by itself until then and rejects only when `signal` aborts (shutdown). Only then does
 * the pipeline move the checkpoints past the batch's bytes.
 */
export interface Sink {
  readonly name: string;
  /** True when prepare() does work worth overlapping with the batch in flight (compression). */
  readonly preparesAhead?: boolean;
  /** Gets the next batch ready while the one before it is in flight; send() then uses that work. */
  prepare?(batch: Batch): void;
  send(batch: Batch, signal: AbortSignal): Promise<SendOutcome>;
  status(): SinkStatus;
  close(): Promise<void>;
}
