// guard-agent end to end into Kafka (librdkafka's mock cluster, the real protocol; see
// test/lib/kafka-mock.ts), with the real helper as root and the agent as a throwaway user. Faults in
// combination: the agent killed with SIGKILL mid-batch and started again, then retriable produce
// errors injected by the cluster. Read back by a consumer and counted by line number: 0 missing,
// duplicates at most one batch; an event over max_message_bytes dead-lettered with the reason.
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sleep } from './lib/proc';
import {
  AgentProcess,
  readStatus,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';
import { collect, MockKafka } from './lib/kafka-mock';

const TOTAL = 20_000;
const BATCH = 500;
const BIG = 12_345;
const RUN = 'kafka';
const line = (i: number): string =>
  `2026-11-24T09:05:01.123456+00:00 testhost sshd[${1000 + (i % 50)}]: ${RUN} ${i === BIG ? `BIG ${'x'.repeat(3000)} ` : ''}line ${i}`;
const numberOf = (message: unknown): number => {
  const m = new RegExp(`${RUN} (?:BIG x+ )?line (\\d+)$`).exec(String(message));
  return m ? Number(m[1]) : -1;
};

describe('guard-agent into kafka: kill -9 mid-batch, injected retriable errors, an event too large', () => {
  let env: AgentEnv;
  let agent: AgentProcess | undefined;
  let mock: MockKafka;
  let textfile = '';

  before(async () => {
    mock = await MockKafka.start(1);
    await mock.command('topic guard-app 3');
    env = await setupAgentEnv({
      // Kafka alone: an http sink behind it would hold the checkpoint back, and a kill would then
      // resend to Kafka what that sink had not acknowledged (more than the batch in flight).
      siemSink: false,
      sources: (e) => {
        textfile = `${e.sb.mkdir('metrics', 0o755, { uid: e.agent.uid, gid: e.agent.gid })}/guard.prom`;
        return [
          '[source.app]',
          'type = file',
          `paths = ${e.logs}/*.log`,
          'parser = syslog',
          'start_at = beginning',
          '',
          '[sink.kafka]',
          'type = kafka',
          `brokers = ${mock.bootstrap}`,
          'topic = guard-${source}',
          'max_message_bytes = 2048',
          `batch_max_events = ${BATCH}`,
          'retry_initial_ms = 50',
          'retry_max_ms = 500',
          'timeout_ms = 5000',
          '',
          '[metrics]',
          `textfile = ${textfile}`,
          'interval_ms = 1000',
          '',
        ].join('\n');
      },
    });
  });
  after(async () => {
    await agent?.stop('SIGKILL');
    await mock.stop();
    await teardownAgentEnv(env);
  });

  it('0 missing, duplicates at most one batch, the event too large dead-lettered with the reason', async () => {
    const rx = await collect(mock.brokers, ['guard-app'], (v) =>
      String(numberOf((JSON.parse(v) as { message: string }).message)),
    );
    try {
      const path = join(env.logs, 'app.log');
      writeFileSync(path, '', { mode: 0o600 });
      agent = await AgentProcess.start(env);
      // Written while the agent runs, is killed and restarts (all at once, the agent shipped
      // every line before the kill and the restart had nothing to send).
      const writer = (async () => {
        for (let i = 0; i < TOTAL; i += 1000) {
          appendFileSync(
            path,
            Array.from({ length: 1000 }, (_, k) => line(i + k)).join('\n') + '\n',
          );
          await sleep(100);
        }
      })();
      await until(() => rx.counts.size >= 4000, 60_000, '4,000 events in Kafka');
      // Mid-stream, one batch in flight: SIGKILL (no checkpoint written on the way out). Whether
      // the broker had appended that batch is a race (the mock's rtt delays the append as well as
      // the answer, so it cannot pin the kill between them): duplicates are 0 or that batch.
      await agent.stop('SIGKILL');
      const atKill = rx.counts.size;
      // Retriable errors on the next produce requests: NOT_ENOUGH_REPLICAS, NOT_LEADER, a cut connection.
      await mock.command('errors 0 19 3');
      await mock.command('errors 0 6 2');
      await mock.command('errors 0 -195 1');
      agent = await AgentProcess.start(env);
      await writer;
      const missing = (): number[] => {
        const out: number[] = [];
        for (let i = 0; i < TOTAL; i++) if (i !== BIG && !rx.counts.has(String(i))) out.push(i);
        return out;
      };
      await until(() => missing().length === 0, 120_000, 'every line in Kafka').catch(
        (e: Error) => {
          throw new Error(`${e.message}: missing ${missing().length}\n${agent?.dump()}`);
        },
      );
      await new Promise((r) => setTimeout(r, 2000)); // late duplicates, if any, arrive
      let duplicates = 0;
      for (const [, c] of rx.counts) duplicates += c - 1;
      console.log(
        `# at the kill: ${atKill} events in Kafka; duplicates ${duplicates}; messages read ${rx.messages()}`,
      );
      assert.equal(missing().length, 0);
      assert.ok(duplicates <= BATCH, `duplicates ${duplicates} > one batch (${BATCH})`);
      assert.equal(rx.counts.has(String(BIG)), false, 'the event too large was not sent');

      const dir = join(env.state, 'dead-letter');
      await until(
        () => readdirSync(dir).some((n) => n.startsWith('kafka-') && n.endsWith('.json')),
        20_000,
        'the dead-letter file',
      );
      const meta = readdirSync(dir)
        .filter((n) => n.startsWith('kafka-') && n.endsWith('.json'))
        .map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')) as Record<string, any>);
      const lines = readdirSync(dir)
        .filter((n) => n.startsWith('kafka-') && n.endsWith('.ndjson'))
        .flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean))
        .map((l) => numberOf((JSON.parse(l) as { message: string }).message));
      assert.deepEqual([...new Set(lines)], [BIG]);
      assert.equal(meta[0]!.code, 'MESSAGE_TOO_LARGE');
      assert.match(meta[0]!.items[0].reason, /over max_message_bytes \(2048\)/);

      // The restarted agent had lines to ship, and the injected errors made it retry.
      const sink = ((await readStatus(env)).sinks as Record<string, any>[]).find(
        (k) => k.name === 'kafka',
      )!;
      assert.ok(sink.deliveredEvents > 0, `the restarted agent delivered ${sink.deliveredEvents}`);
      assert.ok(sink.retries > 0, 'the injected retriable errors were retried');

      // Its metrics say where the partition's acknowledged messages end (one file, one key: one
      // partition): every message the consumer read is below it, and the broker answers.
      const kafkaMetrics = () => {
        const text = existsSync(textfile) ? readFileSync(textfile, 'utf8') : '';
        const brokers = /^guard_sink_kafka_brokers_connected\{sink="kafka"\} (\d+)$/m.exec(text);
        const offsets = [
          ...text.matchAll(
            /^guard_sink_kafka_acked_offset\{sink="kafka",topic="guard-app",partition="(\d)"\} (\d+)$/gm,
          ),
        ];
        return {
          brokers: brokers ? Number(brokers[1]) : -1,
          partitions: offsets.length,
          messages: offsets.reduce((n, m) => n + Number(m[2]) + 1, 0),
        };
      };
      await until(() => kafkaMetrics().messages === rx.messages(), 10_000, 'the metrics').catch(
        (e: Error) => {
          throw new Error(
            `${e.message}: ${JSON.stringify(kafkaMetrics())}, not the ${rx.messages()} messages read`,
          );
        },
      );
      assert.equal(kafkaMetrics().brokers, 1);
      assert.equal(kafkaMetrics().partitions, 1);
    } finally {
      await rx.stop();
    }
  });
});
