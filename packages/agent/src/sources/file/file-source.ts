// A `[source.NAME]`: which files match (helper `list`, since `guard` cannot read restricted
// directories), one tailer per file (helper `open`), rotation by the path's identity changing
// (helper `stat`). A rotated file keeps its descriptor and is read to its end before it is closed,
// so nothing is lost even when it was already renamed, compressed or unlinked.
import { closeSync } from 'node:fs';
import { HelperRefusal } from '@guard/protocol/client';
import type { Logger } from 'pino';
import type { SourceConfig } from '../../config/types';
import type { CheckpointStore } from '../../state/checkpoints';
import type { HelperLink } from '../helper-link';
import { FileTailer, type TailerOptions } from './tailer';

export interface Refusal {
  code: string;
  message: string;
  since: string;
}

/** How long a rotated file must stay unchanged and fully acknowledged before it is closed. */
const ROTATED_QUIET_MS = 5000;

export class FileSource {
  /** The file each path currently names. */
  readonly current = new Map<string, FileTailer>();
  /** Rotated away from their path, still being read to the end. */
  readonly draining = new Set<FileTailer>();
  /** Files the helper refused, with its reason: shown in status, retried on every rescan. */
  readonly refused = new Map<string, Refusal>();
  /** Paths that disappeared by rotation: their successor is looked for on every rotation check. */
  private readonly vanished = new Set<string>();
  listTruncated = false;
  lastListError: string | null = null;

  constructor(
    readonly cfg: SourceConfig,
    private readonly link: HelperLink,
    private readonly store: CheckpointStore,
    private readonly tailerOpts: TailerOptions,
    private readonly onAcked: (t: FileTailer) => void,
    private readonly log: Logger,
    /** True only on the agent's very first start (no checkpoints at all): start_at applies. */
    private firstStart: boolean,
  ) {}

  *tailers(): Iterable<FileTailer> {
    yield* this.current.values();
    yield* this.draining;
  }

  private tracking(dev: string, ino: string): FileTailer | undefined {
    for (const t of this.tailers()) if (t.dev === dev && t.ino === ino) return t;
    return undefined;
  }

  /** Finds the files that match now and starts tailing the new ones. */
  async rescan(): Promise<void> {
    let files: string[];
    try {
      const reply = await this.link.call((c) => c.listAll(this.cfg.name));
      files = reply.files;
      this.listTruncated = reply.truncated === true;
      this.lastListError = null;
    } catch (e) {
      this.lastListError =
        e instanceof HelperRefusal ? `${e.code}: ${e.message}` : (e as Error).message;
      this.log.warn({ source: this.cfg.name, err: this.lastListError }, 'cannot list source files');
      return;
    }
    for (const path of files) if (!this.current.has(path)) await this.openPath(path);
    this.firstStart = false;
  }

  /** Compares each path's identity with the descriptor we hold; a new identity is a rotation. */
  async checkRotation(): Promise<void> {
    for (const [path, t] of [...this.current]) {
      try {
        const id = await this.link.call((c) => c.stat(path));
        if (id.dev === t.dev && id.ino === t.ino) continue;
        this.rotate(path, t);
        await this.openPath(path);
      } catch (e) {
        if (e instanceof HelperRefusal && e.code === 'not_found') this.rotate(path, t);
        else this.log.warn({ path, err: (e as Error).message }, 'rotation check failed');
      }
    }
    for (const path of [...this.vanished])
      if (!this.current.has(path)) await this.openPath(path, true);
  }

  private rotate(path: string, t: FileTailer): void {
    this.current.delete(path);
    t.rotated = true;
    this.draining.add(t);
    this.vanished.add(path);
    this.log.info(
      { source: this.cfg.name, path, dev: t.dev, ino: t.ino },
      'file rotated; reading the old one to its end',
    );
  }

  /** Closes rotated files that are read to the end, acknowledged, and quiet. */
  reapDrained(now = Date.now()): void {
    for (const t of this.draining) {
      if (t.drained && now - t.lastReadAt > ROTATED_QUIET_MS) {
        this.draining.delete(t);
        t.close();
        this.store.delete(t.dev, t.ino);
        this.log.info(
          { path: t.path, dev: t.dev, ino: t.ino, offset: t.ackedOffset },
          'rotated file read to its end; closed',
        );
      }
    }
  }

  private async openPath(path: string, quietIfMissing = false): Promise<void> {
    let reply, fd: number;
    try {
      ({ reply, fd } = await this.link.call((c) => c.open(path)));
    } catch (e) {
      if (!(e instanceof HelperRefusal)) {
        this.log.warn({ path, err: (e as Error).message }, 'cannot ask the helper');
        return;
      }
      if (e.code === 'not_found') {
        this.refused.delete(path);
        if (!quietIfMissing) this.vanished.delete(path);
        return;
      }
      if (!this.refused.has(path))
        this.log.error(
          { source: this.cfg.name, path, code: e.code, reason: e.message },
          'helper refused a file',
        );
      this.refused.set(path, {
        code: e.code,
        message: e.message,
        since: this.refused.get(path)?.since ?? new Date().toISOString(),
      });
      return;
    }
    this.refused.delete(path);
    this.vanished.delete(path);
    const same = this.tracking(reply.dev, reply.ino);
    if (same) {
      // already tailing this inode: under another name (syslog.1 after a rotation), or back at its path
      closeSync(fd);
      if (same.path === path && this.draining.delete(same)) {
        same.rotated = false;
        this.current.set(path, same);
      }
      return;
    }
    const checkpoint = this.store.find(fd, reply.dev, reply.ino);
    const offset = checkpoint
      ? checkpoint.offset <= reply.size
        ? checkpoint.offset
        : 0
      : this.firstStart && this.cfg.startAt === 'end'
        ? reply.size
        : 0;
    const t = new FileTailer(
      this.cfg.name,
      path,
      fd,
      reply.dev,
      reply.ino,
      { offset, checkpoint },
      this.tailerOpts,
      this.onAcked,
    );
    t.size = reply.size;
    this.current.set(path, t);
    this.log.info(
      {
        source: this.cfg.name,
        path,
        dev: reply.dev,
        ino: reply.ino,
        offset,
        resumed: checkpoint !== null,
      },
      'tailing file',
    );
  }

  close(): void {
    for (const t of this.tailers()) t.close();
    this.current.clear();
    this.draining.clear();
  }
}
