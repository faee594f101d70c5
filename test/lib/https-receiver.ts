// A real HTTPS log receiver for system tests: a CA made for the test (openssl), a server certificate
// for 127.0.0.1, and an ingest endpoint that records every NDJSON event it is sent (gzip or not).
// Its behaviour can be switched: accept, answer a status (with Retry-After), or be down entirely.
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export interface TestCa {
  caCert: string;
  serverCert: string;
  serverKey: string;
}

/** A client certificate (EC P-256, extendedKeyUsage clientAuth, subject CN=cn) signed by the CA
 *  makeTestCa made in dir: client.key and client.pem there. */
export function makeClientCert(dir: string, ca: TestCa, cn: string): { cert: string; key: string } {
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl(
    'genpkey',
    '-algorithm',
    'EC',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-out',
    f('client.key'),
  );
  ssl('req', '-new', '-key', f('client.key'), '-subj', `/CN=${cn}`, '-out', f('client.csr'));
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  ssl(
    'x509',
    '-req',
    '-in',
    f('client.csr'),
    '-CA',
    ca.caCert,
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    f('client.ext'),
    '-out',
    f('client.pem'),
  );
  return { cert: f('client.pem'), key: f('client.key') };
}

/** Makes a CA and a server certificate (SAN 127.0.0.1, localhost) in dir. */
export function makeTestCa(dir: string): TestCa {
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=guard test CA',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
  );
  ssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
  );
  writeFileSync(
    f('server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  ssl(
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    f('server.ext'),
    '-out',
    f('server.pem'),
  );
  return { caCert: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key') };
}

/** ok; a status (with Retry-After); or slow: each batch recorded when it has arrived, answered 200 `ms` later. */
export type ReceiverMode =
  | { kind: 'ok' }
  | { kind: 'status'; code: number; retryAfter?: string }
  | { kind: 'slow'; ms: number };

export interface ReceivedEvent {
  id: string;
  message: string;
  path: string;
  offset: number;
  flags?: string[];
  fields?: Record<string, unknown>;
  [k: string]: unknown;
}

export class Receiver {
  readonly events: ReceivedEvent[] = [];
  /** Every request, with when it came and what was answered. */
  readonly requests: { at: number; status: number; events: number }[] = [];
  connections = 0;
  mode: ReceiverMode = { kind: 'ok' };
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  private constructor(private readonly ca: TestCa) {}

  static async start(ca: TestCa): Promise<Receiver> {
    const r = new Receiver(ca);
    await r.up();
    return r;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}/ingest`;
  }

  /** Starts listening (again, on the same port after down()). */
  async up(): Promise<void> {
    const server = createServer(
      {
        cert: readFileSync(this.ca.serverCert),
        key: readFileSync(this.ca.serverKey),
        keepAliveTimeout: 30_000,
      },
      (req, res) => {
        const parts: Buffer[] = [];
        req.on('data', (d: Buffer) => parts.push(d));
        req.on('end', () => {
          const mode = this.mode;
          if (mode.kind === 'status') {
            this.requests.push({ at: Date.now(), status: mode.code, events: 0 });
            res.writeHead(mode.code, mode.retryAfter ? { 'retry-after': mode.retryAfter } : {});
            res.end(`test receiver says ${mode.code}`);
            return;
          }
          let body = Buffer.concat(parts);
          if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
          const lines = body
            .toString('utf8')
            .split('\n')
            .filter((l) => l !== '');
          for (const l of lines) this.events.push(JSON.parse(l) as ReceivedEvent);
          this.requests.push({ at: Date.now(), status: 200, events: lines.length });
          const answer = (): void => {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end('{"ok":true}');
          };
          if (mode.kind === 'slow') setTimeout(answer, mode.ms);
          else answer();
        });
      },
    );
    server.on('secureConnection', (s: Socket) => {
      this.connections++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  /** Stops accepting and cuts every connection: the backend is unreachable. */
  async down(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
