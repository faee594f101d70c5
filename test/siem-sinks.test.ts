// The HTTP-family SIEM sinks (elasticsearch, splunk_hec, otlp) in process, against receivers
// written from each destination's spec (test/lib/receivers), faults included: whole-request
// 5xx/429/503 with Retry-After, 413 at the receiver's limit, per-event refusals, a receiver
// restart. Every run counts, by event id, what is missing and what is duplicated, and checks that
// the dead-letter files hold exactly the refused events.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import type {
  ElasticsearchSinkConfig,
  LokiSinkConfig,
  HttpCommonConfig,
  OtlpSinkConfig,
  SplunkHecSinkConfig,
} from '../packages/agent/src/config/types';
import type { Batch } from '../packages/agent/src/event';
import { ElasticsearchSink } from '../packages/agent/src/sinks/elasticsearch/elasticsearch-sink';
import { LokiSink } from '../packages/agent/src/sinks/loki/loki-sink';
import { OtlpSink } from '../packages/agent/src/sinks/otlp/otlp-sink';
import { SplunkHecSink } from '../packages/agent/src/sinks/splunk_hec/splunk-hec-sink';
import { ElasticsearchReceiver } from './lib/receivers/elasticsearch';
import { LokiReceiver } from './lib/receivers/loki';
import { OtlpReceiver } from './lib/receivers/otlp';
import { SplunkHecReceiver } from './lib/receivers/splunk-hec';

const root = mkdtempSync(join(tmpdir(), 'guard-siem-'));
after(() => rmSync(root, { recursive: true, force: true }));
const logger = pino({ level: 'silent' });
const HOST = 'web-1';
const SEVERITIES = ['err', 'warning', 'info', 'notice'];

/** An event line as the pipeline writes it (pipeline.ts eventJson). */
function eventLine(run: string, i: number): string {
  const time = new Date(Date.UTC(2026, 10, 24, 9, 5, 1, i % 1000)).toISOString();
  const fields = { hostname: HOST, program: 'sshd', pid: 1000 + i, severity: SEVERITIES[i % 4] };
  return (
    `{"id":"2049.77.abcdef01:${i * 100}","time":"${time}","offset":${i * 100},` +
    `"message":${JSON.stringify(`${run} line ${i} "quoted" \\ back`)},"fields":${JSON.stringify(fields)},` +
    `"source":"app","path":"/var/log/app.log","host":"${HOST}","parser":"syslog"}`
  );
}
const idOf = (i: number): string => `2049.77.abcdef01:${i * 100}`;

let seq = 0;
function batch(run: string, from: number, n: number): Batch {
  const body = Buffer.from(
    Array.from({ length: n }, (_, k) => eventLine(run, from + k) + '\n').join(''),
  );
  return { seq: ++seq, events: n, bytes: body.length, body };
}

function common(name: string, url: string, over: Partial<HttpCommonConfig> = {}) {
  return {
    name,
    url,
    tokenFile: null,
    auth: 'none' as const,
    authHeader: null,
    caFile: null,
    clientCertFile: null,
    clientKeyFile: null,
    compression: 'gzip' as const,
    timeoutMs: 5000,
    retryInitialMs: 10,
    retryMaxMs: 50,
    batch: { maxEvents: 1000, maxBytes: 1 << 20, maxWaitMs: 100 },
    ...over,
  };
}

function stateDir(): string {
  return mkdtempSync(join(root, 'state-'));
}

/** The dead-letter files of a state dir: each .ndjson's events' ids, and each .json's items. */
function deadLetters(state: string): { ids: string[]; meta: Record<string, any>[] } {
  const d = join(state, 'dead-letter');
  let names: string[] = [];
  try {
    names = readdirSync(d).sort();
  } catch {
    return { ids: [], meta: [] };
  }
  const ids: string[] = [];
  const meta: Record<string, any>[] = [];
  for (const n of names) {
    const text = readFileSync(join(d, n), 'utf8');
    if (n.endsWith('.ndjson'))
      for (const l of text.split('\n').filter(Boolean))
        ids.push((JSON.parse(l) as { id: string }).id);
    else meta.push(JSON.parse(text) as Record<string, any>);
  }
  return { ids, meta };
}

const signal = new AbortController().signal;
const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, k) => from + k);

describe('elasticsearch sink against a Bulk API receiver', () => {
  const es = (url: string, state: string, over: Partial<ElasticsearchSinkConfig> = {}) =>
    new ElasticsearchSink(
      {
        ...common('es', url),
        type: 'elasticsearch',
        index: 'guard-%Y.%m.%d',
        pipeline: null,
        ...over,
      },
      { stateDir: state, logger, hostname: HOST },
    );

  test('create with _id = host:event id into the dated index; a resend is 409 = delivered, no second document', async () => {
    const rx = await new ElasticsearchReceiver().start();
    try {
      const state = stateDir();
      const b = batch('es1', 0, 200);
      const sink = es(rx.url, state);
      assert.equal(await sink.send(b, signal), 'delivered');
      const docs = rx.indices.get('guard-2026.11.24');
      assert.equal(docs?.size, 200);
      assert.equal(docs?.get(`${HOST}:${idOf(7)}`)?.message, 'es1 line 7 "quoted" \\ back');
      // A crash after sending and before the checkpoint: the next start sends the batch again.
      const again = es(rx.url, state);
      assert.equal(await again.send(batch('es1', 0, 200), signal), 'delivered');
      assert.equal(rx.conflicts, 200, 'every resent event answered 409');
      assert.equal(rx.docs().size, 200, 'no duplicate document');
      assert.equal(again.status().deliveredEvents, 200);
      assert.deepEqual(deadLetters(state).ids, []);
      await sink.close();
      await again.close();
    } finally {
      await rx.stop();
    }
  });

  test('per-item 429 retried (only those), per-item 400 dead-lettered exactly, with the reason; 0 missing', async () => {
    const rx = await new ElasticsearchReceiver().start();
    try {
      const state = stateDir();
      const bad = new Set([3, 50, 51, 199].map((i) => `es2 line ${i} "quoted" \\ back`));
      rx.itemFault = (doc, attempt) => {
        const m = String(doc.message);
        if (bad.has(m)) return 400;
        const i = Number(/line (\d+)/.exec(m)![1]);
        return i % 7 === 0 && attempt <= 2 ? 429 : null;
      };
      const sink = es(rx.url, state);
      assert.equal(await sink.send(batch('es2', 0, 200), signal), 'dead_lettered');
      const got = rx.docs();
      const missing = range(0, 200).filter(
        (i) => ![3, 50, 51, 199].includes(i) && !got.has(`${HOST}:${idOf(i)}`),
      );
      assert.deepEqual(missing, [], 'every event not refused is in the index');
      assert.equal(got.size, 196);
      const dl = deadLetters(state);
      assert.deepEqual(
        dl.ids,
        [3, 50, 51, 199].map(idOf),
        'the dead letter holds exactly the refused events',
      );
      assert.equal(dl.meta.length, 1);
      assert.deepEqual(
        dl.meta[0]!.items.map((x: { status: number }) => x.status),
        [400, 400, 400, 400],
      );
      assert.match(dl.meta[0]!.items[0].reason, /^400 document_parsing_exception: failed to parse/);
      const st = sink.status();
      assert.equal(st.deliveredEvents, 196);
      assert.equal(st.deadLetteredEvents, 4);
      assert.ok(st.retries >= 2, `429 items were retried (${st.retries} retries)`);
      await sink.close();
    } finally {
      await rx.stop();
    }
  });

  test('413 at http.max_content_length: halves until they fit; one event too large alone is dead-lettered', async () => {
    const rx = await new ElasticsearchReceiver().start();
    try {
      const state = stateDir();
      rx.maxContentLength = 20_000; // ~45 events a request
      const lines = batch('es3', 0, 300);
      const huge = `{"id":"huge:1","time":"2026-11-24T09:05:01.000Z","offset":1,"message":"${'x'.repeat(30_000)}","source":"app","path":"/p","host":"${HOST}","parser":"plain"}\n`;
      const body = Buffer.concat([lines.body, Buffer.from(huge)]);
      const sink = es(rx.url, state, { compression: 'none' });
      const out = await sink.send({ seq: ++seq, events: 301, bytes: body.length, body }, signal);
      assert.equal(out, 'dead_lettered');
      assert.equal(rx.docs().size, 300, 'every event that fits delivered');
      assert.ok(rx.rejected413 > 3, `${rx.rejected413} answers 413`);
      assert.deepEqual(deadLetters(state).ids, ['huge:1']);
      await sink.close();
    } finally {
      await rx.stop();
    }
  });

  test('503 with Retry-After, 500 and 429: the whole request again; then delivered once', async () => {
    const rx = await new ElasticsearchReceiver().start();
    try {
      const state = stateDir();
      rx.failNext.push({ status: 503, retryAfter: '1' }, { status: 500 }, { status: 429 });
      const sink = es(rx.url, state);
      const t0 = performance.now();
      assert.equal(await sink.send(batch('es4', 0, 50), signal), 'delivered');
      assert.ok(performance.now() - t0 >= 950, 'Retry-After: 1 was waited out');
      assert.equal(rx.docs().size, 50);
      assert.equal(rx.conflicts, 0);
      assert.equal(sink.status().retries, 3);
      await sink.close();
    } finally {
      await rx.stop();
    }
  });

  test('batches prepared ahead go at once (three in flight), each resolves as its own; an early one that fails retries only once its send() came', async () => {
    const rx = await new ElasticsearchReceiver().start();
    try {
      const state = stateDir();
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      rx.hold = (r) => (r.body.includes('ov-a') ? held : Promise.resolve());
      const sink = es(rx.url, state);
      const [a, b, c] = [batch('ov-a', 0, 100), batch('ov-b', 100, 100), batch('ov-c', 200, 100)];
      const sentA = sink.send(a, signal);
      sink.prepare(b);
      sink.prepare(c);
      const until = async (ok: () => boolean): Promise<void> => {
        for (let t = 0; !ok(); t++) {
          assert.ok(t < 200, 'timed out');
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      // b and c are indexed while a is still held by the receiver (a's body may arrive after
      // theirs: three connections, so the count waits for it too).
      await until(() => rx.docs().size === 200 && rx.server.requests === 3);
      assert.equal(rx.server.requests, 3);
      assert.ok(!rx.docs().has(`${HOST}:${idOf(0)}`), 'a is still held');
      release();
      assert.equal(await sentA, 'delivered');
      assert.equal(await sink.send(b, signal), 'delivered');
      assert.equal(await sink.send(c, signal), 'delivered');
      assert.equal(rx.docs().size, 300);
      assert.equal(rx.conflicts, 0, 'nothing sent twice');
      assert.equal(sink.status().deliveredEvents, 300);

      // A batch started ahead that gets a 503 waits for its send() before it backs off and retries:
      // during an outage only the oldest batch retries, as with one batch in flight.
      let releaseD!: () => void;
      const heldD = new Promise<void>((r) => (releaseD = r));
      rx.hold = (r) => (r.body.includes('ov-d') ? heldD : Promise.resolve());
      const [d, e] = [batch('ov-d', 300, 50), batch('ov-e', 350, 50)];
      const sentD = sink.send(d, signal);
      rx.failNext.push({ status: 503 });
      sink.prepare(e);
      await until(() => rx.server.requests === 5);
      await new Promise((r) => setTimeout(r, 300)); // retry_initial_ms is 10: no retry came meanwhile
      assert.equal(rx.server.requests, 5, 'e was not retried before its turn');
      assert.equal(sink.status().retries, 0);
      releaseD();
      assert.equal(await sentD, 'delivered');
      assert.equal(await sink.send(e, signal), 'delivered');
      assert.equal(rx.server.requests, 6, 'e retried once, after its send()');
      assert.equal(rx.docs().size, 400);
      assert.equal(sink.status().retries, 1);
      assert.deepEqual(deadLetters(state).ids, []);
      await sink.close();
    } finally {
      await rx.stop();
    }
  });

  test('max_in_flight 1 sends one batch at a time; 2 starts one ahead', async () => {
    for (const maxInFlight of [1, 2]) {
      const rx = await new ElasticsearchReceiver().start();
      try {
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        rx.hold = (r) => (r.body.includes(`mif${maxInFlight}-a`) ? held : Promise.resolve());
        const sink = es(rx.url, stateDir(), { maxInFlight });
        const run = `mif${maxInFlight}`;
        const [a, b, c] = [
          batch(`${run}-a`, 0, 10),
          batch(`${run}-b`, 10, 10),
          batch(`${run}-c`, 20, 10),
        ];
        const sentA = sink.send(a, signal);
        sink.prepare(b);
        sink.prepare(c);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(rx.server.requests, maxInFlight, `max_in_flight ${maxInFlight}`);
        release();
        assert.equal(await sentA, 'delivered');
        assert.equal(await sink.send(b, signal), 'delivered');
        assert.equal(await sink.send(c, signal), 'delivered');
        assert.equal(rx.docs().size, 30);
        assert.equal(rx.server.requests, 3, 'each batch sent once');
        await sink.close();
      } finally {
        await rx.stop();
      }
    }
  });

  test('a 400 for the whole request (malformed bulk) dead-letters the batch, never retried', async () => {
    const rx = await new ElasticsearchReceiver().start();
    try {
      const state = stateDir();
      rx.failNext.push({ status: 400 });
      const sink = es(rx.url, state);
      assert.equal(await sink.send(batch('es5', 0, 10), signal), 'dead_lettered');
      assert.equal(rx.server.requests, 1);
      assert.deepEqual(deadLetters(state).ids, range(0, 10).map(idOf));
      await sink.close();
    } finally {
      await rx.stop();
    }
  });
});

describe('splunk_hec sink against an HEC receiver', () => {
  const hec = (rx: SplunkHecReceiver, state: string, over: Partial<SplunkHecSinkConfig> = {}) => {
    const tokenFile = join(state, 'hec.token');
    writeFileSync(tokenFile, `${rx.token}\n`, { mode: 0o600 });
    return new SplunkHecSink(
      {
        ...common('hec', rx.url, { auth: 'splunk', tokenFile }),
        type: 'splunk_hec',
        acknowledgements: true,
        ackTimeoutMs: 2000,
        sourcetype: 'linux_secure',
        index: 'main',
        ...over,
      },
      { stateDir: state, logger, hostname: HOST },
    );
  };

  test('indexer acknowledgement: delivered only once /ack says true (false first); envelope fields', async () => {
    const rx = await new SplunkHecReceiver().start();
    try {
      rx.ackAfterPolls = 2;
      const state = stateDir();
      const sink = hec(rx, state);
      assert.equal(await sink.send(batch('hec1', 0, 100), signal), 'delivered');
      assert.equal(rx.indexed.length, 100, 'indexed before send() resolved');
      assert.ok(rx.ackQueries >= 3, `${rx.ackQueries} ack polls (false, false, true)`);
      const e = rx.indexed[5]!;
      assert.equal(e.host, HOST);
      assert.equal(e.source, '/var/log/app.log');
      assert.equal(e.sourcetype, 'linux_secure');
      assert.equal(e.index, 'main');
      assert.equal(e.time, Date.UTC(2026, 10, 24, 9, 5, 1, 5) / 1000);
      assert.equal((e.event as { message: string }).message, 'hec1 line 5 "quoted" \\ back');
      assert.deepEqual(e.fields, { guard_id: idOf(5) });
      assert.equal(await sink.send(batch('hec1', 100, 10), signal), 'delivered');
      assert.deepEqual(rx.counts(), { distinct: 110, duplicates: 0 });
      await sink.close();
    } finally {
      await rx.stop();
    }
  });

  test('Splunk restarts before indexing: the ack never comes, the request is sent again after ack_timeout_ms; 0 missing', async () => {
    const rx = await new SplunkHecReceiver().start();
    try {
      rx.ackAfterPolls = 1_000_000; // nothing gets indexed until the restart
      const state = stateDir();
      const sink = hec(rx, state, { ackTimeoutMs: 1500 });
      const sent = sink.send(batch('hec2', 0, 100), signal);
      while (rx.ackQueries < 2) await new Promise((r) => setTimeout(r, 20));
      await rx.restart();
      rx.ackAfterPolls = 1;
      assert.equal(await sent, 'delivered');
      assert.deepEqual(rx.counts(), { distinct: 100, duplicates: 0 });
      assert.match(String(sink.status().lastError), /GUARD_HEC_ACK_TIMEOUT/);
      await sink.close();
    } finally {
      await rx.stop();
    }
  });

  test('an invalid event (400 code 6): that one dead-lettered, the rest sent again; 0 missing, duplicates counted', async () => {
    const rx = await new SplunkHecReceiver().start();
    try {
      const state = stateDir();
      rx.invalid = (ev) => (ev.event as { message: string }).message.startsWith('hec3 line 30 ');
      const sink = hec(rx, state);
      assert.equal(await sink.send(batch('hec3', 0, 60), signal), 'dead_lettered');
      const ids = new Set(rx.indexed.map((e) => (e.fields as { guard_id: string }).guard_id));
      assert.deepEqual(
        range(0, 60).filter((i) => i !== 30 && !ids.has(idOf(i))),
        [],
        '0 missing',
      );
      // HEC kept the 30 before the invalid one; guard could not know and sent them again.
      assert.deepEqual(rx.counts(), { distinct: 59, duplicates: 30 });
      assert.deepEqual(deadLetters(state).ids, [idOf(30)]);
      await sink.close();
    } finally {
      await rx.stop();
    }
  });

  test('503 "Server is busy" and 413: retried and split; a missing channel is a retried configuration error', async () => {
    const rx = await new SplunkHecReceiver().start();
    try {
      const state = stateDir();
      rx.failNext.push({ status: 503, code: 9, text: 'Server is busy' });
      rx.maxContentLength = 30_000;
      const sink = hec(rx, state);
      assert.equal(await sink.send(batch('hec4', 0, 200), signal), 'delivered');
      assert.deepEqual(rx.counts(), { distinct: 200, duplicates: 0 });
      assert.deepEqual(deadLetters(state).ids, []);
      await sink.close();
    } finally {
      await rx.stop();
    }
  });

  test('plain mode (acknowledgements = false, a token without acks): delivered on the 200', async () => {
    const rx = await new SplunkHecReceiver().start();
    try {
      rx.acks = false;
      const state = stateDir();
      const sink = hec(rx, state, { acknowledgements: false });
      assert.equal(await sink.send(batch('hec5', 0, 20), signal), 'delivered');
      assert.equal(rx.ackQueries, 0);
      assert.deepEqual(rx.counts(), { distinct: 20, duplicates: 0 });
      await sink.close();
    } finally {
      await rx.stop();
    }
  });
});

describe('otlp sink against an OTLP/HTTP receiver decoding with the official generated code', () => {
  const otlp = (url: string, state: string, over: Partial<OtlpSinkConfig> = {}) =>
    new OtlpSink(
      { ...common('otlp', url), type: 'otlp', encoding: 'protobuf', serviceName: 'guard', ...over },
      { stateDir: state, logger, hostname: HOST },
    );

  for (const encoding of ['protobuf', 'json'] as const) {
    test(`${encoding}: records, severity, attributes and resource decode as sent`, async () => {
      const rx = await new OtlpReceiver().start();
      try {
        const sink = otlp(rx.url, stateDir(), { encoding });
        assert.equal(await sink.send(batch('ot1', 0, 100), signal), 'delivered');
        assert.equal(rx.records.length, 100);
        assert.equal(
          rx.contentTypes[0],
          encoding === 'json' ? 'application/json' : 'application/x-protobuf',
        );
        const r = rx.records[1]!;
        assert.equal(r.body, 'ot1 line 1 "quoted" \\ back');
        assert.equal(r.timeUnixNano, String(BigInt(Date.UTC(2026, 10, 24, 9, 5, 1, 1)) * 1000000n));
        assert.equal(r.severityText, 'warning');
        assert.equal(r.severityNumber, 13);
        assert.equal(r.attributes['log.record.uid'], idOf(1));
        assert.equal(r.attributes['log.file.path'], '/var/log/app.log');
        assert.equal(r.attributes.program, 'sshd');
        assert.equal(r.attributes.pid, 1001);
        assert.deepEqual(r.resource, { 'service.name': 'guard', 'host.name': HOST });
        assert.equal(r.scope, 'guard');
        await sink.close();
      } finally {
        await rx.stop();
      }
    });
  }

  test('partial_success: not retried; the request dead-lettered with the count and message', async () => {
    const rx = await new OtlpReceiver().start();
    try {
      const state = stateDir();
      rx.reject = (r) => r.body.startsWith('ot2 line 7 ');
      const sink = otlp(rx.url, state);
      assert.equal(await sink.send(batch('ot2', 0, 20), signal), 'dead_lettered');
      assert.equal(rx.server.requests, 1, 'never sent again');
      assert.equal(rx.records.length, 19);
      const dl = deadLetters(state);
      assert.deepEqual(dl.ids, range(0, 20).map(idOf));
      assert.match(
        dl.meta[0]!.items[0].reason,
        /rejected 1 of the 20 log records .*1 rejected by policy/,
      );
      await sink.close();
    } finally {
      await rx.stop();
    }
  });

  test('429/502/503/504 with Retry-After and 500 retried; 413 split; 400 never retried', async () => {
    const rx = await new OtlpReceiver().start();
    try {
      const state = stateDir();
      for (const status of [429, 502, 503, 504]) rx.failNext.push({ status, retryAfter: '0' });
      rx.failNext.push({ status: 500 });
      rx.maxBody = 8000;
      const sink = otlp(rx.url, state);
      assert.equal(await sink.send(batch('ot3', 0, 200), signal), 'delivered');
      assert.deepEqual(rx.counts(), { distinct: 200, duplicates: 0 });
      rx.failNext.push({ status: 400 });
      const before = rx.server.requests;
      assert.equal(await sink.send(batch('ot4', 0, 5), signal), 'dead_lettered');
      assert.equal(rx.server.requests - before, 1, '400 not retried');
      assert.deepEqual(deadLetters(state).ids, range(0, 5).map(idOf));
      await sink.close();
    } finally {
      await rx.stop();
    }
  });
});

describe('loki sink against a push API receiver', () => {
  const loki = (url: string, state: string, over: Partial<LokiSinkConfig> = {}) =>
    new LokiSink(
      { ...common('loki', url), type: 'loki', labels: ['host', 'source'], tenant: null, ...over },
      { stateDir: state, logger, hostname: HOST },
    );
  /** A batch whose events `old` are two hours older than the others (Loki's window is one). */
  function mixed(
    run: string,
    from: number,
    n: number,
    old: Set<number>,
    program = () => 'sshd',
  ): Batch {
    const lines = range(from, n).map((i) => {
      const ev = JSON.parse(eventLine(run, i)) as Record<string, any>;
      if (old.has(i)) ev.time = new Date(Date.UTC(2026, 10, 24, 7, 5, 1, i % 1000)).toISOString();
      ev.fields.program = program();
      return `${JSON.stringify(ev)}\n`;
    });
    const body = Buffer.from(lines.join(''));
    return { seq: ++seq, events: n, bytes: body.length, body };
  }
  const lineNumbers = (rx: LokiReceiver): number[] =>
    rx
      .lines()
      .map((l) => Number(/ line (\d+) /.exec((JSON.parse(l) as { message: string }).message)![1]));

  test('204; one stream per label set; ns timestamps as strings; a resend after a crash is dropped by Loki as a duplicate', async () => {
    const rx = await new LokiReceiver().start();
    try {
      const state = stateDir();
      const sink = loki(rx.url, state);
      assert.equal(await sink.send(batch('lk1', 0, 100), signal), 'delivered');
      assert.deepEqual([...rx.streams.keys()], [`{host="${HOST}", source="app"}`]);
      const first = rx.streams.values().next().value![0]!;
      assert.equal(first.ts, BigInt(Date.UTC(2026, 10, 24, 9, 5, 1, 0)) * 1000000n); // offset 0
      assert.equal((JSON.parse(first.line) as { id: string }).id, idOf(0));
      const again = loki(rx.url, state);
      assert.equal(await again.send(batch('lk1', 0, 100), signal), 'delivered');
      assert.equal(rx.lines().length, 100, 'no duplicate');
      assert.equal(rx.duplicatesDropped, 100);
      await sink.close();
      await again.close();
    } finally {
      await rx.stop();
    }
  });

  test('partial 400 ("total ignored: 3 out of 30"): exactly the ignored dead-lettered with the reason, the rest kept and never sent again', async () => {
    const rx = await new LokiReceiver().start();
    try {
      const state = stateDir();
      const sink = loki(rx.url, state);
      assert.equal(await sink.send(batch('lk2', 0, 10), signal), 'delivered');
      const old = new Set([15, 22, 30]);
      assert.equal(await sink.send(mixed('lk2', 10, 30, old), signal), 'dead_lettered');
      assert.equal(rx.server.requests, 2, 'the accepted entries were not sent again');
      assert.deepEqual(
        lineNumbers(rx).sort((a, b) => a - b),
        range(0, 40).filter((i) => !old.has(i)),
      );
      const dl = deadLetters(state);
      assert.deepEqual(dl.ids, [...old].map(idOf));
      assert.match(dl.meta[0]!.items[0].reason, /^Loki ignored it: entry too far behind/);
      await sink.close();
    } finally {
      await rx.stop();
    }
  });

  test('more ignored than Loki lists (max_returned_errors 10): the unlisted dead-lettered too, nothing sent again, 0 missing, 0 duplicates', async () => {
    const rx = await new LokiReceiver().start();
    try {
      const state = stateDir();
      const sink = loki(rx.url, state);
      assert.equal(await sink.send(batch('lk3', 0, 10), signal), 'delivered');
      const old = new Set(range(10, 30).filter((i) => i % 2 === 0)); // 15 ignored, 15 accepted
      assert.equal(await sink.send(mixed('lk3', 10, 30, old), signal), 'dead_lettered');
      assert.equal(rx.server.requests, 2);
      const kept = new Set(lineNumbers(rx));
      const dead = new Set(deadLetters(state).ids);
      assert.equal(kept.size, rx.lines().length, '0 duplicates in Loki');
      const missing = range(0, 40).filter((i) => !kept.has(i) && !dead.has(idOf(i)));
      assert.deepEqual(missing, [], 'every event in Loki or in the dead letter');
      for (const i of old) assert.ok(dead.has(idOf(i)), `ignored ${i} dead-lettered`);
      await sink.close();
    } finally {
      await rx.stop();
    }
  });

  test('429, 500 and 260 (ingestion blocked) retried; 413 split; labels from the parser fields, one request per stream', async () => {
    const rx = await new LokiReceiver().start();
    try {
      const state = stateDir();
      rx.failNext.push({ status: 429, retryAfter: '0' }, { status: 500 }, { status: 260 });
      rx.maxBody = 12_000;
      const sink = loki(rx.url, state);
      assert.equal(await sink.send(batch('lk4', 0, 100), signal), 'delivered');
      assert.equal(rx.lines().length, 100);
      const byProgram = loki(rx.url, state, { labels: ['host', 'program'] });
      let k = 0;
      const requests = rx.server.requests;
      rx.maxBody = 64 << 20;
      assert.equal(
        await byProgram.send(
          mixed('lk5', 0, 20, new Set(), () => (k++ % 2 ? 'cron' : 'sshd')),
          signal,
        ),
        'delivered',
      );
      assert.equal(rx.server.requests - requests, 2, 'one request per stream');
      assert.ok(rx.streams.has(`{host="${HOST}", program="cron"}`));
      assert.equal(rx.lines().length, 120);
      assert.deepEqual(deadLetters(state).ids, []);
      await sink.close();
      await byProgram.close();
    } finally {
      await rx.stop();
    }
  });
});
