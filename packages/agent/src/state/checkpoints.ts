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
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** How many leading bytes identify a file beyond its inode (which the kernel reuses). */
export const FINGERPRINT_BYTES = 256;

export interface Checkpoint {
  /** The live path the file had (events carry it as "path"), also while a rotated generation is read. */
  path: string;
  /** The `[source.NAME]` it belongs to (absent in checkpoints of older versions). */
  source?: string;
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

/** What identifies a file's content: the hash of its first bytes and how many they were. */
export interface Fingerprint {
  fingerprint: string;
  fingerprintBytes: number;
}

/** The first `len` bytes of the open file `fd` (fewer if the file is shorter). */
export function readHead(fd: number, len = FINGERPRINT_BYTES): Buffer {
  const buf = Buffer.alloc(len);
  let n = 0;
  while (n < len) {
    const r = readSync(fd, buf, n, len - n, n);
    if (r === 0) break;
    n += r;
  }
  return buf.subarray(0, n);
}

/** Fingerprint of the first `len` bytes of `head` (all of it when shorter). */
export function fingerprintOf(head: Buffer, len = FINGERPRINT_BYTES): Fingerprint {
  const bytes = head.subarray(0, len);
  return {
    fingerprint: createHash('sha256').update(bytes).digest('hex').slice(0, 16),
    fingerprintBytes: bytes.length,
  };
}

/** Fingerprint of the first `len` bytes of the open file `fd` (fewer if the file is shorter). */
export function fingerprint(fd: number, len = FINGERPRINT_BYTES): Fingerprint {
  return fingerprintOf(readHead(fd, len));
}

/**
 * True when a file whose first bytes are `head` is the file `fp` was taken of: its first
 * `fp.fingerprintBytes` bytes hash the same. An empty fingerprint identifies nothing.
 */
export function headMatches(head: Buffer, fp: Fingerprint): boolean {
  if (fp.fingerprintBytes <= 0 || head.length < fp.fingerprintBytes) return false;
  // A generation's head is compared with every file's fingerprint: hashed once per length.
  let byLength = headHashes.get(head);
  if (byLength === undefined) headHashes.set(head, (byLength = new Map()));
  let h = byLength.get(fp.fingerprintBytes);
  if (h === undefined) {
    h = fingerprintOf(head, fp.fingerprintBytes).fingerprint;
    byLength.set(fp.fingerprintBytes, h);
  }
  return h === fp.fingerprint;
}
/** Hashes of heads compared (headMatches), by the head's Buffer: heads are read once and kept. */
const headHashes = new WeakMap<Buffer, Map<number, string>>();

/**
 * A file of a source that is never to be read again: read to its end and acknowledged
 * (`shipped`), or a rotated generation that already existed when guard began to track the source
 * (`history`: it predates guard). Kept while a file with this fingerprint may still be found.
 */
export interface FinishedFile extends Fingerprint {
  size: number;
  /** The key its events carried (absent for history). */
  key?: string;
  why: 'shipped' | 'history';
  at: string;
}

/** Per `[source.NAME]`: since when its rotated generations are tracked (the ones that existed
 *  then, or were last written before then, predate guard), and its finished files. */
export interface SourceState {
  since: string;
  finished: FinishedFile[];
}

interface Saved {
  version: 2;
  seq: number;
  files: Checkpoint[];
  sources?: Record<string, SourceState>;
}

/** A save this large (about 1,500 files with short paths, fewer with long ones) makes the next
 *  non-durable one wait (save()). */
const PACED_BYTES = 256 * 1024;

export class CheckpointStore {
  private readonly slots: [string, string];
  private fds: number[] = [];
  /** By the file's key: a reused inode is another file, with a checkpoint of its own. */
  private readonly byKey = new Map<string, Checkpoint>();
  /** Each checkpoint's JSON as last saved (save()). */
  private readonly json = new Map<string, string>();
  /** Keys by `dev.ino`: find() in constant time with thousands of files. */
  private readonly byInode = new Map<string, Set<string>>();
  private readonly sources = new Map<string, SourceState>();
  private seq = 0;
  private isDirty = false;
  private unsynced = false;
  /** Told when something changed that is not saved (durably) yet: the pipeline saves within a
   *  second (called once until the next save). */
  onDirty: (() => void) | null = null;
  private get dirty(): boolean {
    return this.isDirty;
  }
  private set dirty(v: boolean) {
    if (v && !this.isDirty && !this.unsynced) this.onDirty?.();
    this.isDirty = v;
  }
  /** False on the agent's very first start here (no saved state at all). */
  readonly existed: boolean;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    this.slots = [join(dir, 'checkpoints-a.json'), join(dir, 'checkpoints-b.json')];
    // An empty slot was created and never written (the first save opens both slots before it
    // writes one; an agent killed in between, e.g. by a SIGTERM before its handler is installed,
    // left two): no checkpoint at all, not an unreadable one.
    const written = (p: string): boolean => {
      try {
        return statSync(p).size > 0;
      } catch {
        return false;
      }
    };
    this.existed = this.slots.some(written);
    let best: Saved | null = null;
    for (const p of this.slots) {
      let text: string;
      try {
        text = readFileSync(p, 'utf8');
      } catch {
        continue;
      }
      if (text.length === 0) continue;
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
    for (const cp of best?.files ?? []) if (cp.fingerprintBytes > 0) this.put(cp);
    for (const [name, st] of Object.entries(best?.sources ?? {})) this.sources.set(name, st);
  }

  /** The checkpoint for this inode if its leading bytes (`head`) still match (else the inode was reused). */
  find(head: Buffer, dev: string, ino: string): Checkpoint | null {
    for (const key of this.byInode.get(`${dev}.${ino}`) ?? []) {
      const cp = this.byKey.get(key)!;
      if (cp.dev === dev && cp.ino === ino && headMatches(head, cp)) return cp;
    }
    return null;
  }

  private put(cp: Checkpoint): void {
    this.json.delete(cp.key);
    const old = this.byKey.get(cp.key);
    if (old && (old.dev !== cp.dev || old.ino !== cp.ino)) this.unindex(old);
    this.byKey.set(cp.key, cp);
    const id = `${cp.dev}.${cp.ino}`;
    let keys = this.byInode.get(id);
    if (!keys) this.byInode.set(id, (keys = new Set()));
    keys.add(cp.key);
  }

  private unindex(cp: Checkpoint): void {
    const id = `${cp.dev}.${cp.ino}`;
    const keys = this.byInode.get(id);
    keys?.delete(cp.key);
    if (keys?.size === 0) this.byInode.delete(id);
  }

  get size(): number {
    return this.byKey.size;
  }
  all(): Checkpoint[] {
    return [...this.byKey.values()];
  }

  /** Saves a file's position. One with an empty fingerprint identifies nothing and is not kept. */
  set(cp: Checkpoint): void {
    if (cp.fingerprintBytes === 0) return;
    this.put(cp);
    this.dirty = true;
  }

  /** Forget a file that is gone (closed after rotation, read to its end). */
  delete(key: string): void {
    const cp = this.byKey.get(key);
    if (cp) this.unindex(cp);
    this.json.delete(key);
    if (this.byKey.delete(key)) this.dirty = true;
  }

  /** A source's rotation-set state; undefined until the source was first tracked. */
  sourceState(name: string): SourceState | undefined {
    return this.sources.get(name);
  }

  setSourceState(name: string, st: SourceState): void {
    this.sources.set(name, st);
    this.dirty = true;
  }

  /** Call after changing a source state's arrays in place. */
  touch(): void {
    this.dirty = true;
  }

  /** Records that the agent has started here, so start_at applies only to the very first start. */
  markStarted(): void {
    this.dirty = true;
    this.save(true);
  }

  /** Saves what changed (one write); `durable` also fsyncs, as the pipeline does once a second. */
  save(durable: boolean): void {
    if (this.closed) return; // an answer that came after the shutdown's flush: nothing to write to
    if (!this.dirty && !(durable && this.unsynced)) return;
    if (!durable && this.dirty && performance.now() < this.nextSaveAt) {
      // A save costs time in proportion to the files tracked (~7 ms with 10,000): after every
      // acknowledged batch it took most of the main thread when thousands of files each shipped
      // a line. Past PACED_BYTES it waits until four times its own cost has passed since the
      // last (a few ms); smaller ones are never held back (docs/decisions.md, "checkpoint writes").
      this.deferred ??= setTimeout(
        () => {
          this.deferred = null;
          try {
            this.save(false);
          } catch {
            // still dirty: the durable save within a second writes it, or logs why it cannot
          }
        },
        Math.ceil(this.nextSaveAt - performance.now()),
      );
      return;
    }
    const fds = this.open();
    if (this.dirty) {
      const began = performance.now();
      this.seq++;
      // The same JSON as JSON.stringify of a `Saved`, each file's part kept from the last save
      // while it is unchanged: with thousands of files, a save (after every acknowledged batch) no
      // longer serialises every one of them again.
      const files: string[] = [];
      for (const [key, cp] of this.byKey) {
        let j = this.json.get(key);
        if (j === undefined) this.json.set(key, (j = JSON.stringify(cp)));
        files.push(j);
      }
      const data = Buffer.from(
        `{"version":2,"seq":${this.seq},"files":[${files.join(',')}],"sources":${JSON.stringify(Object.fromEntries(this.sources))}}\n`,
      );
      const fd = fds[this.seq % 2]!;
      writeSync(fd, data, 0, data.length, 0);
      if (durable) ftruncateSync(fd, data.length); // only tidiness: loading stops at the first '\n'
      this.dirty = false;
      this.unsynced = true;
      // what the files cost (serialising and writing), not opening the slots or fsync
      const ended = performance.now();
      const took = ended - began;
      this.nextSaveAt = data.length >= PACED_BYTES ? ended + 4 * took : 0;
    }
    if (durable) {
      for (const fd of fds) fsyncSync(fd);
      this.unsynced = false;
    }
  }
  /** When the next save not asked to be durable may write (see save()). */
  private nextSaveAt = 0;
  private deferred: NodeJS.Timeout | null = null;

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

  private closed = false;

  close(): void {
    this.closed = true;
    if (this.deferred) clearTimeout(this.deferred);
    this.deferred = null;
    for (const fd of this.fds) closeSync(fd);
    this.fds = [];
  }
}
