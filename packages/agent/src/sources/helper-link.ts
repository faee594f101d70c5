// The agent's connection to guard-helper. The helper may restart, or close every connection after
// reloading its policy (`reloaded`): calls reconnect once and retry; descriptors already received
// stay valid, since they are ours.
import { HelperClient, HelperConnectionError, HelperRefusal } from '@guard/protocol/client';
import type { FileReply } from '@guard/protocol/wire';
import { checkReceivedDescriptor } from './descriptors';
import type { Logger } from 'pino';

export class HelperLink {
  private client: HelperClient | null = null;
  private connecting: Promise<HelperClient> | null = null;
  lastError: string | null = null;
  /** the open path the helper named in its hello reply ('openat2' or 'walk') */
  openPath: string | null = null;
  /** The helper's refusals since start by request and code (`reloaded` is a reconnect, not one). */
  readonly refusals = new Map<string, { op: string; code: string; count: number }>();

  constructor(
    readonly socketPath: string,
    private readonly log: Logger,
  ) {}

  get connected(): boolean {
    return this.client !== null;
  }

  private async get(): Promise<HelperClient> {
    if (this.client) return this.client;
    this.connecting ??= HelperClient.connect(this.socketPath)
      .then(
        (c) => {
          this.client = c;
          this.lastError = null;
          this.openPath = c.helper?.open_path ?? null;
          this.log.info({ socket: this.socketPath }, 'connected to guard-helper');
          return c;
        },
        (e: NodeJS.ErrnoException) => {
          // the helper's own refusal of the hello (`version`, `peer`) says why in its message
          const why =
            e instanceof HelperRefusal ? `${e.code}: ${e.message}` : (e.code ?? e.message);
          this.lastError = `cannot connect to ${this.socketPath}: ${why}`;
          throw e;
        },
      )
      .finally(() => {
        this.connecting = null;
      });
    return this.connecting;
  }

  private drop(c: HelperClient, why: unknown): void {
    if (this.client !== c) return;
    this.client = null;
    c.close();
    this.lastError = `helper connection lost: ${(why as Error).message}`;
    this.log.warn({ err: (why as Error).message }, 'guard-helper connection lost; reconnecting');
  }

  /**
   * Runs fn on a live connection. A refusal (HelperRefusal) is the helper's answer and is thrown as
   * is. Every descriptor an `open` made through fn receives is checked before fn sees it
   * (sources/descriptors.ts): one that fails is closed unread, logged, and thrown as
   * DescriptorRejected, a refusal with code `bad_descriptor`.
   */
  async call<T>(fn: (c: HelperClient) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const c = await this.get();
      try {
        return await fn(this.checked(c));
      } catch (e) {
        const reconnect =
          e instanceof HelperConnectionError ||
          (e instanceof HelperRefusal && e.code === 'reloaded');
        if (!reconnect) {
          if (e instanceof HelperRefusal) this.countRefusal(e.op ?? 'unknown', e.code);
          throw e;
        }
        this.drop(c, e);
        if (attempt >= 1) throw e;
      }
    }
  }

  private countRefusal(op: string, code: string): void {
    const key = `${op} ${code}`;
    const r = this.refusals.get(key) ?? { op, code, count: 0 };
    r.count++;
    this.refusals.set(key, r);
  }

  /** c, but its open() checks the descriptor it returns. */
  private checked(c: HelperClient): HelperClient {
    const open = async (path: string): Promise<{ reply: FileReply; fd: number }> => {
      const got = await c.open(path);
      try {
        checkReceivedDescriptor(got.fd, got.reply, path);
      } catch (e) {
        this.log.error(
          { path, dev: got.reply.dev, ino: got.reply.ino, err: (e as Error).message },
          'guard-helper sent a descriptor that failed a check; refused it',
        );
        throw e;
      }
      return got;
    };
    return new Proxy(c, {
      get(target, prop) {
        if (prop === 'open') return open;
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  close(): void {
    this.client?.close();
    this.client = null;
  }
}
