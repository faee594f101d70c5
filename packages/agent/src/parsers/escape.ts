// Turns the bytes of one log line into the text the agent ships: always valid UTF-8, one line in,
// one string out, nothing dropped. Control characters and bytes that are not UTF-8 are escaped so
// a line can neither forge a terminal escape sequence in whoever reads the backend, nor carry
// bytes a JSON encoder would silently replace with U+FFFD.
//
//   C0 controls (except TAB) and DEL      →  \xHH   (e.g. ESC → \x1b, NUL → \x00, a stray CR → \x0d)
//   C1 controls U+0080–U+009F              →  \u00HH
//   each byte of an invalid UTF-8 sequence →  \xHH   (lone continuation, truncated, overlong,
//                                                     surrogate, above U+10FFFF)
//
// A backslash already in the line is left alone: `escaped: true` tells the reader that the line
// went through this escaping, so a `\x1b` in an escaped line may be either.

import { isUtf8 } from 'node:buffer';

export interface DecodedLine {
  text: string;
  /** True when anything was escaped (the pipeline adds the 'escaped' flag). */
  escaped: boolean;
}

/**
 * Decodes `buf[start, end)`, one line without its '\n'. One trailing '\r' (a CRLF line ending) is
 * stripped silently; any other '\r' is escaped.
 */
export function decodeLine(buf: Buffer, start: number, end: number): DecodedLine {
  if (end > start && buf[end - 1] === 0x0d) end--;
  // Fast path: decode, then one regex scan (irregexp beats a JS byte loop by ~2x). The decoder
  // turns invalid bytes into U+FFFD, so a U+FFFD in the result sends the line to a native
  // validity check: it may also have been in the file as a valid EF BF BD.
  const text = buf.toString('utf8', start, end);
  const m = NEEDS_CHECK.exec(text);
  if (m === null) return { text, escaped: false };
  if (m[0] === '\ufffd') {
    if (!CONTROL.test(text) && isUtf8(buf.subarray(start, end))) return { text, escaped: false };
  } else if (text.indexOf('\ufffd', m.index) < 0) {
    // Valid UTF-8 with control characters (every record of auditd's ENRICHED format holds a
    // 0x1d): escaping the decoded text gives escapeBytes's result without walking the bytes.
    // One control character (that 0x1d) is the usual case: two slices, no replace callback.
    const i = m.index;
    CONTROL_ALL.lastIndex = i + 1;
    if (!CONTROL_ALL.test(text)) {
      const esc = CONTROL_ESCAPES[text.charCodeAt(i)]!;
      return { text: text.slice(0, i) + esc + text.slice(i + 1), escaped: true };
    }
    return { text: text.replace(CONTROL_ALL, escapeControl), escaped: true };
  }
  return { text: escapeBytes(buf, start, end), escaped: true };
}

const CONTROL_ALL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;
/** The escape of each control character, as escapeBytes writes it: \xHH below 0x80, \u00HH above. */
const CONTROL_ESCAPES = Array.from({ length: 0xa0 }, (_, c) =>
  c < 0x80 ? `\\x${c.toString(16).padStart(2, '0')}` : `\\u00${c.toString(16)}`,
);
function escapeControl(c: string): string {
  return CONTROL_ESCAPES[c.charCodeAt(0)]!;
}

/** What sends a decoded line to a closer look: C0 except TAB, DEL, C1, U+FFFD. */
const NEEDS_CHECK = /[\x00-\x08\x0a-\x1f\x7f-\x9f\ufffd]/;
/** The characters that are always escaped. */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/;

const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');

/**
 * The slow path: walks the bytes with a strict UTF-8 decoder (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF) and writes the output as bytes, decoded once at the end.
 * An escape is at most 4 output bytes per input byte.
 */
export function escapeBytes(buf: Buffer, start: number, end: number): string {
  const out = Buffer.allocUnsafe((end - start) * 4);
  let o = 0;
  let i = start;
  while (i < end) {
    const b = buf[i]!;
    if (b < 0x80) {
      if ((b < 0x20 && b !== 0x09) || b === 0x7f) {
        o = writeEscape(out, o, 0x78, b); // \xHH
      } else {
        out[o++] = b;
      }
      i++;
      continue;
    }
    const len = validSequenceLength(buf, i, end);
    if (len === 0) {
      // Not the start of a valid sequence: escape this byte alone and resynchronise on the next
      // one, so every byte of an invalid sequence ends up escaped and no valid text is lost.
      o = writeEscape(out, o, 0x78, b);
      i++;
    } else if (len === 2 && b === 0xc2 && buf[i + 1]! <= 0x9f) {
      o = writeEscape(out, o, 0x75, buf[i + 1]!); // \u00HH
      i += 2;
    } else {
      for (let k = 0; k < len; k++) out[o++] = buf[i + k]!;
      i += len;
    }
  }
  return out.toString('utf8', 0, o);
}

/** Writes \xHH (kind 'x') or \u00HH (kind 'u') at o; returns the new end. */
function writeEscape(out: Buffer, o: number, kind: number, b: number): number {
  out[o++] = 0x5c; // backslash
  out[o++] = kind;
  if (kind === 0x75) {
    out[o++] = 0x30;
    out[o++] = 0x30;
  }
  out[o++] = HEX_DIGITS[b >> 4]!;
  out[o++] = HEX_DIGITS[b & 15]!;
  return o;
}

/** Length (2–4) of the valid UTF-8 sequence starting at a byte ≥ 0x80, or 0 if it is invalid. */
function validSequenceLength(buf: Buffer, i: number, end: number): number {
  const b = buf[i]!;
  if (b >= 0xc2 && b <= 0xdf) {
    return i + 1 < end && isCont(buf[i + 1]!) ? 2 : 0;
  }
  if (b >= 0xe0 && b <= 0xef) {
    if (i + 2 >= end) return 0;
    const b1 = buf[i + 1]!;
    // E0 needs A0–BF (shorter would be overlong); ED needs 80–9F (A0–BF would be a surrogate).
    const lo = b === 0xe0 ? 0xa0 : 0x80;
    const hi = b === 0xed ? 0x9f : 0xbf;
    return b1 >= lo && b1 <= hi && isCont(buf[i + 2]!) ? 3 : 0;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    if (i + 3 >= end) return 0;
    const b1 = buf[i + 1]!;
    // F0 needs 90–BF (overlong otherwise); F4 needs 80–8F (above U+10FFFF otherwise).
    const lo = b === 0xf0 ? 0x90 : 0x80;
    const hi = b === 0xf4 ? 0x8f : 0xbf;
    return b1 >= lo && b1 <= hi && isCont(buf[i + 2]!) && isCont(buf[i + 3]!) ? 4 : 0;
  }
  // 80–BF (continuation without a lead), C0/C1 (always overlong), F5–FF (never valid).
  return 0;
}

function isCont(b: number): boolean {
  return (b & 0xc0) === 0x80;
}
