// Redaction of secrets before anything leaves the host ([redact] in guard.conf).
//
// The built-in patterns are alternatives of ONE global regex, so a line is scanned once: a line
// with no secret (nearly every sshd, sudo or CRON line) costs one failed regex scan and is
// returned as the same string instance, so the caller can detect a change with `!==`. Matches
// are replaced left to right; context that tells a reader what was there (the URL's user and
// host, the key name, the BEGIN/END lines of a key) is kept and only the secret is replaced.
// Custom patterns (`pattern[] = …`) run after the built-ins and replace their whole match.
//
// Limitation: redaction is per line. A PEM private key written over several log lines is redacted
// from its BEGIN line to the end of that line; the base64 lines after it are not recognisable on
// their own.

import type { RedactConfig } from '../config/types';

/** Case-insensitive text as character classes ("ab_" → "[Aa][Bb]_"), for use inside a regex that
 *  is otherwise case-sensitive (AKIA…, eyJ… and `pwd` must match exactly). */
function ci(word: string): string {
  let out = '';
  for (const ch of word) {
    const lo = ch.toLowerCase();
    const up = ch.toUpperCase();
    out += lo === up ? ch.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&') : `[${up}${lo}]`;
  }
  return out;
}

// Each alternative is one named group; `g<Name>` groups hold the pieces kept around the secret.
const BUILTIN_SOURCES: readonly string[] = [
  // scheme://user:SECRET@host — the password of a URL's userinfo; user and host stay.
  // ("https://host:8443/path" has no '@' before the '/' and is left alone.)
  String.raw`(?<url>:\/\/[^\s:@\/]*:)[^\s@\/]+(?=@)`,
  // Authorization: Bearer|Basic|… CREDENTIALS (headers, and authorization= in configs and URLs).
  `(?<auth>${ci('authorization')}["']?\\s*[:=]\\s*["']?(?:(?:${ci('bearer')}|${ci('basic')}|${ci('token')}|${ci('negotiate')}|${ci('digest')})\\s+)?)[^\\s"',;&]+`,
  // bearer TOKEN outside a header: the token must look like one (checked in redactMatch), so
  // "bearer authentication failed" stays.
  `(?<bearer>${ci('bearer')}\\s+)[A-Za-z0-9._~+\\/-]+=*`,
  // key=VALUE, key = "VALUE", "key": "VALUE" (JSON), 'key': 'VALUE'. The key may end a longer name
  // (DB_PASSWORD=, client_secret=, csrf_token=). A bare "key: value" is not matched: prose like
  // "passwd: password updated successfully" would be. `pwd` is lowercase only: sudo logs the
  // working directory as "PWD=/home/alice". aws_secret_access_key also takes a bare ':' (YAML).
  `(?<kv>(?:${ci('aws_secret_access_key')}["']?\\s*[:=]|(?:${ci('password')}|${ci('passwd')}|pwd|${ci('secret')}|${ci('token')}|${ci('api')}[_-]?${ci('key')}|${ci('access_key')})(?:\\s*=|["']\\s*:))\\s*)` +
    String.raw`(?:"(?<kvdq>[^"\\]*(?:\\.[^"\\]*)*)"|'(?<kvsq>[^']*)'|[^\s&,;"']+)`,
  // AWS access key ids: AKIA (long-term) / ASIA (temporary) + 16 upper-case letters or digits.
  String.raw`(?<awsid>A(?:KI|SI)A[A-Z0-9]{16})(?![A-Za-z0-9])`,
  // Google API keys: AIza + 35 characters of [0-9A-Za-z_-].
  String.raw`(?<gkey>AIza[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])`,
  // GitHub tokens: ghp_ (classic), gho_ (OAuth), ghu_/ghs_ (app user/server), ghr_ (refresh) with
  // 36 characters; github_pat_ (fine-grained).
  String.raw`(?<gh>gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})(?![A-Za-z0-9_])`,
  // Slack tokens: xoxa-, xoxb- (bot), xoxp- (user), xoxr- (refresh), xoxs-.
  String.raw`(?<slack>xox[abprs]-[A-Za-z0-9-]{10,})`,
  // A PEM private key block, through its END line when the line holds one, else to the end of the
  // line (the BEGIN and END lines stay: they say what kind of key was removed).
  String.raw`(?<pemBegin>-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)(?:(?!-----END )[\s\S])*(?<pemEnd>-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)?`,
  // JWTs: base64url of a JSON header and payload ('{"' encodes as eyJ) and a signature. Only at
  // the start of a base64url run (the lookbehind sits after `eyJ` to keep irregexp's first-char
  // filter): else "eyJeyJeyJ…" without a '.' would be rescanned from every eyJ, quadratically.
  String.raw`(?<jwt>eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)`,
];

/**
 * Words one of which every match of a built-in pattern holds (compared in any case): a string that
 * holds none of them is one the built-ins leave alone. The journal's addon marks the entries whose
 * values hold one, in C, and only those are redacted one by one (sources/journal). Keep it in step
 * with BUILTIN_SOURCES (redact.test.ts checks every sample secret against it).
 */
export const PREFILTER_TRIGGERS: readonly string[] = [
  '://', // url
  'authorization', // auth
  'bearer', // bearer
  'passw', // kv: password, passwd
  'pwd', // kv
  'secret', // kv: secret, aws_secret_access_key
  'token', // kv
  'api', // kv: api_key, api-key, apikey
  'access_key', // kv
  'akia', // awsid
  'asia', // awsid
  'aiza', // gkey
  'gh', // gh: ghp_ gho_ ghu_ ghs_ ghr_ github_pat_
  'xox', // slack
  '-----begin ', // pemBegin
  'eyj', // jwt
];

/** One regex for all built-ins. Exported for the benchmark and tests; never use it with state
 *  shared across calls (each redactor compiles its own copy). */
export const BUILTIN_PATTERN_SOURCE = BUILTIN_SOURCES.join('|');

const WORD = /[A-Za-z0-9_]/;
const TOKEN_LIKE = /[0-9._~+\/=-]/;

/**
 * The replacement for one built-in match, or null to keep the match as it is (a near-miss found
 * only after matching: a bearer "token" that is a plain word, an AWS id glued to a longer word).
 */
function redactMatch(m: RegExpExecArray, text: string, replacement: string): string | null {
  const g = m.groups!;
  if (g.url !== undefined) return g.url + replacement;
  if (g.auth !== undefined) return g.auth + replacement;
  if (g.bearer !== undefined) {
    const token = m[0].slice(g.bearer.length);
    return token.length >= 8 && TOKEN_LIKE.test(token) ? g.bearer + replacement : null;
  }
  if (g.kv !== undefined) {
    if (g.kvdq !== undefined) return g.kvdq === '' ? null : `${g.kv}"${replacement}"`;
    if (g.kvsq !== undefined) return g.kvsq === '' ? null : `${g.kv}'${replacement}'`;
    return g.kv + replacement;
  }
  if (g.pemBegin !== undefined) return g.pemBegin + replacement + (g.pemEnd ?? '');
  // Token formats: only when they start a word (a lookbehind in the big regex would defeat
  // irregexp's first-character filter, so it is checked here).
  if (m.index > 0 && WORD.test(text.charAt(m.index - 1))) return null;
  return replacement;
}

/** Redacts one line: returns `text` itself when nothing matched, a new string otherwise. */
export interface Redactor {
  (text: string): string;
  /**
   * For scanning many lines at once (only when there are no custom patterns, which may be anchored):
   * run this global regex over the lines joined by '\n'; a line that no match overlaps is one the
   * redactor returns unchanged. (A match in a line is also a match there in the joined text: no
   * built-in pattern is anchored, and its look-arounds see '\n' as they see the end of a line. The
   * scan's matches may run on into the next line: those lines are merely redacted one by one.)
   */
  readonly prefilter: RegExp | null;
}

/**
 * The redactor for `[redact]`, or null when there is nothing to redact (builtin = false and no
 * patterns).
 */
export function compileRedactor(cfg: RedactConfig): Redactor | null {
  const replacement = cfg.replacement;
  const builtin = cfg.builtin ? new RegExp(BUILTIN_PATTERN_SOURCE, 'g') : null;
  const custom = cfg.patterns.map(
    (re) => new RegExp(re.source, re.flags.replace(/[gy]/g, '') + 'g'),
  );
  if (builtin === null && custom.length === 0) return null;

  let changed = false;
  // A function replacement: cfg.replacement is used literally ('$&' in it stays '$&'); an empty
  // match (a pattern like /x*/) is left alone rather than inserting the replacement everywhere.
  const replaceCustom = (match: string): string => {
    if (match === '') return match;
    changed = true;
    return replacement;
  };

  const redact = (text: string): string => {
    let out = text;
    if (builtin !== null) {
      builtin.lastIndex = 0;
      let m = builtin.exec(text);
      if (m !== null) {
        let acc = '';
        let last = 0;
        let any = false;
        do {
          const r = redactMatch(m, text, replacement);
          const end = m.index + m[0].length;
          if (r !== null) {
            acc += text.slice(last, m.index) + r;
            last = end;
            any = true;
          }
          if (end === m.index) builtin.lastIndex++; // no built-in matches empty; defensive
          m = builtin.exec(text);
        } while (m !== null);
        if (any) out = acc + text.slice(last);
      }
    }
    for (let i = 0; i < custom.length; i++) {
      changed = false;
      const next = out.replace(custom[i]!, replaceCustom);
      if (changed) out = next;
    }
    return out;
  };
  return Object.assign(redact, {
    prefilter:
      builtin !== null && custom.length === 0 ? new RegExp(BUILTIN_PATTERN_SOURCE, 'g') : null,
  });
}
