// Where a tailer's bytes come from: a descriptor read with positional reads (a live file, or a
// rotated generation that is not compressed), or the decompressed stream of a compressed rotated
// generation. gzip is decompressed in the process (zlib); the other compressors logrotate is set up
// with are run as the system's own decompressor (as the agent's user, no privilege), fed the
// compressed bytes through a pipe. Either way the agent only ever holds a read-only descriptor the
// helper opened.
import { spawn, type ChildProcess } from 'node:child_process';
import { close, closeSync, fstat, read } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { FINGERPRINT_BYTES } from '../../state/checkpoints';

const fstatAsync = promisify(fstat);
const readAsync = promisify(read);

export interface ByteSource {
  /** Bytes that can be read now (the whole file when `complete`). */
  size(): Promise<number>;
  read(buf: Buffer, off: number, len: number, pos: number): Promise<number>;
  /** No byte will ever be added (a compressed generation read to its end). */
  readonly complete: boolean;
  /** Why the bytes stopped before the end (a decompressor's error), else null. */
  readonly failure: string | null;
  close(): void;
}

/** Log files' descriptors held for reading (FdSources, StreamSources) now and at most since the
 *  start, agent-wide (sources/file/open-files.ts bounds them), and who is told when one is closed. */
export const fdSources: { open: number; peak: number; onClose: (() => void) | null } = {
  open: 0,
  peak: 0,
  onClose: null,
};

/** A log file's descriptor held for reading (FdSource, StreamSource), and given up. */
function counted(): void {
  fdSources.open++;
  if (fdSources.open > fdSources.peak) fdSources.peak = fdSources.open;
}

function uncounted(): void {
  fdSources.open--;
  fdSources.onClose?.();
}

/** A file read through its descriptor: it may still grow. */
export class FdSource implements ByteSource {
  readonly complete = false;
  readonly failure = null;
  private closed = false;

  constructor(readonly fd: number) {
    counted();
  }

  async size(): Promise<number> {
    return (await fstatAsync(this.fd)).size;
  }

  async read(buf: Buffer, off: number, len: number, pos: number): Promise<number> {
    return (await readAsync(this.fd, buf, off, len, pos)).bytesRead;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // At once, not on the thread pool: the bound counts it closed now, and the room it frees is
    // used at once (a close queued behind reads let the real count pass RLIMIT_NOFILE, and the
    // kernel dropped descriptors the helper passed: ECTRUNC). Callers never close during a read.
    try {
      closeSync(this.fd);
    } catch {
      /* closed already: nothing held */
    }
    uncounted();
  }
}

/** How a compressed generation is decompressed, by its last extension. */
const DECOMPRESSORS: Record<string, { tool: string; args: string[] } | 'gzip'> = {
  '.gz': 'gzip',
  '.xz': { tool: 'xz', args: ['-dc'] },
  '.lzma': { tool: 'xz', args: ['--format=lzma', '-dc'] },
  '.bz2': { tool: 'bzip2', args: ['-dc'] },
  '.zst': { tool: 'zstd', args: ['-dcq'] },
  '.lz4': { tool: 'lz4', args: ['-dc'] },
  '.Z': { tool: 'gzip', args: ['-dc'] },
};

/** The compressor extension of a generation's name ('.gz', …), or null when it is not compressed. */
export function compressionOf(path: string): string | null {
  const m = /\.(gz|xz|lzma|bz2|zst|lz4|Z)$/.exec(path);
  return m ? m[0] : null;
}

/** Decompressed bytes held ahead of the reader before the decompressor is paused. */
const HIGH_WATER = 1 << 20;

/**
 * The decompressed content of a compressed file, read once from start to end. Reads must come in
 * order; bytes before `skipTo` (a checkpoint's offset) are decompressed and dropped.
 */
export class StreamSource implements ByteSource {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** Decompressed offset of chunks[0]'s first byte. */
  private base = 0;
  private ended = false;
  failure: string | null = null;
  private readonly output: Readable;
  private stopped = false;
  private readonly child: ChildProcess | null = null;
  private stderr = '';
  private waiters: (() => void)[] = [];

  /** Counted among the log files held open (not a short look at a generation's first bytes). */
  private counted = false;

  constructor(
    private fd: number,
    ext: string,
    private readonly skipTo = 0,
    forReading = true,
  ) {
    const how = DECOMPRESSORS[ext];
    if (how === undefined) throw new Error(`no decompressor for ${ext}`);
    if (how === 'gzip') {
      // A gzip file may hold several members (concatenated); zlib reads them all.
      const z = createGunzip();
      this.feed(z);
      this.output = z;
    } else {
      const child = spawn(how.tool, how.args, { stdio: ['pipe', 'pipe', 'pipe'] });
      this.child = child;
      child.on('error', (e: NodeJS.ErrnoException) =>
        this.fail(
          e.code === 'ENOENT' ? `${how.tool} is not installed` : `${how.tool}: ${e.message}`,
        ),
      );
      child.stdin!.on('error', () => undefined); // EPIPE when the tool stops early: its exit says why
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        if (this.stderr.length < 500) this.stderr += d;
      });
      this.feed(child.stdin!);
      this.output = child.stdout!;
    }
    this.output.on('data', (d: Buffer) => this.take(d));
    this.output.on('error', (e) => this.fail(e.message));
    this.output.on('end', () => {
      if (!this.child) return this.finish();
      // stdout ends before the exit status is known: a tool's error shows only in its status
      if (this.child.exitCode !== null) return this.exited(this.child.exitCode, how);
      this.child.once('exit', (code) => this.exited(code, how));
    });
    // Last: a constructor that threw (spawn can) has counted nothing.
    if (forReading) {
      this.counted = true;
      counted();
    }
  }

  /**
   * Writes the compressed file into the decompressor with positional reads of our descriptor (a
   * read stream would close the descriptor when destroyed; it is closed by close() only).
   */
  private feed(into: Writable): void {
    const buf = Buffer.allocUnsafe(64 * 1024);
    let pos = 0;
    const next = (): void => {
      if (this.stopped) return;
      read(this.fd, buf, 0, buf.length, pos, (e, n) => {
        if (this.stopped) return;
        if (e) return this.fail(`reading the compressed file: ${e.message}`);
        if (n === 0) return void into.end();
        pos += n;
        if (into.write(Buffer.from(buf.subarray(0, n)))) next();
        else into.once('drain', next);
      });
    };
    into.on('error', () => undefined); // the output side reports a decompressor's failure
    next();
  }

  private exited(code: number | null, how: unknown): void {
    if (code === 0) this.finish();
    else
      this.fail(
        `${(how as { tool: string }).tool} exited ${code}${this.stderr ? `: ${this.stderr.trim()}` : ''}`,
      );
  }

  private take(d: Buffer): void {
    if (this.failure) return;
    if (this.base < this.skipTo) {
      const drop = Math.min(d.length, this.skipTo - this.base);
      this.base += drop;
      d = d.subarray(drop);
      if (d.length === 0) return;
    }
    this.chunks.push(d);
    this.buffered += d.length;
    if (this.buffered >= HIGH_WATER) this.output.pause();
    this.wake();
  }

  private finish(): void {
    this.ended = true;
    this.wake();
  }

  private fail(why: string): void {
    if (this.failure || this.ended) return;
    this.failure = why;
    this.wake();
    this.stop();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  get complete(): boolean {
    return this.ended;
  }

  /** Waits until the decompressor has something, has ended or failed, or `ms` passed. */
  private async settle(ms: number): Promise<void> {
    if (this.buffered > 0 || this.ended || this.failure) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async size(): Promise<number> {
    await this.settle(50);
    // While the bytes before a checkpoint's offset are still being dropped, there is nothing to read.
    if (this.base < this.skipTo && !this.ended) return this.skipTo;
    return this.base + this.buffered;
  }

  async read(buf: Buffer, off: number, len: number, pos: number): Promise<number> {
    if (pos !== this.base)
      throw new Error(`compressed stream read at ${pos}, but it is at ${this.base}`);
    let n = 0;
    while (n < len && this.chunks.length > 0) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, len - n);
      c.copy(buf, off + n, 0, k);
      n += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.base += n;
    this.buffered -= n;
    if (this.buffered < HIGH_WATER / 2 && !this.ended) this.output.resume();
    return n;
  }

  /** Stops decompressing; the descriptor stays open. */
  stop(): void {
    this.stopped = true;
    this.output.destroy();
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
  }

  close(): void {
    if (this.stopped && this.fd < 0) return;
    this.stop();
    // On the thread pool (a read of the feed may still be under way there): the count gives the
    // room up now, the descriptor follows; the headroom covers the few in between.
    close(this.fd, () => undefined);
    this.fd = -1;
    if (this.counted) {
      this.counted = false;
      uncounted();
    }
  }
}

/**
 * The first FINGERPRINT_BYTES decompressed bytes of a compressed file (fewer when it is shorter),
 * and whether it was read to its end cleanly. The descriptor stays open.
 */
export async function compressedHead(
  fd: number,
  ext: string,
): Promise<{ head: Buffer; failure: string | null }> {
  const s = new StreamSource(fd, ext, 0, false);
  try {
    for (let i = 0; i < 200; i++) {
      const n = await s.size();
      if (n >= FINGERPRINT_BYTES || s.complete || s.failure) break;
    }
    const n = Math.min(await s.size(), FINGERPRINT_BYTES);
    const head = Buffer.alloc(n);
    await s.read(head, 0, n, 0);
    const short = n < FINGERPRINT_BYTES && !s.complete;
    return {
      head,
      failure: short ? (s.failure ?? 'decompressing took too long') : null,
    };
  } finally {
    s.stop();
  }
}
