// The SIEM wire encoders' in-place paths (event lines read where they lie, bytes written once)
// against what they must equal, on hostile content: quotes, backslashes, control characters,
// lone UTF-16 surrogates, U+2028, astral characters, RFC 5424's ']', and fields of 100 KiB.
//   - EventScan: every position it reports decodes to the value JSON.parse gives.
//   - OTLP protobuf and JSON: a line read in place gives the bytes (protobuf) or the object (JSON)
//     of the same event read through JSON.parse; the protobuf decodes with the official generated
//     code (@opentelemetry/otlp-transformer) to the event's values.
//   - Loki: the pushed JSON parses to each event's line, exactly, with its ns timestamp.
//   - syslog framing: octet counts and RELP frames of any length, as the RFCs write them; RELP
//     answers read back across any chunk boundary.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { LokiSinkConfig, OtlpSinkConfig } from '../../src/config/types';
import type { Batch } from '../../src/event';
import { ByteWriter, Lit, TailKey } from '../../src/sinks/core/byte-writer';
import { EventScan } from '../../src/sinks/core/event-scan';
import { BatchLines } from '../../src/sinks/core/lines';
import { LokiFormat } from '../../src/sinks/loki/loki-sink';
import { OtlpFormat } from '../../src/sinks/otlp/otlp-sink';
import { frameStream, relpFrames, SyslogEncoder } from '../../src/sinks/syslog/format';
import { relpFrame, RelpReader, rspCode } from '../../src/sinks/syslog/relp';
import { fuzz } from '../fuzz/budget';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js') as {
  opentelemetry: {
    proto: {
      collector: {
        logs: {
          v1: {
            ExportLogsServiceRequest: {
              decode(b: Uint8Array): unknown;
              toObject(m: unknown, o?: object): Record<string, any>;
            };
          };
        };
      };
    };
  };
};
const Request = root.opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest;

/** Characters that break encoders: JSON's and RFC 5424's specials, controls, surrogates. */
const hostileChar = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('a', 'Z', '0', ' ', ':', '/', '=') },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      '"',
      '\\',
      ']',
      '[',
      '\n',
      '\r',
      '\t',
      '\u0000',
      '\u001b',
      '\u007f',
      '\u0085',
      '\u2028',
      '\u202e',
      'é',
      '€',
      '😀',
      '\ud800', // lone surrogates: JSON.stringify escapes them (\ud800)
      '\udfff',
      '\\u0041',
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 3 }) },
);
const hostile = (maxLength: number) => fc.string({ unit: hostileChar, maxLength });
/** Now and then a huge one: records past 16 KiB take the widened-varint path. */
const message = fc.oneof(
  { weight: 8, arbitrary: hostile(80) },
  { weight: 1, arbitrary: fc.constant('') },
  {
    weight: 1,
    arbitrary: fc
      .tuple(hostile(10), fc.integer({ min: 16 * 1024, max: 100 * 1024 }))
      .map(([s, n]) => s + 'x'.repeat(n)),
  },
);
// Keys are never integer-like: JSON.parse puts those first in an object, while the line keeps
// its order (both are valid OTLP, but not the same bytes).
const key = fc.oneof(
  fc.constantFrom('hostname', 'program', 'pid', 'severity', 'facility', 'unit', 'uid'),
  hostile(8).map((s) => `k${s}`),
);
const value = fc.oneof(
  { weight: 5, arbitrary: hostile(30) },
  { weight: 2, arbitrary: fc.nat() },
  { weight: 1, arbitrary: fc.constantFrom('err', 'info', 'constructor', 'toString', 'warning"') },
  { weight: 1, arbitrary: fc.constantFrom(1e16, -3, 1.5, true, null) }, // not flat: JSON.parse path
);

interface Ev {
  id: string;
  time: string;
  offset: number;
  message: string;
  fields?: Record<string, unknown>;
  flags?: string[];
  source: string;
  path: string;
  host: string;
  parser: string;
  tags?: string[];
}

const event: fc.Arbitrary<Ev> = fc.record(
  {
    id: fc.oneof(
      fc.nat().map((n) => `65024.16638017.de351fd6:${n}`),
      hostile(12).map((s) => `x:${s}`),
    ),
    time: fc.oneof(
      fc.integer({ min: 0, max: 4102444800000 }).map((ms) => new Date(ms).toISOString()),
      // (a time with escapes: no encoder may copy it as it is)
      fc.constantFrom('2026-11-24T09:05:01Z', 'not a time', '', 'a "quoted" \\ time\t'),
      // before 1970 and after 2554: no OTLP time_unix_nano can hold them
      fc.constantFrom('1969-12-31T23:59:59.999Z', '2600-01-01T00:00:00.000Z'),
    ),
    offset: fc.nat(),
    message,
    fields: fc.dictionary(key, value, { maxKeys: 5 }),
    flags: fc.array(fc.constantFrom('escaped', 'truncated', 'bidi'), {
      minLength: 1,
      maxLength: 2,
    }),
    source: fc.oneof(fc.constant('auth'), hostile(6)),
    path: fc.constantFrom('/var/log/auth.log', '/var/log/"odd\\name].log'),
    host: fc.constantFrom('web-01', 'hôte"1'),
    parser: fc.constantFrom('syslog', 'plain', 'json'),
    tags: fc.array(hostile(5), { minLength: 1, maxLength: 2 }),
  },
  { requiredKeys: ['id', 'time', 'offset', 'message', 'source', 'path', 'host', 'parser'] },
);

/** The line as the pipeline writes it: its key order (pipeline.ts eventJson). */
function line(ev: Ev): string {
  const { id, time, offset, message, fields, flags, source, path, host, parser, tags } = ev;
  return JSON.stringify({
    id,
    time,
    offset,
    message,
    ...(fields !== undefined ? { fields } : {}),
    ...(flags !== undefined ? { flags } : {}),
    source,
    path,
    host,
    parser,
    ...(tags !== undefined ? { tags } : {}),
  });
}

/** The same event with its keys in another order: no in-place reader takes it (JSON.parse path). */
function reordered(ev: Ev): string {
  const { id, time, offset, message, ...rest } = ev;
  return JSON.stringify({ ...rest, message, offset, time, id });
}

function batch(lines: string[]): { batch: Batch; lines: BatchLines } {
  const body = Buffer.from(lines.map((l) => `${l}\n`).join(''));
  return {
    batch: { seq: 1, events: lines.length, bytes: body.length, body },
    lines: BatchLines.of(body),
  };
}

const base = { name: 'test', url: 'http://127.0.0.1/' };
const otlp = (encoding: 'protobuf' | 'json'): OtlpFormat =>
  new OtlpFormat(
    { ...base, encoding, serviceName: 'guard' } as unknown as OtlpSinkConfig,
    'web-01',
  );

function encode(
  f: OtlpFormat | LokiFormat,
  lines: string[],
  items: number[] | null = null,
): Buffer {
  const b = batch(lines);
  return Buffer.from(f.encode(b.batch, () => b.lines, items, new ByteWriter(64)));
}

describe('EventScan reads event lines in place', () => {
  test('every position it reports decodes to what JSON.parse reads (hostile content)', () => {
    const scan = new EventScan();
    fc.assert(
      fc.property(event, (ev) => {
        const body = Buffer.from(line(ev));
        const str = (s: number, e: number): unknown =>
          JSON.parse(`"${body.toString('utf8', s, e)}"`);
        if (!scan.scan(body, 0, body.length)) {
          // declined: only lines the JSON.parse path must take (escapes in the id or a key,
          // fields that are not flat strings and small integers, more than 32 of them)
          const flat = Object.entries(ev.fields ?? {}).every(
            ([k, v]) =>
              (typeof v === 'string' || (Number.isSafeInteger(v) && (v as number) >= 0)) &&
              JSON.stringify(k) === `"${k}"`,
          );
          assert.ok(!flat || JSON.stringify(ev.id) !== `"${ev.id}"`, `declined: ${line(ev)}`);
          return;
        }
        assert.equal(str(scan.idS, scan.idE), ev.id);
        assert.equal(str(scan.timeS, scan.timeE), ev.time);
        assert.equal(str(scan.msgS, scan.msgE), ev.message);
        assert.equal(scan.msgEscaped, body.subarray(scan.msgS, scan.msgE).includes(0x5c));
        const fields = ev.fields ?? {};
        assert.equal(scan.fieldCount, Object.keys(fields).length);
        for (let k = 0; k < scan.fieldCount; k++) {
          const o = k * 5;
          const name = str(scan.f[o]!, scan.f[o + 1]!) as string;
          const v =
            scan.f[o + 4] === 0
              ? Number(body.toString('latin1', scan.f[o + 2]!, scan.f[o + 3]!))
              : str(scan.f[o + 2]!, scan.f[o + 3]!);
          assert.equal(v, fields[name]);
        }
        assert.equal(
          JSON.parse(`{${body.toString('utf8', scan.tailS + 1, scan.tailE)}`).path,
          ev.path,
        );
      }),
      fuzz(15001, 400),
    );
  });
});

describe('OTLP encoders: the in-place path equals the JSON.parse path', () => {
  test('protobuf: byte for byte, and the official decoder reads the events back', () => {
    const fast = otlp('protobuf');
    const slow = otlp('protobuf');
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 6 }), (evs) => {
        const a = encode(fast, evs.map(line));
        assert.deepEqual(a, encode(slow, evs.map(reordered)));
        const req = Request.toObject(Request.decode(a), { longs: String, defaults: false });
        const records = req.resourceLogs[0].scopeLogs[0].logRecords as Record<string, any>[];
        assert.equal(records.length, evs.length);
        records.forEach((r, i) => {
          const ev = evs[i]!;
          // protobuf strings are UTF-8: a lone surrogate arrives as U+FFFD, as Buffer.from makes it
          const utf8 = (x: string): string => Buffer.from(x).toString('utf8');
          assert.equal(r.body?.stringValue ?? '', utf8(ev.message));
          const attrs = new Map(
            (r.attributes as { key: string; value: Record<string, unknown> }[]).map((kv) => [
              kv.key,
              kv.value,
            ]),
          );
          assert.equal(attrs.get('log.record.uid')?.stringValue, utf8(ev.id));
          assert.equal(attrs.get('log.file.path')?.stringValue, utf8(ev.path));
          const ms = Date.parse(ev.time);
          if (ms >= 0 && ms < 2 ** 64 / 1e6)
            assert.equal(r.timeUnixNano, String(BigInt(ms) * 1_000_000n));
          else assert.equal(r.timeUnixNano, undefined, 'no time it cannot hold');
        });
      }),
      fuzz(15002, 300),
    );
  });

  test('protobuf: the items of a request, in the order given, as their own records', () => {
    const f = otlp('protobuf');
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 3, maxLength: 6 }),
        fc.array(fc.nat(2), { minLength: 1, maxLength: 4 }),
        (evs, items) => {
          const lines = evs.map(line);
          assert.deepEqual(
            encode(f, lines, items),
            encode(
              otlp('protobuf'),
              items.map((i) => lines[i]!),
            ),
          );
        },
      ),
      fuzz(15003, 100),
    );
  });

  test('JSON: the same OTLP JSON object either way', () => {
    const fast = otlp('json');
    const slow = otlp('json');
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 6 }), (evs) => {
        const a = JSON.parse(encode(fast, evs.map(line)).toString('utf8'));
        const b = JSON.parse(encode(slow, evs.map(reordered)).toString('utf8'));
        assert.deepEqual(a, b);
      }),
      fuzz(15004, 300),
    );
  });

  test('record sizes around the varint steps (127/128 and 16383/16384 bytes) stay decodable', () => {
    const f = otlp('protobuf');
    for (let n = 0; n < 300; n++) {
      for (const size of [60 + n, 16_250 + n]) {
        const ev: Ev = {
          id: '1:2',
          time: '2026-11-24T09:05:01.123Z',
          offset: 2,
          message: 'm'.repeat(size),
          source: 'a',
          path: '/p',
          host: 'h',
          parser: 'plain',
        };
        const a = encode(f, [line(ev), line({ ...ev, message: 'x' })]);
        assert.deepEqual(
          a,
          encode(otlp('protobuf'), [reordered(ev), reordered({ ...ev, message: 'x' })]),
        );
        const req = Request.toObject(Request.decode(a), {});
        const recs = req.resourceLogs[0].scopeLogs[0].logRecords;
        assert.equal(recs[0].body.stringValue, ev.message);
        assert.equal(recs[1].body.stringValue, 'x');
      }
    }
  });
});

describe('Loki encoder', () => {
  test('the push body parses to each event line exactly, with its ns timestamp', () => {
    for (const labels of [
      ['host', 'source'],
      ['host', 'program', 'unit'],
    ] as const) {
      const f = new LokiFormat(
        { ...base, labels, tenant: null } as unknown as LokiSinkConfig,
        'web-01',
      );
      fc.assert(
        fc.property(fc.array(event, { minLength: 1, maxLength: 6 }), (evs) => {
          const lines = evs.map(line);
          const b = batch(lines);
          const groups = f.group(b.batch, () => b.lines) ?? [null];
          const seen = new Map<number, [string, string]>();
          for (const items of groups) {
            const out = Buffer.from(f.encode(b.batch, () => b.lines, items, new ByteWriter(64)));
            const push = JSON.parse(out.toString('utf8')) as {
              streams: { stream: Record<string, string>; values: [string, string][] }[];
            };
            const order = items ?? lines.map((_, i) => i);
            const values = push.streams.flatMap((s) => s.values);
            assert.equal(values.length, order.length);
            values.forEach((v, k) => seen.set(order[k]!, v));
          }
          evs.forEach((ev, i) => {
            const [ts, text] = seen.get(i)!;
            assert.equal(text, lines[i]);
            const ms = Date.parse(ev.time);
            const off = String(Number(/:(\d+)$/.exec(ev.id)?.[1] ?? 0) % 1_000_000).padStart(
              6,
              '0',
            );
            if (!Number.isNaN(ms)) assert.equal(ts, `${ms}${off}`);
            else assert.match(ts, new RegExp(`^\\d+${off}$`));
          });
        }),
        fuzz(15005, 200),
      );
    }
  });
});

describe('syslog framing', () => {
  test('octet counts and RELP frames of messages of any length, huge ones included; counts written in place by the encoder equal them', () => {
    const o = { format: 'rfc5424', facility: 1, severity: 5, sdId: 'guard@32473' } as const;
    const enc = new SyslogEncoder(o);
    const inPlace = new SyslogEncoder(o, true);
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 5 }),
        fc.nat(999_999_000),
        fc.nat(4),
        (evs, t0, cut) => {
          const body = Buffer.from(evs.map((e) => `${line(e)}\n`).join(''));
          const m = enc.encode(body);
          const msgs = Array.from(m.starts, (s, i) => m.buf.subarray(s, m.ends[i]));
          const counted = (xs: Buffer[]): Buffer =>
            Buffer.concat(xs.flatMap((x) => [Buffer.from(`${x.length} `), x]));
          assert.deepEqual(Buffer.from(frameStream(m, 'octet_counting')), counted(msgs));
          const items = msgs.map((_, i) => i);
          const txnrs = items.map((i) => t0 + i);
          const relp = Buffer.concat(
            msgs.flatMap((x, i) => [
              Buffer.from(`${txnrs[i]} syslog ${x.length} `),
              x,
              Buffer.from('\n'),
            ]),
          );
          assert.deepEqual(relpFrames(m, items, txnrs), relp);
          // the encoder that writes the counts: the same messages, and any run of frames a slice
          const p = inPlace.encode(body);
          assert.deepEqual(
            Array.from(p.starts, (s, i) => p.buf.subarray(s, p.ends[i])),
            msgs,
          );
          const from = Math.min(cut, msgs.length - 1);
          assert.deepEqual(
            Buffer.from(frameStream(p, 'octet_counting', from)),
            counted(msgs.slice(from)),
          );
          assert.deepEqual(Buffer.from(frameStream(p, 'lf')), Buffer.from(frameStream(m, 'lf')));
        },
      ),
      fuzz(15006, 150),
    );
  });

  test('counts of 1 to 6 digits written in place: messages moved down and up', () => {
    const enc = new SyslogEncoder(
      { format: 'rfc5424', facility: 1, severity: 5, sdId: 'guard@32473' },
      true,
    );
    const sizes = [0, 1, 5, 40, 99, 100, 500, 999, 1000, 5000, 99_999, 100_000, 250_000];
    const lines = sizes.map((n) =>
      line({
        id: '1:2',
        time: '2026-11-24T09:05:01.123Z',
        offset: 2,
        message: 'm'.repeat(n),
        source: 'a',
        path: '/p',
        host: 'h',
        parser: 'plain',
      }),
    );
    const m = enc.encode(Buffer.from(lines.map((l) => `${l}\n`).join('')));
    let p = 0;
    const stream = frameStream(m, 'octet_counting');
    for (let i = 0; i < lines.length; i++) {
      const sp = stream.indexOf(0x20, p);
      const len = Number(stream.toString('latin1', p, sp));
      assert.equal(len, m.ends[i]! - m.starts[i]!);
      assert.ok(
        stream
          .subarray(sp + 1, sp + 1 + len)
          .toString('latin1')
          .endsWith('m'.repeat(sizes[i]!)),
      );
      p = sp + 1 + len;
    }
    assert.equal(p, stream.length);
  });
});

describe('RELP answers read without strings for their numbers', () => {
  test('frames split at any chunk boundary read back as written; rspCode as the RFC form says', () => {
    const frame = fc.record({
      txnr: fc.integer({ min: 1, max: 999_999_999 }),
      command: fc.constantFrom('rsp', 'rs', 'rspx', 'serverclose', 'syslog', 'RSP'),
      data: fc.oneof(
        fc.constantFrom('200 OK', '500 error', '200', '20', '2000 x', '200\nx', 'OK 200', ''),
        fc.string({ unit: 'binary-ascii', maxLength: 30 }),
      ),
    });
    fc.assert(
      fc.property(fc.array(frame, { minLength: 1, maxLength: 8 }), fc.nat(), (frames, seed) => {
        const wire = Buffer.from(
          frames.map((f) => relpFrame(f.txnr, f.command, f.data)).join(''),
          'latin1',
        );
        const r = new RelpReader();
        const got: { txnr: number; command: string; data: string }[] = [];
        for (let at = 0, k = seed; at < wire.length; k = (k * 7 + 3) % 11) {
          const next = Math.min(wire.length, at + 1 + k);
          got.push(...r.push(wire.subarray(at, next)));
          at = next;
        }
        assert.deepEqual(
          got,
          frames.map((f) => ({ ...f })),
        ); // fast-check's records may lack a prototype
        for (const f of frames) {
          const m = /^(\d{3})(?:$|[ \n])/.exec(f.data);
          assert.equal(rspCode(f.data), m ? Number(m[1]) : -1, JSON.stringify(f.data));
        }
      }),
      fuzz(15007, 300),
    );
  });
});

describe('ByteWriter.bytes', () => {
  test('copies any piece of a batch body or a constant, at any length and alignment, every bit pattern kept', () => {
    // a body long enough to get a DataView of its own (8-byte moves), with every 16-bit pattern
    // in the top bytes of a word somewhere (NaNs, infinities), and short constants copied between
    const body = Buffer.alloc(65536 * 8 + 300);
    for (let i = 0; i < 65536; i++) {
      for (let k = 0; k < 6; k++) body[i * 8 + k] = (i * 31 + k * 97) & 0xff;
      body[i * 8 + 6] = i & 0xff;
      body[i * 8 + 7] = i >> 8;
    }
    const constants = [Buffer.from('{"index":{}}\n'), Buffer.from('x'.repeat(40)), Buffer.alloc(0)];
    for (let round = 0; round < 3; round++) {
      // the first round mostly unoptimised, later ones optimised
      const w = new ByteWriter(16);
      const expect: Buffer[] = [];
      let p = round;
      for (let j = 0; j < 20000; j++) {
        const len = j % 301;
        const from = p % (body.length - len);
        w.bytes(body, from, from + len);
        expect.push(body.subarray(from, from + len));
        const c = constants[j % 3]!;
        w.bytes(c);
        expect.push(c);
        p += 8 * 1031 + (j & 7);
      }
      assert.ok(Buffer.concat(expect).equals(w.written()), `round ${round}`);
    }
  });
});

describe('ByteWriter.decimal', () => {
  test('writes what String(n).padStart(width, "0") does: each power of ten and its neighbours, random numbers of every length, and what it hands to String', () => {
    const nums: number[] = [-1, 0.5, 1e15, 2 ** 53, Number.NaN];
    for (let d = 0; d <= 15; d++) nums.push(10 ** d - 1, 10 ** d, 10 ** d + 1);
    let seed = 7;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 100_000; i++)
      nums.push(Math.floor(random() * 10 ** Math.floor(random() * 16)));
    const w = new ByteWriter(16);
    for (const width of [1, 6, 9, 17]) {
      w.reset();
      let want = '';
      for (const n of nums) {
        w.decimal(n, width);
        w.byte(0x2c);
        want += `${String(n).padStart(width, '0')},`;
      }
      assert.equal(w.buf.toString('latin1', 0, w.pos), want, `width ${width}`);
    }
  });
});

describe('Lit and TailKey', () => {
  test('lit() writes a constant of any length, every byte value, between other writes', () => {
    const all = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff));
    for (let round = 0; round < 3; round++) {
      const w = new ByteWriter(16);
      const expect: Buffer[] = [];
      for (let n = 0; n <= 200; n++) {
        const c = new Lit(Buffer.from(all.subarray(n % 50, (n % 50) + n)));
        w.byte(0x7c);
        w.lit(c);
        expect.push(Buffer.from([0x7c]), c.buf);
      }
      w.lit(Lit.of('"timeUnixNano":"'));
      expect.push(Buffer.from('"timeUnixNano":"'));
      assert.ok(Buffer.concat(expect).equals(w.written()), `round ${round}`);
    }
  });

  test('TailKey.matches is Buffer#equals: one byte changed anywhere, lengths, other bodies', () => {
    const body = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 13 + 7) & 0xff));
    const other = Buffer.from(body);
    const k = new TailKey();
    assert.equal(k.matches(body, 0, 0), true, 'nothing kept: the empty tail');
    for (let n = 1; n <= 90; n++) {
      const s = 100 + n;
      k.set(body, s, s + n);
      assert.equal(k.matches(body, s, s + n), true);
      assert.equal(k.matches(other, s, s + n), true, 'the same bytes in another body');
      assert.equal(k.matches(body, s, s + n - 1), false, 'shorter');
      assert.equal(k.matches(body, s, s + n + 1), false, 'longer');
      for (let j = 0; j < n; j++) {
        other[s + j] = other[s + j]! ^ 0x80;
        assert.equal(k.matches(other, s, s + n), false, `byte ${j} of ${n} changed`);
        other[s + j] = other[s + j]! ^ 0x81; // the high bit back, the low one flipped
        assert.equal(k.matches(other, s, s + n), false, `low bit of byte ${j} of ${n}`);
        other[s + j] = other[s + j]! ^ 0x01;
      }
      assert.ok(k.bytes.equals(body.subarray(s, s + n)));
    }
  });
});
