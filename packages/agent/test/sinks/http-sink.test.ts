// HttpSink against a real HTTPS server (node:https) with a PKI made by openssl for this run.
// No mock of undici: every request crosses a real TLS connection on 127.0.0.1.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as undici from 'undici';
import { HttpSink, Pool, parseRetryAfter, poolRequest } from '../../src/sinks/http/http-sink';
import { backoffDelay } from '../../src/sinks/retry';
import {
  captureLogger,
  dir,
  freePort,
  httpConfig,
  makeBatch,
  stateDir,
  testPki,
  TestServer,
  waitFor,
} from './fixtures';

const open: { close(): Promise<void> }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close().catch(() => undefined);
});

async function server(opts: ConstructorParameters<typeof TestServer>[0] = {}): Promise<TestServer> {
  const s = await new TestServer(opts).listen();
  open.push(s);
  return s;
}

function sink(
  cfg: ReturnType<typeof httpConfig>,
  extra: { stateDir?: string; systemCaBundles?: string[] } = {},
) {
  const { logger, lines } = captureLogger();
  const s = new HttpSink(cfg, {
    stateDir: extra.stateDir ?? stateDir(),
    logger,
    ...(extra.systemCaBundles ? { systemCaBundles: extra.systemCaBundles } : {}),
  });
  open.push(s);
  return { sink: s, logs: lines };
}

function tokenFile(content: string): string {
  const p = join(dir, `token-${Math.random().toString(16).slice(2)}`);
  writeFileSync(p, content, { mode: 0o640 });
  return p;
}

describe('undici by its own modules', () => {
  test('the Pool and request() the sink loads directly are the ones undici exports', () => {
    assert.equal(Pool, undici.Pool);
    assert.equal(poolRequest, undici.Pool.prototype.request);
  });
});

describe('HttpSink: delivery', () => {
  test('delivers a gzip batch: body gunzips to the NDJSON, headers carry type, encoding and the bearer token', async () => {
    const srv = await server();
    const token = 'tok-3f9a2c-very-secret';
    const { sink: s, logs } = sink(
      httpConfig({ url: srv.url, tokenFile: tokenFile(`  ${token}\n`) }),
    );
    const batch = makeBatch(5);
    assert.equal(await s.send(batch, new AbortController().signal), 'delivered');
    assert.equal(srv.requests.length, 1);
    const r = srv.requests[0]!;
    assert.deepEqual(r.body, batch.body);
    assert.notDeepEqual(r.raw, r.body, 'the wire body is compressed');
    assert.equal(r.headers['content-type'], 'application/x-ndjson');
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.equal(r.headers.authorization, `Bearer ${token}`);
    const st = s.status();
    assert.equal(st.deliveredBatches, 1);
    assert.equal(st.deliveredEvents, 5);
    assert.equal(st.retries, 0);
    assert.equal(st.lastError, null);
    assert.equal(st.retryingUntil, null);
    assert.ok(st.lastSuccess !== null && !Number.isNaN(Date.parse(st.lastSuccess)));
    assert.equal(
      st.endpoint,
      `https://127.0.0.1:${srv.port}/ingest`,
      'status shows no query string (it may hold a key)',
    );
    assert.ok(logs.length > 0);
    assert.ok(!logs.join('').includes(token), 'the token is never logged');
    assert.ok(!logs.join('').includes('sekrit'), 'the query string is never logged');
  });

  test("compression 'none' sends the NDJSON as is, without Content-Encoding", async () => {
    const srv = await server();
    const { sink: s } = sink(httpConfig({ url: srv.url, compression: 'none' }));
    const batch = makeBatch(2);
    assert.equal(await s.send(batch, new AbortController().signal), 'delivered');
    assert.deepEqual(srv.requests[0]!.raw, batch.body);
    assert.equal(srv.requests[0]!.headers['content-encoding'], undefined);
    assert.equal(srv.requests[0]!.headers.authorization, undefined);
  });

  test('reload() re-reads token_file', async () => {
    const srv = await server();
    const tf = tokenFile('old-token\n');
    const { sink: s } = sink(httpConfig({ url: srv.url, tokenFile: tf }));
    await s.send(makeBatch(), new AbortController().signal);
    writeFileSync(tf, 'new-token\n');
    await s.reload();
    await s.send(makeBatch(), new AbortController().signal);
    assert.deepEqual(
      srv.requests.map((r) => r.headers.authorization),
      ['Bearer old-token', 'Bearer new-token'],
    );
    writeFileSync(tf, '   \n');
    await assert.rejects(s.reload(), { code: 'GUARD_HTTP_TOKEN_EMPTY' });
    await s.send(makeBatch(), new AbortController().signal);
    assert.equal(
      srv.requests[2]!.headers.authorization,
      'Bearer new-token',
      'a failed reload keeps the previous token',
    );
  });

  test('a 401 after the token file was rotated retries once with the new token', async () => {
    const srv = await server();
    const tf = tokenFile('expired');
    srv.respond = (r) =>
      r.headers.authorization === 'Bearer fresh'
        ? { status: 200 }
        : { status: 401, body: 'expired token' };
    const { sink: s } = sink(httpConfig({ url: srv.url, tokenFile: tf }));
    writeFileSync(tf, 'fresh\n');
    assert.equal(await s.send(makeBatch(), new AbortController().signal), 'delivered');
    assert.equal(srv.requests.length, 2);
    assert.equal(s.status().deadLetteredBatches, 0);
  });

  test('keep-alive: several batches travel over one TLS connection', async () => {
    const srv = await server();
    const { sink: s } = sink(httpConfig({ url: srv.url }));
    const ac = new AbortController();
    for (let i = 0; i < 5; i++) assert.equal(await s.send(makeBatch(), ac.signal), 'delivered');
    assert.equal(srv.requests.length, 5);
    assert.equal(srv.tlsConnections, 1);
    assert.equal(s.status().deliveredBatches, 5);
  });
});

describe('HttpSink: TLS', () => {
  test('a server whose certificate is not signed by ca_file is refused, retried, visible in lastError', async () => {
    const srv = await server({ rogue: true });
    const { sink: s } = sink(httpConfig({ url: srv.url }));
    const ac = new AbortController();
    const p = s.send(makeBatch(), ac.signal);
    await waitFor(() => s.status().retries >= 2, 20_000, 'two retries');
    const st = s.status();
    assert.match(
      st.lastError ?? '',
      /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/,
    );
    assert.equal(srv.requests.length, 0, 'no request reached the untrusted server');
    ac.abort();
    await assert.rejects(p, { name: 'AbortError' });
    assert.equal(s.status().deliveredBatches, 0);
  });

  test('without ca_file the system bundle is trusted (here: a bundle holding the test CA)', async () => {
    const srv = await server();
    const { sink: s } = sink(httpConfig({ url: srv.url, caFile: null }), {
      systemCaBundles: ['/nonexistent/bundle.pem', testPki().caCert],
    });
    assert.equal(await s.send(makeBatch(), new AbortController().signal), 'delivered');
  });

  test("without ca_file or any system bundle, Node's built-in list does not trust the test CA", async () => {
    const srv = await server();
    const { sink: s } = sink(httpConfig({ url: srv.url, caFile: null }), {
      systemCaBundles: ['/nonexistent/bundle.pem'],
    });
    const ac = new AbortController();
    const p = s.send(makeBatch(), ac.signal);
    await waitFor(() => s.status().lastError !== null, 20_000, 'a TLS error');
    assert.equal(srv.requests.length, 0);
    ac.abort();
    await assert.rejects(p, { name: 'AbortError' });
  });

  test('mTLS: with the client certificate delivered; without it refused by the server and retried', async () => {
    const srv = await server({ requireClientCert: true });
    const p = testPki();
    const { sink: withCert } = sink(
      httpConfig({ url: srv.url, clientCertFile: p.clientCert, clientKeyFile: p.clientKey }),
    );
    assert.equal(await withCert.send(makeBatch(), new AbortController().signal), 'delivered');
    assert.equal(srv.requests.length, 1);

    const { sink: without } = sink(httpConfig({ url: srv.url }));
    const ac = new AbortController();
    const pending = without.send(makeBatch(), ac.signal);
    await waitFor(() => without.status().retries >= 1, 20_000, 'a retry');
    assert.notEqual(without.status().lastError, null);
    assert.ok(
      srv.tlsErrors.some((c) => /CERTIFICATE/.test(c)),
      `server-side TLS errors: ${srv.tlsErrors.join(', ')}`,
    );
    assert.equal(
      srv.requests.length,
      1,
      'the request without a client certificate never reached the handler',
    );
    ac.abort();
    await assert.rejects(pending, { name: 'AbortError' });
  });

  test('client_cert_file without client_key_file is a configuration error', () => {
    const { logger } = captureLogger();
    assert.throws(
      () =>
        new HttpSink(httpConfig({ clientCertFile: testPki().clientCert }), {
          stateDir: stateDir(),
          logger,
        }),
      { code: 'GUARD_HTTP_TLS_CLIENT_INCOMPLETE' },
    );
    assert.throws(
      () =>
        new HttpSink(httpConfig({ caFile: '/nonexistent/ca.pem' }), {
          stateDir: stateDir(),
          logger,
        }),
      { code: 'GUARD_HTTP_TLS_FILE_UNREADABLE' },
    );
    assert.throws(
      () =>
        new HttpSink(httpConfig({ url: 'https://user:pw@127.0.0.1/' }), {
          stateDir: stateDir(),
          logger,
        }),
      { code: 'GUARD_HTTP_URL_CREDENTIALS' },
    );
  });
});

describe('HttpSink: retries', () => {
  test('500 three times then 200: delivered once, the same body each time, 3 retries counted', async () => {
    const srv = await server();
    srv.respond = (_r, n) => (n <= 3 ? { status: 500, body: 'boom' } : { status: 200 });
    const { sink: s, logs } = sink(httpConfig({ url: srv.url }));
    const batch = makeBatch(4);
    assert.equal(await s.send(batch, new AbortController().signal), 'delivered');
    assert.equal(srv.requests.length, 4);
    for (const r of srv.requests)
      assert.deepEqual(
        r.raw,
        srv.requests[0]!.raw,
        'compressed once, the same bytes every attempt',
      );
    assert.deepEqual(srv.requests[3]!.body, batch.body);
    const st = s.status();
    assert.equal(st.retries, 3);
    assert.equal(st.deliveredBatches, 1);
    assert.equal(st.deliveredEvents, 4);
    assert.match(st.lastError ?? '', /^GUARD_HTTP_STATUS_500/);
    assert.equal(st.retryingUntil, null);
    assert.ok(
      logs.some((l) => l.includes('"code":"GUARD_HTTP_STATUS_500"')),
      'retries are logged with a stable code',
    );
  });

  test('429 with Retry-After: 2: the next attempt comes at least 2 s later; retryingUntil shown meanwhile', async () => {
    const srv = await server();
    srv.respond = (_r, n) =>
      n === 1 ? { status: 429, headers: { 'retry-after': '2' } } : { status: 200 };
    const { sink: s } = sink(httpConfig({ url: srv.url }));
    const p = s.send(makeBatch(), new AbortController().signal);
    await waitFor(() => s.status().retryingUntil !== null, 20_000, 'retryingUntil');
    const until = Date.parse(s.status().retryingUntil!);
    assert.ok(
      until >= srv.requests[0]!.wall + 2000,
      'retryingUntil is when the server allowed us back',
    );
    assert.match(s.status().lastError ?? '', /GUARD_HTTP_STATUS_429/);
    assert.equal(await p, 'delivered');
    assert.equal(srv.requests.length, 2);
    assert.ok(
      srv.requests[1]!.at - srv.requests[0]!.at >= 2000,
      `waited ${srv.requests[1]!.at - srv.requests[0]!.at} ms`,
    );
    assert.equal(s.status().retryingUntil, null);
  });

  test('503 with an HTTP-date Retry-After: the next attempt comes no earlier than that date', async () => {
    const srv = await server();
    let notBefore = 0;
    srv.respond = (_r, n) => {
      if (n > 1) return { status: 200 };
      notBefore = Math.ceil((Date.now() + 2000) / 1000) * 1000; // HTTP-dates have whole seconds
      return { status: 503, headers: { 'retry-after': new Date(notBefore).toUTCString() } };
    };
    const { sink: s } = sink(httpConfig({ url: srv.url }));
    assert.equal(await s.send(makeBatch(), new AbortController().signal), 'delivered');
    assert.equal(srv.requests.length, 2);
    assert.ok(
      srv.requests[1]!.wall >= notBefore,
      `second attempt ${notBefore - srv.requests[1]!.wall} ms early`,
    );
    assert.equal(s.status().retries, 1);
  });

  test('400: the batch goes to the dead-letter directory with its meta, never retried', async () => {
    const srv = await server();
    const longBody = `{"error":"bad field"}${'x'.repeat(3000)}`;
    srv.respond = () => ({ status: 400, body: longBody });
    const sd = stateDir();
    const { sink: s, logs } = sink(httpConfig({ url: srv.url }), { stateDir: sd });
    const batch = makeBatch(3);
    assert.equal(await s.send(batch, new AbortController().signal), 'dead_lettered');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(srv.requests.length, 1, 'no further attempts');
    const st = s.status();
    assert.equal(st.deadLetteredBatches, 1);
    assert.equal(st.deliveredBatches, 0);
    assert.equal(st.retries, 0);
    assert.match(st.lastError ?? '', /^GUARD_HTTP_STATUS_400/);

    const dl = join(sd, 'dead-letter');
    const files = readdirSync(dl).sort();
    assert.equal(files.length, 2, `files: ${files.join(', ')}`);
    const data = files.find((f) => f.endsWith('.ndjson'))!;
    assert.match(data, new RegExp(`^backend-\\d{8}T\\d{6}\\.\\d{3}Z-${batch.seq}\\.ndjson$`));
    assert.deepEqual(readFileSync(join(dl, data)), batch.body, 'exactly the batch, uncompressed');
    const meta = JSON.parse(readFileSync(join(dl, data.replace(/\.ndjson$/, '.json')), 'utf8'));
    assert.equal(meta.status, 400);
    assert.equal(meta.code, 'GUARD_HTTP_STATUS_400');
    assert.equal(meta.responseBody, longBody.slice(0, 1024));
    assert.equal(meta.responseBodyTruncated, true);
    assert.equal(meta.endpoint, `https://127.0.0.1:${srv.port}/ingest`);
    assert.equal(meta.seq, batch.seq);
    assert.ok(!Number.isNaN(Date.parse(meta.time)));
    assert.ok(
      logs.some((l) => l.includes('"level":50') && l.includes('GUARD_HTTP_STATUS_400')),
      'logged as an error with its code',
    );

    srv.respond = () => ({ status: 200 });
    assert.equal(
      await s.send(makeBatch(), new AbortController().signal),
      'delivered',
      'the sink carries on',
    );
  });

  test('a dead-letter directory that cannot be written is retried (never dropped) until it can', async () => {
    const srv = await server();
    srv.respond = () => ({ status: 422, body: 'unprocessable' });
    const sd = join(dir, `state-blocked-${Date.now()}`);
    writeFileSync(sd, 'a file where the state directory should be');
    const { sink: s } = sink(httpConfig({ url: srv.url }), { stateDir: sd });
    const batch = makeBatch(2);
    const p = s.send(batch, new AbortController().signal);
    await waitFor(() => s.status().retries >= 2, 20_000, 'dead-letter write retries');
    assert.match(s.status().lastError ?? '', /^GUARD_DEAD_LETTER_WRITE_FAILED: (ENOTDIR|EEXIST)/);
    assert.equal(srv.requests.length, 1, 'the refused batch is not sent again');
    rmSync(sd);
    assert.equal(await p, 'dead_lettered');
    const files = readdirSync(join(sd, 'dead-letter'));
    assert.deepEqual(
      readFileSync(
        join(
          sd,
          'dead-letter',
          files.find((f) => f.endsWith('.ndjson'))!,
        ),
      ),
      batch.body,
    );
    assert.equal(s.status().deadLetteredBatches, 1);
  });

  test('abort during a backoff wait rejects promptly with an AbortError', async () => {
    const srv = await server();
    srv.respond = () => ({ status: 503, headers: { 'retry-after': '600' } });
    const { sink: s } = sink(httpConfig({ url: srv.url }));
    const ac = new AbortController();
    const p = s.send(makeBatch(), ac.signal);
    await waitFor(() => s.status().retryingUntil !== null, 20_000, 'the backoff wait');
    assert.ok(
      Date.parse(s.status().retryingUntil!) - Date.now() > 500_000,
      'waiting on the 600 s Retry-After',
    );
    const t0 = performance.now();
    ac.abort();
    await assert.rejects(p, { name: 'AbortError', code: 'ABORT_ERR' });
    // Far below the 600 s wait it interrupted; generous for a shared machine.
    assert.ok(performance.now() - t0 < 5000);
    assert.equal(s.status().retryingUntil, null);
    assert.equal(srv.requests.length, 1);
  });

  test('abort while a request is in flight (the server does not answer) rejects promptly, with no retry', async () => {
    const srv = await server();
    srv.respond = () => 'hang';
    const { sink: s } = sink(httpConfig({ url: srv.url, timeoutMs: 600_000 }));
    const ac = new AbortController();
    const p = s.send(makeBatch(), ac.signal);
    await waitFor(() => srv.requests.length === 1, 20_000, 'the request at the server');
    const t0 = performance.now();
    ac.abort();
    await assert.rejects(p, { name: 'AbortError' });
    assert.ok(performance.now() - t0 < 5000, 'far below timeout_ms');
    assert.equal(s.status().retries, 0);
    assert.equal(srv.requests.length, 1);
  });

  test('an already aborted signal rejects at once without a request', async () => {
    const srv = await server();
    const { sink: s } = sink(httpConfig({ url: srv.url }));
    await assert.rejects(s.send(makeBatch(), AbortSignal.abort()), { name: 'AbortError' });
    assert.equal(srv.requests.length, 0);
  });

  test('connection refused (server down), then the server comes up: delivered', async () => {
    const port = await freePort();
    const { sink: s } = sink(httpConfig({ url: `https://127.0.0.1:${port}/ingest` }));
    const batch = makeBatch();
    const p = s.send(batch, new AbortController().signal);
    await waitFor(() => s.status().retries >= 2, 20_000, 'retries while down');
    assert.match(s.status().lastError ?? '', /ECONNREFUSED/);
    const up = await new TestServer().listen(port);
    open.push(up);
    assert.equal(await p, 'delivered');
    assert.equal(up.requests.length, 1);
    assert.deepEqual(up.requests[0]!.body, batch.body);
  });

  test('no answer within timeout_ms: GUARD_HTTP_TIMEOUT, retried, then delivered', async () => {
    const srv = await server();
    srv.respond = (_r, n) => (n === 1 ? 'hang' : { status: 200 });
    const { sink: s } = sink(httpConfig({ url: srv.url, timeoutMs: 300 }));
    assert.equal(await s.send(makeBatch(), new AbortController().signal), 'delivered');
    assert.equal(srv.requests.length, 2);
    assert.match(s.status().lastError ?? '', /^(GUARD_HTTP_TIMEOUT|UND_ERR_HEADERS_TIMEOUT)/);
    assert.equal(s.status().retries, 1);
  });
});

describe('retry arithmetic', () => {
  test('parseRetryAfter: delta-seconds, HTTP-date, garbage, past, cap', () => {
    const now = Date.parse('2025-01-02T03:04:05Z');
    assert.equal(parseRetryAfter('2', now), 2000);
    assert.equal(parseRetryAfter(' 120 ', now), 120_000);
    assert.equal(parseRetryAfter('Thu, 02 Jan 2025 03:04:15 GMT', now), 10_000);
    assert.equal(parseRetryAfter('Thu, 02 Jan 2025 03:04:00 GMT', now), null, 'in the past');
    assert.equal(parseRetryAfter('0', now), null);
    assert.equal(parseRetryAfter('soon', now), null);
    assert.equal(parseRetryAfter('-5', now), null);
    assert.equal(parseRetryAfter(undefined, now), null);
    assert.equal(parseRetryAfter('86400', now), 600_000, 'capped at 10 minutes');
  });

  test('backoffDelay: full jitter under an exponential ceiling capped at retryMaxMs', () => {
    const policy = { initialMs: 500, maxMs: 60_000 };
    assert.equal(backoffDelay(1, { ...policy, random: () => 0.999999 }), 500);
    assert.equal(backoffDelay(3, { ...policy, random: () => 0.999999 }), 2000);
    assert.equal(backoffDelay(20, { ...policy, random: () => 0.999999 }), 60_000);
    assert.equal(backoffDelay(1000, { ...policy, random: () => 0.5 }), 30_000);
    assert.equal(backoffDelay(3, { ...policy, random: () => 0 }), 0);
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelay(4, policy);
      assert.ok(d >= 0 && d <= 4000);
    }
  });
});
