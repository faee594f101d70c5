// Where the metrics go ([metrics] in the config; both off by default):
// - a file for node_exporter's textfile collector, rewritten every interval_ms: written to a temp
//   file beside it and renamed over it, so the collector never reads half a file (it reads only
//   *.prom, so the temp name ends in .tmp). Mode 0644: node_exporter runs as another user.
// - an HTTP endpoint (GET /metrics only; a port alone binds 127.0.0.1): for a Prometheus that
//   scrapes the host directly. Nothing else is served, and a scrape renders at most once a second.
import {
  closeSync,
  fchmodSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
  constants as fsc,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { MetricsConfig } from '../config/types';
import { processFigures, renderMetrics } from './metrics';
import type { AgentStatus } from './status';

export class MetricsExport {
  private timer: NodeJS.Timeout | null = null;
  private server: Server | null = null;
  /** The last write error logged, so that a failing write is logged once, not every interval. */
  private writeError: string | null = null;
  private cached: { at: number; text: string } | null = null;

  constructor(
    private readonly cfg: MetricsConfig,
    private readonly status: () => AgentStatus,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    if (this.cfg.textfile !== null) {
      this.writeFile(true);
      this.timer = setInterval(() => this.writeFile(true), this.cfg.intervalMs);
      this.timer.unref();
      this.log.info(
        { textfile: this.cfg.textfile, intervalMs: this.cfg.intervalMs },
        'writing metrics for the textfile collector',
      );
    }
    // A port in use must not stop the shipping of logs: logged, and the agent runs on without it.
    if (this.cfg.listen !== null)
      await this.listen(this.cfg.listen).catch((e: NodeJS.ErrnoException) =>
        this.log.error(
          { host: this.cfg.listen!.host, port: this.cfg.listen!.port, err: e.code ?? e.message },
          'cannot serve metrics: [metrics] listen',
        ),
      );
  }

  /** Stops both; the file is written a last time with guard_up 0 (`final`: the agent is stopping). */
  async stop(final: boolean): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.cfg.textfile !== null && final) this.writeFile(false);
    const server = this.server;
    this.server = null;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  private render(up: boolean): string {
    return renderMetrics(this.status(), processFigures(), up);
  }

  /** Temp file + rename in the same directory: the collector sees the old file or the new one. */
  private writeFile(up: boolean): void {
    const path = this.cfg.textfile!;
    const tmp = `${path}.${process.pid}.tmp`;
    try {
      const text = this.render(up);
      const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_NOFOLLOW, 0o644);
      try {
        writeSync(fd, text);
        fchmodSync(fd, 0o644); // the unit's UMask=0077 would leave it 0600 (Node opens with O_CLOEXEC)
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
      if (this.writeError !== null) this.log.info({ textfile: path }, 'metrics file written again');
      this.writeError = null;
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      try {
        unlinkSync(tmp);
      } catch {
        /* not created */
      }
      if (why !== this.writeError)
        this.log.error(
          { textfile: path, err: why },
          'cannot write the metrics file (is its directory writable by the agent? docs/operations.md)',
        );
      this.writeError = why;
    }
  }

  private listen(at: { host: string; port: number }): Promise<void> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/metrics') {
        res
          .writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' })
          .end('not found: GET /metrics\n');
        return;
      }
      if (req.method !== 'GET') {
        res.writeHead(405, { Allow: 'GET', 'Content-Type': 'text/plain; charset=utf-8' }).end();
        return;
      }
      const now = Date.now();
      if (this.cached === null || now - this.cached.at >= 1000)
        this.cached = { at: now, text: this.render(true) };
      res
        .writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' })
        .end(this.cached.text);
    });
    server.headersTimeout = 5000;
    server.requestTimeout = 10_000;
    server.maxConnections = 16;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(at.port, at.host, () => {
        server.off('error', reject);
        server.on('error', (e) => this.log.error({ err: e.message }, 'metrics endpoint error'));
        const a = server.address() as AddressInfo;
        this.log.info(
          {
            address: a.address,
            port: a.port,
            url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics`,
          },
          'metrics endpoint listening',
        );
        resolve();
      });
    });
  }
}
