// The kafka sink in process against librdkafka's mock cluster (the real Kafka protocol, from
// Debian's librdkafka-dev; test/fixtures/kafka-mock.c), faults injected by the cluster itself:
// retriable produce errors, every broker down for 20 s, non-retriable errors, an event over the
// size limit. Every run reads the topics back with a consumer and counts events by id.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import type { KafkaSinkConfig } from '../packages/agent/src/config/types';
import type { Batch } from '../packages/agent/src/event';
import { KafkaSink } from '../packages/agent/src/sinks/kafka/kafka-sink';
import { makeClientCert, makeTestCa } from './lib/https-receiver';
import { consumeIds, MockKafka, TopicsReader } from './lib/kafka-mock';
import { KafkaFront } from './lib/kafka-front';

const root = mkdtempSync(join(tmpdir(), 'guard-kafka-'));
after(() => rmSync(root, { recursive: true, force: true }));
const logger = pino({ level: 'silent' });
const signal = new AbortController().signal;

/** An event line as the pipeline writes it (pipeline.ts eventJson). */
function eventLine(run: string, i: number, source: string, message?: string): string {
  const time = new Date(Date.UTC(2026, 10, 24, 9, 5, 1, i % 1000)).toISOString();
  return (
    `{"id":"${run}:${i}","time":"${time}","offset":${i * 100},` +
    `"message":${JSON.stringify(message ?? `${run} line ${i} "quoted"`)},"fields":{"program":"sshd","pid":${i}},` +
    `"source":"${source}","path":"/var/log/${source}.log","host":"web-1","parser":"syslog"}`
  );
}

let seq = 0;
function batch(lines: string[]): Batch {
  const body = Buffer.from(lines.map((l) => `${l}\n`).join(''));
  return { seq: ++seq, events: lines.length, bytes: body.length, body };
}
/** n events of run `run` from `from`, alternating between two sources (two topics). */
function events(run: string, from: number, n: number): string[] {
  return Array.from({ length: n }, (_, k) =>
    eventLine(run, from + k, (from + k) % 2 ? 'auth' : 'app'),
  );
}

function config(brokers: string[], over: Partial<KafkaSinkConfig> = {}): KafkaSinkConfig {
  return {
    name: 'kafka',
    type: 'kafka',
    brokers,
    topic: 'guard-${source}',
    key: '${host}/${source}',
    compression: 'gzip',
    tls: false,
    caFile: null,
    clientCertFile: null,
    clientKeyFile: null,
    sasl: 'none',
    saslUsername: null,
    saslPasswordFile: null,
    idempotence: true,
    maxMessageBytes: 1_000_000,
    timeoutMs: 5000,
    retryInitialMs: 50,
    retryMaxMs: 1000,
    batch: { maxEvents: 1000, maxBytes: 1 << 20, maxWaitMs: 100 },
    ...over,
  };
}

function deadLetters(state: string): { ids: string[]; meta: Record<string, any>[] } {
  const d = join(state, 'dead-letter');
  const ids: string[] = [];
  const meta: Record<string, any>[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(d).sort();
  } catch {
    return { ids, meta };
  }
  for (const n of names) {
    const text = readFileSync(join(d, n), 'utf8');
    if (n.endsWith('.ndjson'))
      for (const l of text.split('\n').filter(Boolean))
        ids.push((JSON.parse(l) as { id: string }).id);
    else meta.push(JSON.parse(text) as Record<string, any>);
  }
  return { ids, meta };
}

/** Missing and duplicated ids of `run` 0..n-1 (minus `except`) in what the consumer read. */
function tally(
  counts: Map<string, number>,
  run: string,
  n: number,
  except: Set<number> = new Set(),
) {
  let missing = 0;
  let duplicates = 0;
  for (let i = 0; i < n; i++) {
    if (except.has(i)) continue;
    const c = counts.get(`${run}:${i}`) ?? 0;
    if (c === 0) missing++;
    else duplicates += c - 1;
  }
  const foreign = [...counts.keys()].filter((id) => !id.startsWith(`${run}:`)).length;
  return { missing, duplicates, foreign };
}

describe('kafka sink against the librdkafka mock cluster', () => {
  let mock: MockKafka;
  let reader: TopicsReader;
  before(async () => {
    mock = await MockKafka.start(1);
    for (const [t, n] of [
      ['guard-app', 3],
      ['guard-auth', 3],
      ['guard-retry', 2],
      ['guard-big', 1],
      ['guard-ahead-app', 3],
      ['guard-ahead-auth', 2],
    ] as const)
      await mock.command(`topic ${t} ${n}`);
    reader = await TopicsReader.start(mock.brokers, [
      'guard-app',
      'guard-auth',
      'guard-retry',
      'guard-big',
      'guard-ahead-app',
      'guard-ahead-auth',
    ]);
  });
  after(async () => {
    await reader.stop();
    await mock.stop();
  });

  test('every event arrives exactly once, topic and key from the event, offsets per partition', async () => {
    const state = mkdtempSync(join(root, 'state-'));
    const sink = new KafkaSink(config(mock.brokers), { stateDir: state, logger });
    const n = 10_000;
    for (let from = 0; from < n; from += 500)
      assert.equal(await sink.send(batch(events('once', from, 500)), signal), 'delivered');
    const st = sink.status();
    assert.equal(st.deliveredEvents, n);
    assert.deepEqual(st.brokersConnected, mock.brokers);
    // The last acknowledged offset of each partition, summed over partitions (+1 each): all events.
    const offsets = Object.entries(st.lastAckedOffsets!);
    assert.ok(offsets.length >= 2, JSON.stringify(offsets));
    assert.equal(
      offsets.reduce((s, [, o]) => s + Number(o) + 1, 0),
      n,
    );
    await sink.close();
    const { counts, keys } = await reader.read(['guard-app', 'guard-auth'], n);
    assert.deepEqual(tally(counts, 'once', n), { missing: 0, duplicates: 0, foreign: 0 });
    assert.equal(keys.get('once:2'), 'guard-app web-1/app');
    assert.equal(keys.get('once:3'), 'guard-auth web-1/auth');
    assert.deepEqual(deadLetters(state).ids, []);
  });

  test('batches prepared ahead as the pipeline does (two while one is in flight, the first before the topics are known), no compression: exactly once', async () => {
    const state = mkdtempSync(join(root, 'state-'));
    const sink = new KafkaSink(
      config(mock.brokers, { topic: 'guard-ahead-${source}', compression: 'none' }),
      { stateDir: state, logger },
    );
    const n = 10_000;
    const batches = Array.from({ length: n / 500 }, (_, k) => batch(events('ahead', k * 500, 500)));
    sink.prepare(batches[0]!); // no layout yet: routed only, partitioned at send()
    for (let k = 0; k < batches.length; k++) {
      const sending = sink.send(batches[k]!, signal);
      for (const b of batches.slice(k + 1, k + 3)) sink.prepare(b); // again for one prepared: no-op
      assert.equal(await sending, 'delivered');
    }
    assert.equal(sink.status().deliveredEvents, n);
    await sink.close();
    const { counts } = await reader.read(['guard-ahead-app', 'guard-ahead-auth'], n);
    assert.deepEqual(tally(counts, 'ahead', n), { missing: 0, duplicates: 0, foreign: 0 });
  });

  test('injected retriable errors (NOT_ENOUGH_REPLICAS, NOT_LEADER, REQUEST_TIMED_OUT, a cut connection) are retried: 0 missing', async () => {
    const state = mkdtempSync(join(root, 'state-'));
    const sink = new KafkaSink(config(mock.brokers, { topic: 'guard-retry' }), {
      stateDir: state,
      logger,
    });
    const n = 4000;
    assert.equal(await sink.send(batch(events('retry', 0, 500)), signal), 'delivered');
    // 19 NOT_ENOUGH_REPLICAS, 6 NOT_LEADER_OR_FOLLOWER, 7 REQUEST_TIMED_OUT, -195 a cut connection
    await mock.command('errors 0 19 3');
    await mock.command('errors 0 6 2');
    await mock.command('errors 0 7 2');
    await mock.command('errors 0 -195 1');
    for (let from = 500; from < n; from += 500)
      assert.equal(await sink.send(batch(events('retry', from, 500)), signal), 'delivered');
    const st = sink.status();
    assert.ok(st.retries >= 8, `retries ${st.retries}`);
    assert.equal(st.deadLetteredEvents, 0);
    await sink.close();
    const { counts } = await reader.read(['guard-retry'], n);
    const t = tally(counts, 'retry', n);
    assert.equal(t.missing, 0);
    assert.equal(t.foreign, 0);
    assert.deepEqual(deadLetters(state).ids, []);
  });

  test('an event over max_message_bytes and a broker refusal are dead-lettered with the reason; MESSAGE_TOO_LARGE splits the request', async () => {
    const state = mkdtempSync(join(root, 'state-'));
    const sink = new KafkaSink(
      config(mock.brokers, { topic: 'guard-big', maxMessageBytes: 4096 }),
      {
        stateDir: state,
        logger,
      },
    );
    // 1. Event 7 is 10,000 bytes: never sent, dead-lettered; the 99 others delivered.
    const lines = events('big', 0, 100);
    lines[7] = eventLine('big', 7, 'app', 'x'.repeat(10_000));
    assert.equal(await sink.send(batch(lines), signal), 'dead_lettered');
    let dl = deadLetters(state);
    assert.deepEqual(dl.ids, ['big:7']);
    assert.equal(dl.meta[0]!.code, 'MESSAGE_TOO_LARGE');
    assert.match(
      dl.meta[0]!.items[0].reason,
      /MESSAGE_TOO_LARGE: the message is \d+ bytes, over max_message_bytes \(4096\)/,
    );
    // 2. The broker answers MESSAGE_TOO_LARGE (10) once: the request is split, both halves land.
    await mock.command('errors 0 10 1');
    assert.equal(await sink.send(batch(events('big', 100, 100)), signal), 'delivered');
    // 3. The broker refuses with TOPIC_AUTHORIZATION_FAILED (29): the request's events are
    //    dead-lettered with the broker's error, not retried.
    await mock.command('errors 0 29 1');
    assert.equal(await sink.send(batch(events('big', 200, 50)), signal), 'dead_lettered');
    dl = deadLetters(state);
    assert.equal(dl.ids.length, 51);
    const auth = dl.meta.find((m) => m.code === 'TOPIC_AUTHORIZATION_FAILED')!;
    assert.equal(auth.events, 50);
    assert.match(
      auth.items[0].reason,
      /TOPIC_AUTHORIZATION_FAILED: Not authorized to access topics/,
    );
    const st = sink.status();
    assert.equal(st.deadLetteredEvents, 51);
    assert.equal(st.deliveredEvents, 99 + 100);
    await sink.close();
    const { counts } = await reader.read(['guard-big'], 199);
    const t = tally(counts, 'big', 200, new Set([7]));
    assert.deepEqual(t, { missing: 0, duplicates: 0, foreign: 0 });
    assert.equal(counts.get('big:7'), undefined);
    for (let i = 200; i < 250; i++) assert.equal(counts.get(`big:${i}`), undefined);
  });
});

describe('kafka sink, the whole cluster down for 20 s', () => {
  // A mock of its own: the other tests' shared consumer does not outlive a 20 s outage.
  let mock: MockKafka;
  before(async () => {
    mock = await MockKafka.start(1);
  });
  after(async () => {
    await mock.stop();
  });

  test('every broker down for 20 s, then back: the sink waits and retries, 0 missing', async () => {
    await mock.command('topic guard-down 2');
    const state = mkdtempSync(join(root, 'state-'));
    const sink = new KafkaSink(
      config(mock.brokers, { topic: 'guard-down', timeoutMs: 2000, retryMaxMs: 2000 }),
      { stateDir: state, logger },
    );
    const n = 3000;
    assert.equal(await sink.send(batch(events('down', 0, 1000)), signal), 'delivered');
    await mock.command('down -1');
    const downAt = Date.now();
    const pending = (async () => {
      for (let from = 1000; from < n; from += 1000)
        assert.equal(await sink.send(batch(events('down', from, 1000)), signal), 'delivered');
    })();
    await new Promise((r) => setTimeout(r, 20_000));
    assert.ok(sink.status().retries > 0, 'retrying while the cluster is down');
    assert.notEqual(sink.status().lastError, null);
    await mock.command('up -1');
    await pending;
    assert.ok(Date.now() - downAt >= 20_000);
    await sink.close();
    const { counts } = await consumeIds(mock.brokers, ['guard-down'], n);
    const t = tally(counts, 'down', n);
    assert.equal(t.missing, 0);
    assert.ok(t.duplicates <= 1000, `duplicates ${t.duplicates} (at most the batch in flight)`);
    assert.deepEqual(deadLetters(state).ids, []);
  });
});

describe('idempotent producer: an acknowledgement lost after the cluster appended the batch', () => {
  // The front (test/lib/kafka-front.ts) passes the Produce request on, lets the mock cluster
  // append it, and cuts the connection instead of passing the acknowledgement back: the sink sees
  // a lost connection and sends the same batch again. The mock checks sequence numbers only for
  // transactional producers, so the front does the broker's duplicate check (KIP-98) on the
  // batches' producer id and sequence numbers as they arrive on the wire.
  let mock: MockKafka;
  let front: KafkaFront;
  let reader: TopicsReader;
  before(async () => {
    mock = await MockKafka.start(1);
    for (const i of [true, false]) await mock.command(`topic guard-idem-${i} 2`);
    reader = await TopicsReader.start(mock.brokers, ['guard-idem-true', 'guard-idem-false']);
    front = await KafkaFront.start({ upstream: mock.bootstrap });
  });
  after(async () => {
    await reader.stop();
    await front.stop();
    await mock.stop();
  });

  for (const idempotence of [true, false])
    test(`idempotence ${idempotence ? 'on: the resent batch is not written twice' : 'off: the resent batch is written twice (exactly one batch)'}`, async () => {
      const topic = `guard-idem-${idempotence}`;
      const run = `idem${idempotence}`;
      const state = mkdtempSync(join(root, 'state-'));
      const sink = new KafkaSink(config([front.address], { topic, idempotence }), {
        stateDir: state,
        logger,
      });
      const n = 1500;
      assert.equal(await sink.send(batch(events(run, 0, 500)), signal), 'delivered');
      const dropped = front.dropped;
      const deduplicated = front.deduplicated;
      front.dropProduceAck();
      assert.equal(await sink.send(batch(events(run, 500, 500)), signal), 'delivered');
      assert.equal(front.dropped, dropped + 1, 'one acknowledgement withheld');
      assert.equal(await sink.send(batch(events(run, 1000, 500)), signal), 'delivered');
      const st = sink.status();
      assert.ok(st.retries >= 1, `retries ${st.retries}`);
      await sink.close();
      const { counts } = await reader.read([topic], n + (idempotence ? 0 : 500));
      const t = tally(counts, run, n);
      assert.equal(t.missing, 0);
      assert.equal(t.foreign, 0);
      // Without idempotence the batch of 500 whose acknowledgement was lost is there twice (its
      // record batches were all resent); with it, once.
      assert.equal(t.duplicates, idempotence ? 0 : 500);
      // the resend carried the first try's producer id and sequence numbers
      if (idempotence) assert.ok(front.deduplicated > deduplicated, 'the resend was a duplicate');
      else assert.equal(front.deduplicated, deduplicated);
    });
});

describe('kafka sink over TLS with SASL (PLAIN, SCRAM-SHA-256/512), through a TLS + SASL front', () => {
  let mock: MockKafka;
  let front: KafkaFront;
  let dir: string;
  let reader: TopicsReader;
  let ca: ReturnType<typeof makeTestCa>;
  before(async () => {
    mock = await MockKafka.start(1);
    await mock.command('topic guard-sasl 2');
    reader = await TopicsReader.start(mock.brokers, ['guard-sasl']);
    dir = mkdtempSync(join(root, 'tls-'));
    ca = makeTestCa(dir);
    makeClientCert(dir, ca, 'guard-client');
    front = await KafkaFront.start({
      upstream: mock.bootstrap,
      tls: {
        cert: readFileSync(ca.serverCert),
        key: readFileSync(ca.serverKey),
        ca: readFileSync(ca.caCert),
        requestCert: true,
        rejectUnauthorized: true,
      },
      sasl: { users: { alice: 'correct horse' } },
    });
  });
  after(async () => {
    await reader.stop();
    await front.stop();
    await mock.stop();
  });

  function saslSink(sasl: KafkaSinkConfig['sasl'], password: string, caFile = ca.caCert) {
    const pw = join(dir, `pw-${Math.random().toString(36).slice(2)}`);
    writeFileSync(pw, `${password}\n`, { mode: 0o600 });
    const state = mkdtempSync(join(root, 'state-'));
    const sink = new KafkaSink(
      config([front.address], {
        topic: 'guard-sasl',
        tls: true,
        caFile,
        clientCertFile: join(dir, 'client.pem'),
        clientKeyFile: join(dir, 'client.key'),
        sasl,
        saslUsername: 'alice',
        saslPasswordFile: pw,
        timeoutMs: 2000,
      }),
      { stateDir: state, logger },
    );
    return { sink, pw };
  }

  test('good credentials deliver with each mechanism; wrong ones: a clear error, nothing lost, delivery resumes once the password file is fixed; a server outside ca_file is refused', async () => {
    let from = 0;
    for (const mech of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
      const { sink } = saslSink(mech, 'correct horse');
      assert.equal(await sink.send(batch(events('sasl', from, 200)), signal), 'delivered');
      assert.equal(sink.status().lastError, null);
      await sink.close();
      from += 200;
    }
    assert.deepEqual(front.auths, [
      'ok PLAIN alice',
      'ok SCRAM-SHA-256 alice',
      'ok SCRAM-SHA-512 alice',
    ]);

    // Wrong password: the batch stays in flight (never acknowledged, never dead-lettered), the
    // status says why; the corrected file is read at the next connection.
    const { sink, pw } = saslSink('scram-sha-256', 'wrong horse');
    const pending = sink.send(batch(events('sasl', from, 200)), signal);
    const t0 = Date.now();
    while (!/SASL_AUTHENTICATION_FAILED/.test(String(sink.status().lastError))) {
      assert.ok(
        Date.now() - t0 < 15_000,
        `no SASL error in the status: ${sink.status().lastError}`,
      );
      await new Promise((r) => setTimeout(r, 50));
    }
    const st = sink.status();
    assert.match(
      String(st.lastError),
      /SASL_AUTHENTICATION_FAILED: 127\.0\.0\.1:\d+ refused SASL SCRAM-SHA-256 for user "alice": Authentication failed during authentication due to invalid credentials/,
    );
    assert.equal(st.deliveredEvents, 0);
    assert.equal(st.deadLetteredEvents, 0);
    assert.ok(front.auths.includes('refused SCRAM-SHA-256 alice'));
    writeFileSync(pw, 'correct horse\n');
    assert.equal(await pending, 'delivered');
    assert.equal(sink.status().deliveredEvents, 200);
    await sink.close();
    from += 200;

    // A server certificate outside ca_file: no session, a certificate error in the status.
    const other = makeTestCa(mkdtempSync(join(root, 'tls-other-')));
    const bad = saslSink('plain', 'correct horse', other.caCert).sink;
    const ac = new AbortController();
    const sent = bad.send(batch(events('sasl-x', 0, 10)), ac.signal).catch((e: Error) => e);
    const t1 = Date.now();
    while (bad.status().retries === 0 && Date.now() - t1 < 10_000)
      await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    const r = await sent;
    assert.ok(r instanceof Error && r.name === 'AbortError', String(r));
    assert.match(String(bad.status().lastError), /certificate/i);
    await bad.close();

    const { counts } = await reader.read(['guard-sasl'], from);
    assert.deepEqual(tally(counts, 'sasl', from), { missing: 0, duplicates: 0, foreign: 0 });
  });
});
