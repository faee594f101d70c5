// Fuzzing (issue #12, item 5) of what turns a line into an event: the syslog and JSON parsers, and
// the encoder's fast path against the string path. Lines come from a grammar of syslog headers
// (every form the parsers know, and near misses) followed by hostile text, and from raw bytes.
// Properties: nothing throws; the output is valid JSON; an event's own keys (id, offset, source,
// path, host, parser, tags) are never forged from content; a field the parser takes from the line
// is a piece of the line; the encoder writes byte for byte what the string path writes.
import assert from 'node:assert/strict';
import { isAscii } from 'node:buffer';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { EventEncoder } from '../../src/encode';
import { decodeLine } from '../../src/parsers/escape';
import { parseJson } from '../../src/parsers/json';
import { parsePlain } from '../../src/parsers/plain';
import { parseSyslog } from '../../src/parsers/syslog';
import { fuzz } from './budget';

const NOW = new Date(2026, 10, 24, 12, 0, 0);

// ---- a grammar of syslog lines -------------------------------------------------------------------

const pick = <T>(...xs: T[]) => fc.constantFrom(...xs);
/** One of `valid` mostly, one of `odd` (near misses) now and then. */
const mostly = <T>(valid: T[], odd: T[]) =>
  fc.oneof({ weight: 5, arbitrary: pick(...valid) }, { weight: 1, arbitrary: pick(...odd) });
const pad2 = (n: number) => String(n).padStart(2, '0');
/** Two digits, mostly in [lo, hi] (a valid field), sometimes anything (a near miss). */
const d2in = (lo: number, hi: number) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: lo, max: hi }).map(pad2) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 99 }).map(pad2) },
  );
const ts3339 = fc
  .tuple(
    fc.oneof(fc.integer({ min: 2000, max: 2030 }), fc.integer({ min: 0, max: 9999 })),
    d2in(1, 12),
    d2in(1, 28),
    mostly(['T', 't'], [' ']),
    d2in(0, 23),
    d2in(0, 59),
    d2in(0, 60),
    mostly(['', '.1', '.123456', '.99999999999'], ['.']),
    mostly(['Z', 'z', '+00:00', '-05:30'], ['+24:00', '+0100', '']),
  )
  .map(
    ([y, mo, d, t, h, mi, s, f, z]) =>
      `${String(y).padStart(4, '0')}-${mo}-${d}${t}${h}:${mi}:${s}${f}${z}`,
  );
const ts3164 = fc
  .tuple(
    mostly(['Jan', 'Feb', 'FEB', 'feb', 'Mar', 'Aug', 'AUG', 'Dec'], ['Foo', 'Ma']),
    mostly([' 1', '01', '1', '28', '  4'], ['31', '32', '00']),
    mostly(['', '2008 '], ['1970 ', '2099 ', '99 ']),
    d2in(0, 23),
    d2in(0, 59),
    d2in(0, 60),
    mostly(['', ':', '.5', '.123456:'], ['.', '::']),
  )
  .map(([m, d, y, h, mi, s, tail]) => `${m} ${d} ${y}${h}:${mi}:${s}${tail}`);
const pri = mostly(['', '<0>', '<13>', '<191>', '<13> '], ['<192>', '<1x>', '<']);
const host = mostly(
  ['web1', 'web-01', 'db_2.example.com', '10.0.0.1', '2001:db8::1'],
  ['#001', 'h-', 'kernel:', 'sshd[7]:', '', 'h"q', 'x\\y', 'a:b'],
);
const tag = mostly(
  ['sshd[1234]:', 'sudo:', 'CRON[9]:', 'p[3]', ''],
  ['prog[1]x', 'p[]:', 'p[12345678901]:', '--', ':'],
);
/** Text an attacker writes: keys and quotes that look like JSON, controls, bidi, invalid UTF-8. */
const hostileParts = fc
  .array(
    fc.oneof(
      fc.string({ maxLength: 20 }),
      pick(
        '","host":"evil","x":"',
        '"},"source":"forged"',
        '\\"',
        '\\u0000',
        '\x1b]0;PWNED\x07',
        '\u009b2J',
        '\u202e',
        '\u200b',
        '\t',
        '\r',
        '\x00',
        '\x7f',
        '\ufffd',
        '\ud800',
        'caf\u00e9',
        '[id k="v"]',
        '[x eventSource= "Application"]',
        ' - ',
      ),
    ),
    { maxLength: 4 },
  )
  .map((parts) => parts.join(''));
/** Mostly what logs hold (printable text, which the encoder takes), often hostile pieces. */
const hostile = fc.oneof(
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: hostileParts },
);
const v5424 = fc
  .tuple(
    pri,
    pick('1 ', '2 ', '1', '10 '),
    pick('-', ''),
    host,
    pick('app', '-'),
    pick('4242', 'w-3', '-'),
    pick('ID47', '-'),
    pick(
      '-',
      '[a@1 k="v"]',
      '[a@1 k="x\\"y"][b c="d"]',
      '[unterminated',
      'sd',
      '[x eventSource= "Application"]',
    ),
  )
  .chain(([p, v, nil, h, a, pid, m, sd]) =>
    ts3339.map((t) => `${p || '<14>'}${v}${nil === '-' ? '-' : t} ${h} ${a} ${pid} ${m} ${sd}`),
  );
const syslogLine = fc
  .tuple(
    fc.oneof(
      {
        weight: 3,
        arbitrary: fc
          .tuple(
            pri,
            fc.oneof(ts3339, ts3164),
            mostly([' '], ['  ', '']),
            host,
            mostly([' '], ['']),
            tag,
          )
          .map((xs) => xs.join('')),
      },
      { weight: 1, arbitrary: v5424 },
    ),
    hostile,
  )
  .map(([head, rest]) => `${head} ${rest}`);

/** A line as the file has it: the text in UTF-8, or Latin-1 (invalid UTF-8 where it is not ASCII). */
const lineBytes = fc.oneof(
  { weight: 4, arbitrary: syslogLine.map((s) => Buffer.from(s, 'utf8')) },
  { weight: 1, arbitrary: syslogLine.map((s) => Buffer.from(s, 'latin1')) },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ maxLength: 200 })
      .map((a) => Buffer.from(a.filter((b) => b !== 0x0a))),
  },
);

// ---- the string path, written out as the pipeline's eventJson writes it --------------------------

const KEY = '65024.16638017.de351fd6';
const TAIL = { source: 'auth', path: '/var/log/auth.log', host: 'web-01', tags: ['prod'] };

function stringPath(line: Buffer, offset: number, syslog: boolean): string {
  const { text, escaped } = decodeLine(line, 0, line.length);
  const p = (syslog ? parseSyslog : parsePlain)(text, NOW);
  const flags = [...(escaped ? ['escaped'] : []), ...(p.flags ?? [])];
  return (
    `{"id":"${KEY}:${offset}","time":${JSON.stringify(p.time ?? NOW.toISOString())},"offset":${offset},` +
    `"message":${JSON.stringify(text)}${p.fields ? `,"fields":${JSON.stringify(p.fields)}` : ''}` +
    `${flags.length ? `,"flags":${JSON.stringify(flags)}` : ''}` +
    `${JSON.stringify({ ...TAIL, parser: syslog ? 'syslog' : 'plain' }).replace(/^\{/, ',')}\n`
  );
}

function encoderFor(syslog: boolean): EventEncoder {
  const enc = new EventEncoder();
  const tail =
    JSON.stringify({ ...TAIL, parser: syslog ? 'syslog' : 'plain' }).replace(/^\{/, ',') + '\n';
  enc.begin(NOW, Buffer.from(`{"id":"${KEY}:`, 'latin1'), Buffer.from(tail, 'latin1'));
  return enc;
}

/** The encoder's event for `line`, or null when it declines (it then writes nothing). */
function fastPath(enc: EventEncoder, line: Buffer, offset: number, syslog: boolean): string | null {
  const buf = Buffer.concat([line, Buffer.from('\n')]);
  const clean = isAscii(line) && !/["\\\x00-\x09\x0b-\x1f\x7f]/.test(line.toString('latin1'));
  let le = line.length;
  if (le > 0 && buf[le - 1] === 0x0d) le--;
  enc.clear();
  enc.reserve(enc.bound(line.length));
  if (!isAscii(line) || !enc.line(buf, 0, le, offset, syslog, clean)) {
    assert.equal(enc.pos, enc.start, 'a declined line writes nothing');
    return null;
  }
  return enc.out.toString('latin1', enc.start, enc.pos);
}

/** What holds for any event of any line. */
function checkEvent(json: string, line: Buffer, offset: number, parser: string): void {
  assert.ok(json.endsWith('}\n') && json.indexOf('\n') === json.length - 1, 'one line');
  const ev = JSON.parse(json) as Record<string, unknown>;
  assert.equal(ev.id, `${KEY}:${offset}`);
  assert.equal(ev.offset, offset);
  assert.equal(ev.source, TAIL.source);
  assert.equal(ev.path, TAIL.path);
  assert.equal(ev.host, TAIL.host);
  assert.equal(ev.parser, parser);
  assert.deepEqual(ev.tags, TAIL.tags);
  assert.equal(ev.message, decodeLine(line, 0, line.length).text);
  assert.equal(new Date(ev.time as string).toISOString(), ev.time);
  const keys = Object.keys(ev);
  for (const k of keys)
    assert.ok(
      [
        'id',
        'time',
        'offset',
        'message',
        'fields',
        'flags',
        'source',
        'path',
        'host',
        'parser',
        'tags',
      ].includes(k),
      `no key of its own from content: ${k}`,
    );
  const fields = ev.fields as Record<string, unknown> | undefined;
  if (fields !== undefined && parser === 'syslog') {
    const message = ev.message as string;
    for (const k of ['hostname', 'program', 'procid', 'msgid'])
      if (fields[k] !== undefined)
        assert.ok(message.includes(fields[k] as string), `${k} is a piece of the line`);
    if (fields.pid !== undefined)
      assert.ok(Number.isSafeInteger(fields.pid) && (fields.pid as number) >= 0);
    if (fields.priority !== undefined)
      assert.ok((fields.priority as number) >= 0 && (fields.priority as number) <= 191);
  }
}

describe('fuzz: lines → events', () => {
  test('syslog: the encoder and the string path write the same bytes; every event is sound', () => {
    const enc = encoderFor(true);
    let accepted = 0;
    fc.assert(
      fc.property(lineBytes, fc.nat(), (line, offset) => {
        const reference = stringPath(line, offset, true);
        checkEvent(reference, line, offset, 'syslog');
        const fast = fastPath(enc, line, offset, true);
        if (fast !== null) {
          accepted++;
          assert.equal(fast, reference);
        }
      }),
      fuzz(0x5eed01, 3000),
    );
    assert.ok(accepted > 150, `the encoder took a good share of them (${accepted})`);
  });

  test('plain: the encoder and the string path write the same bytes', () => {
    const enc = encoderFor(false);
    fc.assert(
      fc.property(lineBytes, fc.nat(), (line, offset) => {
        const reference = stringPath(line, offset, false);
        checkEvent(reference, line, offset, 'plain');
        const fast = fastPath(enc, line, offset, false);
        if (fast !== null) assert.equal(fast, reference);
      }),
      fuzz(0x5eed02, 1000),
    );
  });

  test('syslog parser: never throws, times are real, flags are its own', () => {
    fc.assert(
      fc.property(fc.oneof(syslogLine, fc.string({ unit: 'binary', maxLength: 120 })), (line) => {
        const r = parseSyslog(line, NOW);
        if (r.time !== undefined) assert.equal(new Date(r.time).toISOString(), r.time);
        for (const f of r.flags ?? []) assert.ok(['unparsed', 'malformed_sd'].includes(f), f);
        if (r.flags?.includes('unparsed')) assert.equal(r.fields, undefined);
        assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
      }),
      fuzz(0x5eed03, 3000),
    );
  });

  test('json parser: the fields are the object the line holds, or the line is unparsed', () => {
    const objects = fc
      .dictionary(
        fc.oneof(
          fc.string({ maxLength: 8 }),
          pick('time', 'timestamp', '@timestamp', 'ts', '__proto__'),
        ),
        fc.oneof(
          fc.jsonValue({ maxDepth: 2 }),
          fc.integer({ min: 0, max: 2e13 }),
          fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        ),
        { maxKeys: 6 },
      )
      .map((o) => JSON.stringify(o));
    fc.assert(
      fc.property(fc.oneof(objects, fc.string({ maxLength: 60 }), fc.json()), (line) => {
        const r = parseJson(line, NOW);
        let expected: unknown;
        try {
          expected = JSON.parse(line);
        } catch {
          expected = undefined;
        }
        const isObject =
          typeof expected === 'object' && expected !== null && !Array.isArray(expected);
        if (r.fields !== undefined) {
          assert.ok(isObject);
          assert.deepEqual(r.fields, expected);
        } else {
          assert.deepEqual(r.flags, ['unparsed']);
        }
        if (r.time !== undefined) assert.equal(new Date(r.time).toISOString(), r.time);
      }),
      fuzz(0x5eed04, 2000),
    );
  });
});
