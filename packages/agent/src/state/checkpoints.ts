// Per-file read positions, saved only for bytes every sink has acknowledged.
//
// Saved after every acknowledged batch, so it must be cheap: two slot files, written alternately
// with one positional write each (no rename, no new file). A write to a regular file is never torn
// by a killed process, and the other slot still holds the previous save if a power loss tears one;
// each save ends in '\n' and carries a sequence number, and loading takes the newest slot that parses.
// fsync (file and directory) runs once a second, for power loss.
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** How many leading bytes identify a file beyond its inode (which the kernel reuses). */
export const FINGERPRINT_BYTES = 256;

export interface Checkpoint {
  path: string;
  dev: string;
  ino: string;
  /** Identity used in event ids, fixed when the file was first opened: `${dev}.${ino}.${fingerprint8}`. */
  key: string;
  /** sha256 (hex, first 16 chars) of the first `fingerprintBytes` bytes. */
  fingerprint: string;
  fingerprintBytes: number;
  /** Every byte before this one was acknowledged by every sink. */
  offset: number;
  updated: string;
}

/** Fingerprint of the first `len` bytes of the open file `fd` (fewer if the file is shorter). */
export function fingerprint(
  fd: number,
  len = FINGERPRINT_BYTES,
): { fingerprint: string; fingerprintBytes: number } {
  const buf = Buffer.alloc(len);
  let n = 0;
  while (n < len) {
    const r = readSync(fd, buf, n, len - n, n);
    if (r === 0) break;
    n += r;
  }
  return {
    fingerprint: createHash('sha256').update(buf.subarray(0, n)).digest('hex').slice(0, 16),
    fingerprintBytes: n,
  };
}

interface Saved {
  version: 2;
  seq: number;
  files: Checkpoint[];
}

export class CheckpointStore {
  private readonly slots: [string, string];
  private fds: number[] = [];
  private readonly byInode = new Map<string, Checkpoint>();
  private seq = 0;
  private dirty = false;
  private unsynced = false;
  /** False on the agent's very first start here (no saved state at all). */
  readonly existed: boolean;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    this.slots = [join(dir, 'checkpoints-a.json'), join(dir, 'checkpoints-b.json')];
    this.existed = this.slots.some((p) => existsSync(p));
    let best: Saved | null = null;
    for (const p of this.slots) {
      let text: string;
      try {
        text = readFileSync(p, 'utf8');
      } catch {
        continue;
      }
      try {
        const saved = JSON.parse(text.slice(0, text.indexOf('\n'))) as Saved;
        if (!best || saved.seq > best.seq) best = saved;
      } catch {
        /* torn by a power loss: the other slot has the save before */
      }
    }
    if (this.existed && !best)
      throw new Error(
        `${dir}: no readable checkpoint slot; move the checkpoints-*.json files away to start over`,
      );
    this.seq = best?.seq ?? 0;
    for (const cp of best?.files ?? []) this.byInode.set(`${cp.dev}:${cp.ino}`, cp);
  }

  /** The checkpoint for this inode if its leading bytes still match (else the inode was reused). */
  find(fd: number, dev: string, ino: string): Checkpoint | null {
    const cp = this.byInode.get(`${dev}:${ino}`);
    if (!cp) return null;
    return fingerprint(fd, cp.fingerprintBytes).fingerprint === cp.fingerprint ? cp : null;
  }

  get size(): number {
    return this.byInode.size;
  }
  all(): Checkpoint[] {
    return [...this.byInode.values()];
  }

  set(cp: Checkpoint): void {
    this.byInode.set(`${cp.dev}:${cp.ino}`, cp);
    this.dirty = true;
  }

  /** Forget files that are gone (closed after rotation, read to their end). */
  delete(dev: string, ino: string): void {
    if (this.byInode.delete(`${dev}:${ino}`)) this.dirty = true;
  }

  /** Records that the agent has started here, so start_at applies only to the very first start. */
  markStarted(): void {
    this.dirty = true;
    this.save(true);
  }

  /** Saves what changed (one write); `durable` also fsyncs, as the pipeline does once a second. */
  save(durable: boolean): void {
    if (!this.dirty && !(durable && this.unsynced)) return;
    const fds = this.open();
    if (this.dirty) {
      this.seq++;
      const data = Buffer.from(
        JSON.stringify({ version: 2, seq: this.seq, files: this.all() } satisfies Saved) + '\n',
      );
      const fd = fds[this.seq % 2]!;
      writeSync(fd, data, 0, data.length, 0);
      if (durable) ftruncateSync(fd, data.length); // only tidiness: loading stops at the first '\n'
      this.dirty = false;
      this.unsynced = true;
    }
    if (durable) {
      for (const fd of fds) fsyncSync(fd);
      this.unsynced = false;
    }
  }

  /** For shutdown and tests: everything on disk, durably. */
  flushSync(): void {
    this.save(true);
  }

  private open(): number[] {
    if (this.fds.length === 2) return this.fds;
    this.fds = this.slots.map((p) => openSync(p, constants.O_RDWR | constants.O_CREAT, 0o640));
    const dirFd = openSync(this.dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    return this.fds;
  }

  close(): void {
    for (const fd of this.fds) closeSync(fd);
    this.fds = [];
  }
}
