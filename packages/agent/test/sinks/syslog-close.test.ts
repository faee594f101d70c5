// The syslog sink's close() after a send the pipeline aborted (its stop at the end of the grace
// period, on SIGTERM or a reload) while the batch's write was still pending: the write's callback
// came after close() had begun and took close()'s death handler away, and close() never returned
// (found by a review; the agent then never exited, and a reload never finished).
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, test } from 'node:test';
import pino from 'pino';
import { SyslogSink } from '../../src/sinks/syslog/syslog-sink';
import { syslogConfig } from './fixtures';

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

test('TCP: close() returns after an aborted send whose write completes only once close() began', async () => {
  let receiver: Socket | null = null;
  const server = createServer((s) => {
    receiver = s;
    s.on('error', () => undefined);
    s.pause(); // reads nothing until told: the sink's write stays pending
    s.on('data', () => undefined);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const cfg = syslogConfig(port, 'tcp', {
    timeoutMs: 30_000,
    retryInitialMs: 500,
    retryMaxMs: 60_000,
  });
  const sink = new SyslogSink(cfg, { logger: pino({ level: 'silent' }) });
  let body = '';
  for (let i = 0; i < 2000; i++)
    body += JSON.stringify({ message: `m${i}-${'x'.repeat(4000)}` }) + '\n';
  const b = Buffer.from(body); // ~8 MB: more than the kernel's socket buffers take
  const ac = new AbortController();
  const sent = sink.send({ seq: 1, events: 2000, bytes: b.length, body: b }, ac.signal);
  await new Promise((r) => setTimeout(r, 200));
  ac.abort(new Error('stopping'));
  await assert.rejects(sent, { name: 'AbortError' });
  const closed = sink.close().then(() => 'closed');
  setTimeout(() => receiver?.resume(), 300); // the write completes while close() waits
  const outcome = await Promise.race([
    closed,
    new Promise((r) => setTimeout(() => r('close() still waiting after 5 s'), 5000)),
  ]);
  assert.equal(outcome, 'closed');
});
