// Characters that change how text looks without showing themselves. A log line can carry them on
// purpose: a right-to-left override (U+202E) makes `cod.exe` display as `exe.doc`, and an isolate
// or a zero-width space hides or splits a word a reader or a SIEM rule looks for (Trojan Source,
// CVE-2021-42574). guard ships the line as it is — the text is evidence — and flags the event:
//
//   'bidi'       a bidirectional control: U+202A–U+202E (embeddings, overrides), U+2066–U+2069
//                (isolates), U+200E/U+200F/U+061C (the directional marks)
//   'invisible'  any other format character (Unicode category Cf: zero-width space U+200B, word
//                joiner U+2060, soft hyphen U+00AD, tag characters U+E0000…, …) and the line and
//                paragraph separators U+2028/U+2029
//
// Not flagged: the zero-width (non-)joiner U+200C/U+200D, which Persian, Indic scripts and emoji
// sequences need, and a byte-order mark U+FEFF at the start of the text or after a space (RFC
// 5424 puts one before the message).

const ANY = /[\p{Cf}\u2028\u2029]/u;
const EACH = /[\p{Cf}\u2028\u2029]/gu;
const BIDI = /\p{Bidi_Control}/u;

/** The flags `s` earns ('bidi', 'invisible'), or null: nearly every line, after one regex test. */
export function hiddenFlags(s: string): string[] | null {
  if (!ANY.test(s)) return null;
  let bidi = false;
  let invisible = false;
  EACH.lastIndex = 0;
  for (let m = EACH.exec(s); m !== null && !(bidi && invisible); m = EACH.exec(s)) {
    const c = m[0];
    if (c === '\u200c' || c === '\u200d') continue;
    if (c === '\ufeff' && (m.index === 0 || s.charCodeAt(m.index - 1) === 0x20)) continue;
    if (BIDI.test(c)) bidi = true;
    else invisible = true;
  }
  if (!bidi && !invisible) return null;
  return bidi ? (invisible ? ['bidi', 'invisible'] : ['bidi']) : ['invisible'];
}
