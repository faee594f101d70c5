// guard-agent end to end into four SIEM sinks at once — elasticsearch, splunk_hec with indexer
// acknowledgement, otlp, loki — each against its spec-faithful receiver (test/lib/receivers), with the
// real helper as root and the agent as a throwaway user. Faults in combination: the agent killed
// with SIGKILL mid-stream and started again, receiver 503/429 (with Retry-After) and 413, per-event
// 429 and 400 from Elasticsearch, malformed-event 400s from HEC, HEC restarted (its acks lost).
// Counted by line number: 0 missing in every receiver, Elasticsearch 0 duplicates (create + _id),
// Loki 0 duplicates stored (it drops an identical timestamp + line), the others' duplicates
// reported; the dead-letter files hold exactly the refused lines.
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
import { ElasticsearchReceiver } from './lib/receivers/elasticsearch';
import { LokiReceiver } from './lib/receivers/loki';
import { OtlpReceiver } from './lib/receivers/otlp';
import { SplunkHecReceiver } from './lib/receivers/splunk-hec';

const TOTAL = 20_000;
const POISON = new Set([15_001, 17_500, 19_999]);
const RUN = 'siem';
const line = (i: number): string =>
  `2026-11-24T09:05:01.123456+00:00 testhost sshd[${1000 + (i % 50)}]: ${RUN} ${POISON.has(i) ? `POISON ${'x'.repeat(2000)} ` : ''}line ${i}`;
const numberOf = (message: unknown): number => {
  const m = new RegExp(`${RUN} (?:POISON x+ )?line (\\d+)$`).exec(String(message));
  return m ? Number(m[1]) : -1;
};

/** Line numbers seen, and how many arrived more than once. */
function tally(messages: unknown[]): { seen: Set<number>; duplicates: number } {
  const seen = new Set<number>();
  let total = 0;
  for (const m of messages) {
    const n = numberOf(m);
    if (n < 0) continue;
    total++;
    seen.add(n);
  }
  return { seen, duplicates: total - seen.size };
}

function missing(seen: Set<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < TOTAL; i++) if (!POISON.has(i) && !seen.has(i)) out.push(i);
  return out;
}

/** The line numbers in a sink's dead-letter files (with repeats), and the reasons given. */
function deadLettered(state: string, sink: string): { lines: number[]; reasons: string[] } {
  const dir = join(state, 'dead-letter');
  const lines: number[] = [];
  const reasons: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.startsWith(`${sink}-`));
  } catch {
    return { lines, reasons };
  }
  for (const n of names) {
    const text = readFileSync(join(dir, n), 'utf8');
    if (n.endsWith('.ndjson'))
      for (const l of text.split('\n').filter(Boolean))
        lines.push(numberOf((JSON.parse(l) as { message: string }).message));
    else
      for (const item of (JSON.parse(text) as { items?: { reason: string }[] }).items ?? [])
        reasons.push(item.reason);
  }
  return { lines: lines.sort((a, b) => a - b), reasons };
}

describe('guard-agent into elasticsearch, splunk_hec, otlp and loki: kill -9, receiver faults, per-event refusals', () => {
  let env: AgentEnv;
  let agent: AgentProcess | undefined;
  const es = new ElasticsearchReceiver();
  const hec = new SplunkHecReceiver();
  const otlp = new OtlpReceiver();
  const loki = new LokiReceiver();

  before(async () => {
    await es.start();
    await hec.start();
    await otlp.start();
    await loki.start();
    env = await setupAgentEnv({
      sources: (e) => {
        const token = e.sb.file('etc/hec.token', `${hec.token}\n`, 0o640, {
          uid: 0,
          gid: e.agent.gid,
        });
        const common = [
          'batch_max_events = 500',
          'retry_initial_ms = 50',
          'retry_max_ms = 500',
          'timeout_ms = 5000',
        ];
        return [
          '[source.app]',
          'type = file',
          `paths = ${e.logs}/*.log`,
          'parser = syslog',
          'start_at = beginning',
          '',
          '[sink.es]',
          'type = elasticsearch',
          `url = ${es.url}`,
          'index = guard-test-%Y.%m',
          ...common,
          '',
          '[sink.hec]',
          'type = splunk_hec',
          `url = ${hec.url}`,
          `token_file = ${token}`,
          'ack_timeout_ms = 2000',
          ...common,
          '',
          '[sink.otlp]',
          'type = otlp',
          `url = ${otlp.url}`,
          ...common,
          '',
          '[sink.loki]',
          'type = loki',
          `url = ${loki.url}`,
          'labels = host, source, program',
          ...common,
          '',
        ].join('\n');
      },
    });
  });
  after(async () => {
    await agent?.stop('SIGKILL');
    await es.stop();
    await hec.stop();
    await otlp.stop();
    await loki.stop();
    await teardownAgentEnv(env);
  });

  it('0 missing in every receiver, Elasticsearch without duplicates, dead letters exactly the refused lines', async () => {
    // Faults the receivers answer with, spread over the run.
    es.itemFault = (doc, attempt) => {
      const n = numberOf(doc.message);
      if (POISON.has(n)) return 400;
      return n % 97 === 0 && attempt === 1 ? 429 : null;
    };
    es.failNext.push({ status: 503, retryAfter: '1' }, { status: 500 });
    es.maxContentLength = 120_000; // a 500-event bulk is ~190 KB: every batch is split at least once
    hec.invalid = (ev) => POISON.has(numberOf((ev.event as { message: string }).message));
    hec.failNext.push({ status: 503, code: 9, text: 'Server is busy' });
    otlp.failNext.push({ status: 429, retryAfter: '1' }, { status: 502 });
    loki.failNext.push({ status: 429, retryAfter: '1' }, { status: 260 }, { status: 503 });
    loki.maxBody = 120_000; // split like Elasticsearch
    // Loki's line limit refuses the poison lines (padded below to exceed it): a partial 400.
    loki.maxLineSize = 2000;

    const path = join(env.logs, 'app.log');
    writeFileSync(path, '', { mode: 0o600 });
    agent = await AgentProcess.start(env);
    for (let i = 0; i < TOTAL; i += 1000)
      appendFileSync(path, Array.from({ length: 1000 }, (_, k) => line(i + k)).join('\n') + '\n');

    // Mid-stream: SIGKILL (no checkpoint written on the way out), then a fresh start.
    await until(() => es.docs().size >= 4000, 60_000, '4,000 documents in Elasticsearch');
    await agent.stop('SIGKILL');
    const atKill = { es: es.docs().size, hec: hec.indexed.length, otlp: otlp.records.length };
    agent = await AgentProcess.start(env);
    // Splunk restarts while guard waits for acks: unindexed events and acks are gone.
    await until(() => hec.ackQueries > 0, 30_000, 'an ack poll');
    await hec.restart();

    const esMessages = (): unknown[] => [...es.docs().values()].map((d) => d.message);
    const hecMessages = (): unknown[] =>
      hec.indexed.map((e) => (e.event as { message: string }).message);
    const otlpMessages = (): unknown[] => otlp.records.map((r) => r.body);
    const lokiMessages = (): unknown[] =>
      loki.lines().map((l) => (JSON.parse(l) as { message: string }).message);
    await until(
      () =>
        missing(tally(esMessages()).seen).length === 0 &&
        missing(tally(hecMessages()).seen).length === 0 &&
        missing(tally(otlpMessages()).seen).length === 0 &&
        missing(tally(lokiMessages()).seen).length === 0,
      120_000,
      'every line in every receiver',
    ).catch((e: Error) => {
      throw new Error(
        `${e.message}: missing es ${missing(tally(esMessages()).seen).length}, hec ${missing(tally(hecMessages()).seen).length}, otlp ${missing(tally(otlpMessages()).seen).length}, loki ${missing(tally(lokiMessages()).seen).length}\n${agent?.dump()}`,
      );
    });

    const t = {
      es: tally(esMessages()),
      hec: tally(hecMessages()),
      otlp: tally(otlpMessages()),
      loki: tally(lokiMessages()),
    };
    console.log(
      `# at the kill: es ${atKill.es}, hec ${atKill.hec}, otlp ${atKill.otlp}; ` +
        `duplicates: es ${t.es.duplicates} (409s answered: ${es.conflicts}), hec ${t.hec.duplicates}, otlp ${t.otlp.duplicates}, loki ${t.loki.duplicates} (dropped by Loki as identical: ${loki.duplicatesDropped}); ` +
        `es 413s ${es.rejected413}, receiver requests es ${es.server.requests}, hec ${hec.server.requests}, otlp ${otlp.server.requests}`,
    );
    assert.equal(t.es.duplicates, 0, 'create with _id: a resend is a 409, never a second document');
    assert.equal(t.loki.duplicates, 0, 'Loki drops a resent entry: same timestamp, same line');
    for (const [name, x] of Object.entries(t))
      for (const p of POISON) assert.ok(!x.seen.has(p) || name === 'otlp', `${name} refused ${p}`);

    // Dead letters: exactly the refused lines (a batch re-sent after the kill may refuse one twice).
    // Each sink dead-letters a refused event after it delivered the rest of its batch: wait for all.
    for (const sink of ['es', 'hec', 'loki'])
      await until(
        () => new Set(deadLettered(env.state, sink).lines).size === POISON.size,
        20_000,
        `the ${sink} dead-letter files`,
      );
    for (const sink of ['es', 'hec', 'loki']) {
      const d = deadLettered(env.state, sink);
      assert.deepEqual(
        [...new Set(d.lines)],
        [...POISON],
        `${sink}: dead letters are the refused lines`,
      );
      assert.ok(d.reasons.length >= POISON.size);
    }
    assert.match(deadLettered(env.state, 'es').reasons[0]!, /^400 document_parsing_exception/);
    assert.match(deadLettered(env.state, 'hec').reasons[0]!, /Invalid data format/);
    assert.match(deadLettered(env.state, 'loki').reasons[0]!, /^Loki ignored it: Max entry size/);
    assert.deepEqual(deadLettered(env.state, 'otlp').lines, [], 'otlp refused nothing');
  });
});
