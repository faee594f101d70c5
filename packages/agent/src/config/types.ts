// The agent's configuration after parsing and validation: every default filled in, every list a
// list, every regex compiled. Built once at the edge (config/load.ts) from /etc/guard/guard.conf.

export interface AgentSection {
  /** The agent's user; the helper serves only this uid. */
  user: string;
  helperSocket: string; // helper_socket, default /run/guard/helper.sock
  statusSocket: string; // status_socket, default /run/guard/agent/agent.sock
  stateDir: string; // state_dir, default /var/lib/guard
  hostname: string; // hostname, default os.hostname()
  tags: string[]; // tags, comma-separated, default none
  maxLineBytes: number; // max_line_bytes, default 65536: longer lines are cut and flagged 'truncated'
  partialLineTimeoutMs: number; // partial_line_timeout_ms, default 5000
  pollIntervalMs: number; // poll_interval_ms, default 250: growth check by fstat
  rotateCheckIntervalMs: number; // rotate_check_interval_ms, default 1000: helper stat of each path
  rescanIntervalMs: number; // rescan_interval_ms, default 10000: helper list for new files
  maxBufferBytes: number; // max_buffer_bytes, default 4 MiB: encoded events held before reading pauses
  logLevel: 'debug' | 'info' | 'warn' | 'error'; // log_level, default info
  // Many files (docs/operations.md, "Many files"):
  watch: 'auto' | 'off'; // watch, default auto: the helper's directory watch (inotify), else polling
  watchRescanIntervalMs: number; // watch_rescan_interval_ms, default 300000: the safety net on events
  closeIdleAfterMs: number; // close_idle_after_ms, default 300000: an idle file's descriptor is closed
  maxOpenFiles: number; // max_open_files, default 0 = RLIMIT_NOFILE - 128: files open at once
}

export interface SourceConfig {
  name: string;
  type: 'file' | 'audit' | 'journal';
  paths: string[]; // paths, comma-separated absolute paths or globs (audit: default auditd's log)
  parser: 'syslog' | 'json' | 'plain' | 'audit' | 'journal'; // parser, default syslog (file) / audit (audit) / journal (journal, the only one)
  auditRecords?: 'parsed' | 'text'; // audit_records (audit parser only), default parsed: every record's own fields in fields.records; text: the records only in message, fields the summary
  startAt: 'beginning' | 'end'; // start_at, default end: where to start files found at the very first start
  include: RegExp[]; // include[] = regex (repeatable): keep only lines matching one of them
  exclude: RegExp[]; // exclude[] = regex (repeatable): drop lines matching any of them
  tags: string[]; // tags, comma-separated
  sinks: string[] | null; // sinks, comma-separated sink names; null = every sink
  journal?: JournalSourceConfig; // type = journal only
}

/** The keys only a `type = journal` source has. Unit names without a '.' get '.service'. */
export interface JournalSourceConfig {
  units: string[]; // units, comma-separated: keep only entries of these units (or identifiers)
  excludeUnits: string[]; // exclude_units, comma-separated
  identifiers: string[]; // identifiers, comma-separated SYSLOG_IDENTIFIERs to keep (or units)
  excludeIdentifiers: string[]; // exclude_identifiers, comma-separated
  userJournals: boolean; // user_journals, default false: user-UID.journal files (users' sessions) left out
}

export interface BatchConfig {
  maxEvents: number; // batch_max_events, default 1000
  maxBytes: number; // batch_max_bytes, default 1 MiB
  maxWaitMs: number; // batch_max_wait_ms, default 5: with no batch in flight (#20)
}

/** How an HTTP-family sink authenticates: the secret is always read from token_file. */
export type AuthScheme = 'none' | 'bearer' | 'splunk' | 'apikey' | 'basic' | 'header';

/** The keys every HTTP-family sink has (sinks/core/http-core.ts). */
export interface HttpCommonConfig {
  name: string;
  url: string; // url, http:// or https://
  tokenFile: string | null; // token_file: the secret, read at start and on reload (never inline)
  auth: AuthScheme; // auth, default per type (http, otlp, elasticsearch: bearer; splunk_hec: splunk)
  authHeader: string | null; // auth_header: the header's name with auth = header
  caFile: string | null; // ca_file: trust this CA instead of the system's
  clientCertFile: string | null; // client_cert_file
  clientKeyFile: string | null; // client_key_file
  compression: 'gzip' | 'none'; // compression, default gzip
  timeoutMs: number; // timeout_ms, default 30000
  retryInitialMs: number; // retry_initial_ms, default 500
  retryMaxMs: number; // retry_max_ms, default 60000
  batch: BatchConfig;
  /** max_in_flight (elasticsearch, splunk_hec, otlp, loki), 1–3, default 3: batches sent before
   *  the first of them is answered; http: always 1 (not a key). */
  maxInFlight?: number;
}

export interface HttpSinkConfig extends HttpCommonConfig {
  type: 'http';
}

export interface ElasticsearchSinkConfig extends HttpCommonConfig {
  type: 'elasticsearch';
  index: string; // index, default guard-%Y.%m.%d (%Y %m %d from the event's time, UTC)
  pipeline: string | null; // pipeline: ingest pipeline, default none
}

export interface SplunkHecSinkConfig extends HttpCommonConfig {
  type: 'splunk_hec';
  acknowledgements: boolean; // acknowledgements, default true: indexer acknowledgement
  ackTimeoutMs: number; // ack_timeout_ms, default 60000: unacknowledged this long → sent again
  sourcetype: string; // sourcetype, default guard
  index: string | null; // index, default the token's
}

export interface OtlpSinkConfig extends HttpCommonConfig {
  type: 'otlp';
  encoding: 'protobuf' | 'json'; // encoding, default protobuf
  serviceName: string; // service_name, default guard
}

export interface FileSinkConfig {
  name: string;
  type: 'file';
  path: string; // path, default <state_dir>/out/events.ndjson
  maxBytes: number; // max_bytes, default 100 MiB: rotate to path.1 … beyond
  maxFiles: number; // max_files, default 5
  batch: BatchConfig;
}

export interface LokiSinkConfig extends HttpCommonConfig {
  type: 'loki';
  labels: ('host' | 'source' | 'parser' | 'program' | 'unit')[]; // labels, default host, source
  tenant: string | null; // tenant: X-Scope-OrgID, default none
}

export interface KafkaSinkConfig {
  name: string;
  type: 'kafka';
  brokers: string[]; // brokers, comma-separated host:port (required)
  topic: string; // topic, default guard; ${host} ${source} from the event
  key: string; // key, default ${host}/${source}: one file's events in one partition, in order
  compression: 'gzip' | 'none'; // compression, default gzip
  tls: boolean; // tls, default false (true when ca_file or client_cert_file is set)
  caFile: string | null; // ca_file: trust this CA instead of the system's
  clientCertFile: string | null; // client_cert_file
  clientKeyFile: string | null; // client_key_file
  sasl: 'none' | 'plain' | 'scram-sha-256' | 'scram-sha-512'; // sasl, default none
  saslUsername: string | null; // sasl_username
  saslPasswordFile: string | null; // sasl_password_file: the password, read at start and at each new connection
  idempotence: boolean; // idempotence, default true: producer id + sequence numbers, resends not duplicated
  maxMessageBytes: number; // max_message_bytes, default 1000000 (the broker's message.max.bytes)
  timeoutMs: number; // timeout_ms, default 30000
  retryInitialMs: number; // retry_initial_ms, default 500
  retryMaxMs: number; // retry_max_ms, default 60000
  batch: BatchConfig;
}

export interface SyslogSinkConfig {
  name: string;
  type: 'syslog';
  address: string; // address, host:port (required)
  host: string; // from address
  port: number; // from address
  protocol: 'relp' | 'tcp'; // protocol (required): relp (acknowledged, recommended) or tcp (a plain syslog stream)
  tls: boolean; // tls, default true (RFC 5425 for tcp)
  caFile: string | null; // ca_file: trust this CA instead of the system's
  clientCertFile: string | null; // client_cert_file (mutual TLS, with client_key_file)
  clientKeyFile: string | null; // client_key_file
  serverName: string | null; // server_name: the name the receiver's certificate must carry, default the host
  format: 'rfc5424' | 'rfc3164'; // format, default rfc5424
  framing: 'octet_counting' | 'lf'; // framing, default octet_counting (protocol = tcp only)
  facility: string; // facility, default user: for events without a priority of their own
  severity: string; // severity, default notice
  sdId: string; // sd_id, default guard@32473: the SD-ID guard's fields go under
  timeoutMs: number; // timeout_ms, default 30000
  retryInitialMs: number; // retry_initial_ms, default 500
  retryMaxMs: number; // retry_max_ms, default 60000
  batch: BatchConfig;
}

export type SinkConfig =
  | KafkaSinkConfig
  | HttpSinkConfig
  | ElasticsearchSinkConfig
  | SplunkHecSinkConfig
  | OtlpSinkConfig
  | LokiSinkConfig
  | FileSinkConfig
  | SyslogSinkConfig;

export interface RedactConfig {
  builtin: boolean; // builtin, default true: passwords in URLs, bearer tokens, cloud keys, private keys…
  patterns: RegExp[]; // pattern[] = regex (repeatable), custom
  replacement: string; // replacement, default [REDACTED]
}

/** Prometheus metrics (status/metrics.ts): both off by default. */
export interface MetricsConfig {
  textfile: string | null; // textfile: for node_exporter's textfile collector, written every interval_ms
  listen: { host: string; port: number } | null; // listen: PORT (127.0.0.1), HOST:PORT, [IPv6]:PORT
  intervalMs: number; // interval_ms, default 15000
}

export interface AgentConfig {
  file: string; // where it was read from, for messages
  agent: AgentSection;
  sources: SourceConfig[];
  sinks: SinkConfig[];
  redact: RedactConfig;
  metrics: MetricsConfig;
}
