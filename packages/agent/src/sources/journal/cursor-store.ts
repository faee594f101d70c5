// Where each journal directory was acknowledged up to: its cursor, saved only after every sink
// acknowledged the entries before it. The same scheme as the file checkpoints (state/checkpoints.ts):
// two slot files written alternately with one positional write, a sequence number to pick the
// newest readable one, fsync at most once a second.
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export interface SavedCursor {
  cursor: string;
  updated: string;
}

interface Saved {
  version: 1;
  seq: number;
  /** By "<source name>/<journal directory name>". */
  cursors: Record<string, SavedCursor>;
}

export class CursorStore {
  private readonly slots: [string, string];
  private fds: number[] = [];
  private cursors: Record<string, SavedCursor> = {};
  private seq = 0;
  private dirty = false;
  private unsynced = false;

  constructor(dir: string) {
    this.slots = [join(dir, 'journal-cursors-a.json'), join(dir, 'journal-cursors-b.json')];
    const existed = this.slots.some((p) => existsSync(p));
    let best: Saved | null = null;
    for (const p of this.slots) {
      try {
        const text = readFileSync(p, 'utf8');
        const saved = JSON.parse(text.slice(0, text.indexOf('\n'))) as Saved;
        if (!best || saved.seq > best.seq) best = saved;
      } catch {
        /* missing, or torn by a power loss: the other slot has the save before */
      }
    }
    if (existed && !best)
      throw new Error(
        `${dir}: no readable journal cursor slot; move the journal-cursors-*.json files away to start over`,
      );
    this.seq = best?.seq ?? 0;
    this.cursors = best?.cursors ?? {};
  }

  get(key: string): SavedCursor | undefined {
    return this.cursors[key];
  }

  set(key: string, cursor: string): void {
    this.cursors[key] = { cursor, updated: new Date().toISOString() };
    this.dirty = true;
  }

  /** Writes what changed (one write); `durable` also fsyncs. */
  save(durable: boolean): void {
    if (!this.dirty && !(durable && this.unsynced)) return;
    if (this.fds.length === 0)
      this.fds = this.slots.map((p) => openSync(p, constants.O_RDWR | constants.O_CREAT, 0o640));
    if (this.dirty) {
      this.seq++;
      const saved: Saved = { version: 1, seq: this.seq, cursors: this.cursors };
      const data = Buffer.from(JSON.stringify(saved) + '\n');
      const fd = this.fds[this.seq % 2]!;
      writeSync(fd, data, 0, data.length, 0);
      if (durable) ftruncateSync(fd, data.length);
      this.dirty = false;
      this.unsynced = true;
    }
    if (durable) {
      for (const fd of this.fds) fsyncSync(fd);
      this.unsynced = false;
    }
  }

  close(): void {
    this.save(true);
    for (const fd of this.fds) closeSync(fd);
    this.fds = [];
  }
}
