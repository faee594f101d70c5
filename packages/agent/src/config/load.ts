// guard.conf → AgentConfig: parsed once at the edge, every default filled in, every list a list,
// every regex compiled, or a ConfigError listing every problem (not just the first) as
// "<file>: [section] key: what was expected, got what".
import { closeSync, fstatSync, openSync, readFileSync, constants as fsc } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import * as ini from 'ini';
import type {
  AgentConfig,
  AgentSection,
  BatchConfig,
  AuthScheme,
  ElasticsearchSinkConfig,
  FileSinkConfig,
  HttpCommonConfig,
  KafkaSinkConfig,
  LokiSinkConfig,
  OtlpSinkConfig,
  SplunkHecSinkConfig,
  MetricsConfig,
  RedactConfig,
  SyslogSinkConfig,
  SinkConfig,
  JournalSourceConfig,
  SourceConfig,
} from './types';
import {
  asObject,
  expectedPhrase,
  formatProblem,
  inFileOrder,
  keySchema,
  scanLines,
  schemaProblems,
  shown,
  suggest,
  type Problem,
} from './validate';

export class ConfigError extends Error {
  /** One line per problem, each naming the file, the section and the key. */
  readonly problems: string[];
  constructor(
    readonly file: string,
    problems: string[],
  ) {
    super(
      problems.length === 1
        ? problems[0]!
        : `${file}: ${problems.length} problems:\n  ${problems.join('\n  ')}`,
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** The keys of a `type = journal` source (beside paths, start_at, include, exclude, tags, sinks). */
const JOURNAL_KEYS = [
  'units',
  'exclude_units',
  'identifiers',
  'exclude_identifiers',
  'user_journals',
] as const;

/** A journal source's own keys. A unit named without a type ('ssh') means its service. */
function journalKeys(s: SectionReader): JournalSourceConfig {
  const units = (key: string): string[] =>
    (s.list(key) ?? []).map((u) => (u.includes('.') ? u : `${u}.service`));
  return {
    units: units('units'),
    excludeUnits: units('exclude_units'),
    identifiers: s.list('identifiers') ?? [],
    excludeIdentifiers: s.list('exclude_identifiers') ?? [],
    userJournals: s.bool('user_journals', false),
  };
}

/** What a `journal` source reads when it names no paths (same as guard-helper). */
export const JOURNAL_PATHS = ['/var/log/journal/*/*.journal', '/run/log/journal/*/*.journal'];
/** What an `audit` source reads when it names no paths (same as guard-helper). */
export const AUDIT_PATHS = ['/var/log/audit/audit.log', '/var/log/audit/audit.log.[0-9]*'];
export const DEFAULT_SINK_NAME = 'local';

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Reads and validates `file`. Throws ConfigError with every problem found. */
export function loadConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [`${file}: cannot read: ${errorCode(e)}`]);
  }
  return parseConfig(text, file);
}

/** Validates the text of a config as if read from `file` (named in messages; files it names are checked). */
export function parseConfig(text: string, file: string): AgentConfig {
  const raw = ini.parse(text) as Record<string, unknown>;
  const { line, repeated } = scanLines(text);
  const problems: Problem[] = [...repeated, ...schemaProblems(raw)];
  const config = build(raw, problems, file);
  if (problems.length > 0)
    throw new ConfigError(
      file,
      inFileOrder(problems, line).map((p) => formatProblem(file, p)),
    );
  return config;
}

/** Keys whose change a SIGHUP cannot apply: the agent keeps the old value until it restarts. */
export function changesNeedingRestart(running: AgentConfig, next: AgentConfig): string[] {
  const keys: [string, keyof AgentSection][] = [
    ['user', 'user'],
    ['helper_socket', 'helperSocket'],
    ['status_socket', 'statusSocket'],
    ['state_dir', 'stateDir'],
  ];
  return keys
    .filter(([, k]) => running.agent[k] !== next.agent[k])
    .map(([name]) => `[agent] ${name}`);
}

// ---------------------------------------------------------------------------------------------

function errorCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

/** Absolute and normalised, exactly as guard-helper requires (packages/helper/src/policy.ts). */
export function pathSyntaxError(path: string): string | null {
  if (Buffer.byteLength(path) > 4095) return 'path is longer than 4095 bytes';
  if (!path.startsWith('/')) return 'path must be absolute';
  if (/[\x00-\x1f\x7f-\x9f]/.test(path)) return 'path contains a NUL or control character';
  if (path.length > 1 && path.endsWith('/')) return 'path must not end with /';
  if (/\/\/|\/\.\.?(\/|$)/.test(path)) return 'path must be normalised (no //, . or .. components)';
  return null;
}

// The helper's glob semantics (`*`, `?`, `[...]` within one component), to see whether a file sink
// would write into a file a source reads: the agent would then read its own output forever.
function globToRegex(pattern: string): RegExp {
  const body = pattern.replace(/\[!?[^\]/\\]+\]|[.+^${}()|\\[\]]|\*|\?/g, (m) =>
    m === '*'
      ? '[^/]*'
      : m === '?'
        ? '[^/]'
        : m.length > 1
          ? '(?!/)' + m.replace(/^\[[!^]/, '[^')
          : '\\' + m,
  );
  return new RegExp(`^${body}$`);
}

/** Reads one section's keys, skipping those the schema already reported, recording what else is wrong. */
class SectionReader {
  constructor(
    readonly section: string,
    readonly values: Record<string, unknown>,
    private readonly raw: Record<string, unknown>,
    private readonly problems: Problem[],
  ) {}

  problem(key: string, text: string): void {
    this.problems.push({ section: this.section, key, text });
  }

  /** The key's value if it is set and passed the schema. */
  private value(key: string): unknown {
    const v = this.values[key];
    const reported = this.problems.some((p) => p.section === this.section && p.key === key);
    return v === undefined || reported ? undefined : v;
  }

  has(key: string): boolean {
    return this.value(key) !== undefined;
  }

  string(key: string, fallback: string): string {
    const v = this.value(key);
    return typeof v === 'string' ? v : fallback;
  }

  optionalString(key: string): string | null {
    const v = this.value(key);
    return typeof v === 'string' ? v : null;
  }

  oneOf<T extends string>(key: string, fallback: T): T {
    return this.string(key, fallback) as T; // the schema's enum already held it to the union
  }

  number(key: string, fallback: number): number {
    const v = this.value(key);
    return typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : fallback;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.value(key);
    return v === true || v === 'true' ? true : v === false || v === 'false' ? false : fallback;
  }

  /** Comma-separated in one value, or one item per `key[] =` line (then commas are literal, as in the helper). */
  list(key: string): string[] | undefined {
    const v = this.value(key);
    if (v === undefined) return undefined;
    const items = Array.isArray(v) ? v.map((x) => String(x)) : String(v).split(',');
    return items.map((x) => x.trim()).filter((x) => x !== '');
  }

  path(key: string, fallback: string): string;
  path(key: string, fallback: null): string | null;
  path(key: string, fallback: string | null): string | null {
    const v = this.optionalString(key);
    if (v === null) return fallback;
    const why = pathSyntaxError(v);
    if (why !== null)
      this.problem(
        key,
        `expected ${expectedPhrase(keySchema(this.section, key, this.raw))}, got ${shown(v)} (${why})`,
      );
    return v;
  }

  regexes(key: string, flags: string): RegExp[] {
    const v = this.value(key);
    if (v === undefined) return [];
    const out: RegExp[] = [];
    for (const source of Array.isArray(v) ? v.map(String) : [String(v)]) {
      if (source === '') {
        this.problem(key, 'empty regular expression (it would match every line)');
        continue;
      }
      try {
        out.push(new RegExp(source, flags));
      } catch (e) {
        const why = (e as Error).message.replace(
          /^Invalid regular expression: \/.*\/[a-z]*: /s,
          '',
        );
        this.problem(key, `invalid regular expression ${shown(source)}: ${why}`);
      }
    }
    return out;
  }

  /** A secret or key file: absolute, and readable now by whoever checks the config. */
  readableFile(key: string, secret: boolean): string | null {
    const path = this.path(key, null);
    if (path === null || pathSyntaxError(path) !== null) return path;
    let fd: number | undefined;
    try {
      fd = openSync(path, fsc.O_RDONLY | fsc.O_NOCTTY | fsc.O_NONBLOCK);
      const st = fstatSync(fd);
      if (!st.isFile()) this.problem(key, `${path} is not a regular file`);
      else if (secret && (st.mode & 0o004) !== 0) {
        this.problem(
          key,
          `${path} is readable by every user (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}); chmod o-rwx it`,
        );
      } else if (key === 'token_file' && readFileSync(fd, 'utf8').trim() === '')
        this.problem(key, `${path} is empty`);
    } catch (e) {
      this.problem(key, `cannot read ${path}: ${errorCode(e)}`);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    return path;
  }
}

function build(raw: Record<string, unknown>, problems: Problem[], file: string): AgentConfig {
  const reader = (section: string, values: unknown) =>
    new SectionReader(section, asObject(values) ?? {}, raw, problems);

  const a = reader('agent', raw.agent);
  const agent: AgentSection = {
    user: a.string('user', ''),
    helperSocket: a.path('helper_socket', '/run/guard/helper.sock'),
    statusSocket: a.path('status_socket', '/run/guard/agent/agent.sock'),
    stateDir: a.path('state_dir', '/var/lib/guard'),
    hostname: a.string('hostname', osHostname()),
    tags: a.list('tags') ?? [],
    maxLineBytes: a.number('max_line_bytes', 65536),
    partialLineTimeoutMs: a.number('partial_line_timeout_ms', 5000),
    pollIntervalMs: a.number('poll_interval_ms', 250),
    rotateCheckIntervalMs: a.number('rotate_check_interval_ms', 1000),
    rescanIntervalMs: a.number('rescan_interval_ms', 10000),
    maxBufferBytes: a.number('max_buffer_bytes', 4 * 1024 * 1024),
    logLevel: a.oneOf('log_level', 'info'),
    watch: a.oneOf('watch', 'auto'),
    watchRescanIntervalMs: a.number('watch_rescan_interval_ms', 300_000),
    closeIdleAfterMs: a.number('close_idle_after_ms', 300_000),
    maxOpenFiles: a.number('max_open_files', 0),
  };
  if (agent.maxOpenFiles !== 0 && agent.maxOpenFiles < 16)
    a.problem('max_open_files', `must be 0 (automatic) or at least 16, got ${agent.maxOpenFiles}`);
  if (agent.maxBufferBytes < agent.maxLineBytes) {
    a.problem(
      'max_buffer_bytes',
      `must be at least max_line_bytes (${agent.maxLineBytes}), got ${agent.maxBufferBytes}`,
    );
  }

  const sources: SourceConfig[] = [];
  for (const [name, values] of Object.entries(asObject(raw.source) ?? {})) {
    if (!NAME.test(name) || asObject(values) === undefined) continue; // reported by the schema
    const s = reader(`source.${name}`, values);
    const type = s.oneOf<SourceConfig['type']>('type', 'file');
    const given = s.list('paths');
    const defaults = type === 'audit' ? AUDIT_PATHS : type === 'journal' ? JOURNAL_PATHS : null;
    const paths = given ?? (defaults !== null && s.values.paths === undefined ? defaults : []);
    if (s.has('paths') || (defaults !== null && s.values.paths === undefined)) {
      const expected = `expected ${expectedPhrase(keySchema(`source.${name}`, 'paths', raw))}`;
      if (paths.length === 0) s.problem('paths', `${expected}, got ${shown(s.values.paths)}`);
      for (const p of paths) {
        const why = pathSyntaxError(p);
        if (why !== null) s.problem('paths', `${expected}, got ${shown(p)} (${why})`);
      }
    }
    const parser = s.oneOf<SourceConfig['parser']>(
      'parser',
      type === 'audit' ? 'audit' : type === 'journal' ? 'journal' : 'syslog',
    );
    if (type === 'audit' && parser !== 'audit')
      s.problem('parser', `an audit source is read with the audit parser, got ${shown(parser)}`);
    if ((type === 'journal') !== (parser === 'journal'))
      s.problem(
        'parser',
        type === 'journal'
          ? `a journal source's entries are events already (leave parser out), got ${shown(parser)}`
          : `the journal parser is for type = journal sources, got ${shown(parser)}`,
      );
    const auditRecords = s.oneOf<'parsed' | 'text'>('audit_records', 'parsed');
    if (parser !== 'audit' && s.has('audit_records'))
      s.problem('audit_records', 'only a source read with the audit parser has audit_records');
    const journal = type === 'journal' ? journalKeys(s) : undefined;
    if (type !== 'journal')
      for (const key of JOURNAL_KEYS)
        if (s.has(key)) s.problem(key, `only a type = journal source has ${key}`);
    const sinks = s.list('sinks');
    if (sinks !== undefined && sinks.length === 0)
      s.problem(
        'sinks',
        `expected comma-separated sink names, got ${shown(s.values.sinks)} (leave it out for every sink)`,
      );
    sources.push({
      name,
      type,
      paths,
      parser,
      ...(parser === 'audit' ? { auditRecords } : {}),
      startAt: s.oneOf('start_at', 'end'),
      include: s.regexes('include', ''),
      exclude: s.regexes('exclude', ''),
      tags: s.list('tags') ?? [],
      sinks: sinks ?? null,
      ...(journal ? { journal } : {}),
    });
  }

  const sinks: SinkConfig[] = [];
  const rawSinks = Object.entries(asObject(raw.sink) ?? {});
  for (const [name, values] of rawSinks) {
    if (!NAME.test(name) || asObject(values) === undefined) continue;
    const k = reader(`sink.${name}`, values);
    const type = k.values.type;
    if (type === 'http') sinks.push({ ...httpCommon(name, k, 'bearer'), type: 'http' });
    else if (type === 'elasticsearch') sinks.push(elasticsearchSink(name, k));
    else if (type === 'splunk_hec') sinks.push(splunkHecSink(name, k));
    else if (type === 'otlp') sinks.push(otlpSink(name, k));
    else if (type === 'loki') sinks.push(lokiSink(name, k));
    else if (type === 'kafka') sinks.push(kafkaSink(name, k));
    else if (type === 'file') sinks.push(fileSink(name, k, agent.stateDir));
    else if (type === 'syslog') sinks.push(syslogSink(name, k));
  }
  if (rawSinks.length === 0)
    sinks.push(
      fileSink(DEFAULT_SINK_NAME, reader(`sink.${DEFAULT_SINK_NAME}`, {}), agent.stateDir),
    );

  // A file sink must not write where another writes, nor where a source reads (it would read its own output).
  const writers = new Map<string, string>();
  for (const sink of sinks) {
    if (sink.type !== 'file' || pathSyntaxError(sink.path) !== null) continue;
    const other = writers.get(sink.path);
    if (other !== undefined)
      problems.push({
        section: `sink.${sink.name}`,
        key: 'path',
        text: `${sink.path} is also written by [sink.${other}]`,
      });
    writers.set(sink.path, sink.name);
    const reading = sources.find((src) => src.paths.some((p) => globToRegex(p).test(sink.path)));
    if (reading)
      problems.push({
        section: `sink.${sink.name}`,
        key: 'path',
        text: `${sink.path} is read by [source.${reading.name}]: the agent would ship its own output forever`,
      });
  }

  const names = sinks.map((k) => k.name);
  for (const src of sources) {
    for (const wanted of src.sinks ?? []) {
      if (names.includes(wanted) || rawSinks.some(([n]) => n === wanted)) continue; // an invalid sink was reported already
      const close = suggest(wanted, names);
      problems.push({
        section: `source.${src.name}`,
        key: 'sinks',
        text: `no sink named ${shown(wanted)}${close !== undefined ? ` (did you mean "${close}"?)` : ''} (sinks: ${names.join(', ') || 'none'})`,
      });
    }
  }

  const r = reader('redact', raw.redact);
  const redact: RedactConfig = {
    builtin: r.bool('builtin', true),
    patterns: r.regexes('pattern', 'g'), // global: every match in a line is replaced
    replacement: r.string('replacement', '[REDACTED]'),
  };

  return {
    file,
    agent,
    sources,
    sinks,
    redact,
    metrics: metricsSection(reader('metrics', raw.metrics)),
  };
}

/** [metrics]: both outputs off unless named. The schema has checked the shapes. */
function metricsSection(m: SectionReader): MetricsConfig {
  const textfile = m.string('textfile', '');
  if (textfile !== '') m.path('textfile', null); // normalised, no control characters
  const listen = m.string('listen', '');
  let where: MetricsConfig['listen'] = null;
  if (listen !== '') {
    const at = /^(?:\[([^\]]+)\]|(.*)):([0-9]+)$/.exec(listen);
    where = at
      ? { host: at[1] ?? at[2]!, port: Number(at[3]) }
      : { host: '127.0.0.1', port: Number(listen) };
    if (where.port > 65535) m.problem('listen', `expected a port up to 65535, got ${where.port}`);
  }
  return {
    textfile: textfile === '' ? null : textfile,
    listen: where,
    intervalMs: m.number('interval_ms', 15000),
  };
}

function batch(k: SectionReader): BatchConfig {
  return {
    maxEvents: k.number('batch_max_events', 1000),
    maxBytes: k.number('batch_max_bytes', 1024 * 1024),
    maxWaitMs: k.number('batch_max_wait_ms', 5),
  };
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;
const SECRET_QUERY =
  /^(api[_-]?key|access[_-]?token|token|auth|password|passwd|pwd|secret|sig|signature)$/i;

/** The keys every HTTP-family sink has; `auth` defaults to the destination's usual scheme. */
/** max_in_flight, for the HTTP sinks other than `http` (the schema allows it only there). */
function siemCommon(name: string, k: SectionReader, defaultAuth: AuthScheme): HttpCommonConfig {
  return { ...httpCommon(name, k, defaultAuth), maxInFlight: k.number('max_in_flight', 3) };
}

function httpCommon(name: string, k: SectionReader, defaultAuth: AuthScheme): HttpCommonConfig {
  const url = k.string('url', '');
  let parsed: URL | undefined;
  if (k.has('url')) {
    try {
      parsed = new URL(url);
    } catch {
      k.problem('url', `expected an http:// or https:// URL, got ${shown(url)}`);
    }
  }
  if (parsed && (parsed.username !== '' || parsed.password !== '')) {
    // Never echo the password: this line goes to the journal.
    const safe = `${parsed.protocol}//${parsed.username === '' ? '' : '…'}${parsed.password === '' ? '' : ':…'}@${parsed.host}${parsed.pathname}`;
    k.problem(
      'url',
      `must not contain credentials (got ${safe}); put the token in a file and name it in token_file`,
    );
  }
  const secretParam = parsed && [...parsed.searchParams.keys()].find((p) => SECRET_QUERY.test(p));
  if (secretParam)
    k.problem(
      'url',
      `must not carry a secret in its query ("${secretParam}=…"); put the token in a file and name it in token_file`,
    );

  const config: HttpCommonConfig = {
    name,
    url,
    tokenFile: k.readableFile('token_file', true),
    auth: k.oneOf('auth', defaultAuth),
    authHeader: k.optionalString('auth_header'),
    caFile: k.readableFile('ca_file', false),
    clientCertFile: k.readableFile('client_cert_file', false),
    clientKeyFile: k.readableFile('client_key_file', true),
    compression: k.oneOf('compression', 'gzip'),
    timeoutMs: k.number('timeout_ms', 30000),
    retryInitialMs: k.number('retry_initial_ms', 500),
    retryMaxMs: k.number('retry_max_ms', 60000),
    batch: batch(k),
  };
  if (parsed?.protocol === 'http:') {
    if (config.tokenFile !== null && !LOOPBACK.test(parsed.hostname)) {
      k.problem('token_file', `would be sent in clear text to ${parsed.host}: use an https:// url`);
    }
    for (const key of ['ca_file', 'client_cert_file', 'client_key_file']) {
      if (k.has(key)) k.problem(key, `only used with an https:// url, and url is ${shown(url)}`);
    }
  }
  if (k.has('client_cert_file') !== k.has('client_key_file')) {
    const missing = k.has('client_cert_file') ? 'client_key_file' : 'client_cert_file';
    k.problem(
      missing,
      `required with ${missing === 'client_key_file' ? 'client_cert_file' : 'client_key_file'} (mutual TLS needs both)`,
    );
  }
  if (config.auth === 'header' && config.authHeader === null)
    k.problem(
      'auth_header',
      'required with auth = header (the name of the header token_file goes in)',
    );
  if (config.authHeader !== null && config.auth !== 'header')
    k.problem('auth_header', `only used with auth = header, and auth is ${config.auth}`);
  if (config.auth !== 'none' && k.has('auth') && config.tokenFile === null)
    k.problem('token_file', `required with auth = ${config.auth} (the file holding the secret)`);
  if (config.retryMaxMs < config.retryInitialMs) {
    k.problem(
      'retry_max_ms',
      `must be at least retry_initial_ms (${config.retryInitialMs}), got ${config.retryMaxMs}`,
    );
  }
  return config;
}

/** An index name with %Y %m %d: Elasticsearch's rules for index names, checked here rather than
 *  by a 400 for every event. */
const INDEX_NAME = /^(?![-_+])(?:[a-z0-9._+-]|%[Ymd])+$/;

function elasticsearchSink(name: string, k: SectionReader): ElasticsearchSinkConfig {
  const index = k.string('index', 'guard-%Y.%m.%d');
  if (!INDEX_NAME.test(index) || index === '.' || index === '..' || index.length > 255)
    k.problem(
      'index',
      `expected an Elasticsearch index or data stream name (lowercase letters, digits, . _ + -, and %Y %m %d), got ${shown(index)}`,
    );
  return {
    ...siemCommon(name, k, 'bearer'),
    type: 'elasticsearch',
    index,
    pipeline: k.optionalString('pipeline'),
  };
}

function splunkHecSink(name: string, k: SectionReader): SplunkHecSinkConfig {
  return {
    ...siemCommon(name, k, 'splunk'),
    type: 'splunk_hec',
    acknowledgements: k.bool('acknowledgements', true),
    ackTimeoutMs: k.number('ack_timeout_ms', 60000),
    sourcetype: k.string('sourcetype', 'guard'),
    index: k.optionalString('index'),
  };
}

function otlpSink(name: string, k: SectionReader): OtlpSinkConfig {
  return {
    ...siemCommon(name, k, 'bearer'),
    type: 'otlp',
    encoding: k.oneOf('encoding', 'protobuf'),
    serviceName: k.string('service_name', 'guard'),
  };
}

const LOKI_LABELS = ['host', 'source', 'parser', 'program', 'unit'] as const;

function lokiSink(name: string, k: SectionReader): LokiSinkConfig {
  const labels = k.list('labels') ?? ['host', 'source'];
  for (const l of labels)
    if (!(LOKI_LABELS as readonly string[]).includes(l))
      k.problem(
        'labels',
        `expected labels from ${LOKI_LABELS.join(', ')} (a bounded set: never per-line values), got ${shown(l)}`,
      );
  if (labels.length === 0) k.problem('labels', 'expected at least one label (Loki needs one)');
  return {
    ...siemCommon(name, k, 'bearer'),
    type: 'loki',
    labels: [...new Set(labels)] as LokiSinkConfig['labels'],
    tenant: k.optionalString('tenant'),
  };
}

function syslogSink(name: string, k: SectionReader): SyslogSinkConfig {
  const address = k.string('address', '');
  // host:port, [v6]:port; the schema checked the shape, this splits it
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:\[\]]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : 0;
  if (k.has('address') && (!m || port < 1 || port > 65535))
    k.problem('address', `expected host:port (port 1 to 65535), got ${shown(address)}`);
  const config: SyslogSinkConfig = {
    name,
    type: 'syslog',
    address,
    host: m ? (m[1] ?? m[2]!) : '',
    port,
    protocol: k.oneOf('protocol', 'relp'),
    tls: k.bool('tls', true),
    caFile: k.readableFile('ca_file', false),
    clientCertFile: k.readableFile('client_cert_file', false),
    clientKeyFile: k.readableFile('client_key_file', true),
    serverName: k.optionalString('server_name'),
    format: k.oneOf('format', 'rfc5424'),
    framing: k.oneOf('framing', 'octet_counting'),
    facility: k.oneOf('facility', 'user'),
    severity: k.oneOf('severity', 'notice'),
    sdId: k.string('sd_id', 'guard@32473'),
    timeoutMs: k.number('timeout_ms', 30000),
    retryInitialMs: k.number('retry_initial_ms', 500),
    retryMaxMs: k.number('retry_max_ms', 60000),
    batch: batch(k),
  };
  if (!config.tls) {
    for (const key of ['ca_file', 'client_cert_file', 'client_key_file', 'server_name']) {
      if (k.has(key)) k.problem(key, 'only used with tls = true');
    }
  }
  if (config.protocol === 'relp' && k.has('framing'))
    k.problem('framing', 'only used with protocol = tcp (RELP frames every message itself)');
  if (k.has('client_cert_file') !== k.has('client_key_file')) {
    const missing = k.has('client_cert_file') ? 'client_key_file' : 'client_cert_file';
    k.problem(
      missing,
      `required with ${missing === 'client_key_file' ? 'client_cert_file' : 'client_key_file'} (mutual TLS needs both)`,
    );
  }
  if (config.retryMaxMs < config.retryInitialMs) {
    k.problem(
      'retry_max_ms',
      `must be at least retry_initial_ms (${config.retryInitialMs}), got ${config.retryMaxMs}`,
    );
  }
  return config;
}

const BROKER = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/;
const PLACEHOLDER = /\$\{([^}]*)\}/g;

/** A topic or key pattern: text with ${host} and ${source}; `what` names it in a problem. */
function kafkaPattern(k: SectionReader, key: string, fallback: string): string {
  const v = k.string(key, fallback);
  for (const m of v.matchAll(PLACEHOLDER))
    if (m[1] !== 'host' && m[1] !== 'source')
      k.problem(key, `expected \${host} or \${source} in it, got \${${m[1]}}`);
  if (v === '') k.problem(key, 'must not be empty');
  if (key === 'topic' && !/^(?:[A-Za-z0-9._-]|\$\{(?:host|source)\})+$/.test(v))
    k.problem(
      key,
      `expected a Kafka topic name (letters, digits, . _ -) with \${host} \${source}, got ${shown(v)}`,
    );
  return v;
}

function kafkaSink(name: string, k: SectionReader): KafkaSinkConfig {
  const brokers = k.list('brokers') ?? [];
  if (brokers.length === 0) k.problem('brokers', 'required: comma-separated host:port');
  for (const b of brokers)
    if (!BROKER.test(b)) k.problem('brokers', `expected host:port, got ${shown(b)}`);
  const config: KafkaSinkConfig = {
    name,
    type: 'kafka',
    brokers,
    topic: kafkaPattern(k, 'topic', 'guard'),
    key: kafkaPattern(k, 'key', '${host}/${source}'),
    compression: k.oneOf('compression', 'gzip'),
    tls: k.bool('tls', k.has('ca_file') || k.has('client_cert_file')),
    caFile: k.readableFile('ca_file', false),
    clientCertFile: k.readableFile('client_cert_file', false),
    clientKeyFile: k.readableFile('client_key_file', true),
    sasl: k.oneOf('sasl', 'none'),
    saslUsername: k.optionalString('sasl_username'),
    saslPasswordFile: k.readableFile('sasl_password_file', true),
    idempotence: k.bool('idempotence', true),
    maxMessageBytes: k.number('max_message_bytes', 1000000),
    timeoutMs: k.number('timeout_ms', 30000),
    retryInitialMs: k.number('retry_initial_ms', 500),
    retryMaxMs: k.number('retry_max_ms', 60000),
    batch: batch(k),
  };
  if (!config.tls)
    for (const key of ['ca_file', 'client_cert_file', 'client_key_file'])
      if (k.has(key)) k.problem(key, 'only used with tls = true');
  if (k.has('client_cert_file') !== k.has('client_key_file'))
    k.problem(
      k.has('client_cert_file') ? 'client_key_file' : 'client_cert_file',
      'client_cert_file and client_key_file go together (mutual TLS needs both)',
    );
  if (config.sasl !== 'none' && (config.saslUsername === null || config.saslPasswordFile === null))
    k.problem('sasl', `sasl = ${config.sasl} needs sasl_username and sasl_password_file`);
  if (config.sasl === 'none' && (k.has('sasl_username') || k.has('sasl_password_file')))
    k.problem(
      'sasl',
      'sasl_username and sasl_password_file are only used with sasl = plain or scram-sha-256/512',
    );
  if (config.sasl !== 'none' && !config.tls)
    k.problem('sasl', 'would send the password in clear text: set tls = true');
  if (config.retryMaxMs < config.retryInitialMs)
    k.problem(
      'retry_max_ms',
      `must be at least retry_initial_ms (${config.retryInitialMs}), got ${config.retryMaxMs}`,
    );
  return config;
}

function fileSink(name: string, k: SectionReader, stateDir: string): FileSinkConfig {
  return {
    name,
    type: 'file',
    path: k.path('path', `${stateDir === '/' ? '' : stateDir}/out/events.ndjson`),
    maxBytes: k.number('max_bytes', 100 * 1024 * 1024),
    maxFiles: k.number('max_files', 5),
    batch: batch(k),
  };
}
