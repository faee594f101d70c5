import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BUILTIN_PATTERN_SOURCE,
  compileRedactor,
  PREFILTER_TRIGGERS,
} from '../../src/transforms/redact';

const R = '[REDACTED]';
const redact = compileRedactor({ builtin: true, patterns: [], replacement: R })!;

/** Every input of the tables below. */
const ALL: string[] = [];

/** [input, expected] pairs; expected === input means "must not be redacted". */
function cases(name: string, pairs: Array<[string, string]>): void {
  ALL.push(...pairs.map(([input]) => input).filter((i) => !i.includes('\n')));
  describe(name, () => {
    for (const [input, expected] of pairs) {
      test(input.length > 90 ? `${input.slice(0, 90)}…` : input, () => {
        const out = redact(input);
        assert.equal(out, expected);
        if (expected === input) assert.equal(out, input, 'the same string instance');
      });
    }
  });
}

// Built from parts so that no secret-scanner flags this file.
const AKIA = 'AKIA' + 'IOSFODNN7EXAMPLE';
const GKEY = 'AIza' + 'SyD-1234567890abcdefghijklmnopqrstu';
const GHP = 'ghp_' + 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8';
const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9' +
  '.eyJzdWIiOiIxMjM0NTY3ODkwIn0' +
  '.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';

cases('passwords in URLs (user and host stay)', [
  [
    'connecting to postgres://app:s3cr3t@db.internal:5432/main',
    `connecting to postgres://app:${R}@db.internal:5432/main`,
  ],
  ['redis://:onlypass@cache:6379', `redis://:${R}@cache:6379`],
  [
    'fetch https://bob:p%40ss:w0rd@example.com/x failed',
    `fetch https://bob:${R}@example.com/x failed`,
  ],
  // near-misses: a port, a user without a password, an email after a URL
  ['GET https://example.com:8443/path?x=1', 'GET https://example.com:8443/path?x=1'],
  ['clone ssh://git@github.com/org/repo.git', 'clone ssh://git@github.com/org/repo.git'],
  [
    'see https://example.com:443 or mail ops@example.com',
    'see https://example.com:443 or mail ops@example.com',
  ],
]);

cases('Authorization headers and bearer tokens', [
  ['Authorization: Bearer abc.def-ghi_jkl', `Authorization: Bearer ${R}`],
  ['authorization: basic dXNlcjpwYXNzd29yZA==', `authorization: basic ${R}`],
  ['"Authorization":"Bearer xyz987"', `"Authorization":"Bearer ${R}"`],
  ['curl -H "authorization=token ghx123" x', `curl -H "authorization=token ${R}" x`],
  ['retrying with bearer 7f3c9a1e2b4d', `retrying with bearer ${R}`],
  ['Bearer eyJhbGci.payload.sig', `Bearer ${R}`],
  // near-misses: prose, a short or plain-word "token"
  ['pam: authorization failure for alice', 'pam: authorization failure for alice'],
  ['invalid bearer token in request', 'invalid bearer token in request'],
  ['bearer authentication failed for client', 'bearer authentication failed for client'],
  ['HTTP basic auth enabled', 'HTTP basic auth enabled'],
]);

cases('key=value secrets (password, passwd, pwd, secret, token, api_key, apikey, access_key)', [
  ['login user=bob password=hunter2 ok', `login user=bob password=${R} ok`],
  ['GET /login?user=bob&passwd=hunter2&next=/', `GET /login?user=bob&passwd=${R}&next=/`],
  ['db: host=x pwd=abc;timeout=5', `db: host=x pwd=${R};timeout=5`],
  ['client_secret=s3cr3t,scope=read', `client_secret=${R},scope=read`],
  ['csrf_token=abc123 sent', `csrf_token=${R} sent`],
  ['API_KEY=abcd1234', `API_KEY=${R}`],
  ['apikey = "k 1 2"', `apikey = "${R}"`],
  ["access_key='AK-1'", `access_key='${R}'`],
  ['DB_PASSWORD="a b c" next', `DB_PASSWORD="${R}" next`],
  ['Password=Hunter2', `Password=${R}`],
  ['{"user":"bob","password":"x\\"y","n":1}', `{"user":"bob","password":"${R}","n":1}`],
  ['{"api_key": "abc", "token" : "def"}', `{"api_key": "${R}", "token" : "${R}"}`],
  ["{'secret': 'v'}", `{'secret': '${R}'}`],
  ['a password=one and token=two', `a password=${R} and token=${R}`],
  // near-misses: sshd and sudo lines, PAM, empty values, other keys
  [
    'Failed password for invalid user admin from 203.0.113.7 port 40022 ssh2',
    'Failed password for invalid user admin from 203.0.113.7 port 40022 ssh2',
  ],
  [
    'Accepted password for alice from 192.0.2.10 port 51234 ssh2',
    'Accepted password for alice from 192.0.2.10 port 51234 ssh2',
  ],
  [
    'sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/ls',
    'sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/ls',
  ],
  [
    'passwd[12]: pam_unix(passwd:chauthtok): password changed for alice',
    'passwd[12]: pam_unix(passwd:chauthtok): password changed for alice',
  ],
  ['passwd: password updated successfully', 'passwd: password updated successfully'],
  ['tokens=5 secrets_count=2', 'tokens=5 secrets_count=2'],
  ['password="" set', 'password="" set'],
  ['{"password_changed": true}', '{"password_changed": true}'],
]);

cases('AWS access key ids and secret access keys', [
  [`using ${AKIA} for s3`, `using ${R} for s3`],
  [`key=${AKIA.replace('AKIA', 'ASIA')}`, `key=${R}`],
  [
    'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    `aws_secret_access_key = ${R}`,
  ],
  ['AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', `AWS_SECRET_ACCESS_KEY=${R}`],
  ['aws_secret_access_key: wJalrXUtnFEMI/K7MDENG', `aws_secret_access_key: ${R}`],
  // near-misses: too short, lower case, glued into a longer word
  ['id AKIA123456789012345 short', 'id AKIA123456789012345 short'],
  ['akiaiosfodnn7example', 'akiaiosfodnn7example'],
  [`X${AKIA}`, `X${AKIA}`],
  [`${AKIA}Z`, `${AKIA}Z`],
]);

cases('Google API keys', [
  [`maps key ${GKEY} used`, `maps key ${R} used`],
  // near-miss: one character short
  [`maps key ${GKEY.slice(0, -1)} used`, `maps key ${GKEY.slice(0, -1)} used`],
]);

cases('GitHub tokens', [
  [`push with ${GHP}`, `push with ${R}`],
  [
    `gho_${GHP.slice(4)} ghu_${GHP.slice(4)} ghs_${GHP.slice(4)} ghr_${GHP.slice(4)}`,
    `${R} ${R} ${R} ${R}`,
  ],
  ['github_pat_11ABCDEFG0123456789abc_defghijklmnopqrstuvwxyz', R],
  // near-misses: too short, an unknown prefix
  ['branch ghp_short', 'branch ghp_short'],
  [`ghx_${GHP.slice(4)}`, `ghx_${GHP.slice(4)}`],
]);

cases('Slack tokens', [
  ['bot xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx ok', `bot ${R} ok`],
  ['xoxp-1234567890-abc', R],
  // near-misses: an unknown type letter, too short
  ['xoxz-1234567890-abc', 'xoxz-1234567890-abc'],
  ['xoxb-123', 'xoxb-123'],
]);

cases('private key blocks', [
  [
    'key: -----BEGIN RSA PRIVATE KEY-----\\nMIIEow...\\n-----END RSA PRIVATE KEY----- loaded',
    `key: -----BEGIN RSA PRIVATE KEY-----${R}-----END RSA PRIVATE KEY----- loaded`,
  ],
  [
    '-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA',
    `-----BEGIN OPENSSH PRIVATE KEY-----${R}`,
  ],
  ['-----BEGIN PRIVATE KEY-----', `-----BEGIN PRIVATE KEY-----${R}`],
  ['-----BEGIN PGP PRIVATE KEY BLOCK----- xyz', `-----BEGIN PGP PRIVATE KEY BLOCK-----${R}`],
  // near-misses: public material
  ['-----BEGIN CERTIFICATE----- MIIB', '-----BEGIN CERTIFICATE----- MIIB'],
  ['-----BEGIN PUBLIC KEY----- MIIB', '-----BEGIN PUBLIC KEY----- MIIB'],
]);

cases('JWTs', [
  [`token ${JWT} expired`, `token ${R} expired`],
  [`id_token=${JWT}`, `id_token=${R}`],
  // near-misses: one part, two parts, a payload that is not JSON
  ['eyJhbGciOiJIUzI1NiJ9 alone', 'eyJhbGciOiJIUzI1NiJ9 alone'],
  ['eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0'],
  ['eyJhbGciOiJIUzI1NiJ9.abc.def', 'eyJhbGciOiJIUzI1NiJ9.abc.def'],
]);

describe('redactor behaviour', () => {
  test('a line with no secret is returned as the same string instance', () => {
    const lines = [
      '2026-11-24T09:05:01.123456+00:00 web1 sshd[1234]: Accepted publickey for alice from 192.0.2.10 port 51234 ssh2: ED25519 SHA256:Xb9v3kq0',
      '2026-11-24T09:17:01.000200+00:00 web1 CRON[5678]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)',
      '2026-11-24T09:05:01.5Z web1 systemd-logind[512]: New session 42 of user alice.',
      '',
    ];
    for (const line of lines) {
      // A copy built at run time, so an identical literal cannot make the check pass by interning.
      const s = [...line].join('');
      assert.ok(redact(s) === s, line);
    }
  });

  test('replacement is used literally ($& and $1 are not special)', () => {
    const r = compileRedactor({ builtin: true, patterns: [/ssn=\d+/], replacement: '<$&$1>' })!;
    assert.equal(r('password=x ssn=123'), 'password=<$&$1> <$&$1>');
  });

  test('null when builtin is off and there are no patterns', () => {
    assert.equal(compileRedactor({ builtin: false, patterns: [], replacement: R }), null);
  });

  test('custom patterns only (builtin off), applied everywhere they match, flags kept', () => {
    const r = compileRedactor({ builtin: false, patterns: [/CARD-\d{4}/i], replacement: '#' })!;
    assert.equal(r('card-1234 and CARD-5678 password=x'), '# and # password=x');
    const s = [...'nothing here'].join('');
    assert.ok(r(s) === s);
  });

  test("custom patterns run after the built-ins (they see the built-ins' output)", () => {
    const r = compileRedactor({ builtin: true, patterns: [/\[REDACTED\]/], replacement: '[R2]' })!;
    assert.equal(r('password=x'), 'password=[R2]');
  });

  test('a custom pattern with g or y flags, or that can match empty, behaves', () => {
    const sticky = /abc/y;
    const r = compileRedactor({ builtin: false, patterns: [sticky, /z*/g], replacement: '_' })!;
    assert.equal(r('xabc abc'), 'x_ _');
    assert.equal(r('xabc abc'), 'x_ _'); // no state carried between calls
    assert.equal(sticky.lastIndex, 0);
    assert.equal(r('azzb'), 'a_b');
  });

  test('a long line with many secrets and no quadratic blow-up', () => {
    const line = 'x password=abc '.repeat(20000) + 'eyJ'.repeat(50000) + ':' + '//a:'.repeat(20000);
    const t0 = performance.now();
    const out = redact(line);
    assert.ok(out.startsWith(`x password=${R} x`));
    assert.ok(performance.now() - t0 < 500, `${performance.now() - t0} ms`);
  });
});

describe('prefilter: one scan of many lines joined by newlines', () => {
  test('every line the redactor changes is overlapped by a match of the scan (all the inputs above, 2,000 arrangements)', () => {
    const re = redact.prefilter!;
    assert.ok(re.global);
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    let changed = 0;
    for (let round = 0; round < 2000; round++) {
      const lines = Array.from({ length: 8 }, () => ALL[Math.floor(rnd() * ALL.length)]!);
      const text = lines.join('\n');
      const spans: number[] = [];
      re.lastIndex = 0;
      for (let m = re.exec(text); m; m = re.exec(text)) spans.push(m.index, m.index + m[0].length);
      let at = 0;
      for (const line of lines) {
        const start = at;
        const end = at + line.length;
        at = end + 1;
        if (redact(line) === line) continue;
        changed++;
        let hit = false;
        for (let i = 0; i < spans.length && !hit; i += 2)
          hit = spans[i]! < end && spans[i + 1]! > start;
        assert.ok(hit, `not seen by the scan: ${JSON.stringify(line)} in ${JSON.stringify(text)}`);
      }
    }
    assert.ok(changed > 1000, `the arrangements hold secrets (${changed})`);
  });

  test('no prefilter with custom patterns (they may be anchored)', () => {
    assert.equal(
      compileRedactor({ builtin: true, patterns: [/^x/], replacement: R })!.prefilter,
      null,
    );
  });
});

describe('PREFILTER_TRIGGERS: every match of a built-in holds a trigger word', () => {
  const holdsTrigger = (s: string): boolean =>
    PREFILTER_TRIGGERS.some((w) => s.toLowerCase().includes(w));
  test('each redacted sample, and each match in it, holds one (any case)', () => {
    const builtin = new RegExp(BUILTIN_PATTERN_SOURCE, 'g');
    let redacted = 0;
    for (const input of ALL) {
      if (redact(input) === input) continue;
      redacted++;
      assert.ok(holdsTrigger(input), input);
      for (const m of input.matchAll(builtin)) assert.ok(holdsTrigger(m[0]), `${m[0]} in ${input}`);
    }
    assert.ok(redacted >= 30, `only ${redacted} samples redacted`);
  });
  test('case variants and words glued to others are still caught', () => {
    for (const s of ['PASSWORD=x1', 'Api-Key=abc', 'x://u:p@h', 'AUTHORIZATION: Basic Zm9v'])
      assert.ok(redact(s) !== s && holdsTrigger(s), s);
  });
  test('lower case, ASCII, no quote or backslash (the addon compares them so)', () => {
    for (const w of PREFILTER_TRIGGERS) assert.match(w, /^[\x20-\x7e]+$/);
    for (const w of PREFILTER_TRIGGERS) assert.equal(w, w.toLowerCase());
    for (const w of PREFILTER_TRIGGERS) assert.ok(w.length >= 2, w); // the addon looks up the first two
    for (const w of PREFILTER_TRIGGERS) assert.ok(!w.includes('"') && !w.includes('\\'), w);
  });
});
