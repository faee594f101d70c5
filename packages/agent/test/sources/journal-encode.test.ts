// The journal addon's encoding (packages/journal/src/journal.c) without a journal: entries given as
// `NAME=value` buffers, as libsystemd hands them out. The addon keeps each field's copy and its
// value's JSON from one entry to the next (a field whose bytes did not change is not escaped and
// scanned again); its output must be, byte for byte, what the encoder writes with that cache off,
// for any sequence of entries: hostile bytes, repeated names, fields coming and going, names moving.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { journalAddon } from '@guard/journal';
import { escapeBytes } from '../../src/parsers/escape';
import { PREFILTER_TRIGGERS } from '../../src/transforms/redact';

const addon = journalAddon();
const TAIL = ',"source":"j","path":"journal:x","host":"h","parser":"journal"}\n';
const CURSOR = (i: number) =>
  `s=0123456789abcdef0123456789abcdef;i=${i.toString(16)};b=fedcba9876543210fedcba9876543210;m=1f;t=${(1796490681785010 + i * 1000).toString(16)};x=abc`;

// Few names and values, so that entries repeat each other's fields as a journal's do.
const NAMES = [
  'MESSAGE',
  'PRIORITY',
  'SYSLOG_IDENTIFIER',
  '_COMM',
  '_PID',
  '_SYSTEMD_UNIT',
  '_HOSTNAME',
  '_BOOT_ID',
  'TEST_A',
  'TEST_B',
  'CODE_LINE',
  'bad name',
  'x\u001b',
];
const PIECES = [
  'plain',
  'zoë €😀',
  '\u0000',
  '\u0001\u001b[31m',
  '\u007f',
  '\n',
  '\t',
  '"q"\\',
  'password=hunter2',
  'ToKeN',
  'AKIA',
  '6',
  '123',
  'A'.repeat(40),
].map((s) => Buffer.from(s));
const BYTES = [0xff, 0xfe, 0xc3, 0x28, 0xc2, 0x85, 0xe2, 0x82, 0xed, 0xa0, 0x80, 0xf4, 0x90];

const value = fc.oneof(
  fc.array(fc.constantFrom(...PIECES), { maxLength: 4 }).map((p) => Buffer.concat(p)),
  fc.array(fc.constantFrom(...BYTES), { maxLength: 6 }).map((b) => Buffer.from(b)),
  fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b)),
);
const field = fc.tuple(fc.constantFrom(...NAMES), value);
/** A sequence of entries, each the one before with some fields changed, added, dropped or moved. */
const entries = fc
  .tuple(
    fc.array(field, { minLength: 1, maxLength: 8 }),
    fc.array(
      fc.array(
        fc.tuple(fc.nat(4), fc.nat(20), field), // what to do, where, with what
        { maxLength: 4 },
      ),
      { minLength: 1, maxLength: 12 },
    ),
  )
  .map(([first, steps]) => {
    const out: [string, Buffer][][] = [first];
    let cur = first;
    for (const step of steps) {
      cur = [...cur];
      for (const [op, at, f] of step) {
        const k = cur.length ? at % cur.length : 0;
        if (op === 0 || cur.length === 0) cur.splice(k, 0, f);
        else if (op === 1 && cur.length > 1) cur.splice(k, 1);
        else if (op === 2) cur[k] = [cur[k]![0], f[1]];
        else if (op === 3) cur[k] = [f[0], cur[k]![1]];
      }
      out.push(cur);
    }
    return out;
  });

const raw = (e: [string, Buffer][]): Buffer[] =>
  e.map(([n, v]) => Buffer.concat([Buffer.from(`${n}=`), v]));

/** The text guard ships for a value's bytes (file lines' escaping, parsers/escape.ts; LF kept). */
function text(v: Buffer): string {
  const parts: string[] = [];
  for (let s = 0; ;) {
    const nl = v.indexOf(0x0a, s);
    parts.push(escapeBytes(v, s, nl < 0 ? v.length : nl));
    if (nl < 0) break;
    s = nl + 1;
  }
  return parts.join('\n');
}

describe('journal addon encoding', () => {
  test('with the cache: byte for byte what the encoder writes without it, for any sequence of entries', () => {
    fc.assert(
      fc.property(
        entries,
        fc.constantFrom(16, 65536),
        fc.constantFrom<string[][]>([[], [], [], []], [[], [], [], ['h']], [['u'], [], ['6'], []]),
        (seq, maxValue, lists) => {
          const cached = addon.encoder(TAIL, maxValue, lists, PREFILTER_TRIGGERS, true);
          const fresh = addon.encoder(TAIL, maxValue, lists, PREFILTER_TRIGGERS, false);
          seq.forEach((e, i) => {
            const a = addon.encodeEntry(cached, CURSOR(i), raw(e));
            const b = addon.encodeEntry(fresh, CURSOR(i), raw(e));
            assert.deepEqual(a, b, `entry ${i}`);
            if (a === null) return;
            const line = a[0].toString('utf8');
            assert.ok(line.endsWith(TAIL));
            JSON.parse(line); // one JSON object, whatever the bytes
          });
        },
      ),
      { numRuns: 400 },
    );
  });

  test('values are escaped as file lines are, binary ones go as base64, repeated names as arrays', () => {
    fc.assert(
      fc.property(entries, (seq) => {
        const enc = addon.encoder(TAIL, 65536, [[], [], [], []], [], true);
        seq.forEach((e, i) => {
          const got = addon.encodeEntry(enc, CURSOR(i), raw(e))!;
          const ev = JSON.parse(got[0].toString('utf8')) as {
            id: string;
            message: string;
            fields: Record<string, unknown>;
            flags?: string[];
          };
          assert.equal(ev.id, `0123456789abcdef0123456789abcdef:${i}`);
          const b64 = new Set((ev.fields.base64 as string[] | undefined) ?? []);
          const want = (name: string, v: Buffer): string =>
            b64.has(name) && v.includes(0) ? v.toString('base64') : text(v);
          const messages = e.filter(([n]) => n === 'MESSAGE');
          assert.equal(ev.message, messages.length ? want('MESSAGE', messages[0]![1]) : '');
          // every upper-case field that is not renamed, under its own name
          for (const name of ['TEST_A', 'TEST_B', 'CODE_LINE']) {
            const vs = e.filter(([n]) => n === name).map(([, v]) => want(name, v));
            if (vs.length === 0) assert.equal(ev.fields[name], undefined);
            else assert.deepEqual(ev.fields[name], vs.length === 1 ? vs[0] : vs);
          }
          const binary = e.some(([, v]) => v.includes(0));
          assert.equal(ev.flags?.includes('base64') ?? false, binary);
        });
      }),
      { numRuns: 300 },
    );
  });

  test('an entry is marked for redaction when any value holds a trigger word, also after entries that reuse its fields', () => {
    const enc = addon.encoder(TAIL, 65536, [[], [], [], []], PREFILTER_TRIGGERS, true);
    const entry = (msg: string, extra: string) => [
      Buffer.from(`MESSAGE=${msg}`),
      Buffer.from('SYSLOG_IDENTIFIER=app'),
      Buffer.from(`TEST_X=${extra}`),
    ];
    const bits = (f: Buffer[], i: number) => addon.encodeEntry(enc, CURSOR(i), f)![3] & 4;
    assert.equal(bits(entry('hello', 'x'), 0), 0);
    assert.equal(bits(entry('hello', 'Bearer abc'), 1), 4); // the changed field
    assert.equal(bits(entry('again', 'Bearer abc'), 2), 4); // the unchanged one, from its slot
    assert.equal(bits(entry('again', 'x'), 3), 0);
    assert.equal(bits(entry('my PassWord is', 'x'), 4), 4);
  });
});
