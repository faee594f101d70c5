// Fuzzing (issue #12, item 5) of the audit parser and grouper. Records come from a grammar of
// auditd's format (types of every kind, interleaved stamps, quoted, hex and bare values, the
// enrichment, nested msg='…', EOE), cut and mangled, and raw text. Properties:
//   - every line read ends up in exactly one event (one line → at most one event, and none lost):
//     the records of all events and the unparsed lines add up to the lines pushed;
//   - every event is valid JSON; its records share its stamp;
//   - no field is forged from content: what an attacker puts in a value (a comm, an argument)
//     comes back as exactly that value, and every field a record has is a key its line wrote;
//   - memory is bounded: open events and the text they hold stay within the grouper's limits.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { AuditGrouper } from '../../src/parsers/audit/group';
import { parseRecord } from '../../src/parsers/audit/record';
import type { AuditEvent } from '../../src/parsers/audit/types';
import { fuzz } from './budget';

const pick = <T>(...xs: T[]) => fc.constantFrom(...xs);
const GS = '\\x1d';
const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex').toUpperCase();

/** A value as auditd writes an untrusted string: quoted when it is plain, else hex. */
function untrusted(v: string): string {
  return /^[\x21\x23-\x7e]*$/.test(v) && v !== '' ? `"${v}"` : hex(v);
}

const type = pick(
  'SYSCALL',
  'EXECVE',
  'CWD',
  'PATH',
  'PROCTITLE',
  'EOE',
  'SOCKADDR',
  'LOGIN',
  'AVC',
  'CONFIG_CHANGE',
  'ANOM_PROMISCUOUS',
  'ANOM_ABEND',
  'USER_CMD',
  'USER_LOGIN',
  'CRED_ACQ',
  'DAEMON_START',
  'KERNEL',
  'FANCY_NEW',
  'UNKNOWN[1334]',
  'UNKNOWN[2100]',
);
const stamp = fc
  .tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 5 }))
  .map(([s, n]) => `${1700000000 + s}.${String(n * 111).padStart(3, '0')}:${100 + s * 10 + n}`);
const attacker = fc.oneof(
  fc.string({ maxLength: 16 }),
  pick(
    'a" uid=0',
    "x' res=success",
    'key=evil',
    ' type=SYSCALL msg=audit(1:2):',
    '\\x1d',
    '\u202e',
  ),
);
const field = fc.oneof(
  fc
    .tuple(pick('comm', 'exe', 'name', 'cwd', 'proctitle', 'acct'), attacker)
    .map(([k, v]) => `${k}=${untrusted(v)}`),
  fc
    .tuple(pick('pid', 'uid', 'auid', 'ses', 'items', 'syscall', 'exit'), fc.integer())
    .map(([k, v]) => `${k}=${v}`),
  fc.tuple(fc.integer({ min: 0, max: 3 }), attacker).map(([n, v]) => `a${n}=${untrusted(v)}`),
  attacker.map((v) => `msg='op=x acct=${untrusted(v)} res=success'`),
  pick('key=(null)', 'success=yes', 'arch=c000003e', 'a1_len=4 a1[0]=4142 a1[1]=4344'),
  fc.string({ maxLength: 12 }), // junk between fields
);
const record = fc
  .tuple(
    pick('', '', '', 'node=h1 '),
    type,
    stamp,
    fc.array(field, { maxLength: 6 }),
    pick('', '', `${GS}UID="root" AUID="alice"`),
  )
  .map(([node, t, s, fs, enr]) => `${node}type=${t} msg=audit(${s}): ${fs.join(' ')}${enr}`);
const line = fc.oneof(
  { weight: 8, arbitrary: record },
  { weight: 1, arbitrary: record.chain((r) => fc.nat(r.length).map((n) => r.slice(0, n))) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc
      .string({ minLength: 8960, maxLength: 9000 })
      .map((s) => `type=EXECVE msg=audit(1700000000.000:1): a0=${s}`),
  },
);

function accounted(events: AuditEvent[]): number {
  let n = 0;
  for (const e of events) n += e.records.length + (e.raw !== undefined ? 1 : 0);
  return n;
}

describe('fuzz: audit records → events', () => {
  test('every line in exactly one event; JSON; one stamp an event; bounded', () => {
    fc.assert(
      fc.property(
        fc.array(line, { maxLength: 60 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 6 }),
        (lines, maxOpen, maxRecords) => {
          const g = new AuditGrouper({ maxOpen, maxRecords, maxOpenBytes: 20_000 });
          const out: AuditEvent[] = [];
          let off = 0;
          for (const l of lines) {
            const end = off + Buffer.byteLength(l) + 1;
            const got = g.push(l, off, end, off % 7 === 0 ? ['partial'] : undefined);
            out.push(...got);
            off = end;
            assert.ok(g.openEvents <= maxOpen, 'open events bounded');
            const held = (g as unknown as { chars: number }).chars;
            assert.ok(held <= 20_000 + 8970, `text held bounded (${held})`);
          }
          out.push(...g.flush(0, 1000), ...g.flush(5000, 1000), ...g.flushAll());
          assert.equal(g.openEvents, 0);
          assert.equal(accounted(out), lines.length, 'every line in exactly one event');
          for (const e of out) {
            const json = JSON.stringify(e);
            assert.deepEqual(JSON.parse(json), JSON.parse(JSON.stringify(JSON.parse(json))));
            for (const r of e.records) {
              assert.equal(r.stamp, e.stamp, 'one stamp an event');
              for (const k of Object.keys(r.fields))
                assert.ok(r.raw.includes(`${k}=`), `field ${k} is a key the line wrote`);
            }
          }
        },
      ),
      fuzz(0xa0d17, 600),
    );
  });

  test("an attacker's value comes back as exactly that value, and adds no field", () => {
    fc.assert(
      fc.property(
        fc.dictionary(pick('comm', 'exe', 'name', 'cwd', 'acct', 'path'), attacker, { minKeys: 1 }),
        (values) => {
          const body = Object.entries(values)
            .map(([k, v]) => `${k}=${untrusted(v)}`)
            .join(' ');
          const rec = parseRecord(`type=SYSCALL msg=audit(1700000000.000:1): pid=7 ${body}`);
          assert.ok(rec);
          assert.deepEqual(rec.fields, { pid: 7, ...values });
          assert.equal(rec.flags, undefined);
        },
      ),
      fuzz(0xa0d18, 1500),
    );
  });
});
