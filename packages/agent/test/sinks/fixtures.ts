// Shared by the sink tests: a PKI made with the openssl CLI for this run, a real HTTPS server that
// records what arrives, a pino logger whose output the tests can read, batches.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import pino from 'pino';
import type { Batch } from '../../src/event';
import type { FileSinkConfig, HttpSinkConfig, SyslogSinkConfig } from '../../src/config/types';

export const dir = mkdtempSync(join(tmpdir(), 'guard-sinks-test-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

// ---- PKI -----------------------------------------------------------------------------------

export interface Pki {
  caCert: string; // path of the test CA's certificate
  serverKey: Buffer;
  serverCert: Buffer;
  clientKey: string;
  clientCert: string; // paths, signed by the test CA
  rogueCaCert: string;
  rogueServerKey: Buffer;
  rogueServerCert: Buffer; // signed by a CA the sink does not trust
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(cwd: string, name: string): void {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-subj',
      `/CN=guard test ${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    cwd,
  );
}

function makeLeaf(cwd: string, ca: string, name: string, ext: string): void {
  writeFileSync(join(cwd, `${name}.ext`), `${ext}\nbasicConstraints=CA:FALSE\n`);
  openssl(
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${name}`,
    ],
    cwd,
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-set_serial',
      `0x${Date.now().toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`,
      '-days',
      '2',
      '-out',
      `${name}.crt`,
      '-extfile',
      `${name}.ext`,
    ],
    cwd,
  );
}

let pki: Pki | undefined;
export function testPki(): Pki {
  if (pki) return pki;
  const cwd = mkdtempSync(join(dir, 'pki-'));
  makeCa(cwd, 'ca');
  makeLeaf(
    cwd,
    'ca',
    'server',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth',
  );
  makeLeaf(cwd, 'ca', 'client', 'extendedKeyUsage=clientAuth');
  makeCa(cwd, 'rogue-ca');
  makeLeaf(
    cwd,
    'rogue-ca',
    'rogue-server',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth',
  );
  const p = (f: string): string => join(cwd, f);
  pki = {
    caCert: p('ca.crt'),
    serverKey: readFileSync(p('server.key')),
    serverCert: readFileSync(p('server.crt')),
    clientKey: p('client.key'),
    clientCert: p('client.crt'),
    rogueCaCert: p('rogue-ca.crt'),
    rogueServerKey: readFileSync(p('rogue-server.key')),
    rogueServerCert: readFileSync(p('rogue-server.crt')),
  };
  return pki;
}

// ---- HTTPS server --------------------------------------------------------------------------

export interface Received {
  /** performance.now() and Date.now() when the request's headers arrived. */
  at: number;
  wall: number;
  headers: IncomingHttpHeaders;
  /** As sent (maybe gzip). */
  raw: Buffer;
  /** Gunzipped when content-encoding says gzip. */
  body: Buffer;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}
/** 'hang': never answer (for timeouts). */
export type Responder = (req: Received, n: number) => Reply | 'hang';

export class TestServer {
  readonly requests: Received[] = [];
  /** TLS handshakes completed. */
  tlsConnections = 0;
  tlsErrors: string[] = [];
  respond: Responder = () => ({ status: 200, body: '{"ok":true}' });
  private server: Server;
  private hanging: ServerResponse[] = [];
  port = 0;

  constructor(opts: { rogue?: boolean; requireClientCert?: boolean } = {}) {
    const p = testPki();
    this.server = createHttpsServer(
      {
        key: opts.rogue ? p.rogueServerKey : p.serverKey,
        cert: opts.rogue ? p.rogueServerCert : p.serverCert,
        ...(opts.requireClientCert
          ? { ca: readFileSync(p.caCert), requestCert: true, rejectUnauthorized: true }
          : {}),
        keepAliveTimeout: 30_000,
      },
      (req, res) => this.onRequest(req, res),
    );
    this.server.on('secureConnection', () => {
      this.tlsConnections += 1;
    });
    this.server.on('tlsClientError', (err: Error & { code?: string }) => {
      this.tlsErrors.push(err.code ?? err.message);
    });
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}/ingest?api_key=sekrit`;
  }

  listen(port = 0): Promise<this> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.port = (this.server.address() as AddressInfo).port;
        resolve(this);
      });
    });
  }

  close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const at = performance.now();
    const wall = Date.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      const r: Received = { at, wall, headers: req.headers, raw, body };
      this.requests.push(r);
      const reply = this.respond(r, this.requests.length);
      if (reply === 'hang') {
        this.hanging.push(res);
        return;
      }
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      res.end(reply.body ?? '');
    });
  }
}

/** A port nothing listens on (right now). */
export async function freePort(): Promise<number> {
  const s = new TestServer();
  await s.listen();
  const port = s.port;
  await s.close();
  return port;
}

// ---- logs, batches, configs -------------------------------------------------------------------

export function captureLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

let seq = 0;
export function makeBatch(events = 3, tag = 'e'): Batch {
  seq += 1;
  const lines = Array.from({ length: events }, (_, i) =>
    Buffer.from(
      `${JSON.stringify({ id: `test:${seq}:${i}`, message: `${tag} ${seq}/${i} ünïcode`, source: 'test' })}\n`,
    ),
  );
  const body = Buffer.concat(lines);
  return { seq, events, bytes: body.length, body };
}

export function httpConfig(over: Partial<HttpSinkConfig> = {}): HttpSinkConfig {
  return {
    name: 'backend',
    type: 'http',
    url: 'https://127.0.0.1:1/ingest',
    tokenFile: null,
    auth: 'bearer',
    authHeader: null,
    caFile: testPki().caCert,
    clientCertFile: null,
    clientKeyFile: null,
    compression: 'gzip',
    timeoutMs: 5000,
    retryInitialMs: 20,
    retryMaxMs: 200,
    batch: { maxEvents: 1000, maxBytes: 1 << 20, maxWaitMs: 1000 },
    ...over,
  };
}

export function fileConfig(over: Partial<FileSinkConfig> = {}): FileSinkConfig {
  return {
    name: 'local',
    type: 'file',
    path: join(mkdtempSync(join(dir, 'out-')), 'sub', 'events.ndjson'),
    maxBytes: 100 << 20,
    maxFiles: 5,
    batch: { maxEvents: 1000, maxBytes: 1 << 20, maxWaitMs: 1000 },
    ...over,
  };
}

/** A plain (no TLS) RFC 5424 syslog sink to 127.0.0.1:port, octet counting. */
export function syslogConfig(
  port: number,
  protocol: 'relp' | 'tcp',
  over: Partial<SyslogSinkConfig> = {},
): SyslogSinkConfig {
  return {
    name: protocol,
    type: 'syslog',
    address: `127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    protocol,
    tls: false,
    caFile: null,
    clientCertFile: null,
    clientKeyFile: null,
    serverName: null,
    format: 'rfc5424',
    framing: 'octet_counting',
    facility: 'user',
    severity: 'notice',
    sdId: 'guard@32473',
    timeoutMs: 5000,
    retryInitialMs: 20,
    retryMaxMs: 50,
    batch: { maxEvents: 1000, maxBytes: 1 << 20, maxWaitMs: 1000 },
    ...over,
  };
}

export function stateDir(): string {
  return mkdtempSync(join(dir, 'state-'));
}

/** Polls `pred` every 10 ms; fails after `ms` (generous: the machine is shared). */
export async function waitFor(pred: () => boolean, ms = 20_000, what = 'condition'): Promise<void> {
  const end = performance.now() + ms;
  while (!pred()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
