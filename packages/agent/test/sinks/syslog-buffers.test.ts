// The syslog sink reuses the buffers of delivered batches and of written RELP frames (BufferPool).
// A buffer given back too early would be written over by the next batch while its bytes are still
// to be sent or sent again: these tests send many batches, prepared ahead as the pipeline does,
// through receivers written to the RELP grammar and to RFC 6587 octet counting, and compare every
// message that arrives with the one that was sent — also across sessions the receiver breaks.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import type { Batch } from '../../src/event';
import { BufferPool, ByteWriter } from '../../src/sinks/core/byte-writer';
import { SyslogSink } from '../../src/sinks/syslog/syslog-sink';
import { syslogConfig } from './fixtures';

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

describe('BufferPool', () => {
  test('a buffer given back is taken again; small ones and pieces not at its start are not kept', () => {
    const pool = new BufferPool(2);
    const a = pool.take(100_000);
    assert.equal(a.length, 131_072, 'rounded up to whole 64 KiB');
    pool.give(a.subarray(0, 10)); // a piece from its first byte: the whole buffer is kept
    assert.equal(pool.size, 1);
    const again = pool.take(120_000);
    assert.equal(again.buffer, a.buffer);
    assert.equal(again.length, a.length);
    assert.equal(pool.size, 0);
    pool.give(a.subarray(1)); // not from its first byte: could be anything's
    pool.give(Buffer.allocUnsafe(1000)); // from Node's shared slab
    assert.equal(pool.size, 0);
    const big = pool.take(200_000);
    pool.give(again);
    assert.notEqual(pool.take(200_000).buffer, again.buffer, 'too small: a new one');
    pool.give(big);
    pool.give(Buffer.allocUnsafe(65_536));
    pool.give(Buffer.allocUnsafe(65_536));
    assert.equal(pool.size, 2, 'at most `keep` kept');
  });

  test('a ByteWriter writes into a buffer from the pool, and what it grew into can be given back', () => {
    const pool = new BufferPool();
    const w = new ByteWriter(pool.take(65_536));
    const first = w.buf;
    w.bytes(Buffer.alloc(70_000, 0x61));
    assert.notEqual(w.buf, first, 'grown');
    pool.give(w.written());
    assert.equal(pool.take(100_000).buffer, w.buf.buffer);
  });
});

const sinkConfig = (port: number, protocol: 'relp' | 'tcp') =>
  syslogConfig(port, protocol, { retryInitialMs: 10, retryMaxMs: 20 });

/** Message i of batch k: its length varies, so that a message written over by another shows; long
 *  enough that RELP's window of unanswered messages is more than the kernel's socket buffers hold
 *  (so writes wait in the socket while the receiver is slow). */
const text = (k: number, i: number): string =>
  `b${k}-m${i}-${'x'.repeat(((k * 7 + i) % 97) * 30 + 16000)}`;

/** Reads with pauses: 15 ms after every 1 MiB, so that the sender's writes queue up. */
function slowly(sock: Socket, onData: (d: Buffer) => void): void {
  let read = 0;
  sock.on('data', (d) => {
    onData(d);
    read += d.length;
    if (read >= 1 << 20) {
      read = 0;
      sock.pause();
      setTimeout(() => sock.resume(), 15);
    }
  });
}

function batchOf(k: number, n: number): Batch {
  let body = '';
  for (let i = 0; i < n; i++) body += JSON.stringify({ message: text(k, i) }) + '\n';
  const b = Buffer.from(body);
  return { seq: k, events: n, bytes: b.length, body: b };
}

/**
 * Counts the messages that arrive, by text; a message that is not one that was sent fails the
 * test. `onFrame` sees each RELP frame (to answer it, or to break the session).
 */
class Arrivals {
  readonly seen = new Map<string, number>();
  readonly wrong: string[] = [];
  constructor(private readonly expected: Set<string>) {}
  message(msg: string): void {
    const m = /(b\d+-m\d+-x+)$/.exec(msg);
    const t = m?.[1];
    if (t === undefined || !this.expected.has(t)) this.wrong.push(msg.slice(-120));
    else this.seen.set(t, (this.seen.get(t) ?? 0) + 1);
  }
}

async function listen(onSocket: (sock: Socket) => void): Promise<number> {
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    onSocket(sock);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** Sends the batches as the pipeline does: one at a time, in order, and the next two prepared
 *  (encoded; with RELP, put on the session) while one is in flight. */
async function ship(sink: SyslogSink, batches: Batch[]): Promise<void> {
  const signal = new AbortController().signal;
  let prepared = 1; // batches before this one were prepared or sent
  for (let k = 0; k < batches.length; k++) {
    const sent = sink.send(batches[k]!, signal);
    await new Promise((r) => setTimeout(r, 1)); // the batch's bytes are on their way
    for (; prepared < Math.min(k + 3, batches.length); prepared++) sink.prepare(batches[prepared]!);
    assert.equal(await sent, 'delivered');
  }
  await sink.close();
}

describe('syslog sink buffer reuse', () => {
  const COUNT = 10;
  const N = 300;
  const batches = Array.from({ length: COUNT }, (_, k) => batchOf(k + 1, N));
  const expected = new Set<string>();
  for (let k = 1; k <= COUNT; k++) for (let i = 0; i < N; i++) expected.add(text(k, i));

  test('RELP: every message arrives as sent, with sessions broken by the receiver', async () => {
    const got = new Arrivals(expected);
    let syslogFrames = 0;
    const port = await listen((sock) => {
      let buf = Buffer.alloc(0);
      const answers: string[] = [];
      slowly(sock, (d) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const head = /^(\d+) (\w+) (\d+)[ \n]/.exec(buf.toString('latin1', 0, 40));
          if (head === null) break;
          const len = Number(head[3]);
          const start = head[0].length;
          const end = start + len + (len > 0 ? 1 : 0);
          if (buf.length < end) break;
          const data = buf.toString('utf8', start, start + len);
          buf = buf.subarray(end);
          if (head[2] === 'open') {
            const offers = '200 OK\nrelp_version=0\ncommands=syslog';
            sock.write(`${head[1]} rsp ${offers.length} ${offers}\n`);
          } else if (head[2] === 'syslog') {
            syslogFrames++;
            // every 700th message breaks the session before it is answered: the batches on it
            // send their unanswered messages again, from the buffers they were encoded into
            if (syslogFrames % 700 === 0) {
              sock.destroy();
              return;
            }
            got.message(data);
            answers.push(`${head[1]} rsp 6 200 OK\n`);
          }
        }
        // the answers to a chunk a few ms later, as a receiver that writes to disk first would
        const now = answers.splice(0).join('');
        if (now !== '') setTimeout(() => sock.destroyed || sock.write(now), 3);
      });
    });
    const sink = new SyslogSink(sinkConfig(port, 'relp'), { logger: pino({ level: 'silent' }) });
    await ship(sink, batches);
    assert.deepEqual(got.wrong, [], 'messages that were not sent (a buffer written over)');
    assert.equal(got.seen.size, expected.size, 'every message arrived');
    assert.ok(syslogFrames >= 700 * 3, 'the receiver broke sessions');
  });

  test('TCP: every message arrives as sent, once', async () => {
    const got = new Arrivals(expected);
    const port = await listen((sock) => {
      let buf = Buffer.alloc(0);
      slowly(sock, (d) => {
        buf = Buffer.concat([buf, d]);
        let at = 0;
        for (;;) {
          const sp = buf.indexOf(0x20, at);
          if (sp < 0) break;
          const count = buf.toString('latin1', at, sp);
          if (!/^[1-9]\d{0,8}$/.test(count)) {
            got.wrong.push(`not an octet count: ${JSON.stringify(count.slice(0, 40))}`);
            sock.destroy();
            return;
          }
          const len = Number(count);
          if (buf.length < sp + 1 + len) break;
          got.message(buf.toString('utf8', sp + 1, sp + 1 + len));
          at = sp + 1 + len;
        }
        buf = buf.subarray(at);
      });
    });
    const sink = new SyslogSink(sinkConfig(port, 'tcp'), { logger: pino({ level: 'silent' }) });
    await ship(sink, batches);
    await new Promise((r) => setTimeout(r, 200)); // the last bytes read by the receiver
    assert.deepEqual(got.wrong, []);
    assert.equal(got.seen.size, expected.size);
    assert.ok(
      [...got.seen.values()].every((n) => n === 1),
      'no message twice',
    );
  });
});
