import assert from 'node:assert/strict';
import {
  appendFileSync,
  closeSync,
  fstatSync,
  mkdtempSync,
  openSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FileTailer, type Chunk } from '../../src/sources/file/tailer';
import { CheckpointStore, readHead } from '../../src/state/checkpoints';

const dir = mkdtempSync(join(tmpdir(), 'guard-tailer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function tailer(
  content: string | Buffer,
  opts: Partial<{
    maxLineBytes: number;
    partialLineTimeoutMs: number;
    readBytes: number;
    offset: number;
  }> = {},
) {
  const path = join(dir, `f${n++}.log`);
  writeFileSync(path, content);
  const fd = openSync(path, 'r');
  const st = fstatSync(fd);
  const acked: number[] = [];
  const t = new FileTailer(
    's',
    path,
    fd,
    String(st.dev),
    String(st.ino),
    { offset: opts.offset ?? 0, checkpoint: null },
    {
      maxLineBytes: opts.maxLineBytes ?? 1024,
      partialLineTimeoutMs: opts.partialLineTimeoutMs ?? 1000,
      readBytes: opts.readBytes ?? 1 << 20,
    },
    (x) => acked.push(x.ackedOffset),
  );
  return { t, path, acked };
}
const text = (c: Chunk | null) =>
  c ? c.starts.map((s, k) => c.buf.toString('utf8', s, c.ends[k])) : null;
const offsets = (c: Chunk) => c.starts.map((s) => c.base + s);
const ackAll = (c: Chunk) => {
  c.ticket.remaining = 0;
  c.ticket.tailer.acknowledge();
};

describe('FileTailer', () => {
  test('splits lines with their offsets and keeps an unfinished last line', async () => {
    const { t, path } = tailer('one\ntwo\nthr');
    const c = (await t.readChunk())!;
    assert.deepEqual(text(c), ['one', 'two']);
    assert.deepEqual(offsets(c), [0, 4]);
    assert.equal(c.ticket.endOffset, 8, 'the unfinished line is not yet consumed');
    appendFileSync(path, 'ee\nfour\n');
    const d = (await t.readChunk())!;
    assert.deepEqual(text(d), ['three', 'four']);
    assert.deepEqual(offsets(d), [8, 14]);
    assert.equal(await t.readChunk(), null);
    t.close();
  });

  test('a last line without newline is shipped flagged partial after the timeout, not before', async () => {
    const { t } = tailer('a\nhalf', { partialLineTimeoutMs: 50 });
    const now = Date.now();
    assert.deepEqual(text(await t.readChunk(now)), ['a']);
    assert.equal(await t.readChunk(now + 10), null);
    const p = (await t.readChunk(now + 100))!;
    assert.deepEqual(text(p), ['half']);
    assert.deepEqual(p.flags?.get(0), ['partial']);
    assert.equal(offsets(p)[0], 2);
    assert.equal(p.ticket.endOffset, 6);
    t.close();
  });

  test('the rest of a line shipped as partial is flagged continuation, not passed off as a line of its own (#12)', async () => {
    const { t, path } = tailer('a\nhalf', { partialLineTimeoutMs: 50 });
    const now = Date.now();
    assert.deepEqual(text(await t.readChunk(now)), ['a']);
    assert.equal(await t.readChunk(now + 10), null);
    assert.deepEqual((await t.readChunk(now + 100))!.flags?.get(0), ['partial']);
    // the writer goes on: its rest, then lines of their own
    appendFileSync(path, ' and the rest\nnext\n');
    const c = (await t.readChunk(now + 200))!;
    assert.deepEqual(text(c), [' and the rest', 'next']);
    assert.deepEqual(offsets(c), [6, 20]);
    assert.deepEqual(c.flags?.get(0), ['continuation']);
    assert.equal(c.flags?.get(1), undefined);
    // stalls twice: the middle piece is both
    appendFileSync(path, 'one');
    assert.deepEqual(text(await t.readChunk(now + 300)), []);
    assert.deepEqual((await t.readChunk(now + 400))!.flags?.get(0), ['partial']);
    appendFileSync(path, 'two');
    assert.deepEqual(text(await t.readChunk(now + 500)), []);
    const mid = (await t.readChunk(now + 600))!;
    assert.deepEqual(text(mid), ['two']);
    assert.deepEqual(mid.flags?.get(0), ['partial', 'continuation']);
    appendFileSync(path, 'three\n');
    const last = (await t.readChunk(now + 700))!;
    assert.deepEqual(text(last), ['three']);
    assert.deepEqual(last.flags?.get(0), ['continuation']);
    // and a rest longer than max_line_bytes is cut, flagged both
    const { t: t2, path: p2 } = tailer('x', { partialLineTimeoutMs: 50, maxLineBytes: 1024 });
    assert.deepEqual(text(await t2.readChunk(now)), []);
    assert.deepEqual((await t2.readChunk(now + 100))!.flags?.get(0), ['partial']);
    appendFileSync(p2, 'y'.repeat(2000) + '\nok\n');
    const long = (await t2.readChunk(now + 200))!;
    assert.deepEqual(long.flags?.get(0), ['truncated', 'continuation']);
    assert.equal(long.flags?.get(1), undefined);
    t.close();
    t2.close();
  });

  test('a line over max_line_bytes is cut and flagged, the rest skipped, the next line intact', async () => {
    const long = 'x'.repeat(5000);
    const { t, path } = tailer(`${long}\nnext\n${'y'.repeat(300)}`, {
      maxLineBytes: 100,
      readBytes: 64 * 1024,
    });
    const c = (await t.readChunk())!;
    assert.equal(c.starts.length, 3);
    assert.equal(c.ends[0]! - c.starts[0]!, 100);
    assert.deepEqual(c.flags?.get(0), ['truncated']);
    assert.deepEqual(text(c)![1], 'next');
    // an over-long line that has not ended yet: its head ships now, the tail is skipped when it comes
    assert.equal(text(c)![2], 'y'.repeat(100));
    assert.deepEqual(c.flags?.get(2), ['truncated']);
    assert.equal(await t.readChunk(), null);
    appendFileSync(path, 'y'.repeat(200) + '\nafter\n');
    assert.deepEqual(text(await t.readChunk()), ['after']);
    t.close();
  });

  test('reads in bounded chunks', async () => {
    const lines = Array.from({ length: 1000 }, (_, i) => `line ${i}`);
    const { t } = tailer(lines.join('\n') + '\n', { readBytes: 512 });
    const got: string[] = [];
    for (let c = await t.readChunk(); c; c = await t.readChunk()) got.push(...text(c)!);
    assert.deepEqual(got, lines);
    t.close();
  });

  test('acknowledges in order: a later chunk never moves the offset past an earlier unacknowledged one', async () => {
    const { t, path, acked } = tailer('a\n');
    const c1 = (await t.readChunk())!;
    c1.ticket.remaining = 1;
    appendFileSync(path, 'b\n');
    const c2 = (await t.readChunk())!;
    c2.ticket.remaining = 1;
    c2.ticket.remaining--;
    t.acknowledge();
    assert.equal(t.ackedOffset, 0);
    c1.ticket.remaining--;
    t.acknowledge();
    assert.equal(t.ackedOffset, 4);
    assert.deepEqual(acked, [4]);
    t.close();
  });

  test('within a chunk, the offset follows the line every sink has delivered, never further', async () => {
    const { t } = tailer('aa\nbb\ncc\n');
    const c = (await t.readChunk())!;
    const [sinkA, sinkB] = [{}, {}];
    c.ticket.remaining = 6; // 3 events x 2 sinks
    c.ticket.delivered = new Map([[sinkA, 6]]); // sink A delivered up to the end of "bb"
    c.ticket.remaining -= 2;
    t.acknowledge(2);
    assert.equal(t.ackedOffset, 0, 'sink B has delivered nothing yet');
    c.ticket.delivered.set(sinkB, 3); // sink B delivered "aa"
    c.ticket.remaining -= 1;
    t.acknowledge(2);
    assert.equal(t.ackedOffset, 3, 'the slower sink decides');
    c.ticket.delivered.set(sinkB, 9);
    c.ticket.delivered.set(sinkA, 9);
    c.ticket.remaining = 0;
    t.acknowledge(2);
    assert.equal(t.ackedOffset, 9);
    t.close();
  });

  test('copytruncate: size below the offset restarts at 0, and late acks of the old content do not move the checkpoint', async () => {
    const { t, path } = tailer('old one\nold two\n');
    const c = (await t.readChunk())!;
    c.ticket.remaining = 1;
    truncateSync(path, 0);
    appendFileSync(path, 'new\n');
    const d = (await t.readChunk())!;
    assert.deepEqual(text(d), ['new']);
    assert.equal(offsets(d)[0], 0);
    assert.equal(t.truncations, 1);
    d.ticket.remaining = 1;
    c.ticket.remaining = 0;
    t.acknowledge();
    assert.equal(t.ackedOffset, 0, 'an acknowledgement from before the truncation');
    ackAll(d);
    assert.equal(t.ackedOffset, 4);
    t.close();
  });

  test('starts at the given offset (a checkpoint or start_at = end)', async () => {
    const { t } = tailer('skip\nkeep\n', { offset: 5 });
    assert.deepEqual(text(await t.readChunk()), ['keep']);
    t.close();
  });
});

describe('CheckpointStore', () => {
  test('round-trips atomically and refuses a reused inode whose first bytes differ', () => {
    const sdir = mkdtempSync(join(dir, 'state-'));
    const path = join(dir, 'cp.log');
    writeFileSync(path, 'first line of the file\n');
    const fd = openSync(path, 'r');
    const st = fstatSync(fd);
    const t = new FileTailer(
      's',
      path,
      fd,
      String(st.dev),
      String(st.ino),
      { offset: 10, checkpoint: null },
      { maxLineBytes: 1024, partialLineTimeoutMs: 1000, readBytes: 1024 },
      () => undefined,
    );
    const store = new CheckpointStore(sdir);
    store.set(t.checkpoint());
    store.flushSync();
    const again = new CheckpointStore(sdir);
    const cp = again.find(readHead(fd), String(st.dev), String(st.ino));
    assert.equal(cp?.offset, 10);
    assert.equal(cp?.key, t.key);
    writeFileSync(path, 'another file now, same inode\n'); // same inode, new content
    assert.equal(again.find(readHead(fd), String(st.dev), String(st.ino)), null);
    closeSync(fd);
  });
});
