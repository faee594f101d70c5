// Shapes of auditd records and events, as the audit parser produces them.

/** A nested `msg='…'` (user-space records: USER_*, CRED_*, …): its own key=values, never merged up. */
export type AuditNested = Record<string, string | number>;

/**
 * A field's value: decimal integers of known numeric fields are numbers, the rule `key` of a
 * multi-key rule is an array, `msg` is the nested object, everything else a string (hex-encoded
 * untrusted strings already decoded, control characters escaped as `\xHH`).
 */
export type AuditValue = string | number | string[] | AuditNested;

/** One line of audit.log: `[node=N ]type=T msg=audit(SECS.MS:SERIAL): fields[<0x1d>ENRICHED]`. */
export interface AuditRecord {
  /** Record type as logged: `SYSCALL`, `USER_LOGIN`, `UNKNOWN[1334]`, … */
  type: string;
  /** ISO 8601 (UTC) from the stamp's epoch seconds and milliseconds. */
  time: string;
  serial: number;
  /** `secs.ms:serial`, exactly as in the line. */
  stamp: string;
  /** `node=` prefix (auditd `name_format`), when present. */
  node?: string;
  fields: Record<string, AuditValue>;
  /** What auditd appended after the 0x1d separator (ENRICHED log format): `UID: 'root'`, `SYSCALL: 'openat'`. */
  enriched: Record<string, string>;
  /** The line (cut to MAX_RECORD_LENGTH when longer). */
  raw: string;
  /** 'truncated' (longer than MAX_RECORD_LENGTH, cut), 'malformed' (stopped at a token auditd
   *  never writes: the fields after it are not parsed), 'duplicate_field' (a key seen twice: the
   *  first is kept). */
  flags?: string[];
}

/** One PATH record, summarised. */
export interface AuditPath {
  item?: number;
  name?: string;
  nametype?: string;
  inode?: number;
  mode?: string;
}

/**
 * One audit event: the records that share a `msg=audit(TIMESTAMP:SERIAL)` (and node), plus a
 * summary of the interesting fields. An unparseable line is an event of its own: `flags`
 * holds 'unparsed', `raw` the line, `records` is empty, `stamp` and `time` are '' and `serial` -1.
 */
export interface AuditEvent {
  stamp: string;
  time: string;
  serial: number;
  node?: string;
  /** Type of the first record. */
  type: string;
  /** In arrival order. */
  records: AuditRecord[];
  /** Byte offset of its first record's line. */
  offset: number;
  /** Just past its last record's line (its '\n'). */
  end: number;
  /** The rule key (from SYSCALL, else the first record with one, CONFIG_CHANGE excepted). */
  key?: string | string[];
  syscall?: string;
  syscallNumber?: number;
  arch?: string;
  /** As logged, e.g. 'c000003e'. */
  archRaw?: string;
  success?: boolean;
  exit?: number;
  /** errno name of a negative exit of a failed syscall, e.g. 'EACCES'. */
  exitName?: string;
  pid?: number;
  ppid?: number;
  auid?: number;
  uid?: number;
  ses?: number;
  /** From the enrichment (ENRICHED log format). */
  auidName?: string;
  uidName?: string;
  tty?: string;
  comm?: string;
  exe?: string;
  /** From EXECVE: a0…aN, with split aN[i] continuations joined. */
  argv?: string[];
  /** From PROCTITLE: hex decoded, split at NUL. */
  proctitle?: string[];
  cwd?: string;
  paths?: AuditPath[];
  /** The nested msg='…' of a user-space record (op, acct, exe, hostname, addr, terminal, res, …). */
  msg?: AuditNested;
  /** The unparsed line. */
  raw?: string;
  /** 'unparsed', 'truncated', 'malformed', 'duplicate_field', 'too_many_records' (one of the
   *  events a stamp with more than the per-event cap of records was shipped as), 'evicted' (emitted
   *  before it was complete because too many events or too much text were open). */
  flags?: string[];
}
