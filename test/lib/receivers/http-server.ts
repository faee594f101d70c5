// What the spec-faithful receivers share: a plain HTTP server on 127.0.0.1:0 that reads each
// request's body (gunzipping Content-Encoding: gzip, as every one of these servers does) and can be
// stopped and started again on the same port (a receiver restart).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface Req {
  method: string;
  url: URL;
  headers: IncomingMessage['headers'];
  /** The body after Content-Encoding is undone. */
  body: Buffer;
  wireBytes: number;
}

export type Reply = {
  status: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
};

export class ReceiverServer {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;
  requests = 0;

  constructor(private readonly handle: (req: Req) => Reply | Promise<Reply>) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        void (async () => {
          this.requests++;
          const raw = Buffer.concat(parts);
          let body = raw;
          let reply: Reply;
          try {
            if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(raw);
            reply = await this.handle({
              method: req.method ?? 'GET',
              url: new URL(req.url ?? '/', 'http://x'),
              headers: req.headers,
              body,
              wireBytes: raw.length,
            });
          } catch (e) {
            reply = { status: 400, body: String(e) };
          }
          res.writeHead(reply.status, reply.headers ?? {});
          res.end(reply.body ?? '');
        })();
      });
    });
    server.keepAliveTimeout = 60_000;
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Closes the listener and every connection at once (a crash, as the client sees it). */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    for (const c of this.sockets) c.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

export const json = (status: number, v: unknown, headers: Record<string, string> = {}): Reply => ({
  status,
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(v),
});
