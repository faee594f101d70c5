// Per-file read positions, written atomically and only for bytes every sink has acknowledged.
// One JSON file under the state directory: temp file, fsync, rename, fsync of the directory.
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeSync } from 'node:fs';
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
export function fingerprint(fd: number, len = FINGERPRINT_BYTES): { fingerprint: string; fingerprintBytes: number } {
  const buf = Buffer.alloc(len);
  let n = 0;
  while (n < len) {
    const r = readSync(fd, buf, n, len - n, n);
    if (r === 0) break;
    n += r;
  }
  return { fingerprint: createHash('sha256').update(buf.subarray(0, n)).digest('hex').slice(0, 16), fingerprintBytes: n };
}

export class CheckpointStore {
  private readonly file: string;
  private readonly byInode = new Map<string, Checkpoint>();
  private dirty = false;
  private unsynced = false;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    this.file = join(dir, 'checkpoints.json');
    let saved: Checkpoint[] = [];
    try {
      saved = (JSON.parse(readFileSync(this.file, 'utf8')) as { files: Checkpoint[] }).files;
    } catch (e) {
      // No file yet is the first start; a corrupt one cannot happen through rename, so say so loudly.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${this.file}: unreadable checkpoints: ${(e as Error).message}`);
    }
    for (const cp of saved) this.byInode.set(`${cp.dev}:${cp.ino}`, cp);
  }

  /** The checkpoint for this inode if its leading bytes still match (else the inode was reused). */
  find(fd: number, dev: string, ino: string): Checkpoint | null {
    const cp = this.byInode.get(`${dev}:${ino}`);
    if (!cp) return null;
    return fingerprint(fd, cp.fingerprintBytes).fingerprint === cp.fingerprint ? cp : null;
  }

  get size(): number { return this.byInode.size; }

  /** Records that the agent has started here once, so start_at applies only to the very first start. */
  markStarted(): void {
    this.dirty = true;
    this.save(true);
  }
  all(): Checkpoint[] { return [...this.byInode.values()]; }

  set(cp: Checkpoint): void {
    this.byInode.set(`${cp.dev}:${cp.ino}`, cp);
    this.dirty = true;
  }

  /** Forget files that are gone (closed after rotation, read to their end). */
  delete(dev: string, ino: string): void {
    if (this.byInode.delete(`${dev}:${ino}`)) this.dirty = true;
  }

  /**
   * Saves what changed. Write and rename are enough for the agent being killed (the kernel keeps the
   * data), so this runs after every acknowledged batch; `durable` adds the fsyncs that survive a power
   * loss, which the pipeline does once a second.
   */
  save(durable: boolean): void {
    if (!this.dirty && !(durable && this.unsynced)) return;
    if (this.dirty) this.writeNow(durable);
    else if (durable) this.syncNow();
    this.dirty = false;
    this.unsynced = !durable;
  }

  /** For shutdown and tests: everything on disk, durably. */
  flushSync(): void { this.save(true); }

  private writeNow(durable: boolean): void {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o640);
    try {
      writeSync(fd, JSON.stringify({ version: 1, files: this.all() }));
      if (durable) fsyncSync(fd);
    } finally { closeSync(fd); }
    renameSync(tmp, this.file);
    if (durable) this.syncDir();
  }

  private syncNow(): void {
    const fd = openSync(this.file, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
    this.syncDir();
  }

  private syncDir(): void {
    const dirFd = openSync(this.dir, 'r');
    try { fsyncSync(dirFd); } finally { closeSync(dirFd); }
  }
}
