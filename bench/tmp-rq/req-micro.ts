// Per-request client CPU: HttpSink.send vs raw undici pool.request, small bodies, separate receiver.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import pino from 'pino';
import { Pool } from 'undici';
import { HttpSink } from '/work/main/packages/agent/src/sinks/http/http-sink';

const N = Number(process.argv[3] ?? 3000);
const mode = process.argv[2] ?? 'sink';
const bodyBytes = Number(process.argv[4] ?? 1024);
async function main() {
  const rx = spawn('node', ['/work/main/bench/receiver.cjs', '--expect', String(1e12)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port: number = await new Promise((res) => rx.stdout.once('data', (d) => res(JSON.parse(String(d).split('\n')[0]).port)));
  const body = Buffer.from(('{"message":"' + 'x'.repeat(Math.max(0, bodyBytes - 16)) + '"}\n'));
  const url = `http://127.0.0.1:${port}/ingest`;
  let send: () => Promise<unknown>;
  if (mode === 'sink') {
    const s = new HttpSink({ name: 'b', type: 'http', url, tokenFile: null, caFile: null, clientCertFile: null, clientKeyFile: null, compression: 'none', timeoutMs: 30000, retryInitialMs: 20, retryMaxMs: 200, batch: { maxEvents: 1000, maxBytes: 1 << 20, maxWaitMs: 500 } } as never,
      { stateDir: mkdtempSync('/tmp/rq/s-'), logger: pino({ level: 'warn' }) });
    const ac = new AbortController();
    let seq = 0;
    send = () => s.send({ seq: ++seq, events: 1, bytes: body.length, body } as never, ac.signal);
  } else {
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 1 });
    send = async () => { const { statusCode, body: b } = await pool.request({ path: '/ingest', method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body }); await b.dump(); if (statusCode !== 200) throw new Error(String(statusCode)); };
  }
  for (let i = 0; i < 500; i++) await send(); // warm
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) await send();
  const c = process.cpuUsage(c0);
  console.log(`${mode} ${bodyBytes}B: ${((c.user + c.system) / N).toFixed(1)} µs CPU/request (user ${(c.user / N).toFixed(1)}, sys ${(c.system / N).toFixed(1)})`);
  rx.kill();
  process.exit(0);
}
void main();
