// A Kafka cluster for tests: librdkafka's mock cluster (Debian's librdkafka-dev), which speaks the
// real Kafka protocol, driven over stdin by test/fixtures/kafka-mock.c (compiled here, into a
// temporary directory, once per process). And a consumer that reads topics back and counts events
// by id, as a SIEM behind Kafka would see them.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Kafka, logLevel } from 'kafkajs';

const SOURCE = join(__dirname, '..', 'fixtures', 'kafka-mock.c');
let binary: string | null = null;

/** Compiles the mock once (gcc, -lrdkafka); throws with the compiler's output if it cannot. */
export function mockBinary(): string {
  if (binary !== null && existsSync(binary)) return binary;
  const out = join(mkdtempSync(join(tmpdir(), 'guard-kafka-mock-')), 'kafka-mock');
  const r = spawnSync('gcc', ['-O1', '-o', out, SOURCE, '-lrdkafka'], { encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(
      `cannot build the Kafka mock (apt-get install librdkafka-dev gcc): ${r.stderr}`,
    );
  binary = out;
  return out;
}

export class MockKafka {
  bootstrap = '';
  private proc!: ChildProcessWithoutNullStreams;
  private readonly replies: ((line: string) => void)[] = [];

  static async start(brokers = 1): Promise<MockKafka> {
    const m = new MockKafka();
    m.proc = spawn(mockBinary(), [String(brokers)], { stdio: ['pipe', 'pipe', 'pipe'] });
    m.proc.stderr.resume();
    const rl = createInterface({ input: m.proc.stdout });
    const first = new Promise<string>((resolve, reject) => {
      m.replies.push(resolve);
      m.proc.once('exit', (code) => reject(new Error(`kafka mock exited with ${code}`)));
    });
    rl.on('line', (line) => m.replies.shift()?.(line));
    m.bootstrap = await first;
    return m;
  }

  get brokers(): string[] {
    return this.bootstrap.split(',');
  }

  /** One command (see kafka-mock.c); resolves on "ok", rejects on anything else. */
  async command(cmd: string): Promise<void> {
    const reply = new Promise<string>((resolve) => this.replies.push(resolve));
    this.proc.stdin.write(`${cmd}\n`);
    const r = await reply;
    if (r !== 'ok') throw new Error(`kafka mock: ${cmd}: ${r}`);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.stdin.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}

/**
 * Reads `topics` from the beginning until `expected` messages arrived (or `timeoutMs` passed, or
 * no message came for `quietMs` after reaching it) and counts the events' ids.
 */
export async function consumeIds(
  brokers: string[],
  topics: string[],
  expected: number,
  timeoutMs = 30_000,
): Promise<{ counts: Map<string, number>; messages: number; keys: Map<string, string> }> {
  const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING, clientId: 'guard-test' });
  const consumer = kafka.consumer({
    groupId: `guard-test-${process.pid}-${Math.random()}`,
    maxWaitTimeInMs: 100,
  });
  const counts = new Map<string, number>();
  const keys = new Map<string, string>();
  let messages = 0;
  await consumer.connect();
  for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  let quiet: NodeJS.Timeout | undefined;
  await consumer.run({
    eachMessage: async ({ message, topic }) => {
      messages++;
      const ev = JSON.parse(message.value!.toString('utf8')) as { id: string };
      counts.set(ev.id, (counts.get(ev.id) ?? 0) + 1);
      keys.set(ev.id, `${topic} ${message.key?.toString('utf8') ?? ''}`);
      if (messages >= expected) {
        // keep reading a little: a duplicate after the expected count must be seen too
        clearTimeout(quiet);
        quiet = setTimeout(done, 1500);
      }
    },
  });
  const timer = setTimeout(done, timeoutMs);
  await finished;
  clearTimeout(timer);
  clearTimeout(quiet);
  await consumer.disconnect();
  return { counts, messages, keys };
}

/** A consumer reading `topics` from the beginning for as long as it runs, counting by `idOf`. */
export async function collect(
  brokers: string[],
  topics: string[],
  idOf: (value: string) => string,
): Promise<{ counts: Map<string, number>; messages: () => number; stop: () => Promise<void> }> {
  const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING, clientId: 'guard-test' });
  const consumer = kafka.consumer({
    groupId: `guard-test-${process.pid}-${Math.random()}`,
    maxWaitTimeInMs: 100,
  });
  const counts = new Map<string, number>();
  let messages = 0;
  await consumer.connect();
  for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      messages++;
      const id = idOf(message.value!.toString('utf8'));
      counts.set(id, (counts.get(id) ?? 0) + 1);
    },
  });
  return { counts, messages: () => messages, stop: () => consumer.disconnect() };
}

/**
 * One consumer for a whole test file's topics (joining a group on the mock cluster takes 3 s, so
 * once, not per test): counts each topic's events by id as they arrive; read() waits for them.
 */
export class TopicsReader {
  private readonly byTopic = new Map<
    string,
    { counts: Map<string, number>; keys: Map<string, string>; messages: number }
  >();
  private lastAt = Date.now();
  private stopFn: () => Promise<void> = async () => undefined;

  static async start(brokers: string[], topics: string[]): Promise<TopicsReader> {
    const r = new TopicsReader();
    for (const t of topics) r.byTopic.set(t, { counts: new Map(), keys: new Map(), messages: 0 });
    const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING, clientId: 'guard-test' });
    const consumer = kafka.consumer({
      groupId: `guard-test-${process.pid}-${Math.random()}`,
      maxWaitTimeInMs: 100,
    });
    await consumer.connect();
    for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message, topic }) => {
        const t = r.byTopic.get(topic)!;
        t.messages++;
        r.lastAt = Date.now();
        const ev = JSON.parse(message.value!.toString('utf8')) as { id: string };
        t.counts.set(ev.id, (t.counts.get(ev.id) ?? 0) + 1);
        t.keys.set(ev.id, `${topic} ${message.key?.toString('utf8') ?? ''}`);
      },
    });
    r.stopFn = () => consumer.disconnect();
    return r;
  }

  /** The topics' events once `expected` messages arrived in them and then none for `quietMs`
   *  (a late duplicate must be seen too), or when `timeoutMs` passed. */
  async read(
    topics: string[],
    expected: number,
    timeoutMs = 30_000,
    quietMs = 1000,
  ): Promise<{ counts: Map<string, number>; messages: number; keys: Map<string, string> }> {
    const deadline = Date.now() + timeoutMs;
    const sum = () => topics.reduce((s, t) => s + this.byTopic.get(t)!.messages, 0);
    while (Date.now() < deadline) {
      if (sum() >= expected && Date.now() - this.lastAt >= quietMs) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const counts = new Map<string, number>();
    const keys = new Map<string, string>();
    for (const t of topics) {
      const x = this.byTopic.get(t)!;
      for (const [id, c] of x.counts) counts.set(id, (counts.get(id) ?? 0) + c);
      for (const [id, k] of x.keys) keys.set(id, k);
    }
    return { counts, messages: sum(), keys };
  }

  stop(): Promise<void> {
    return this.stopFn();
  }
}
