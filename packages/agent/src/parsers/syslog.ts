// Syslog lines as Debian's rsyslog writes them to /var/log/{auth.log,syslog,…}, plus RFC 5424.
//
//   RFC 3164 (traditional):  [<PRI>]Nov 24 09:05:01 host prog[pid]: msg      (also "Nov  4")
//   RFC 3339 (Debian 12):    [<PRI>]2026-11-24T09:05:01.123456+00:00 host prog[pid]: msg
//   RFC 5424:                <PRI>1 2026-11-24T09:05:01.123Z host app procid msgid [sd] msg
//
// In 3164 headers it is as lenient as rsyslog's pmrfc3164 (a month in any case, a year or a
// fraction inside the timestamp, a colon after it, a space after <PRI>, a first word that cannot be
// a host name taken as the tag); docs/parsers.md lists every accepted form and every deliberate
// difference from rsyslog. The header is scanned with charCodeAt (no regex, no split); timestamps
// are cached per second, since consecutive lines mostly share one. 3164 timestamps have no zone:
// they are the host's local time (rsyslog writes them so); without a year, the year is the one
// that puts them at most about a month in the future of `now`.

import type { Parsed, Parser } from '../event';

function unparsed(): Parsed {
  // A fresh array each time: the pipeline may push more flags onto it.
  return { flags: ['unparsed'] };
}

export const FACILITIES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'authpriv',
  'ftp',
  'ntp',
  'security',
  'console',
  'solaris-cron',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const;
export const SEVERITIES = [
  'emerg',
  'alert',
  'crit',
  'err',
  'warning',
  'notice',
  'info',
  'debug',
] as const;

const SPACE = 0x20;
const COLON = 0x3a;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const DASH = 0x2d;

/** A 3164 timestamp more than this far in `now`'s future belongs to the previous year. */
const FUTURE_TOLERANCE_MS = 31 * 24 * 3600 * 1000;

/** digit value of the char at i, or -1. */
function digit(s: string, i: number): number {
  const c = s.charCodeAt(i) - 0x30;
  return c >= 0 && c <= 9 ? c : -1;
}

/** Two digits at i as a number, or -1. */
function two(s: string, i: number): number {
  const a = digit(s, i);
  const b = digit(s, i + 1);
  return a < 0 || b < 0 ? -1 : a * 10 + b;
}

export function daysInMonth(year: number, month0: number): number {
  if (month0 === 1) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month0 === 3 || month0 === 5 || month0 === 8 || month0 === 10 ? 30 : 31;
}

/** Month names by their three letters in lower case, as one string: index / 3 is the month. */
const MONTHS = 'janfebmaraprmayjunjulaugsepoctnovdec';

/** 'Jan' … 'Dec' at i → 0–11, or -1. Any case ('AUG', 'aug'), as rsyslog accepts them. */
function monthAt(s: string, i: number): number {
  const a = s.charCodeAt(i) | 0x20;
  const b = s.charCodeAt(i + 1) | 0x20;
  const c = s.charCodeAt(i + 2) | 0x20;
  // | 0x20 lower-cases a letter; what is not a letter stays out of 'a'-'z'.
  if (a < 0x61 || a > 0x7a || b < 0x61 || b > 0x7a || c < 0x61 || c > 0x7a) return -1;
  for (let m = 0; m < 36; m += 3) {
    if (
      MONTHS.charCodeAt(m) === a &&
      MONTHS.charCodeAt(m + 1) === b &&
      MONTHS.charCodeAt(m + 2) === c
    )
      return m / 3;
  }
  return -1;
}

// ---- RFC 3164 timestamp cache ------------------------------------------------------------------

/** The last 3164 timestamp seen (its 15 characters) and what it resolved to. */
let c3164Key = '';
let c3164Year = 0; // the year of `now` it was resolved against
let c3164EpochThis = 0; // epoch ms if it is in that year (NaN if the date does not exist then)
let c3164IsoThis = '';
let c3164IsoLast = ''; // the same time one year earlier, computed on first use
let c3164Parts: number[] = [0, 0, 0, 0, 0, 0];

let nowMsCached = NaN;
let nowYearCached = 0;

function localYear(now: Date): number {
  const ms = now.getTime();
  if (ms !== nowMsCached) {
    nowMsCached = ms;
    nowYearCached = now.getFullYear();
  }
  return nowYearCached;
}

function localIso(year: number, p: number[]): { epoch: number; iso: string } {
  const month0 = p[0]!;
  const day = p[1]!;
  if (day > daysInMonth(year, month0)) return { epoch: NaN, iso: '' }; // Feb 29 outside a leap year
  const d = new Date(year, month0, day, p[2]!, p[3]!, p[4]!, p[5]!);
  return { epoch: d.getTime(), iso: d.toISOString() };
}

/**
 * Parses an RFC 3164 timestamp at i, with rsyslog's leniency (datetime.c ParseTIMESTAMP3164):
 *
 *   Mmm dd HH:MM:SS          the month in any case (`AUG`), the day space-padded (`Nov  4`) or not
 *   Mmm dd YYYY HH:MM:SS     a year inside the timestamp (Cisco): 1971–2099, used as it is
 *   … HH:MM:SS.fff           a fraction of a second (digits past the millisecond are cut)
 *   … HH:MM:SS:              a colon after the time (Cisco)
 *
 * Returns the index after it, or -1.
 */
export function parse3164Time(s: string, i: number, now: Date, out: { time: string }): number {
  const month0 = monthAt(s, i);
  if (month0 < 0 || s.charCodeAt(i + 3) !== SPACE) return -1;
  let j = i + 4;
  let day: number;
  if (s.charCodeAt(j) === SPACE) {
    // "Nov  4"
    day = digit(s, j + 1);
    j += 2;
  } else {
    const d1 = digit(s, j);
    const d2 = digit(s, j + 1);
    if (d1 >= 0 && d2 >= 0) {
      day = d1 * 10 + d2;
      j += 2;
    } else {
      day = d1;
      j += 1;
    } // "Nov 4"
  }
  if (day < 1 || day > 31 || s.charCodeAt(j) !== SPACE) return -1;
  let year = -1;
  const y1 = two(s, j + 1);
  const y2 = two(s, j + 3);
  if (y1 >= 0 && y2 >= 0 && s.charCodeAt(j + 5) === SPACE) {
    year = y1 * 100 + y2;
    if (year <= 1970 || year >= 2100) return -1;
    j += 5;
  }
  const h = two(s, j + 1);
  const m = two(s, j + 4);
  const sec = two(s, j + 7);
  if (s.charCodeAt(j + 3) !== COLON || s.charCodeAt(j + 6) !== COLON) return -1;
  if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60) return -1;
  let after = j + 9;
  let ms = 0;
  if (s.charCodeAt(after) === 0x2e) {
    // '.': a fraction, as in RFC 3339
    const fracStart = ++after;
    let dd: number;
    while ((dd = digit(s, after)) >= 0) {
      if (after - fracStart < 3) ms = ms * 10 + dd;
      after++;
    }
    const n = after - fracStart;
    if (n === 0) return -1;
    if (n < 3) ms *= n === 1 ? 100 : 10;
  }
  if (s.charCodeAt(after) === COLON) after++;

  const nowYear = localYear(now);
  const key = s.slice(i, after);
  if (key !== c3164Key || nowYear !== c3164Year) {
    const parts = [month0, day, h, m, sec === 60 ? 59 : sec, ms];
    const r = localIso(year >= 0 ? year : nowYear, parts);
    c3164Key = key;
    c3164Year = nowYear;
    c3164EpochThis = r.epoch;
    c3164IsoThis = r.iso;
    c3164IsoLast = '';
    c3164Parts = parts;
  }
  if (year >= 0) {
    // The year is given: no inference (an impossible date, Feb 29 of a common year, is not one).
    if (c3164IsoThis === '') return -1;
    out.time = c3164IsoThis;
    return after;
  }
  // NaN (no Feb 29 this year) compares false: falls through to last year's date.
  if (c3164EpochThis - now.getTime() <= FUTURE_TOLERANCE_MS) {
    out.time = c3164IsoThis;
    return after;
  }
  if (c3164IsoLast === '') {
    let y = nowYear - 1;
    let r = localIso(y, c3164Parts);
    // Feb 29 seen in a non-leap year: it is from the most recent leap year.
    while (r.iso === '' && y > nowYear - 8) r = localIso(--y, c3164Parts);
    c3164IsoLast = r.iso;
  }
  if (c3164IsoLast === '') return -1;
  out.time = c3164IsoLast;
  return after;
}

// ---- RFC 3339 timestamp ------------------------------------------------------------------------

/** Cache of the last date-hour-zone seen: epoch ms at the start of that hour, in UTC. */
let c3339Y = -1,
  c3339Mo = -1,
  c3339D = -1,
  c3339H = -1,
  c3339Off = 0;
let c3339Base = 0;

/** Epoch ms at the start of hour h of that day (month 1–12) in a zone offMin minutes east of UTC. */
export function hourStart(year: number, mo: number, d: number, h: number, offMin: number): number {
  const utc = new Date(0);
  utc.setUTCFullYear(year, mo - 1, d); // Date.UTC maps years 0–99 to 1900–1999; this does not
  utc.setUTCHours(h, 0, 0, 0);
  return utc.getTime() - offMin * 60000;
}

/**
 * Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` at i (RFC 3339, as in RFC 5424 and rsyslog's
 * high-precision format). Returns the index after it, or -1.
 */
function parse3339Time(s: string, i: number, out: { time: string }): number {
  const y1 = two(s, i);
  const y2 = two(s, i + 2);
  if (y1 < 0 || y2 < 0 || s.charCodeAt(i + 4) !== DASH || s.charCodeAt(i + 7) !== DASH) return -1;
  const t = s.charCodeAt(i + 10);
  if (
    (t !== 0x54 && t !== 0x74) ||
    s.charCodeAt(i + 13) !== COLON ||
    s.charCodeAt(i + 16) !== COLON
  ) {
    return -1;
  }
  const year = y1 * 100 + y2;
  const mo = two(s, i + 5);
  const d = two(s, i + 8);
  const h = two(s, i + 11);
  const mi = two(s, i + 14);
  let sec = two(s, i + 17);
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(year, mo - 1)) return -1;
  if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60) return -1;
  if (sec === 60) sec = 59; // a leap second: keep it in its minute
  let j = i + 19;
  let ms = 0;
  if (s.charCodeAt(j) === 0x2e) {
    // '.'
    j++;
    const fracStart = j;
    let dd: number;
    while ((dd = digit(s, j)) >= 0) {
      if (j - fracStart < 3) ms = ms * 10 + dd; // digits past the millisecond are cut, not rounded
      j++;
    }
    const n = j - fracStart;
    if (n === 0) return -1;
    if (n < 3) ms *= n === 1 ? 100 : 10;
  }
  let offMin: number;
  const z = s.charCodeAt(j);
  if (z === 0x5a || z === 0x7a) {
    // Z
    offMin = 0;
    j++;
  } else if (z === 0x2b || z === DASH) {
    // + -
    const oh = two(s, j + 1);
    const om = two(s, j + 4);
    if (oh < 0 || oh > 23 || om < 0 || om > 59 || s.charCodeAt(j + 3) !== COLON) return -1;
    offMin = (z === DASH ? -1 : 1) * (oh * 60 + om);
    j += 6;
  } else {
    return -1;
  }
  if (year !== c3339Y || mo !== c3339Mo || d !== c3339D || h !== c3339H || offMin !== c3339Off) {
    c3339Y = year;
    c3339Mo = mo;
    c3339D = d;
    c3339H = h;
    c3339Off = offMin;
    c3339Base = hourStart(year, mo, d, h, offMin);
  }
  const epoch = c3339Base + mi * 60000 + sec * 1000 + ms;
  out.time = isoUtc(epoch);
  return out.time === '' ? -1 : j;
}

// ISO strings in UTC built from a cached "YYYY-MM-DDTHH:" of the current UTC hour plus table
// lookups: the same string toISOString() gives, at a fraction of its cost.
const TWO_DIGITS = Array.from({ length: 60 }, (_, n) => String(n).padStart(2, '0'));
const THREE_DIGITS = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, '0'));
let isoHourStart = NaN;
let isoHourPrefix = '';

/** toISOString() of a whole number of ms since the epoch (the JSON and audit parsers use it too); '' beyond what a Date holds. */
export function isoUtc(epoch: number): string {
  let rem = epoch - isoHourStart;
  if (!(rem >= 0 && rem < 3600000)) {
    if (!(epoch >= -8.64e15 && epoch <= 8.64e15)) return '';
    isoHourStart = epoch - (((epoch % 3600000) + 3600000) % 3600000);
    const iso = new Date(isoHourStart).toISOString();
    isoHourPrefix = iso.slice(0, iso.length - 10); // without "MM:SS.mmmZ"
    rem = epoch - isoHourStart;
  }
  const min = Math.floor(rem / 60000);
  rem -= min * 60000;
  const sec = Math.floor(rem / 1000);
  return (
    isoHourPrefix +
    TWO_DIGITS[min]! +
    ':' +
    TWO_DIGITS[sec]! +
    '.' +
    THREE_DIGITS[rem - sec * 1000]! +
    'Z'
  );
}

// ---- the header after the timestamp ------------------------------------------------------------

/** Index of the next space at or after i, or s.length. */
function tokenEnd(s: string, i: number): number {
  const k = s.indexOf(' ', i);
  return k < 0 ? s.length : k;
}

/** 1 for the characters of a host name as rsyslog recognises one: letters, digits, '.', '_', '-'. */
const HOST_CHAR = new Uint8Array(128).map((_, c) =>
  (c >= 0x30 && c <= 0x39) ||
  (c >= 0x41 && c <= 0x5a) ||
  (c >= 0x61 && c <= 0x7a) ||
  c === 0x2e ||
  c === 0x5f ||
  c === DASH
    ? 1
    : 0,
);

/**
 * Whether s[i, end) can be a host name: rsyslog's rule (pmrfc3164.c: letters, digits, '.', '_',
 * '-', ending in a letter or digit), or an IPv6 address (hex digits, '.', and two or more ':'),
 * which rsyslog itself writes in the host field of a message from a sender it cannot name.
 */
export function isHostName(s: string, i: number, end: number): boolean {
  let plain = true;
  let v6 = true;
  let colons = 0;
  for (let k = i; k < end; k++) {
    const c = s.charCodeAt(k);
    if (c === COLON) {
      colons++;
      plain = false;
    } else if (c >= 128 || HOST_CHAR[c] === 0) {
      return false;
    } else if (!(
      (c >= 0x30 && c <= 0x39) ||
      ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) ||
      c === 0x2e
    )) {
      v6 = false;
    }
  }
  if (plain) return end > i && isAlnum(s.charCodeAt(end - 1));
  return v6 && colons >= 2;
}

function isAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a);
}

/**
 * `host tag[pid]: msg` at i (3164 and rsyslog's 3339 format). A tag is recognised only when it is
 * followed by `[pid]` or `:` — `host -- MARK --` is a message without a program. `prog[pid]` with
 * no colon (followed by a space or the end of the line) is also a tag. A first word that cannot be
 * a host name (`#001`, `sshd[7]:`, `kernel:`) is no host: as rsyslog does, it is the tag, and a
 * tag there also ends at a space.
 */
function parseHostTagMessage(s: string, i: number, fields: Record<string, unknown>): boolean {
  const hEnd = tokenEnd(s, i);
  if (hEnd === i) return false;
  if (!isHostName(s, i, hEnd)) {
    parseTag(s, i, fields, true);
    return true;
  }
  fields.hostname = s.slice(i, hEnd);
  if (hEnd >= s.length) return true;
  parseTag(s, hEnd + 1, fields, false);
  return true;
}

/** `tag[pid]:`, `tag:` or `tag[pid]` at t; with `bare`, also a tag that ends at a space or the end. */
function parseTag(s: string, t: number, fields: Record<string, unknown>, bare: boolean): void {
  let j = t;
  const n = s.length;
  let c = 0;
  while (j < n && (c = s.charCodeAt(j)) !== SPACE && c !== COLON && c !== LBRACKET) j++;
  if (j > t && j < n && c === LBRACKET) {
    let k = j + 1;
    let pid = 0;
    let dd: number;
    while (k < n && (dd = digit(s, k)) >= 0 && k - j <= 10) {
      pid = pid * 10 + dd;
      k++;
    }
    if (k > j + 1 && s.charCodeAt(k) === RBRACKET) {
      k++;
      if (s.charCodeAt(k) === COLON) k++;
      if (k < n && s.charCodeAt(k) !== SPACE) return; // `prog[1]x`: no tag, all of it is message
      fields.program = s.slice(t, j);
      fields.pid = pid;
      return;
    }
    if (bare) fields.program = s.slice(t, tokenEnd(s, t));
  } else if (j > t && ((c === COLON && j < n) || bare)) {
    fields.program = s.slice(t, j);
  }
}

// ---- RFC 5424 -----------------------------------------------------------------------------------

/** `[id k="v" …][…]` at i: fills `sd` and returns the index after it, or -1 if malformed. */
function parseStructuredData(
  s: string,
  i: number,
  sd: Record<string, Record<string, string>>,
): number {
  const n = s.length;
  while (i < n && s.charCodeAt(i) === LBRACKET) {
    let j = i + 1;
    while (j < n && s.charCodeAt(j) !== SPACE && s.charCodeAt(j) !== RBRACKET) j++;
    if (j === i + 1 || j >= n) return -1;
    const params: Record<string, string> = {};
    sd[s.slice(i + 1, j)] = params;
    while (s.charCodeAt(j) === SPACE) {
      const nameStart = j + 1;
      const eq = s.indexOf('=', nameStart);
      if (eq <= nameStart || s.charCodeAt(eq + 1) !== 0x22) return -1;
      const name = s.slice(nameStart, eq);
      if (name.includes(' ') || name.includes(']')) return -1;
      let k = eq + 2;
      let value = '';
      let from = k;
      for (;;) {
        if (k >= n) return -1;
        const c = s.charCodeAt(k);
        if (c === 0x22) break; // closing '"'
        if (c === 0x5c) {
          // backslash: \" \\ \] are escapes, anything else is kept as is
          const e = s.charCodeAt(k + 1);
          if (e === 0x22 || e === 0x5c || e === RBRACKET) {
            value += s.slice(from, k);
            from = k + 1;
            k += 2;
            continue;
          }
        }
        k++;
      }
      params[name] = value + s.slice(from, k);
      j = k + 1;
    }
    if (s.charCodeAt(j) !== RBRACKET) return -1;
    i = j + 1;
  }
  return i;
}

/** `VERSION SP TIMESTAMP SP HOST SP APP SP PROCID SP MSGID SP SD [SP MSG]` at i (after <PRI>). */
function parse5424(s: string, i: number, pri: number): Parsed {
  const fields: Record<string, unknown> = {};
  const out: Parsed = { fields };
  addPriority(fields, pri);
  let j = i;
  while (digit(s, j) >= 0) j++;
  fields.version = Number(s.slice(i, j));
  if (s.charCodeAt(j) !== SPACE) return unparsed();
  j++;
  if (s.charCodeAt(j) === DASH && s.charCodeAt(j + 1) === SPACE) {
    j++;
  } else {
    const tOut = { time: '' };
    j = parse3339Time(s, j, tOut);
    if (j < 0) return unparsed();
    out.time = tOut.time;
  }
  // HOSTNAME APP-NAME PROCID MSGID, each '-' when absent.
  const names = ['hostname', 'program', 'procid', 'msgid'] as const;
  for (const name of names) {
    if (s.charCodeAt(j) !== SPACE) return unparsed();
    const start = j + 1;
    j = tokenEnd(s, start);
    if (j === start) return unparsed();
    if (j === start + 1 && s.charCodeAt(start) === DASH) continue;
    const v = s.slice(start, j);
    if (name === 'procid' && /^[0-9]{1,10}$/.test(v)) fields.pid = Number(v);
    else fields[name] = v;
  }
  if (s.charCodeAt(j) !== SPACE) return unparsed();
  j++;
  // STRUCTURED-DATA, then [SP MSG] (the line itself is the message). SD that is not well formed
  // costs only itself: the header's fields stay, the event is flagged 'malformed_sd'.
  if (s.charCodeAt(j) === DASH && (j + 1 === s.length || s.charCodeAt(j + 1) === SPACE)) return out;
  const sd: Record<string, Record<string, string>> = {};
  const k = s.charCodeAt(j) === LBRACKET ? parseStructuredData(s, j, sd) : -1;
  if (k < 0 || (k < s.length && s.charCodeAt(k) !== SPACE)) out.flags = ['malformed_sd'];
  else fields.structuredData = sd;
  return out;
}

function addPriority(fields: Record<string, unknown>, pri: number): void {
  if (pri < 0) return;
  fields.priority = pri;
  fields.facility = FACILITIES[pri >> 3]!;
  fields.severity = SEVERITIES[pri & 7]!;
}

// ---- the parser ---------------------------------------------------------------------------------

export const parseSyslog: Parser = (message, now) => {
  let i = 0;
  let pri = -1;
  if (message.charCodeAt(0) === 0x3c) {
    // '<'
    let j = 1;
    let v = 0;
    let dd: number;
    while ((dd = digit(message, j)) >= 0 && j <= 3) {
      v = v * 10 + dd;
      j++;
    }
    if (j === 1 || j > 4 || message.charCodeAt(j) !== 0x3e || v > 191) return unparsed();
    pri = v;
    i = j + 1;
    // RFC 5424: a version (1–2 digits) and a space right after the PRI.
    const v1 = digit(message, i);
    if (
      v1 > 0 &&
      (message.charCodeAt(i + 1) === SPACE ||
        (digit(message, i + 1) >= 0 && message.charCodeAt(i + 2) === SPACE))
    ) {
      return parse5424(message, i, pri);
    }
  }
  const tOut = { time: '' };
  const c = message.charCodeAt(i);
  let j: number;
  if (c >= 0x30 && c <= 0x39) j = parse3339Time(message, i, tOut);
  else if (c === SPACE)
    j = parse3164Time(message, i + 1, now, tOut); // `<13> Mar  7 …` (rsyslog: HP ProCurve)
  else j = parse3164Time(message, i, now, tOut);
  if (j < 0 || message.charCodeAt(j) !== SPACE) return unparsed();
  const fields: Record<string, unknown> = {};
  if (!parseHostTagMessage(message, j + 1, fields)) return unparsed();
  addPriority(fields, pri);
  return { time: tOut.time, fields };
};
