// A tiny SOCK_SEQPACKET server built on the real fdpass addon, scripted by each test: it stands in
// for guard-helper so HelperClient is tested against real descriptor passing, not a mock.
import * as fdpass from '@guard/fdpass';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class FakeConnection {
  readonly requests: unknown[] = [];
  /** The descriptor each request carried (-1: none), held until the connection closes. */
  readonly fds: number[] = [];
  closed = false;
  private readonly watcher: fdpass.Watcher;
  private waiters: Array<{ count: number; resolve(): void }> = [];

  constructor(
    readonly fd: number,
    private readonly onRequest: (req: unknown, conn: FakeConnection) => void,
  ) {
    this.watcher = new fdpass.Watcher(fd, (status, readable) => {
      if (status >= 0 && readable) this.read();
    });
  }

  /** Starts reading requests; a test can leave a connection unread to build up backpressure. */
  startReading(): void {
    if (!this.closed) this.watcher.start(true, false);
  }

  stopReading(): void {
    if (!this.closed) this.watcher.stop();
  }

  reply(message: unknown, passFd = -1): void {
    const data = Buffer.from(typeof message === 'string' ? message : JSON.stringify(message));
    if (!fdpass.send(this.fd, data, passFd < 0 ? undefined : passFd))
      throw new Error('fake helper: send would block');
  }

  /** Resolves once `count` requests have arrived in total. */
  waitForRequests(count: number): Promise<void> {
    if (this.requests.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.close();
    fdpass.close(this.fd);
    for (const fd of this.fds) if (fd >= 0) fdpass.close(fd);
  }

  private read(): void {
    for (;;) {
      if (this.closed) return;
      const got = fdpass.recv(this.fd, 4097, 1);
      if (got === null) return;
      if (got.data.length === 0) {
        if (got.fd >= 0) fdpass.close(got.fd);
        return this.close();
      }
      const req: unknown = JSON.parse(got.data.toString('utf8'));
      this.requests.push(req);
      this.fds.push(got.fd);
      this.waiters = this.waiters.filter((w) =>
        this.requests.length >= w.count ? (w.resolve(), false) : true,
      );
      this.onRequest(req, this);
    }
  }
}

export class FakeHelper {
  readonly dir = mkdtempSync(join(tmpdir(), 'guard-fake-helper-'));
  readonly socketPath = join(this.dir, 'helper.sock');
  readonly connections: FakeConnection[] = [];
  private readonly listenFd: number;
  private readonly watcher: fdpass.Watcher;
  private acceptWaiters: Array<() => void> = [];

  /**
   * `onRequest` answers each request (or not); `onAccept` runs first for each new connection,
   * and returns false to leave it unread.
   */
  constructor(
    private readonly onRequest: (req: unknown, conn: FakeConnection) => void = () => {},
    private readonly onAccept: (conn: FakeConnection) => boolean | void = () => {},
  ) {
    this.listenFd = fdpass.listen(this.socketPath);
    this.watcher = new fdpass.Watcher(this.listenFd, (status, readable) => {
      if (status >= 0 && readable) this.accept();
    });
    this.watcher.start(true, false);
  }

  /** Resolves with the `index`th connection accepted, once it has been. */
  async connection(index = 0): Promise<FakeConnection> {
    for (;;) {
      const conn = this.connections[index];
      if (conn) return conn;
      await new Promise<void>((resolve) => this.acceptWaiters.push(resolve));
    }
  }

  close(): void {
    for (const c of this.connections) c.close();
    this.watcher.close();
    fdpass.close(this.listenFd);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private accept(): void {
    for (;;) {
      const fd = fdpass.accept(this.listenFd);
      if (fd < 0) return;
      const conn = new FakeConnection(fd, this.onRequest);
      this.connections.push(conn);
      if (this.onAccept(conn) !== false) conn.startReading();
      for (const resolve of this.acceptWaiters.splice(0)) resolve();
    }
  }
}

/** How many descriptors this process has open (to prove stray ones are closed). */
export function openDescriptorCount(): number {
  return readdirSync('/proc/self/fd').length;
}
