// One auditd record (one line of audit.log) → typed fields.
//
//   [node=NAME ]type=TYPE msg=audit(SECS.MS:SERIAL): key=value key="value" key=HEX … [<0x1d>KEY=value …]
//
// Lines reach the parser already decoded (parsers/escape.ts): control characters are escaped, so
// auditd's enrichment separator 0x1d arrives as the four characters `\x1d`; the raw character is
// accepted too. Scanning is by charCodeAt, nothing throws.
//
// What an attacker controls — a process name, a path, an argument, an account name — can never
// become a field of its own:
//   - a "quoted" value ends at the next '"' (auditd writes no escapes; a value containing '"', a
//     space, a control character or a non-ASCII byte is hex-encoded instead);
//   - after a value must come a space, the separator or the end; a bare value containing a quote
//     is a token auditd never writes: the record is flagged 'malformed' and parsing stops there;
//   - a key seen twice keeps its first value and flags the record 'duplicate_field';
//   - the nested msg='…' of user-space records is parsed into its own object (`fields.msg`) and
//     ends at the last "'" that is followed by the separator or the end of the line;
//   - the enrichment only ever fills `enriched`, and is found only where a token could start.

import { decodeLine } from '../escape';
import { isoUtc } from '../syslog';
import type { AuditNested, AuditRecord, AuditValue } from './types';

/** MAX_AUDIT_MESSAGE_LENGTH in auditd: a longer line is cut (at this many UTF-16 units) and flagged. */
export const MAX_RECORD_LENGTH = 8970;

const SPACE = 0x20;
const DQUOTE = 0x22;
const SQUOTE = 0x27;
const BACKSLASH = 0x5c;
const GS = 0x1d;

/** Fields auditd hex-encodes when their value needs it (audit_log_untrustedstring and friends). */
const ENCODED = new Set([
  'proctitle',
  'name',
  'cwd',
  'comm',
  'exe',
  'path',
  'data',
  'cmd',
  'acct',
  'key',
  'watch',
  'dir',
  'ocomm',
  'file',
  'vm',
  'device',
  'cgroup',
  'root_dir',
  'grp',
  'new_group',
  'new-disk',
  'old-disk',
  'new-chardev',
  'old-chardev',
  'new-fs',
  'old-fs',
  'new-net',
  'old-net',
  'new-rng',
  'old-rng',
  'new-mem',
  'old-mem',
  'new-vcpu',
  'old-vcpu',
  'sw',
  'unit',
  'old_val',
  'new_val',
]);

/** Fields logged as decimal integers. */
const NUMERIC = new Set([
  'pid',
  'ppid',
  'uid',
  'auid',
  'gid',
  'euid',
  'suid',
  'fsuid',
  'egid',
  'sgid',
  'fsgid',
  'ses',
  'items',
  'item',
  'exit',
  'syscall',
  'inode',
  'argc',
  'ouid',
  'ogid',
  'old-auid',
  'old-ses',
  'sauid',
  'oauid',
  'opid',
  'list',
  'fd0',
  'fd1',
  'nargs',
  'old_pid',
  'new_pid',
  'ino',
  'sig',
]);

// ---- small helpers ------------------------------------------------------------------------------

/** Length of the enrichment separator at i: 1 (raw 0x1d), 4 (escaped `\x1d`) or 0. */
function sepAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === GS) return 1;
  if (
    c === BACKSLASH &&
    s.charCodeAt(i + 1) === 0x78 &&
    s.charCodeAt(i + 2) === 0x31 &&
    (s.charCodeAt(i + 3) | 0x20) === 0x64
  )
    return 4;
  return 0;
}

function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

/** True when s is a non-empty, even-length run of hex digits. */
export function isHex(s: string): boolean {
  if (s.length === 0 || (s.length & 1) !== 0) return false;
  for (let i = 0; i < s.length; i++) if (!isHexDigit(s.charCodeAt(i))) return false;
  return true;
}

function isKeyChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x5f ||
    c === 0x2d ||
    c === 0x5b ||
    c === 0x5d ||
    c === 0x2e
  ); // _ - [ ] .
}

/**
 * Bytes → text the way the pipeline ships any line: valid UTF-8, control characters and invalid
 * bytes escaped as `\xHH` (escape.ts). decodeLine strips a trailing CR; keep it here.
 */
export function bytesToText(buf: Buffer, start = 0, end = buf.length): string {
  let k = end;
  while (k > start && buf[k - 1] === 0x0d) k--;
  const text = decodeLine(buf, start, k).text;
  return k === end ? text : text + '\\x0d'.repeat(end - k);
}

/** Hex text → its bytes decoded as text (see bytesToText). The caller checked isHex. */
export function hexToText(hex: string): string {
  return bytesToText(Buffer.from(hex, 'hex'));
}

/** What sends a NUL-separated list to the piece-by-piece decoding: as escape.ts's NEEDS_CHECK, NUL allowed. */
const LIST_NEEDS_CHECK = /[\x01-\x08\x0a-\x1f\x7f-\x9f\ufffd]/;

/** Hex text → the NUL-separated strings in it (proctitle, key lists split at 0x01 with sep=1). */
export function hexToList(hex: string, sep: number): string[] {
  const buf = Buffer.from(hex, 'hex');
  if (sep === 0) {
    // A command line: decoded at once and split at NUL, when nothing in it needs escaping (UTF-8
    // never has a 0x00 inside a character, so the pieces are the same).
    const text = buf.toString('utf8');
    if (!LIST_NEEDS_CHECK.test(text)) {
      const out = text.split('\0');
      if (out[out.length - 1] === '') out.pop(); // a trailing separator adds no empty item
      return out;
    }
  }
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === sep) {
      // A trailing separator adds no empty item.
      if (i < buf.length || i > start) out.push(bytesToText(buf, start, i));
      start = i + 1;
    }
  }
  return out;
}

// ---- values -------------------------------------------------------------------------------------

/** Typed value of a bare (unquoted) token. */
function bareValue(key: string, v: string, type: string): AuditValue {
  if (v === '(null)' || v === '(none)' || v === '?') return v;
  if (key === 'key' && isHex(v)) {
    const keys = hexToList(v, 0x01);
    return keys.length === 1 ? keys[0]! : keys;
  }
  if (key === 'proctitle') return isHex(v) ? hexToList(v, 0x00) : [v];
  if (ENCODED.has(key) || (type === 'EXECVE' && isExecveArg(key))) {
    return isHex(v) ? hexToText(v) : v;
  }
  if (NUMERIC.has(key) || (key.endsWith('_len') && type === 'EXECVE')) {
    const n = decimal(v);
    if (n !== undefined) return n;
  }
  return v;
}

/** `a0`, `a12` (not `a1[0]`, whose chunks are joined by the grouper). */
function isExecveArg(key: string): boolean {
  if (key.length < 2 || key.charCodeAt(0) !== 0x61) return false;
  for (let i = 1; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function decimal(v: string): number | undefined {
  const n = v.length;
  if (n === 0 || n > 16) return undefined;
  let i = v.charCodeAt(0) === 0x2d ? 1 : 0;
  if (i === n) return undefined;
  for (; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return undefined;
  }
  const x = Number(v);
  return Number.isSafeInteger(x) ? x : undefined;
}

/** The typed value of a "quoted" token: never hex-decoded, proctitle still a list. */
function quotedValue(key: string, v: string): AuditValue {
  return key === 'proctitle' ? [v] : v;
}

// ---- the scanner --------------------------------------------------------------------------------

interface ScanState {
  flags: string[] | undefined;
  /** Where the enrichment starts (after the separator), or -1. */
  enrichAt: number;
}

/** Adds flag f to what holds `flags`, once. */
export function addFlag(x: { flags?: string[] }, f: string): void {
  if (x.flags === undefined) x.flags = [f];
  else if (!x.flags.includes(f)) x.flags.push(f);
}

function put(out: Record<string, AuditValue>, key: string, v: AuditValue, st: ScanState): void {
  if (key === '__proto__') {
    addFlag(st, 'malformed');
    return;
  }
  if (Object.prototype.hasOwnProperty.call(out, key)) {
    addFlag(st, 'duplicate_field');
    return;
  }
  out[key] = v;
}

/**
 * Scans key=value tokens of s[i, end) into out. At the top level (`nested` false) it stops at an
 * enrichment separator found where a token could start or right after a value, and records where
 * the enrichment begins. Returns nothing: fields and flags are filled in.
 */
function scan(
  s: string,
  i: number,
  end: number,
  out: Record<string, AuditValue>,
  type: string,
  nested: boolean,
  st: ScanState,
): void {
  const avc = type === 'AVC' || type === 'USER_AVC';
  while (i < end) {
    let c = s.charCodeAt(i);
    if (c === SPACE) {
      i++;
      continue;
    }
    if (!nested) {
      const sl = sepAt(s, i);
      if (sl > 0) {
        st.enrichAt = i + sl;
        return;
      }
    }
    // key
    const ks = i;
    while (i < end && isKeyChar((c = s.charCodeAt(i)))) i++;
    if (i === ks || c !== 0x3d || i >= end) {
      // Not key=…: a word. AVC's `denied { read write } for`; anything else is skipped.
      let we = i;
      while (we < end && s.charCodeAt(we) !== SPACE && (nested || sepAt(s, we) === 0)) we++;
      const word = s.slice(ks, we);
      if (word.includes('"') || word.includes("'")) {
        addFlag(st, 'malformed');
        return;
      }
      if (avc) {
        if (word === 'denied' || word === 'granted') put(out, 'seresult', word, st);
        else if (word === '{') {
          const close = s.indexOf('}', we);
          if (close < 0 || close > end) {
            addFlag(st, 'malformed');
            return;
          }
          put(out, 'seperms', s.slice(we, close).trim(), st);
          we = close + 1;
        }
      }
      i = we;
      continue;
    }
    const key = s.slice(ks, i);
    i++; // '='
    c = s.charCodeAt(i);
    if (c === DQUOTE) {
      const close = s.indexOf('"', i + 1);
      if (close < 0 || close >= end) {
        // cut short (a truncated last line): keep what is there
        put(out, key, quotedValue(key, s.slice(i + 1, end)), st);
        addFlag(st, 'malformed');
        return;
      }
      put(out, key, quotedValue(key, s.slice(i + 1, close)), st);
      i = close + 1;
      if (i < end && s.charCodeAt(i) !== SPACE && (nested || sepAt(s, i) === 0)) {
        addFlag(st, 'malformed');
        return;
      }
      continue;
    }
    if (c === SQUOTE) {
      const close =
        key === 'msg' && !nested ? closingQuote(s, i + 1, end) : nextQuote(s, i + 1, end, nested);
      if (close < 0 || close >= end) {
        addFlag(st, 'malformed');
        if (key === 'msg' && !nested) put(out, key, nestedFields(s, i + 1, end, st), st);
        else put(out, key, s.slice(i + 1, end), st);
        return;
      }
      if (key === 'msg' && !nested) put(out, key, nestedFields(s, i + 1, close, st), st);
      else put(out, key, s.slice(i + 1, close), st);
      i = close + 1;
      continue;
    }
    // bare value
    const vs = i;
    while (i < end) {
      c = s.charCodeAt(i);
      if (c === SPACE) break;
      if (c === DQUOTE || c === SQUOTE) {
        addFlag(st, 'malformed');
        return;
      }
      if (!nested && (c === GS || c === BACKSLASH) && sepAt(s, i) > 0) break;
      i++;
    }
    put(out, key, bareValue(key, s.slice(vs, i), type), st);
  }
}

/**
 * The quote that closes a top-level '…' value opened before `from`: the last "'" followed by the
 * separator or the end of the line (auditd appends the enrichment right after it), else the first
 * "'" followed by a space. -1 if none.
 */
function closingQuote(s: string, from: number, end: number): number {
  let k = s.lastIndexOf("'", end - 1);
  while (k >= from) {
    if (k + 1 === end || sepAt(s, k + 1) > 0) return k;
    k = s.lastIndexOf("'", k - 1);
  }
  k = s.indexOf("'", from);
  while (k >= 0 && k < end) {
    if (s.charCodeAt(k + 1) === SPACE) return k;
    k = s.indexOf("'", k + 1);
  }
  return -1;
}

/** The next "'" followed by a space, the end (or, at the top level, the separator); -1 if none. */
function nextQuote(s: string, from: number, end: number, nested: boolean): number {
  let k = s.indexOf("'", from);
  while (k >= 0 && k < end) {
    if (k + 1 === end || s.charCodeAt(k + 1) === SPACE || (!nested && sepAt(s, k + 1) > 0))
      return k;
    k = s.indexOf("'", k + 1);
  }
  return -1;
}

function nestedFields(s: string, from: number, to: number, st: ScanState): AuditNested {
  const out: Record<string, AuditValue> = {};
  const inner: ScanState = { flags: undefined, enrichAt: -1 };
  scan(s, from, to, out, 'msg', true, inner);
  if (inner.flags !== undefined) for (const f of inner.flags) addFlag(st, f);
  // Nested values are strings and numbers only (no key lists, no proctitle).
  const res: AuditNested = {};
  for (const k of Object.keys(out)) {
    const v = out[k]!;
    res[k] =
      typeof v === 'string' || typeof v === 'number' ? v : Array.isArray(v) ? v.join(' ') : '';
  }
  return res;
}

/** KEY=value tokens after the separator; values "quoted", { braced } or bare. */
function parseEnriched(s: string, i: number, end: number): Record<string, string> {
  const out: Record<string, string> = {};
  while (i < end) {
    let c = s.charCodeAt(i);
    if (c === SPACE) {
      i++;
      continue;
    }
    const ks = i;
    while (i < end && isKeyChar((c = s.charCodeAt(i)))) i++;
    if (i === ks || c !== 0x3d) {
      // a stray word: skip it
      while (i < end && s.charCodeAt(i) !== SPACE) i++;
      continue;
    }
    const key = s.slice(ks, i);
    i++;
    c = s.charCodeAt(i);
    let v: string;
    if (c === DQUOTE || c === 0x7b) {
      // " or {
      const close = s.indexOf(c === DQUOTE ? '"' : '}', i + 1);
      const e = close < 0 ? end : close;
      v = s.slice(i + 1, e);
      if (c === 0x7b) v = v.trim();
      i = e + 1;
    } else {
      const vs = i;
      while (i < end && s.charCodeAt(i) !== SPACE) i++;
      v = s.slice(vs, i);
    }
    if (key !== '__proto__' && !Object.prototype.hasOwnProperty.call(out, key)) out[key] = v;
  }
  return out;
}

// ---- the record ---------------------------------------------------------------------------------

/** Index after a run of decimal digits starting at i (i itself when none). */
function digitsEnd(s: string, i: number, max: number): number {
  const start = i;
  while (i - start < max) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) break;
    i++;
  }
  return i;
}

/**
 * Parses one audit.log line. Returns null when it is not a `type=X msg=audit(T:S): …` record.
 * Never throws.
 */
export function parseRecord(line: string): AuditRecord | null {
  let flags: string[] | undefined;
  if (line.length > MAX_RECORD_LENGTH) {
    let cut = MAX_RECORD_LENGTH;
    const c = line.charCodeAt(cut - 1);
    if (c >= 0xd800 && c <= 0xdbff) cut--; // do not split a surrogate pair
    line = line.slice(0, cut);
    flags = ['truncated'];
  }
  let i = 0;
  let node: string | undefined;
  if (line.startsWith('node=')) {
    const sp = line.indexOf(' ', 5);
    if (sp < 0) return null;
    node = line.slice(5, sp);
    i = sp + 1;
  }
  if (!line.startsWith('type=', i)) return null;
  const tEnd = line.indexOf(' ', i + 5);
  if (tEnd <= i + 5) return null;
  const type = line.slice(i + 5, tEnd);
  i = tEnd + 1;
  if (!line.startsWith('msg=audit(', i)) return null;
  const ts = i + 10;
  const secEnd = digitsEnd(line, ts, 12);
  if (secEnd === ts || line.charCodeAt(secEnd) !== 0x2e) return null;
  const msEnd = digitsEnd(line, secEnd + 1, 3);
  if (msEnd !== secEnd + 4 || line.charCodeAt(msEnd) !== 0x3a) return null;
  const serEnd = digitsEnd(line, msEnd + 1, 20);
  if (
    serEnd === msEnd + 1 ||
    line.charCodeAt(serEnd) !== 0x29 ||
    line.charCodeAt(serEnd + 1) !== 0x3a
  ) {
    return null;
  }
  const stamp = line.slice(ts, serEnd);
  const secs = Number(line.slice(ts, secEnd));
  const ms = Number(line.slice(secEnd + 1, msEnd));
  const serial = Number(line.slice(msEnd + 1, serEnd));
  if (!Number.isSafeInteger(serial)) return null;
  const time = isoUtc(secs * 1000 + ms); // '' past the last date a Date can hold
  if (time === '') return null;

  const fields: Record<string, AuditValue> = {};
  const st: ScanState = { flags, enrichAt: -1 };
  scan(line, serEnd + 2, line.length, fields, type, false, st);
  const enriched = st.enrichAt >= 0 ? parseEnriched(line, st.enrichAt, line.length) : {};
  const rec: AuditRecord = { type, time, serial, stamp, fields, enriched, raw: line };
  if (node !== undefined) rec.node = node;
  if (st.flags !== undefined) rec.flags = st.flags;
  return rec;
}
