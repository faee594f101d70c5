// SinkRunner's timing rule (#20): with no batch in flight, queued events go after the coalescing
// window (batch_max_wait_ms); while one is in flight they accumulate, and go as one batch as soon
// as it is answered (or, for those that came less than a window before it, when their window is
// up); a full batch goes at once. The sink here is the
// runner's counterpart under test control (each send() answers when the test says), not a sink.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import type { Batch, Sink, SinkStatus } from '../src/event';
import { SinkRunner } from '../src/pipeline';
import type { Ticket } from '../src/sources/file/tailer';

interface Sent {
  batch: Batch;
  lines: string[];
  at: number;
  answer: () => void;
}

function world(maxWaitMs: number, maxEvents = 1000) {
  const sent: Sent[] = [];
  const acked: number[][] = [];
  const sink: Sink = {
    name: 'under-test',
    send(batch: Batch): Promise<'delivered'> {
      const lines = batch.body.subarray(0, batch.bytes).toString('utf8').split('\n').slice(0, -1);
      return new Promise((resolve) =>
        sent.push({ batch, lines, at: Date.now(), answer: () => resolve('delivered') }),
      );
    },
    status: () => ({}) as SinkStatus,
    close: async () => {},
  };
  const abort = new AbortController();
  const runner = new SinkRunner(
    sink,
    { maxEvents, maxBytes: 1 << 20, maxWaitMs },
    abort.signal,
    (_r, _tickets, ends) => acked.push(ends),
    pino({ level: 'silent' }),
  );
  const ticket = { endOffset: 0, remaining: 0, delivered: null } as unknown as Ticket;
  let n = 0;
  const push = (k = 1) => {
    for (let i = 0; i < k; i++, n++) runner.push(`{"n":${n}}\n`, ticket, n + 1);
  };
  return { sent, acked, runner, push, stop: () => (runner.stop(), abort.abort()) };
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('idle: an event goes after the coalescing window, not after a long wait', async () => {
  const w = world(5);
  const t0 = Date.now();
  w.push();
  assert.equal(w.sent.length, 0, 'not sent synchronously: the window lets a burst join');
  w.push(2);
  await tick(60);
  assert.equal(w.sent.length, 1);
  assert.deepEqual(w.sent[0]!.lines, ['{"n":0}', '{"n":1}', '{"n":2}']);
  assert.ok(w.sent[0]!.at - t0 < 50, `sent after ${w.sent[0]!.at - t0} ms`);
  w.sent[0]!.answer();
  await tick(5);
  assert.deepEqual(w.acked, [[1, 2, 3]]);
  w.stop();
});

test('under load: events wait only for the batch in flight, then go together at once', async () => {
  const w = world(20);
  w.push(1000); // full: goes at once
  assert.equal(w.sent.length, 1);
  w.push(3);
  await tick(60);
  assert.equal(w.sent.length, 1, 'nothing more while one is in flight, past the window too');
  w.push(2);
  const t = Date.now();
  w.sent[0]!.answer();
  await tick(20);
  assert.equal(w.sent.length, 2, 'the answer releases what accumulated');
  assert.equal(w.sent[1]!.batch.events, 5);
  assert.ok(w.sent[1]!.at - t < 15, `sent ${w.sent[1]!.at - t} ms after the answer`);
  assert.deepEqual(
    w.sent[1]!.lines,
    [1000, 1001, 1002, 1003, 1004].map((n) => `{"n":${n}}`),
  );
  w.sent[1]!.answer();
  await tick(5);
  assert.equal(w.acked.length, 2);
  assert.equal(w.acked[1]!.at(-1), 1005, 'acknowledged in order, to the last event');
  w.stop();
});

test('the previous default (500 ms) still holds an idle event for its window', async () => {
  const w = world(500);
  w.push();
  await tick(150);
  assert.equal(w.sent.length, 0);
  await tick(500);
  assert.equal(w.sent.length, 1);
  w.sent[0]!.answer();
  w.stop();
});
