// FileSink on the real file system: appends, fsync before the acknowledgement, rotation, and disk
// errors (ENOSPC from /dev/full, ENOTDIR) retried without dropping or splitting a batch.

import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FileSink } from '../../src/sinks/file/file-sink';
import { createSink } from '../../src/sinks/index';
import { HttpSink } from '../../src/sinks/http/http-sink';
import {
  captureLogger,
  dir,
  fileConfig,
  httpConfig,
  makeBatch,
  stateDir,
  waitFor,
} from './fixtures';

const sinks: { close(): Promise<void> }[] = [];
after(async () => {
  for (const s of sinks) await s.close();
});

function sink(cfg: ReturnType<typeof fileConfig>) {
  const { logger, lines } = captureLogger();
  const s = new FileSink(cfg, {
    stateDir: stateDir(),
    logger,
    retry: { initialMs: 10, maxMs: 50 },
  });
  sinks.push(s);
  return { sink: s, logs: lines };
}

const never = new AbortController().signal;

describe('FileSink', () => {
  test('appends batches in order; creates the directories 0750 and the file 0640', async () => {
    const cfg = fileConfig();
    const { sink: s } = sink(cfg);
    const a = makeBatch(3);
    const b = makeBatch(2);
    assert.equal(await s.send(a, never), 'delivered');
    assert.equal(await s.send(b, never), 'delivered');
    assert.deepEqual(readFileSync(cfg.path), Buffer.concat([a.body, b.body]));
    assert.equal(statSync(cfg.path).mode & 0o777, 0o640 & ~process.umask());
    assert.equal(statSync(dirname(cfg.path)).mode & 0o777, 0o750 & ~process.umask());
    const st = s.status();
    assert.equal(st.type, 'file');
    assert.equal(st.endpoint, cfg.path);
    assert.equal(st.deliveredBatches, 2);
    assert.equal(st.deliveredEvents, 5);
    assert.equal(st.lastError, null);
    assert.ok(st.lastSuccess !== null);
  });

  test('appends to what is already there (a restart) and does not truncate it', async () => {
    const cfg = fileConfig();
    mkdirSync(dirname(cfg.path), { recursive: true });
    writeFileSync(cfg.path, 'earlier line\n');
    const { sink: s } = sink(cfg);
    const a = makeBatch();
    await s.send(a, never);
    assert.deepEqual(
      readFileSync(cfg.path),
      Buffer.concat([Buffer.from('earlier line\n'), a.body]),
    );
  });

  test('fsyncs the file after writing and before resolving', async () => {
    const cfg = fileConfig();
    const { sink: s } = sink(cfg);
    // FileHandle is not exported: patch its prototype, reached through any open handle.
    const probe = await openFile(__filename, 'r');
    const proto = Object.getPrototypeOf(probe) as { sync(): Promise<void> };
    await probe.close();
    const original = proto.sync;
    const seen: number[] = [];
    proto.sync = async function (this: { fd: number }) {
      seen.push(existsSync(cfg.path) ? statSync(cfg.path).size : -1);
      return original.call(this);
    };
    let resolvedAfterSync = false;
    try {
      const batch = makeBatch(4);
      await s.send(batch, never).then(() => {
        resolvedAfterSync = seen.includes(batch.bytes);
      });
      assert.ok(
        resolvedAfterSync,
        `sync saw sizes ${seen.join(',')}, wanted one at ${batch.bytes} before resolving`,
      );
    } finally {
      proto.sync = original;
    }
  });

  test('rotation: path → path.1 → …, at most maxFiles rotated files, every line whole and in order', async () => {
    const cfg = fileConfig({ maxBytes: 600, maxFiles: 3 });
    mkdirSync(dirname(cfg.path), { recursive: true });
    writeFileSync(`${cfg.path}.7`, 'left over from a larger max_files\n');
    const { sink: s } = sink(cfg);
    const all: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const b = makeBatch(2);
      all.push(b.body);
      assert.equal(await s.send(b, never), 'delivered');
    }
    assert.ok(existsSync(cfg.path));
    for (let n = 1; n <= 3; n++)
      assert.ok(existsSync(`${cfg.path}.${n}`), `${cfg.path}.${n} exists`);
    assert.ok(!existsSync(`${cfg.path}.4`), 'no more than maxFiles rotated files');
    assert.ok(!existsSync(`${cfg.path}.7`), 'files beyond maxFiles are removed');
    const files = [`${cfg.path}.3`, `${cfg.path}.2`, `${cfg.path}.1`, cfg.path];
    const kept: string[] = [];
    for (const f of files) {
      const content = readFileSync(f);
      assert.ok(content.length <= cfg.maxBytes, `${f} is ${content.length} bytes`);
      assert.ok(content.length > 0 && content.at(-1) === 0x0a, `${f} ends with a whole line`);
      for (const line of content.toString('utf8').split('\n').slice(0, -1)) {
        JSON.parse(line); // throws on a split line
        kept.push(`${line}\n`);
      }
    }
    // The newest lines survive, contiguous and in order: the tail of everything sent.
    const sent = Buffer.concat(all)
      .toString('utf8')
      .split('\n')
      .slice(0, -1)
      .map((l) => `${l}\n`);
    assert.deepEqual(kept, sent.slice(sent.length - kept.length));
  });

  test('a batch bigger than maxBytes goes whole into a fresh file', async () => {
    const cfg = fileConfig({ maxBytes: 50, maxFiles: 2 });
    const { sink: s } = sink(cfg);
    const a = makeBatch(3);
    const b = makeBatch(3);
    await s.send(a, never);
    await s.send(b, never);
    assert.deepEqual(readFileSync(`${cfg.path}.1`), a.body);
    assert.deepEqual(readFileSync(cfg.path), b.body);
  });

  test('ENOSPC (the file is /dev/full): retried with lastError, nothing half-written, delivered once space is back', async () => {
    const cfg = fileConfig();
    mkdirSync(dirname(cfg.path), { recursive: true });
    symlinkSync('/dev/full', cfg.path);
    const { sink: s, logs } = sink(cfg);
    const batch = makeBatch(3);
    const p = s.send(batch, never);
    await waitFor(() => s.status().retries >= 2, 20_000, 'retries on ENOSPC');
    assert.match(s.status().lastError ?? '', /^ENOSPC/);
    assert.ok(logs.some((l) => l.includes('"code":"ENOSPC"')));
    unlinkSync(cfg.path);
    assert.equal(await p, 'delivered');
    assert.deepEqual(readFileSync(cfg.path), batch.body);
    assert.equal(s.status().deliveredBatches, 1);
    assert.equal(s.status().retryingUntil, null);
  });

  test('a directory that cannot be created (ENOTDIR) is retried until it can', async () => {
    const base = join(dir, `blocked-${Date.now()}`);
    writeFileSync(base, 'a file where a directory should be');
    const cfg = fileConfig({ path: join(base, 'events.ndjson') });
    const { sink: s } = sink(cfg);
    const batch = makeBatch();
    const p = s.send(batch, never);
    await waitFor(() => s.status().retries >= 1, 20_000, 'a retry');
    assert.match(s.status().lastError ?? '', /^(ENOTDIR|EEXIST)/);
    rmSync(base);
    assert.equal(await p, 'delivered');
    assert.deepEqual(readFileSync(cfg.path), batch.body);
  });

  test('abort while retrying rejects with an AbortError', async () => {
    const cfg = fileConfig();
    mkdirSync(dirname(cfg.path), { recursive: true });
    symlinkSync('/dev/full', cfg.path);
    const { sink: s } = sink(cfg);
    const ac = new AbortController();
    const p = s.send(makeBatch(), ac.signal);
    await waitFor(() => s.status().retries >= 1, 20_000, 'a retry');
    ac.abort();
    await assert.rejects(p, { name: 'AbortError' });
    assert.equal(s.status().deliveredBatches, 0);
  });

  test('close() while retrying ends the send with GUARD_SINK_CLOSED instead of retrying forever', async () => {
    const cfg = fileConfig();
    mkdirSync(dirname(cfg.path), { recursive: true });
    symlinkSync('/dev/full', cfg.path);
    const { sink: s } = sink(cfg);
    const p = s.send(makeBatch(), never);
    await waitFor(() => s.status().retries >= 1, 20_000, 'a retry');
    await s.close();
    await assert.rejects(p, { code: 'GUARD_SINK_CLOSED' });
  });

  test('a file moved away by someone else is not written to again: a new one is created', async () => {
    const cfg = fileConfig();
    const { sink: s } = sink(cfg);
    const a = makeBatch();
    const b = makeBatch();
    await s.send(a, never);
    renameSync(cfg.path, `${cfg.path}.moved`);
    await s.send(b, never);
    assert.deepEqual(readFileSync(`${cfg.path}.moved`), a.body);
    assert.deepEqual(readFileSync(cfg.path), b.body);
  });
});

describe('createSink', () => {
  test('builds the sink its config names', async () => {
    const { logger } = captureLogger();
    const f = createSink(fileConfig(), { stateDir: stateDir(), logger });
    const h = createSink(httpConfig(), { stateDir: stateDir(), logger });
    assert.ok(f instanceof FileSink);
    assert.ok(h instanceof HttpSink);
    assert.equal(h.status().type, 'http');
    await f.close();
    await h.close();
  });
});
