// The RELP sink's stall timer against receivers that answer slowly or not at all. These are
// receivers written to the RELP frame grammar (relp.ts) that behave as a broken or slow imrelp
// would; the sink is the real one. rsyslog itself is in test/syslog-sink.test.ts.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import type { Batch } from '../../src/event';
import { SyslogSink } from '../../src/sinks/syslog/syslog-sink';
import { syslogConfig } from './fixtures';

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** A RELP receiver: answers the open, then hands each `syslog` frame's TXNR to `onMessage`. */
async function receiver(onMessage: (sock: Socket, txnr: number) => void): Promise<number> {
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (
        let m = /^(\d+) (\w+) (\d+)[ \n]/.exec(buf);
        m !== null;
        m = /^(\d+) (\w+) (\d+)[ \n]/.exec(buf)
      ) {
        const len = Number(m[3]);
        const end = m[0].length + len + (len > 0 ? 1 : 0);
        if (buf.length < end) break;
        buf = buf.slice(end);
        if (m[2] === 'open') {
          const offers = '200 OK\nrelp_version=0\ncommands=syslog';
          sock.write(`${m[1]} rsp ${offers.length} ${offers}\n`);
        } else if (m[2] === 'syslog') onMessage(sock, Number(m[1]));
      }
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

function sink(port: number, timeoutMs: number): SyslogSink {
  return new SyslogSink(syslogConfig(port, 'relp', { timeoutMs }), {
    logger: pino({ level: 'silent' }),
  });
}

function batch(n: number): Batch {
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ message: `m${i}` }) + '\n');
  const body = Buffer.from(lines.join(''));
  return { seq: 1, events: n, bytes: body.length, body };
}

describe('RELP stall timer', () => {
  test(
    'answers that come slowly, each within timeout_ms, deliver the batch without a retry',
    { timeout: 10_000 },
    async () => {
      // 12 answers 60 ms apart: 720 ms in all, against a timeout of 200 ms
      const port = await receiver((sock, txnr) => {
        setTimeout(() => sock.write(`${txnr} rsp 6 200 OK\n`), 60 * (txnr - 1));
      });
      const s = sink(port, 200);
      try {
        const started = Date.now();
        assert.equal(await s.send(batch(12), new AbortController().signal), 'delivered');
        assert.ok(Date.now() - started >= 600, 'the answers took their time');
        assert.equal(s.status().retries, 0, 'no session was given up');
      } finally {
        await s.close();
      }
    },
  );

  test(
    'a receiver that trickles bytes but completes no answer is timed out, and the batch retried',
    { timeout: 10_000 },
    async () => {
      // one byte of a 60,000-byte answer every 50 ms, against a timeout of 200 ms: bytes keep
      // coming, answers never do
      let sessions = 0;
      const port = await receiver((sock, txnr) => {
        if (txnr !== 2) return; // the first message of a session
        sessions++;
        const answer = Buffer.from(`${txnr} rsp 60000 200 OK${' '.repeat(60000 - 6)}\n`);
        let i = 0;
        const t = setInterval(() => {
          if (sock.destroyed) clearInterval(t);
          else sock.write(answer.subarray(i, ++i));
        }, 50);
      });
      const s = sink(port, 200);
      const ac = new AbortController();
      const sent = s.send(batch(1), ac.signal).catch((e: Error) => e);
      await new Promise((r) => setTimeout(r, 1500));
      const st = s.status();
      ac.abort();
      await sent;
      await s.close();
      assert.ok(
        sessions >= 2,
        `${sessions} sessions: the stalled one was given up and a new one opened`,
      );
      assert.ok(st.retries >= 1, `retries ${st.retries}`);
      assert.match(String(st.lastError), /GUARD_RELP_TIMEOUT|answered no RELP message/);
    },
  );
});
