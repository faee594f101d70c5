import assert from 'node:assert/strict';
import { isAscii } from 'node:buffer';
import { describe, test } from 'node:test';
import { EventEncoder, copyBytes } from '../src/encode';
import { decodeLine } from '../src/parsers/escape';
import { parsePlain } from '../src/parsers/plain';
import { parseSyslog } from '../src/parsers/syslog';

// The encoder must write, byte for byte, the event the string path makes of the same line:
// decodeLine → parser → a LogEvent object in its key order → JSON.stringify. It may decline a line
// (the pipeline then takes the string path), but what it accepts must be identical.

const NOW = new Date(2026, 10, 24, 12, 0, 0);
const KEY = '65024.16638017.de351fd6';
const TAIL = {
  source: 'auth',
  path: '/var/log/auth.log',
  host: 'web-01',
  parser: 'syslog',
  tags: ['prod'],
};

function reference(
  line: Buffer,
  offset: number,
  syslog: boolean,
  key = KEY,
  tail: Record<string, unknown> = TAIL,
): string {
  let end = line.length;
  if (end > 0 && line[end - 1] === 0x0d) end--;
  const { text, escaped } = decodeLine(line, 0, line.length);
  assert.equal(escaped, false, 'only lines decodeLine leaves alone can be encoded');
  assert.equal(text, line.toString('latin1', 0, end));
  const p = (syslog ? parseSyslog : parsePlain)(text, NOW);
  const ev: Record<string, unknown> = {
    id: `${key}:${offset}`,
    time: p.time ?? NOW.toISOString(),
    offset,
    message: text,
  };
  if (p.fields) ev.fields = p.fields;
  if (p.flags) ev.flags = p.flags;
  return JSON.stringify({ ...ev, ...tail, parser: syslog ? 'syslog' : 'plain' }) + '\n';
}

function encoder(syslog: boolean): EventEncoder {
  const enc = new EventEncoder();
  const tail =
    JSON.stringify({ ...TAIL, parser: syslog ? 'syslog' : 'plain' }).replace(/^\{/, ',') + '\n';
  const head = Buffer.from(`{"id":"${KEY}:`, 'latin1');
  const tailBytes = Buffer.from(tail, 'latin1');
  enc.begin(NOW, head, tailBytes);
  begins.set(enc, (src) => enc.begin(NOW, head, tailBytes, src));
  return enc;
}
/** begin() again, telling the encoder the chunk's buffer (as the pipeline does) or not. */
const begins = new WeakMap<EventEncoder, (src?: Buffer) => void>();

/**
 * Encodes `line` as the pipeline does (it sits in a buffer followed by '\n'): once read into the
 * encoder's own input area (copyWithin) and once from a buffer of its own (Buffer#copy); both must
 * give the same bytes. null when declined.
 */
function encode(enc: EventEncoder, line: Buffer, offset: number, syslog: boolean): string | null {
  const bytes = Buffer.concat([Buffer.from('xx'), line, Buffer.from('\nnext line\n')]);
  // `clean` as the pipeline finds it (an ASCII chunk, scanned as Latin-1), and never claimed
  const clean = isAscii(line) && !/["\\\x00-\x09\x0b-\x1f\x7f]/.test(line.toString('latin1'));
  const ways = [
    [enc.input(bytes.length), clean],
    [Buffer.from(bytes), clean],
    [enc.input(bytes.length), false],
    [Buffer.from(bytes), false],
  ] as const;
  const results = ways.map(([buf, cleanArg], w) => {
    bytes.copy(buf);
    begins.get(enc)!(w % 2 === 0 ? buf : undefined); // the input area told to begin(); the other buffer not
    let le = 2 + line.length;
    if (le > 2 && buf[le - 1] === 0x0d) le--;
    enc.clear();
    enc.reserve(enc.bound(line.length));
    if (!enc.line(buf, 2, le, offset, syslog, cleanArg)) {
      assert.equal(enc.pos, enc.start, 'a declined line writes nothing');
      return null;
    }
    return enc.out.toString('latin1', enc.start, enc.pos);
  });
  for (const r of results.slice(1))
    assert.equal(
      r,
      results[0],
      'from the input area and from another buffer, checked or known clean, alike',
    );
  return results[0]!;
}

function check(lines: string[], syslog: boolean): { accepted: number } {
  const enc = encoder(syslog);
  let accepted = 0;
  lines.forEach((l, i) => {
    const line = Buffer.from(l, 'latin1');
    const offset = i * 977 + (i % 3 === 0 ? 2 ** 40 : 0);
    const got = encode(enc, line, offset, syslog);
    if (got === null) return;
    accepted++;
    assert.equal(got, reference(line, offset, syslog), `line ${JSON.stringify(l)}`);
  });
  return { accepted };
}

/** A seeded PRNG (mulberry32): the same lines on every run. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Syslog-ish lines of every kind the encoder meets: zones, fractions, 3164, PRI, odd hosts and tags, quotes, tabs, CR. */
function generatedLines(r: () => number, count: number): string[] {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const n = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const p2 = (x: number) => String(x).padStart(2, '0');
  const months = [
    'Jan',
    'Feb',
    'Mar',
    'Apr',
    'May',
    'Jun',
    'Jul',
    'Aug',
    'Sep',
    'Oct',
    'Nov',
    'Dec',
  ];
  const bodyChars =
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :;=/.,-_[]()"\\\t\'{}<>@#';
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    let ts: string;
    if (r() < 0.6) {
      const zone = pick(['Z', '+00:00', '-00:00', '+01:00', '-05:30', '+14:00', 'z']);
      const frac = pick(['', '.1', '.12', '.123', '.123456', '.999999999']);
      ts = `${n(1970, 2100)}-${p2(n(1, 12))}-${p2(n(1, 31))}${pick(['T', 't'])}${p2(n(0, 24))}:${p2(n(0, 59))}:${p2(n(0, 60))}${frac}${zone}`;
    } else {
      const d = n(1, 31);
      const month = pick(months);
      ts = `${pick([month, month.toUpperCase(), month.toLowerCase()])} ${pick([p2(d), String(d).padStart(2, ' '), String(d)])} ${pick(['', '', `${n(1960, 2110)} `])}${p2(n(0, 23))}:${p2(n(0, 59))}:${p2(n(0, 60))}${pick(['', '', '.5', '.123456', ':', '.'])}`;
    }
    const pri = r() < 0.2 ? `<${n(0, 200)}>${r() < 0.2 ? ' ' : ''}` : '';
    const host =
      r() < 0.8
        ? pick(['web-01', 'db', 'db_2.example.com', '10.0.0.1'])
        : pick(['h"q', 'x\\y', '', '#001', 'h-', 'a:b', '::1', 'p[1]:']);
    const prog = pick([
      'sshd[1234]:',
      'sudo:',
      'CRON[77]:',
      'systemd-logind[1]:',
      'kernel:',
      'prog[1]x',
      'prog[]:',
      '--',
      'p[123]',
      '',
    ]);
    let body = '';
    for (let k = n(0, 60); k > 0; k--) body += bodyChars[Math.floor(r() * bodyChars.length)];
    lines.push(
      `${pri}${ts}${r() < 0.05 ? '  ' : ' '}${host} ${prog} ${body}${r() < 0.05 ? '\r' : ''}`,
    );
  }
  return lines;
}

describe('EventEncoder writes what the string path writes', () => {
  test('hand-made syslog lines: each accepted one is identical, the odd ones are declined', () => {
    const lines = [
      '2026-11-24T09:05:01.123456+00:00 web1 sshd[1234]: Accepted password for alice from 192.0.2.10 port 51234 ssh2',
      '2026-11-24T09:05:01+01:30 web1 CRON[9]: (root) CMD (run-parts /etc/cron.hourly)',
      '2026-11-24T23:59:60.5-05:00 web1 kernel: leap second',
      '2026-11-24t09:05:01.1z web1 sudo:   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls "quoted" \\back\\slash',
      '2026-02-29T09:05:01Z web1 bad: not a leap year',
      '2026-13-01T09:05:01Z web1 bad: month 13',
      '<38>2026-11-24T09:05:01.123+00:00 web1 sshd[1]: with a priority',
      '<191>Nov 24 09:05:01 web1 prog: top priority',
      '<192>Nov 24 09:05:01 web1 prog: priority out of range',
      '<34>1 2026-11-24T09:05:01.003Z mymachine su - ID47 - RFC 5424 goes the string way',
      'Nov 24 09:05:01 web1 sshd[1234]: traditional',
      'Nov  4 09:05:01 web1 sshd[1234]: space-padded day',
      'Nov 4 09:05:01 web1 systemd-logind[1]: unpadded day',
      'Dec 31 23:59:59 web1 prog: the end of a year in the future of NOW: last year',
      'Feb 29 09:05:01 web1 prog: a leap day',
      'Nov 24 09:05:01 web1 -- MARK --',
      'Nov 24 09:05:01 web1 prog[1]x: not a tag',
      'Nov 24 09:05:01 web1 prog[12345678901]: pid too long',
      'Nov 24 09:05:01 web1 prog[]: empty pid',
      'Nov 24 09:05:01 web1 prog[7]',
      'Nov 24 09:05:01 web1 prog[7]:',
      'Nov 24 09:05:01 web1 prog:',
      'Nov 24 09:05:01 web1',
      'Nov 24 09:05:01 web1 ',
      'Nov 24 09:05:01  double space',
      'Nov 24 09:05:01',
      'Nov 24 25:05:01 web1 prog: bad hour',
      'Noc 24 09:05:01 web1 prog: bad month',
      'web"1 is not a timestamp',
      '2026-11-24T09:05:01.123456+00:00 we"b\\1 pro"g[1]: quotes in the header',
      '2026-11-24T09:05:01.123456+00:00 web1 prog: a\ttab',
      '2026-11-24T09:05:01.123456+00:00 web1 prog: CRLF\r',
      '2026-11-24T09:05:01.123456+00:00 web1 prog: a stray\rCR',
      '2026-11-24T09:05:01.123456+00:00 web1 prog: ESC \x1b[31m red',
      '2026-11-24T09:05:01.123456+00:00 web1 prog: NUL \x00 DEL \x7f',
      '2026-11-24T09:05:01.123456+00:00 web1 prog: caf\xc3\xa9',
      '',
      '\r',
      '2026-11-24T09:05:01.123456+00:00',
      '2026-11-24T09:05:01.+00:00 web1 prog: no fraction digits',
      '2026-11-24T23:59:59.99999999999999999999+00:00 web1 prog: twenty nines stay in their second',
      '2026-11-24T09:05:01.5Z web1 prog: one fraction digit',
      '2026-11-24T09:05:01.05Z web1 prog: two fraction digits',
      '2026-11-24T10:00:00.000+01:00 web1 prog: an hour boundary in another zone',
      '0001-01-01T00:00:00Z web1 prog: year 1',
      '9999-12-31T23:59:59.999+00:00 web1 prog: year 9999',
      // rsyslog's 3164 leniency (issue #18): the encoder takes what it can and declines the rest
      'AUG 24 09:05:01 web1 prog: upper-case month',
      'aug 24 09:05:01 web1 prog: lower-case month',
      'Mar  7 2008 19:06:53 web1 prog: a year inside the timestamp',
      'Mar  7 19:06:53: web1 prog: a colon after the time',
      'Mar  7 19:06:53.123456 web1 prog: a fraction',
      '<13> Mar  7 19:06:53 web1 prog: a space after the PRI',
      'Oct 16 23:47:31 #001 MSWinEventLog 1 Security 11 Fri',
      'Oct 16 23:47:31 sshd[7]: no host',
      'Oct 16 23:47:31 kernel: no host',
      'Oct 16 23:47:31 2001:db8::1 prog: an IPv6 sender',
      'Oct 16 23:47:31 web- prog: a host cannot end in a dash',
      'Oct 16 23:47:31 web_1.example.com prog: underscore and dots',
    ];
    const { accepted } = check(lines, true);
    assert.ok(accepted >= 25, `most of these lines are accepted (${accepted})`);
    const enc = encoder(true);
    for (const odd of [
      '2026-11-24T09:05:01Z web1 prog: a stray\rCR',
      '2026-11-24T09:05:01Z web1 prog: ESC \x1b',
      'Nov 24 09:05:01 web1 caf\xc3\xa9',
      '<34>1 2026-11-24T09:05:01.003Z mymachine su - ID47 - x',
      'web1 is not a timestamp',
    ]) {
      assert.equal(
        encode(enc, Buffer.from(odd, 'latin1'), 0, true),
        null,
        `declined: ${JSON.stringify(odd)}`,
      );
    }
  });

  test('100,000 generated syslog lines: identical bytes for every accepted line', () => {
    const lines = generatedLines(prng(0x5eed), 100_000);
    const { accepted } = check(lines, true);
    assert.ok(accepted > 50_000, `most generated lines are accepted (${accepted})`);
  });

  test('20,000 generated lines in a row, as the pipeline writes them: declined ones by the string path, flushes and file changes between', () => {
    const r = prng(0xfeed);
    const lines = generatedLines(r, 20_000).map((l) => Buffer.from(l, 'latin1'));
    const files = [
      { key: KEY, tail: TAIL },
      {
        key: '1.2.3',
        tail: { source: 'other', path: '/var/log/syslog', host: 'web-01', parser: 'syslog' },
      },
    ].map((f) => ({
      ...f,
      head: Buffer.from(`{"id":"${f.key}:`, 'latin1'),
      tailBytes: Buffer.from(
        JSON.stringify({ ...f.tail, parser: 'syslog' }).replace(/^\{/, ',') + '\n',
        'latin1',
      ),
    }));
    const enc = new EventEncoder();
    const input = Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')]));
    const buf = enc.input(input.length);
    input.copy(buf);
    let file = files[0]!;
    enc.begin(NOW, file.head, file.tailBytes, buf);
    let got = '';
    let want = '';
    let declined = 0;
    let at = 0;
    for (const line of lines) {
      const ls = at;
      at += line.length + 1;
      let le = ls + line.length;
      if (le > ls && buf[le - 1] === 0x0d) le--;
      const { text } = decodeLine(buf, ls, ls + line.length);
      const clean = isAscii(line) && !/["\\\x00-\x09\x0b-\x1f\x7f]/.test(text);
      const expected = reference(line, ls, true, file.key, file.tail);
      want += expected;
      enc.reserve(enc.bound(line.length) + 3 * expected.length);
      if (!enc.line(buf, ls, le, ls, true, clean)) {
        declined++;
        enc.putString(expected); // what the pipeline's string path writes there
      }
      const x = r();
      if (x < 0.03 || enc.pos - enc.start > 1 << 16) {
        // a block handed to the sinks
        got += enc.out.toString('latin1', enc.start, enc.pos);
        enc.clear();
        if (x < 0.01) {
          // the next chunk is of another file
          file = files[file === files[0] ? 1 : 0]!;
          enc.begin(NOW, file.head, file.tailBytes, buf);
        }
      }
    }
    got += enc.out.toString('latin1', enc.start, enc.pos);
    assert.ok(
      declined > 1000 && declined < lines.length / 2,
      `some lines went the string way (${declined})`,
    );
    assert.equal(Buffer.from(got, 'latin1').toString('utf8'), want);
  });

  test('an event written after others were, by the string path or over cleared ones, starts with its own id head', () => {
    const enc = encoder(true);
    const l1 = Buffer.from('Nov 24 09:05:01 web1 sshd[1]: first');
    const l2 = Buffer.from('Nov 24 09:05:02 web1 sshd[2]: second');
    const buf = enc.input(l1.length + l2.length + 2);
    Buffer.concat([l1, Buffer.from('\n'), l2, Buffer.from('\n')]).copy(buf);
    begins.get(enc)!(buf);
    enc.reserve(1 << 16);
    assert.ok(enc.line(buf, 0, l1.length, 0, true, true));
    const len1 = enc.pos - enc.start; // the next event's id head is written past here already
    enc.putString('x'.repeat(200)); // … and overwritten
    enc.clear();
    enc.putString('y'.repeat(len1)); // the next event starts where the first one's id head was
    assert.ok(enc.line(buf, l1.length + 1, l1.length + 1 + l2.length, 99, true, true));
    assert.equal(enc.out.toString('latin1', enc.start + len1, enc.pos), reference(l2, 99, true));
    enc.clear(); // and after a clear, where the first event itself was
    assert.ok(enc.line(buf, l1.length + 1, l1.length + 1 + l2.length, 99, true, true));
    assert.equal(enc.out.toString('latin1', enc.start, enc.pos), reference(l2, 99, true));
  });

  test('plain: every printable line is accepted and identical', () => {
    const lines = [
      'hello',
      '',
      'a "quoted" \\ line\twith a tab',
      '2026-11-24T09:05:01Z web1 prog: looks like syslog',
      'CRLF\r',
    ];
    assert.equal(check(lines, false).accepted, lines.length);
  });

  test('an offset past 2^32 and a pid of ten digits are written as the string path writes them', () => {
    const lines = ['Nov 24 09:05:01 web1 sshd[4294967296]: big pid'];
    const enc = encoder(true);
    const got = encode(enc, Buffer.from(lines[0]!), 2 ** 45 + 7, true);
    assert.equal(got, reference(Buffer.from(lines[0]!), 2 ** 45 + 7, true));
  });

  test('offsets and pids of every length, at each power of ten and either side of it', () => {
    const enc = encoder(true);
    const numbers = [0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1];
    for (let p = 10; p <= 1e15; p *= 10) numbers.push(p - 1, p, p + 1);
    for (const n of numbers) {
      const line = Buffer.from(`Nov 24 09:05:01 web1 sshd[${n}]: pid ${n}`);
      assert.equal(encode(enc, line, n, true), reference(line, n, true), `offset and pid ${n}`);
    }
  });
});

describe('copyBytes', () => {
  test('keeps every byte: all 65,536 patterns of the top two bytes of an 8-byte word (NaNs, infinities, denormals)', () => {
    const n = 65536 * 8;
    const buf = new Uint8Array(2 * n + 64);
    const view = new DataView(buf.buffer);
    for (let i = 0; i < 65536; i++) {
      for (let k = 0; k < 6; k++) buf[i * 8 + k] = (i * 31 + k * 97) & 0xff;
      buf[i * 8 + 6] = i & 0xff;
      buf[i * 8 + 7] = i >> 8;
    }
    for (let round = 0; round < 3; round++) {
      // the first rounds unoptimised, later ones optimised
      buf.fill(0, n);
      for (let w = 0; w < 65536; w += 8) copyBytes(buf, view, n + w * 8, w * 8, 64);
      assert.deepEqual(buf.subarray(n, 2 * n), buf.subarray(0, n));
    }
  });

  test('copies any length from 0 to past the word limit, at any alignment, touching nothing else', () => {
    const buf = new Uint8Array(1024);
    const view = new DataView(buf.buffer);
    for (let len = 0; len <= 100; len++) {
      for (const [from, to] of [
        [0, 500],
        [3, 701],
        [129, 5],
      ]) {
        for (let i = 0; i < buf.length; i++) buf[i] = (i * 7 + len) & 0xff;
        const want = Uint8Array.from(buf);
        want.copyWithin(to!, from!, from! + len);
        assert.equal(copyBytes(buf, view, to!, from!, len), to! + len);
        assert.deepEqual(buf, want, `len ${len} from ${from} to ${to}`);
      }
    }
  });
});
