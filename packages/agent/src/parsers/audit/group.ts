// auditd records → events: one event per `msg=audit(TIMESTAMP:SERIAL)` (and node).
//
// Where an event ends follows from what the kernel and auditd emit, not from a range of numbers:
//   - user space sends one record per message (USER_*, CRED_*, DAEMON_*, SERVICE_*, and from 2100
//     ANOM_LOGIN_*, RESP_*, ROLE_*, CRYPTO_*, VIRT_*, …), and the kernel gives it a stamp of its own:
//     such a record is a complete event. So are KERNEL (2000, the audit subsystem starting) and the
//     NetLabel configuration records MAC_UNLBL_ALLOW…MAC_CALIPSO_DEL;
//   - a record the kernel writes in the context of a task (CONFIG_CHANGE, AVC, LOGIN, SECCOMP, the
//     kernel's anomalies ANOM_PROMISCUOUS, ANOM_ABEND, ANOM_LINK, ANOM_CREAT, the INTEGRITY_*
//     records, …) shares the stamp of the system call that caused it when one is being audited:
//     the SYSCALL, its auxiliary records, PROCTITLE and EOE follow. Such a record waits. (ausearch
//     and auparse 3.0.9 agree: their audit_is_last_record() starts single-record types at 2100.)
//   - a syscall event ends with EOE, which the kernel sends last; auditd does not write EOE to its
//     log (it is for the real-time interface), so on disk PROCTITLE is last. PROCTITLE therefore
//     closes its event at the next record of another stamp, unless the input has shown EOE
//     records (a file written by an audisp plugin): then the event waits for its EOE, which joins
//     it. An EOE whose event is gone (shipped already, or before the start of what was read) is
//     an event of its own: nothing read is dropped;
//   - a record arrives whose time is `eoeTimeoutSec` (2, auditd.conf end_of_event_timeout) or more
//     after the event's own (log time: replaying an old file groups it the same way);
//   - a type this table does not know, in an event without a SYSCALL, ends at the next record of
//     a different stamp;
//   - flush(now, timeoutMs): events open for timeoutMs of the caller's clock (a live tail whose
//     last event has no end record yet), and an event closed by PROCTITLE at the second flush that
//     sees it; flushAll() at the end of the input.
// Records of interleaved stamps are kept apart. Memory is bounded: at most maxOpen open events,
// maxRecords records per event (a full event is shipped, the next record of its stamp starts
// another, both flagged 'too_many_records'), maxOpenBytes of record text held;
// past a bound the oldest open event is emitted early, flagged 'evicted'. Records longer than
// MAX_RECORD_LENGTH are cut and flagged by parseRecord.
//
// Where guard deliberately differs from ausearch 3.0.9 is in docs/audit.md.

import { MAX_RECORD_LENGTH, addFlag, hexToText, isHex, parseRecord } from './record';
import { TYPES_BELOW_1300, TYPES_FROM_1700, TYPES_KERNEL } from './tables';
import { archName, errnoName, syscallName } from './translate';
import type { AuditEvent, AuditPath, AuditRecord, AuditValue } from './types';

export interface AuditGrouperOptions {
  /** Open events at most (default 1024). */
  maxOpen?: number;
  /** Records kept per event (default 256). */
  maxRecords?: number;
  /** Characters of record text held in open events (default 16 Mi). */
  maxOpenBytes?: number;
  /** An event is complete once a record this many seconds newer arrives (default 2). */
  eoeTimeoutSec?: number;
}

type Ending = 'last' | 'more' | 'unsure';

const MAC_SINGLE_FIRST = 'MAC_UNLBL_ALLOW';
const MAC_SINGLE_LAST = 'MAC_CALIPSO_DEL';

/** Types from 1700 the kernel writes (1700-1799 kernel anomalies, 1800-1899 integrity). */
const KERNEL_FROM_1700 = [
  'ANOM_PROMISCUOUS',
  'ANOM_ABEND',
  'ANOM_LINK',
  'ANOM_CREAT',
  'INTEGRITY_DATA',
  'INTEGRITY_METADATA',
  'INTEGRITY_STATUS',
  'INTEGRITY_HASH',
  'INTEGRITY_PCR',
  'INTEGRITY_RULE',
  'INTEGRITY_EVM_XATTR',
  'INTEGRITY_POLICY_RULE',
];

const ENDING = new Map<string, Ending>();
{
  for (const t of TYPES_BELOW_1300.split(' ')) ENDING.set(t, 'last');
  for (const t of TYPES_FROM_1700.split(' ')) ENDING.set(t, 'last');
  let mac = false;
  for (const t of TYPES_KERNEL.split(' ')) {
    if (t === MAC_SINGLE_FIRST) mac = true;
    ENDING.set(t, mac ? 'last' : 'more');
    if (t === MAC_SINGLE_LAST) mac = false;
  }
  // Written by the kernel in a task's context: with their syscall's records when it is audited.
  for (const t of KERNEL_FROM_1700) ENDING.set(t, 'more');
  // Newer kernel types than this auditd's table knows (linux/audit.h 6.x).
  ENDING.set('DM_CTRL', 'more');
  ENDING.set('DM_EVENT', 'more');
  ENDING.set('LOGIN', 'more'); // 1006: logged with the SYSCALL that wrote /proc/self/loginuid
  ENDING.set('PROCTITLE', 'last');
  ENDING.set('EOE', 'last');
  ENDING.set('KERNEL', 'last');
}

/** How a record of this type ends (or not) its event; `UNKNOWN[1334]` goes by its number. */
export function recordEnding(type: string): Ending {
  const e = ENDING.get(type);
  if (e !== undefined) return e;
  if (type.startsWith('UNKNOWN[') && type.endsWith(']')) {
    const n = Number(type.slice(8, -1));
    if (!Number.isInteger(n)) return 'unsure';
    // audit_is_last_record() of audit-userspace: AUDIT_FIRST_ANOM_MSG there is 2100 (user space's
    // anomalies); 1700-1999 are the kernel's and wait.
    if (
      n === 1320 ||
      n === 1327 ||
      (n > 1006 && n < 1300) ||
      n === 1005 ||
      n >= 2100 ||
      n === 2000 ||
      (n >= 1406 && n <= 1419)
    )
      return 'last';
    return 'more';
  }
  return 'unsure';
}

interface Open {
  key: string;
  ev: AuditEvent;
  sec: number;
  /** The caller's clock at the first flush() that saw it open (NaN before). */
  seenAt: number;
  hasSyscall: boolean;
  unsure: boolean;
  /** Its PROCTITLE has come: it ends at its EOE, or (no EOE in this input) at another stamp. */
  closing: boolean;
  chars: number;
}

function secsOf(stamp: string): number {
  const dot = stamp.indexOf('.');
  return Number(dot < 0 ? stamp : stamp.slice(0, dot));
}

export class AuditGrouper {
  private readonly open = new Map<string, Open>();
  private readonly maxOpen: number;
  private readonly maxRecords: number;
  private readonly maxOpenBytes: number;
  private readonly eoeTimeoutSec: number;
  /** A lower bound of the open events' seconds (Infinity when none). */
  private lowSec = Infinity;
  private unsureOpen = 0;
  private closingOpen = 0;
  /** This input has shown an EOE record: events closed by PROCTITLE wait for theirs. */
  private eoeSeen = false;
  private chars = 0;

  constructor(opts: AuditGrouperOptions = {}) {
    this.maxOpen = Math.max(1, opts.maxOpen ?? 1024);
    this.maxRecords = Math.max(1, opts.maxRecords ?? 256);
    this.maxOpenBytes = Math.max(MAX_RECORD_LENGTH, opts.maxOpenBytes ?? 16 * 1024 * 1024);
    this.eoeTimeoutSec = opts.eoeTimeoutSec ?? 2;
  }

  /** Open events right now. */
  get openEvents(): number {
    return this.open.size;
  }

  /** Offset of the first line of the oldest open event (a checkpoint must not pass it), or undefined. */
  oldestOpenOffset(): number | undefined {
    let min: number | undefined;
    for (const o of this.open.values())
      if (min === undefined || o.ev.offset < min) min = o.ev.offset;
    return min;
  }

  /**
   * One line (already decoded, without its '\n'), read at [offset, end) of the file, with the
   * flags the reader gave it ('partial', 'continuation', 'truncated'), which its event carries.
   * Returns the events this line completed, in completion order.
   */
  push(line: string, offset: number, end: number, lineFlags?: readonly string[]): AuditEvent[] {
    const out: AuditEvent[] = [];
    const rec = parseRecord(line);
    if (rec === null) {
      const raw = line.length > MAX_RECORD_LENGTH ? line.slice(0, MAX_RECORD_LENGTH) : line;
      const flags = line.length > MAX_RECORD_LENGTH ? ['unparsed', 'truncated'] : ['unparsed'];
      const ev: AuditEvent = {
        stamp: '',
        time: '',
        serial: -1,
        type: '',
        records: [],
        offset,
        end,
        raw,
        flags,
      };
      if (lineFlags !== undefined) for (const f of lineFlags) addFlag(ev, f);
      out.push(ev);
      return out;
    }
    if (lineFlags !== undefined) for (const f of lineFlags) addFlag(rec, f);
    const key = rec.node === undefined ? rec.stamp : rec.node + ' ' + rec.stamp;
    const sec = secsOf(rec.stamp);
    if (this.open.size > 0 && sec >= this.lowSec + this.eoeTimeoutSec) this.completeOlder(sec, out);
    if (this.unsureOpen > 0) this.completeUnsure(key, out);
    if (rec.type === 'EOE') this.eoeSeen = true;
    if (this.closingOpen > 0) this.completeClosing(key, out);

    const ending = recordEnding(rec.type);
    let o = this.open.get(key);
    let continued = false;
    if (o !== undefined && o.ev.records.length >= this.maxRecords) {
      // Full: shipped as it is, and this record starts another event of the same stamp (both
      // flagged). Nothing is dropped: an EXECVE of a few MiB of arguments is hundreds of records,
      // and its CWD, PATH and PROCTITLE come after them.
      addFlag(o.ev, 'too_many_records');
      this.complete(o, out);
      o = undefined;
      continued = true;
    }
    if (o === undefined) {
      // An EOE whose event is not open (shipped already, or begun before what was read) is
      // shipped as an event of its own below: it ends as soon as it starts.
      while (this.open.size >= this.maxOpen) this.evictOldest(out);
      const ev: AuditEvent = {
        stamp: rec.stamp,
        time: rec.time,
        serial: rec.serial,
        type: rec.type,
        records: [],
        offset,
        end,
      };
      if (rec.node !== undefined) ev.node = rec.node;
      if (continued) addFlag(ev, 'too_many_records');
      o = {
        key,
        ev,
        sec,
        seenAt: NaN,
        hasSyscall: false,
        unsure: false,
        closing: false,
        chars: 0,
      };
      this.open.set(key, o);
      if (sec < this.lowSec) this.lowSec = sec;
    }
    const ev = o.ev;
    ev.end = end;
    ev.records.push(rec);
    o.chars += rec.raw.length;
    this.chars += rec.raw.length;
    if (rec.flags !== undefined) for (const f of rec.flags) addFlag(ev, f);
    if (rec.type === 'SYSCALL') o.hasSyscall = true;
    if (rec.type === 'PROCTITLE') {
      if (!o.closing) {
        o.closing = true;
        this.closingOpen++;
      }
    } else if (ending === 'last') {
      this.complete(o, out);
    } else if (ending === 'unsure' && !o.unsure) {
      o.unsure = true;
      this.unsureOpen++;
    }
    while (this.chars > this.maxOpenBytes && this.open.size > 0) this.evictOldest(out);
    return out;
  }

  /**
   * Events that stayed open for timeoutMs of the caller's clock (`now`, e.g. Date.now()): the time
   * is counted from the first flush() that saw the event open, so call this periodically.
   */
  flush(now: number, timeoutMs: number): AuditEvent[] {
    const out: AuditEvent[] = [];
    for (const o of [...this.open.values()]) {
      if (Number.isNaN(o.seenAt)) o.seenAt = now;
      else if (now - o.seenAt >= timeoutMs || (o.closing && !this.eoeSeen)) this.complete(o, out);
    }
    return out;
  }

  /** Every open event, oldest first (end of input, shutdown). */
  flushAll(): AuditEvent[] {
    const out: AuditEvent[] = [];
    for (const o of [...this.open.values()]) this.complete(o, out);
    return out;
  }

  private completeOlder(sec: number, out: AuditEvent[]): void {
    let low = Infinity;
    for (const o of [...this.open.values()]) {
      if (o.sec + this.eoeTimeoutSec <= sec) this.complete(o, out);
      else if (o.sec < low) low = o.sec;
    }
    this.lowSec = low;
  }

  private completeUnsure(key: string, out: AuditEvent[]): void {
    for (const o of [...this.open.values()]) {
      if (o.unsure && !o.hasSyscall && o.key !== key) this.complete(o, out);
    }
  }

  /** Events closed by PROCTITLE end at a record of another stamp, unless EOEs are coming. */
  private completeClosing(key: string, out: AuditEvent[]): void {
    if (this.eoeSeen) return;
    for (const o of [...this.open.values()]) {
      if (o.closing && o.key !== key) this.complete(o, out);
    }
  }

  private evictOldest(out: AuditEvent[]): void {
    const first = this.open.values().next();
    if (first.done === true) return;
    addFlag(first.value.ev, 'evicted');
    this.complete(first.value, out);
  }

  private complete(o: Open, out: AuditEvent[]): void {
    if (!this.open.delete(o.key)) return;
    this.chars -= o.chars;
    if (o.unsure) this.unsureOpen--;
    if (o.closing) this.closingOpen--;
    if (this.open.size === 0) this.lowSec = Infinity;
    summarize(o.ev);
    out.push(o.ev);
  }
}

// ---- the summary --------------------------------------------------------------------------------

function str(v: AuditValue | undefined): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

function num(v: AuditValue | undefined): number | undefined {
  return typeof v === 'number' ? v : undefined;
}

/** The rule key as the event shows it: absent for (null), an array for a multi-key rule. */
function ruleKey(v: AuditValue | undefined): string | string[] | undefined {
  if (Array.isArray(v)) return v.length === 0 ? undefined : v;
  if (typeof v !== 'string' || v === '(null)' || v === '') return undefined;
  return v;
}

/** Fills an event's summary fields from its records. */
export function summarize(ev: AuditEvent): void {
  let syscall: AuditRecord | undefined;
  const execve: AuditRecord[] = [];
  let paths: AuditPath[] | undefined;
  for (const r of ev.records) {
    const f = r.fields;
    switch (r.type) {
      case 'SYSCALL':
        syscall ??= r;
        break;
      case 'EXECVE':
        execve.push(r);
        break;
      case 'PROCTITLE':
        if (ev.proctitle === undefined && Array.isArray(f.proctitle)) ev.proctitle = f.proctitle;
        break;
      case 'CWD':
        if (ev.cwd === undefined) {
          const c = str(f.cwd);
          if (c !== undefined) ev.cwd = c;
        }
        break;
      case 'PATH': {
        const p: AuditPath = {};
        const item = num(f.item);
        if (item !== undefined) p.item = item;
        const name = str(f.name);
        if (name !== undefined) p.name = name;
        const nt = str(f.nametype);
        if (nt !== undefined) p.nametype = nt;
        const inode = num(f.inode);
        if (inode !== undefined) p.inode = inode;
        const mode = str(f.mode);
        if (mode !== undefined) p.mode = mode;
        (paths ??= []).push(p);
        break;
      }
      default:
        break;
    }
  }
  if (paths !== undefined) ev.paths = paths;
  const main = syscall ?? ev.records[0];
  if (main === undefined) return;
  const f = main.fields;
  if (syscall !== undefined) {
    const archRaw = str(f.arch);
    if (archRaw !== undefined) {
      ev.archRaw = archRaw;
      const a = archName(archRaw);
      if (a !== undefined) ev.arch = a;
    }
    const nr = num(f.syscall);
    if (nr !== undefined) {
      ev.syscallNumber = nr;
      const name = syscallName(ev.arch, nr) ?? syscall.enriched.SYSCALL;
      if (name !== undefined) ev.syscall = name;
    }
    if (f.success === 'yes') ev.success = true;
    else if (f.success === 'no') ev.success = false;
    const exit = num(f.exit);
    if (exit !== undefined) {
      ev.exit = exit;
      if (exit < 0 && exit >= -4095 && ev.success !== true) {
        const e = errnoName(exit);
        if (e !== undefined) ev.exitName = e;
      }
    }
  }
  for (const k of ['pid', 'ppid', 'auid', 'uid', 'ses'] as const) {
    const v = num(f[k]);
    if (v !== undefined) ev[k] = v;
  }
  if (main.enriched.AUID !== undefined) ev.auidName = main.enriched.AUID;
  if (main.enriched.UID !== undefined) ev.uidName = main.enriched.UID;
  const tty = str(f.tty);
  if (tty !== undefined) ev.tty = tty;
  const comm = str(f.comm);
  if (comm !== undefined) ev.comm = comm;
  const exe = str(f.exe);
  if (exe !== undefined) ev.exe = exe;
  const msg = f.msg;
  if (msg !== undefined && typeof msg === 'object' && !Array.isArray(msg)) {
    ev.msg = msg;
    if (ev.exe === undefined) {
      const e = str(msg.exe);
      if (e !== undefined) ev.exe = e;
    }
  }
  let key = ruleKey(syscall?.fields.key);
  if (key === undefined && syscall === undefined) {
    for (const r of ev.records) {
      if (r.type === 'CONFIG_CHANGE') continue;
      key = ruleKey(r.fields.key);
      if (key !== undefined) break;
    }
  }
  if (key !== undefined) ev.key = key;
  if (execve.length > 0) ev.argv = argvOf(execve);
}

/** The arguments of one or more EXECVE records: a0…aN, aN_len + aN[i] chunks joined. */
export function argvOf(records: AuditRecord[]): string[] {
  let argc = -1;
  const all: Record<string, AuditValue> = {};
  const quoted = new Set<string>();
  for (const r of records) {
    for (const k of Object.keys(r.fields)) {
      if (!Object.prototype.hasOwnProperty.call(all, k)) all[k] = r.fields[k]!;
      if (k.endsWith(']') && r.raw.includes(' ' + k + '="')) quoted.add(k);
    }
    const a = num(r.fields.argc);
    if (argc < 0 && a !== undefined) argc = a;
  }
  const argv: string[] = [];
  const max = argc >= 0 ? Math.min(argc, 1 << 20) : Infinity;
  for (let n = 0; n < max; n++) {
    const whole = all['a' + n];
    if (whole !== undefined) {
      argv.push(str(whole) ?? '');
      continue;
    }
    const chunks: string[] = [];
    let hex = true;
    for (let i = 0; ; i++) {
      const k = 'a' + n + '[' + i + ']';
      const c = str(all[k]);
      if (c === undefined) break;
      chunks.push(c);
      if (quoted.has(k) || !isHex(c)) hex = false;
    }
    if (chunks.length === 0) {
      if (argc < 0) break;
      argv.push(''); // missing from the log (a lost EXECVE record): keep the positions right
      continue;
    }
    const joined = chunks.join('');
    argv.push(hex ? hexToText(joined) : joined);
  }
  return argv;
}
