// guard-agent end to end into Kafka (librdkafka's mock cluster, the real protocol; see
// test/lib/kafka-mock.ts), with the real helper as root and the agent as a throwaway user. Faults in
// combination: the agent killed with SIGKILL mid-batch and started again, then retriable produce
// errors injected by the cluster. Read back by a consumer and counted by line number: 0 missing,
// duplicates at most one batch; an event over max_message_bytes dead-lettered with the reason.
import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  AgentProcess,
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

  before(async () => {
    mock = await MockKafka.start(1);
    await mock.command('topic guard-app 3');
    env = await setupAgentEnv({
      sources: (e) =>
        [
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
        ].join('\n'),
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
      for (let i = 0; i < TOTAL; i += 1000)
        appendFileSync(path, Array.from({ length: 1000 }, (_, k) => line(i + k)).join('\n') + '\n');
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
    } finally {
      await rx.stop();
    }
  });
});
