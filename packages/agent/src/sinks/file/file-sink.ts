// The file sink, guard's embedded default: appends each batch's NDJSON lines to a local file and
// fsyncs before acknowledging, so a fresh install keeps every event with no backend at all.
// Size-based rotation: path → path.1 → … → path.<max_files>, the oldest removed.
// A write that fails (ENOSPC, EACCES, a vanished directory) is undone and retried with backoff;
// the batch is never dropped and never half-written.

import { promises as fs } from 'node:fs';
import { markDelivered, newSinkStatus } from '../sink-status';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type pino from 'pino';
import type { Batch, SendOutcome, Sink, SinkStatus } from '../../event';
import type { FileSinkConfig } from '../../config/types';
import { fsyncDirectory } from '../durable-write';
import { backoffDelay, throwIfAborted, waitToRetry, type RetryPolicy } from '../retry';
import { describeError, errorCode, SinkError } from '../sink-error';

/** FileSinkConfig has no retry keys: a local disk error is retried on this schedule. */
export const FILE_RETRY_INITIAL_MS = 500;
export const FILE_RETRY_MAX_MS = 30_000;

export interface FileSinkOptions {
  stateDir: string;
  logger: pino.Logger;
  /** For tests: the retry schedule (default 500 ms doubling to 30 s) and jitter source. */
  retry?: Partial<RetryPolicy>;
}

interface OpenFile {
  fh: FileHandle;
  dev: number;
  ino: number;
  size: number;
}

export class FileSink implements Sink {
  readonly name: string;
  private readonly cfg: FileSinkConfig;
  private readonly log: pino.Logger;
  private readonly retry: RetryPolicy;
  private file: OpenFile | null = null;
  private closed = false;
  private readonly state: SinkStatus;

  constructor(cfg: FileSinkConfig, opts: FileSinkOptions) {
    this.name = cfg.name;
    this.cfg = cfg;
    this.log = opts.logger.child({ sink: cfg.name, sinkType: 'file' });
    this.retry = { initialMs: FILE_RETRY_INITIAL_MS, maxMs: FILE_RETRY_MAX_MS, ...opts.retry };
    this.state = newSinkStatus(cfg.name, 'file', cfg.path);
  }

  status(): SinkStatus {
    return { ...this.state };
  }

  async send(batch: Batch, signal: AbortSignal): Promise<SendOutcome> {
    throwIfAborted(signal);
    if (this.closed) throw new SinkError('GUARD_SINK_CLOSED', `sink ${this.name} is closed`);
    const data = batch.body;
    let failures = 0;
    try {
      for (;;) {
        if (this.closed)
          throw new SinkError(
            'GUARD_SINK_CLOSED',
            `sink ${this.name} was closed with batch ${batch.seq} unwritten`,
          );
        try {
          await this.append(data);
          markDelivered(this.state, batch.events);
          if (failures > 0)
            this.log.info(
              { seq: batch.seq, attempts: failures + 1 },
              'batch written after retries',
            );
          return 'delivered';
        } catch (err) {
          failures += 1;
          const code = errorCode(err);
          const delay = backoffDelay(failures, this.retry);
          this.log.error(
            { seq: batch.seq, code, path: this.cfg.path, attempt: failures, delayMs: delay },
            `cannot write ${this.cfg.path} (${code}); retrying in ${delay} ms`,
          );
          await waitToRetry(this.state, describeError(err), delay, signal);
        }
      }
    } finally {
      this.state.retryingUntil = null;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.closeFile();
  }

  /** Appends `data` durably, rotating first if it would push the file past max_bytes. */
  private async append(data: Buffer): Promise<void> {
    let file = await this.openFile();
    // A batch bigger than max_bytes still goes whole into a fresh file: lines are never split.
    if (file.size > 0 && file.size + data.length > this.cfg.maxBytes) {
      await this.rotate();
      file = await this.openFile();
    }
    const start = file.size;
    try {
      let off = 0;
      while (off < data.length) {
        const { bytesWritten } = await file.fh.write(data, off, data.length - off);
        if (bytesWritten <= 0)
          throw new SinkError(
            'GUARD_FILE_SHORT_WRITE',
            `write to ${this.cfg.path} made no progress`,
          );
        off += bytesWritten;
      }
      // The pipeline moves checkpoints once this resolves: the bytes must be on disk, not in cache.
      await file.fh.sync();
      file.size = start + data.length;
    } catch (err) {
      // Undo a partial write, so the retry does not leave half a batch (a broken line) before it.
      await file.fh.truncate(start).catch((truncErr: unknown) => {
        this.log.warn(
          { code: errorCode(truncErr), path: this.cfg.path },
          'cannot cut a failed write back; the file may hold a partial line',
        );
      });
      await this.closeFile();
      throw err;
    }
  }

  /** The open file for `cfg.path`, reopened if someone moved, replaced or removed it. */
  private async openFile(): Promise<OpenFile> {
    const path = this.cfg.path;
    if (this.file !== null) {
      const st = await fs.stat(path).catch((err: unknown) => {
        if (errorCode(err) === 'ENOENT') return null;
        throw err;
      });
      if (st !== null && st.dev === this.file.dev && st.ino === this.file.ino) return this.file;
      this.log.warn({ path }, `${path} was moved or removed by someone else; reopening`);
      await this.closeFile();
    }
    await fs.mkdir(dirname(path), { recursive: true, mode: 0o750 });
    const fh = await fs.open(path, 'a', 0o640);
    try {
      const st = await fh.stat();
      // Make the file's directory entry durable too, not only its contents.
      await fsyncDirectory(dirname(path));
      this.file = { fh, dev: st.dev, ino: st.ino, size: st.size };
      return this.file;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  private async closeFile(): Promise<void> {
    const file = this.file;
    this.file = null;
    if (file !== null) {
      await file.fh
        .close()
        .catch((err: unknown) =>
          this.log.warn(
            { code: errorCode(err), path: this.cfg.path },
            'closing the output file failed',
          ),
        );
    }
  }

  /** path.(n-1) → path.n … path → path.1; at most max_files rotated files remain. */
  private async rotate(): Promise<void> {
    const { path, maxFiles } = this.cfg;
    await this.closeFile();
    if (maxFiles <= 0) {
      await fs.rm(path, { force: true });
    } else {
      for (let n = maxFiles - 1; n >= 1; n--)
        await renameIfPresent(`${path}.${n}`, `${path}.${n + 1}`);
      await fs.rename(path, `${path}.1`);
    }
    await this.removeBeyond(maxFiles);
    await fsyncDirectory(dirname(path));
    this.log.info({ path, maxFiles }, `rotated ${path}`);
  }

  /** Removes path.N for N > max_files (left behind when max_files was lowered). */
  private async removeBeyond(maxFiles: number): Promise<void> {
    const dir = dirname(this.cfg.path);
    const prefix = `${basename(this.cfg.path)}.`;
    for (const entry of await fs.readdir(dir)) {
      if (!entry.startsWith(prefix)) continue;
      const suffix = entry.slice(prefix.length);
      if (/^[1-9]\d*$/.test(suffix) && Number(suffix) > maxFiles)
        await fs.rm(join(dir, entry), { force: true });
    }
  }
}

async function renameIfPresent(from: string, to: string): Promise<void> {
  try {
    await fs.rename(from, to);
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw err;
  }
}
