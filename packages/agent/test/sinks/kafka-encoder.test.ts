// guard's Kafka encoders checked against independent ones: CRC-32C against RFC 3720's vectors and
// KafkaJS's implementation, record batches decoded by KafkaJS's own record batch decoder (gzip and
// none, idempotent and not), the partitioner against KafkaJS's Java-compatible murmur2, and the
// request/response helpers against hand-built bytes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import {
  crc32c,
  crc32cCombine,
  encodeRecordBatch,
  readVarint,
  varintSize,
  writeVarint,
} from '../../src/sinks/kafka/record-batch';
import {
  metadataResponse,
  murmur2,
  partitionOf,
  produceRequest,
  produceResponse,
  requestFrame,
  Writer,
} from '../../src/sinks/kafka/protocol';
import { saslExchange, scramAttributes, hmac, sha } from '../../src/sinks/kafka/sasl';
import { pbkdf2Sync } from 'node:crypto';

/* eslint-disable @typescript-eslint/no-require-imports */
const KafkaDecoder = require('kafkajs/src/protocol/decoder') as new (b: Buffer) => unknown;
const decodeRecordBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder') as (
  d: unknown,
) => Promise<{
  firstOffset: string;
  producerId: string;
  producerEpoch: number;
  firstSequence: number;
  lastOffsetDelta: number;
  records: { key: Buffer | null; value: Buffer; offset: string; timestamp: string }[];
}>;
const kafkajsCrc32c = require('kafkajs/src/protocol/recordBatch/crc32C') as (b: Buffer) => number;
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2') as (
  k: Buffer,
) => number;

function lines(values: string[]) {
  const body = Buffer.from(values.map((v) => `${v}\n`).join(''));
  const starts = new Int32Array(values.length);
  const ends = new Int32Array(values.length);
  let o = 0;
  values.forEach((v, i) => {
    starts[i] = o;
    ends[i] = o + Buffer.byteLength(v);
    o = ends[i]! + 1;
  });
  return { body, starts, ends };
}

describe('CRC-32C', () => {
  // RFC 3720 appendix B.4: 32 bytes of zeros, of ones, incrementing, decrementing.
  test('RFC 3720 B.4 vectors', () => {
    assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa);
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
    assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
    assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))), 0x113fdb5c);
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  });
  test('equals KafkaJS CRC-32C at every length up to 300 bytes and every alignment', () => {
    // 8 bytes a step through an Int32Array from 64 bytes on: both paths, every alignment.
    const data = Buffer.from(Array.from({ length: 310 }, (_, i) => (i * 151 + 7) & 0xff));
    for (let s = 0; s < 8; s++)
      for (let n = 0; n <= 300; n++)
        assert.equal(
          crc32c(data, s, s + n),
          kafkajsCrc32c(data.subarray(s, s + n)) >>> 0,
          `${s}+${n}`,
        );
  });

  test('combined from the CRCs of two parts, as of the whole', () => {
    const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 97 + 3) & 0xff));
    for (const cut of [0, 1, 40, 61, 500, 999, 1000])
      assert.equal(
        crc32cCombine(crc32c(data, 0, cut), crc32c(data, cut), data.length - cut),
        crc32c(data),
        `cut at ${cut}`,
      );
  });
});

describe('varints', () => {
  test('zigzag round trip and sizes', () => {
    const buf = Buffer.alloc(10);
    for (const v of [0, -1, 1, 63, -64, 64, 300, -300, 1 << 20, 2 ** 31 - 1, -(2 ** 31)]) {
      const end = writeVarint(buf, 0, v);
      assert.equal(end, varintSize(v), `size of ${v}`);
      assert.deepEqual(readVarint(buf, 0), [v, end]);
    }
    assert.deepEqual([...buf.subarray(0, writeVarint(buf, 0, 150))], [0xac, 0x02]); // zigzag 300
    assert.throws(() => readVarint(Buffer.from([0x80, 0x80]), 0), /past the end/);
  });
});

describe('record batch v2', () => {
  const values = [
    '{"id":"a:0","message":"short"}',
    `{"id":"a:1","message":"${'é'.repeat(200)}"}`, // multi-byte, a 2-byte length varint
    '{"id":"a:2","message":""}',
  ];
  const keys = [Buffer.from('web-1/auth'), Buffer.from(''), Buffer.from('k'.repeat(130))];

  for (const compression of ['none', 'gzip'] as const)
    for (const idempotent of [false, true])
      test(`KafkaJS decodes what we encode (${compression}, idempotent ${idempotent})`, async () => {
        const src = { ...lines(values), keys, items: [0, 1, 2] };
        const b = await encodeRecordBatch(src, {
          timestamp: 1_764_000_000_123,
          compression,
          producerId: idempotent ? 4242n : -1n,
          producerEpoch: idempotent ? 3 : -1,
          baseSequence: idempotent ? 17 : -1,
        });
        assert.equal(b.readInt32BE(8), b.length - 12, 'batchLength');
        assert.equal(b.readInt8(16), 2, 'magic');
        assert.equal(b.readUInt32BE(17), kafkajsCrc32c(b.subarray(21)) >>> 0, 'crc');
        assert.equal(b.readInt16BE(21), compression === 'gzip' ? 1 : 0, 'attributes');
        if (compression === 'gzip') assert.ok(gunzipSync(b.subarray(61)).length > 0);
        const d = await decodeRecordBatch(new KafkaDecoder(b));
        assert.equal(d.producerId, idempotent ? '4242' : '-1');
        assert.equal(d.producerEpoch, idempotent ? 3 : -1);
        assert.equal(d.firstSequence, idempotent ? 17 : -1);
        assert.equal(d.lastOffsetDelta, 2);
        assert.equal(d.records.length, 3);
        d.records.forEach((r, i) => {
          assert.equal(r.value.toString(), values[i]);
          assert.equal((r.key ?? Buffer.alloc(0)).toString(), keys[i]!.toString());
          assert.equal(r.offset, String(i));
          assert.equal(r.timestamp, '1764000000123');
        });
      });

  test('a subset of the lines, in the order given', async () => {
    const src = { ...lines(values), keys, items: [2, 0] };
    const h = {
      timestamp: 1,
      compression: 'none' as const,
      producerId: -1n,
      producerEpoch: -1,
      baseSequence: -1,
    };
    const d = await decodeRecordBatch(new KafkaDecoder(await encodeRecordBatch(src, h)));
    assert.deepEqual(
      d.records.map((r) => r.value.toString()),
      [values[2], values[0]],
    );
  });
});

describe('records moved in place (copyWithin): every kind of subset decodes to its lines', () => {
  // 200 lines of varied lengths (1- and 2-byte length varints), empty lines between some (gaps in
  // the span), keys that repeat and change. Subsets: all, a run, every third (partitions), reversed.
  const vals = Array.from({ length: 200 }, (_, i) =>
    JSON.stringify({ id: `h:${i}`, message: 'm'.repeat((i * 37) % 190) }),
  );
  const text = vals.map((v, i) => (i % 17 === 0 ? `${v}\n\n` : `${v}\n`)).join('');
  const body = Buffer.from(text);
  const starts = new Int32Array(vals.length);
  const ends = new Int32Array(vals.length);
  let o = 0;
  vals.forEach((v, i) => {
    starts[i] = o;
    ends[i] = o + v.length;
    o = ends[i]! + (i % 17 === 0 ? 2 : 1);
  });
  const k1 = Buffer.from('host-a/var/log/auth.log');
  const k2 = Buffer.from('b');
  const keys = vals.map((_, i) => ((i >> 4) % 3 === 2 ? k2 : k1));
  const all = vals.map((_, i) => i);
  const subsets: [string, number[]][] = [
    ['all', all],
    ['a run', all.slice(50, 120)],
    ['every third', all.filter((i) => i % 3 === 1)],
    ['reversed', [...all].reverse()],
    ['one', [7]],
  ];
  for (const [what, items] of subsets)
    for (const compression of ['none', 'gzip'] as const)
      test(`${what}, ${compression}`, async () => {
        const b = await encodeRecordBatch(
          { body, starts, ends, keys, items },
          { timestamp: 5, compression, producerId: 9n, producerEpoch: 0, baseSequence: 3 },
        );
        assert.equal(b.readUInt32BE(17), kafkajsCrc32c(b.subarray(21)) >>> 0, 'crc');
        const d = await decodeRecordBatch(new KafkaDecoder(b));
        assert.deepEqual(
          d.records.map((r) => r.value.toString()),
          items.map((i) => vals[i]),
        );
        assert.deepEqual(
          d.records.map((r) => (r.key ?? Buffer.alloc(0)).toString()),
          items.map((i) => keys[i]!.toString()),
        );
      });
});

describe('partitioner', () => {
  test('murmur2 equals KafkaJS (Java-compatible) for keys of every tail length', () => {
    for (let n = 0; n < 40; n++) {
      const key = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff));
      assert.equal(murmur2(key), kafkajsMurmur2(key), `length ${n}`);
    }
    // Java's Utils.murmur2("21") is -973932308 (a vector from Kafka's own tests)
    assert.equal(murmur2(Buffer.from('21')), -973932308);
    assert.equal(partitionOf(Buffer.from('web-1/auth'), 1), 0);
  });
});

describe('protocol', () => {
  test('request frame: size, header v1, body', () => {
    const f = Buffer.concat(requestFrame(3, 4, 7, 'guard', Buffer.from([1, 2])));
    assert.deepEqual(
      [...f],
      [0, 0, 0, 17, 0, 3, 0, 4, 0, 0, 0, 7, 0, 5, ...Buffer.from('guard'), 1, 2],
    );
  });

  test('produce v3 request carries the batches as given; response decoded', () => {
    const batch = Buffer.from('BATCH');
    const req = Buffer.concat(
      produceRequest(-1, 5000, new Map([['t', [{ partition: 2, batch }]]])),
    );
    const inParts = Buffer.concat(
      produceRequest(
        -1,
        5000,
        new Map([['t', [{ partition: 2, batch: [batch.subarray(0, 2), batch.subarray(2)] }]]]),
      ),
    );
    assert.deepEqual(inParts, req, 'a batch given in parts: the same bytes');
    const want = new Writer()
      .string(null)
      .int16(-1)
      .int32(5000)
      .int32(1)
      .string('t')
      .int32(1)
      .int32(2)
      .bytes(batch)
      .done();
    assert.deepEqual(req, want);
    const resp = new Writer()
      .int32(1)
      .string('t')
      .int32(1)
      .int32(2)
      .int16(46)
      .int64(99n)
      .int64(-1n)
      .int32(0)
      .done();
    assert.deepEqual(produceResponse(resp), [
      { topic: 't', partition: 2, error: 46, baseOffset: 99n },
    ]);
    assert.throws(() => produceResponse(resp.subarray(0, 10)), /ends early/);
  });

  test('metadata v4 and v1 responses', () => {
    const w = new Writer().int32(0).int32(1).int32(5).string('b5').int32(9092).string(null);
    w.string('cluster').int32(5).int32(1).int16(0).string('t').int8(0).int32(2);
    for (const p of [0, 1])
      w.int16(0)
        .int32(p)
        .int32(p === 0 ? 5 : -1)
        .int32(0)
        .int32(0);
    const v1 = new Writer().int32(1).int32(5).string('b5').int32(9092).string(null);
    v1.int32(5).int32(1).int16(0).string('t').int8(0).int32(2);
    for (const p of [0, 1])
      v1.int16(0)
        .int32(p)
        .int32(p === 0 ? 5 : -1)
        .int32(0)
        .int32(0);
    assert.deepEqual(metadataResponse(1, v1.done()), metadataResponse(4, w.done()));
    assert.deepEqual(metadataResponse(4, w.done()), {
      brokers: [{ nodeId: 5, host: 'b5', port: 9092 }],
      topics: [
        {
          error: 0,
          name: 't',
          partitions: [
            { error: 0, partition: 0, leader: 5 },
            { error: 0, partition: 1, leader: -1 },
          ],
        },
      ],
    });
  });
});

describe('SCRAM client (RFC 5802 / RFC 7677)', () => {
  // A server computed here from the RFCs' formulas: the proof must verify, the server's
  // signature must be checked, and a server that does not know the password is refused.
  for (const hash of ['sha256', 'sha512'] as const)
    test(`SCRAM-${hash.toUpperCase()} exchange`, () => {
      const salt = Buffer.from('saltsalt');
      const iterations = 4096;
      const run = (serverPassword: string) => {
        const ex = saslExchange(
          hash === 'sha256' ? 'scram-sha-256' : 'scram-sha-512',
          'u=,x',
          'pencil',
        );
        const first = ex.first().toString();
        assert.match(first, /^n,,n=u=3D=2Cx,r=/);
        const cnonce = scramAttributes(first.slice(3)).get('r')!;
        const serverFirst = `r=${cnonce}SRV,s=${salt.toString('base64')},i=${iterations}`;
        const final = ex.next(Buffer.from(serverFirst))!.toString();
        const a = scramAttributes(final);
        assert.equal(a.get('c'), 'biws');
        const salted = pbkdf2Sync(
          serverPassword,
          salt,
          iterations,
          hash === 'sha256' ? 32 : 64,
          hash,
        );
        const storedKey = sha(hash, hmac(hash, salted, 'Client Key'));
        const auth = `${first.slice(3)},${serverFirst},${final.slice(0, final.indexOf(',p='))}`;
        const sig = hmac(hash, storedKey, auth);
        const proof = Buffer.from(a.get('p')!, 'base64');
        const clientKey = Buffer.from(proof.map((b, i) => b ^ sig[i]!));
        const verified = sha(hash, clientKey).equals(storedKey);
        const serverSig = hmac(hash, hmac(hash, salted, 'Server Key'), auth).toString('base64');
        return { verified, finish: () => ex.next(Buffer.from(`v=${serverSig}`)) };
      };
      const good = run('pencil');
      assert.equal(good.verified, true);
      assert.equal(good.finish(), null);
      const bad = run('other');
      assert.equal(bad.verified, false);
      assert.throws(() => bad.finish(), /did not prove/);
    });
});
