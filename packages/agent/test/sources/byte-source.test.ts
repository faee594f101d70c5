import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  compressedHead,
  compressionOf,
  fdSources,
  StreamSource,
} from '../../src/sources/file/byte-source';
import { FileTailer } from '../../src/sources/file/tailer';
import {
  CheckpointStore,
  FINGERPRINT_BYTES,
  fingerprintOf,
  headMatches,
  readHead,
} from '../../src/state/checkpoints';

const dir = mkdtempSync(join(tmpdir(), 'guard-bytes-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const content = Array.from({ length: 20_000 }, (_, i) => `line ${i}`).join('\n') + '\n';

/** Reads a stream source to its end from `from`, the way a tailer does. */
async function drain(s: StreamSource, from: number): Promise<string> {
  const parts: Buffer[] = [];
  let pos = from;
  for (let i = 0; i < 10_000; i++) {
    const size = await s.size();
    if (size > pos) {
      const buf = Buffer.alloc(size - pos);
      const n = await s.read(buf, 0, buf.length, pos);
      parts.push(buf.subarray(0, n));
      pos += n;
    } else if (s.complete || s.failure) break;
  }
  return Buffer.concat(parts).toString();
}

describe('StreamSource', () => {
  test('names: compressed generations by their last extension, plain ones not', () => {
    assert.equal(compressionOf('/var/log/syslog.2.gz'), '.gz');
    assert.equal(compressionOf('/var/log/app.log-20261124.zst'), '.zst');
    assert.equal(compressionOf('/var/log/syslog.1'), null);
  });

  test('gzip: the whole content, and from an offset (the bytes before it dropped)', async () => {
    const p = join(dir, 'a.gz');
    writeFileSync(
      p,
      Buffer.concat([gzipSync(content.slice(0, 5000)), gzipSync(content.slice(5000))]),
    ); // two members
    const whole = new StreamSource(openSync(p, 'r'), '.gz');
    assert.equal(await drain(whole, 0), content);
    assert.equal(whole.complete, true);
    whole.close();
    const from = new StreamSource(openSync(p, 'r'), '.gz', 123_457);
    assert.equal(await drain(from, 123_457), content.slice(123_457));
    from.close();
  });

  test('a stream read counts among the log files held open until closed (once); a look at the first bytes and a failed start do not', async () => {
    const p = join(dir, 'counted.gz');
    writeFileSync(p, gzipSync(content));
    const before = fdSources.open;
    const s = new StreamSource(openSync(p, 'r'), '.gz');
    assert.equal(fdSources.open, before + 1);
    s.close();
    s.close();
    assert.equal(fdSources.open, before);
    const fd = openSync(p, 'r');
    assert.equal((await compressedHead(fd, '.gz')).head.length, FINGERPRINT_BYTES);
    assert.equal(fdSources.open, before, 'the first bytes: not counted');
    closeSync(fd);
    const rar = openSync(p, 'r');
    assert.throws(() => new StreamSource(rar, '.rar'), /no decompressor/);
    assert.equal(fdSources.open, before, 'no decompressor: nothing counted');
    closeSync(rar);
  });

  test('a gzip file cut short (still being written) fails; it is not taken as complete', async () => {
    const p = join(dir, 'cut.gz');
    const gz = gzipSync(content);
    writeFileSync(p, gz.subarray(0, gz.length >> 1));
    const s = new StreamSource(openSync(p, 'r'), '.gz');
    await drain(s, 0);
    assert.equal(s.complete, false);
    assert.match(s.failure ?? '', /unexpected end of file/);
    s.close();
    const h = await compressedHead(openSync(p, 'r'), '.gz');
    assert.equal(h.failure, null, 'its first bytes are there');
    assert.equal(h.head.toString(), content.slice(0, 256));
  });

  for (const [ext, tool] of [
    ['.xz', 'xz'],
    ['.bz2', 'bzip2'],
    ['.zst', 'zstd'],
    ['.lz4', 'lz4'],
  ] as const) {
    test(`${ext} through the system's ${tool}, from an offset`, async () => {
      const plain = join(dir, `c${ext}.txt`);
      writeFileSync(plain, content);
      const p = join(dir, `c${ext}`);
      writeFileSync(p, execFileSync(tool, ['-c', plain]));
      const s = new StreamSource(openSync(p, 'r'), ext, 1000);
      assert.equal(await drain(s, 1000), content.slice(1000));
      assert.equal(s.complete, true, s.failure ?? '');
      s.close();
    });
  }

  test('a corrupt .xz is a failure with the tool’s own message', async () => {
    const p = join(dir, 'bad.xz');
    writeFileSync(p, 'not xz at all\n');
    const s = new StreamSource(openSync(p, 'r'), '.xz');
    await drain(s, 0);
    assert.match(s.failure ?? '', /xz exited 1/);
    s.close();
  });
});

describe('fingerprints and checkpoints by content', () => {
  test('an empty fingerprint matches nothing; a short one matches a file that grew from it', () => {
    assert.equal(headMatches(Buffer.from('x'), fingerprintOf(Buffer.alloc(0))), false);
    const fp = fingerprintOf(Buffer.from('first line\n'));
    assert.equal(headMatches(Buffer.from('first line\nsecond line\n'), fp), true);
    assert.equal(headMatches(Buffer.from('other line\nsecond line\n'), fp), false);
    assert.equal(headMatches(Buffer.from('first'), fp), false, 'shorter than the fingerprint');
  });

  test('a file opened empty gets its key and fingerprint from its first bytes', async () => {
    const p = join(dir, 'empty.log');
    writeFileSync(p, '');
    const fd = openSync(p, 'r');
    const t = new FileTailer(
      's',
      p,
      fd,
      '1',
      '2',
      { offset: 0, checkpoint: null },
      { maxLineBytes: 1024, partialLineTimeoutMs: 1000, readBytes: 1 << 16 },
      () => undefined,
    );
    assert.equal(t.fingerprint.fingerprintBytes, 0);
    writeFileSync(p, 'hello\n');
    await t.readChunk();
    assert.equal(t.fingerprint.fingerprintBytes, 6);
    assert.equal(t.key, `1.2.${fingerprintOf(Buffer.from('hello\n')).fingerprint.slice(0, 8)}`);
    t.close();
  });

  test('two files on one inode keep a checkpoint each; the sources state round-trips', () => {
    const sdir = mkdtempSync(join(dir, 'state-'));
    const store = new CheckpointStore(sdir);
    const a = Buffer.from('first file\n');
    const b = Buffer.from('second file\n');
    const cp = (head: Buffer, key: string, offset: number) => ({
      path: '/x',
      source: 's',
      dev: '1',
      ino: '2',
      key,
      ...fingerprintOf(head),
      offset,
      updated: '',
    });
    store.set(cp(a, '1.2.a', 11));
    store.set(cp(b, '1.2.b', 5));
    store.set({ ...cp(Buffer.alloc(0), '1.2.e', 0) });
    store.setSourceState('s', { since: '2026-12-05T00:00:00.000Z', finished: [] });
    store.flushSync();
    const again = new CheckpointStore(sdir);
    assert.equal(again.size, 2, 'the empty fingerprint was not kept');
    assert.equal(again.find(a, '1', '2')?.offset, 11);
    assert.equal(again.find(b, '1', '2')?.offset, 5);
    assert.equal(again.find(Buffer.from('third\n'), '1', '2'), null);
    assert.equal(again.sourceState('s')?.since, '2026-12-05T00:00:00.000Z');
  });
});
