// The audit source's checkpoint in the pipeline: the real Pipeline (processAudit, flushAudit,
// emitAudit, acked), FileTailer and SinkRunner; a sink answered by the test, so a "kill" can
// fall exactly between two batches, and a restart reads again from the checkpoint it left.
// The system tests (test/agent-audit.test.ts) kill the real agent; these pin the interleavings
// a kill can only hit by chance.
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { parseConfig } from '../src/config/load';
import { Pipeline } from '../src/pipeline';
import type { ByteSource } from '../src/sources/file/byte-source';
import { FileTailer } from '../src/sources/file/tailer';

const dir = mkdtempSync(join(tmpdir(), 'guard-pipeline-audit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const realNow = Date.now;
let clock = 1_000_000;
afterEach(() => {
  Date.now = realNow;
});
function fakeClock(): void {
  clock = 1_000_000;
  Date.now = () => clock;
}

/** The file's bytes in memory. */
class MemSource implements ByteSource {
  readonly complete = false;
  readonly failure = null;
  constructor(private readonly buf: Buffer) {}
  size(): Promise<number> {
    return Promise.resolve(this.buf.length);
  }
  read(b: Buffer, off: number, len: number, pos: number): Promise<number> {
    const n = Math.max(0, Math.min(len, this.buf.length - pos));
    this.buf.copy(b, off, pos, pos + n);
    return Promise.resolve(n);
  }
  close(): void {}
}

const noop = (): void => undefined;
type Any = any;
const log: Any = { info: noop, warn: noop, debug: noop, error: noop, trace: noop, fatal: noop };
log.child = () => log;

interface Batch {
  events: Any[];
  answer: () => void;
}

/** A pipeline with one audit source and one sink whose batches wait for answer(). */
function world(batchMaxEvents: number, paths = join(dir, 'audit.log')) {
  const cfg = parseConfig(
    `[agent]\nuser = nobody\nstate_dir = ${dir}/state\n` +
      `[source.audit]\ntype = audit\npaths = ${paths}\nstart_at = beginning\n` +
      `[sink.out]\ntype = file\npath = ${dir}/out.ndjson\nbatch_max_events = ${batchMaxEvents}\nbatch_max_wait_ms = 0\n`,
    join(dir, 'guard.conf'),
  );
  const batches: Batch[] = [];
  const sink: Any = {
    name: 'out',
    send(batch: Any) {
      const text = batch.body.subarray(0, batch.bytes).toString('utf8') as string;
      const events = text
        .split('\n')
        .slice(0, -1)
        .map((l) => JSON.parse(l) as unknown);
      return new Promise((resolve) => batches.push({ events, answer: () => resolve('delivered') }));
    },
    status: () => ({}),
    close: async () => undefined,
  };
  const deleted: string[] = [];
  const states = new Map<string, Any>();
  const store: Any = {
    save: noop,
    set: noop,
    touch: noop,
    flushSync: noop,
    delete: (k: string) => deleted.push(k),
    sourceState: (n: string) => states.get(n),
    setSourceState: (n: string, s: Any) => states.set(n, s),
  };
  const p: Any = new Pipeline(cfg, new Map([['out', sink]]), {} as Any, store, log, true);
  return { p, s: p.sources[0], batches, deleted, states };
}

function tailer(src: ByteSource | number, offset: number): FileTailer {
  return new FileTailer(
    'audit',
    join(dir, 'audit.log'),
    src,
    '1',
    '2',
    { offset, checkpoint: null },
    { maxLineBytes: 65536, partialLineTimeoutMs: 5000, readBytes: 1 << 20 },
    noop,
  );
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 10));

/** What the pump does for one tailer of an audit source. */
async function pump(w: ReturnType<typeof world>, t: FileTailer): Promise<void> {
  const chunk = await t.readChunk();
  w.p.flushAudit(w.s, t);
  if (chunk) w.p.processAudit(w.s, t, chunk);
  await settle();
}

/** Every line of the file shipped (as a record of some event) by the batches given. */
function missing(lines: string[], batches: Batch[]): string[] {
  const seen = new Set(batches.flatMap((b) => b.events.flatMap((e) => e.message.split('\n'))));
  return lines.filter((l) => !seen.has(l));
}

/** The delivered batch 1, then a kill, then a restart from the checkpoint that read to the end. */
async function killAfterFirstBatch(
  lines: string[],
  complete: (w: Any, t: FileTailer) => Promise<void>,
) {
  const text = Buffer.from(lines.map((l) => l + '\n').join(''));
  const w = world(1);
  const t = tailer(new MemSource(text), 0);
  await complete(w, t);
  assert.ok(w.batches.length >= 1, 'a batch went out');
  w.batches[0]!.answer();
  await settle();
  const checkpoint = t.ackedOffset;
  w.p.abort.abort(); // killed: batches after the first never answered
  const r = world(1000);
  const t2 = tailer(new MemSource(text), checkpoint);
  await pump(r, t2);
  r.p.shipCompleted(r.s, t2, r.p.audit(t2), r.p.audit(t2).grouper.flushAll()); // the end of the input
  await settle();
  r.p.abort.abort();
  return { checkpoint, missing: missing(lines, [w.batches[0]!, ...r.batches]) };
}

describe('audit checkpoint: events completed together', () => {
  const SYS = (n: number, comm: string) =>
    `type=SYSCALL msg=audit(1700000000.100:${n}): arch=c000003e syscall=2 success=no exit=-13 pid=${n} auid=1000 uid=1000 comm="${comm}" exe="/usr/bin/${comm}" key="k${n}"`;
  const PATH = (n: number) =>
    `type=PATH msg=audit(1700000000.100:${n}): item=0 name="/etc/f${n}" inode=${n} nametype=NORMAL`;

  test('by one record: the first one delivered does not let the checkpoint pass the second', async () => {
    // :11 and :12 interleave; a record 3 s newer in log time completes both in one push().
    const lines = [
      SYS(11, 'cat'),
      SYS(12, 'vi'),
      PATH(11),
      PATH(12),
      `type=USER_LOGIN msg=audit(1700000003.000:13): pid=300 uid=0 auid=1000 msg='op=login acct="bob" res=success'`,
    ];
    const second = lines[0]!.length + 1;
    const r = await killAfterFirstBatch(lines, (w, t) => pump(w, t));
    assert.ok(
      r.checkpoint <= second,
      `checkpoint ${r.checkpoint} ≤ ${second}, the second's first line`,
    );
    assert.deepEqual(r.missing, []);
  });

  test('by one flush (no more records): the same', async () => {
    fakeClock();
    const AVC = (n: number) =>
      `type=AVC msg=audit(1700000000.1${n}:${n}): avc:  denied  { read } for  pid=${n} comm="cat" name="shadow" tclass=file permissive=0`;
    const lines = [AVC(21), AVC(22), SYS(21, 'cat').replace('.100:', '.121:')];
    const second = lines[0]!.length + 1;
    const r = await killAfterFirstBatch(lines, async (w, t) => {
      await pump(w, t); // both open
      await pump(w, t); // the first flush sees them open
      clock += 2500;
      await pump(w, t); // the next completes both
    });
    assert.ok(r.checkpoint <= second, `checkpoint ${r.checkpoint} ≤ ${second}`);
    assert.deepEqual(r.missing, []);
  });
});

describe('audit checkpoint: a rotated file', () => {
  test('is not finished while an event of it is open: the event is shipped first', async () => {
    fakeClock();
    const lines = [
      'type=SYSCALL msg=audit(1700000000.100:31): arch=c000003e syscall=59 success=yes exit=0 pid=100 auid=1000 uid=1000 comm="id" exe="/usr/bin/id"',
      'type=PROCTITLE msg=audit(1700000000.100:31): proctitle=6964',
      'type=SYSCALL msg=audit(1700000000.200:32): arch=c000003e syscall=90 success=yes exit=0 pid=101 auid=1000 uid=1000 comm="chmod" exe="/usr/bin/chmod"',
      'type=PATH msg=audit(1700000000.200:32): item=0 name="/etc/shadow" inode=7 nametype=NORMAL',
      // :32's PROCTITLE went to the new audit.log: in this file the event never completes
    ];
    const file = join(dir, 'audit.log.1');
    writeFileSync(file, lines.map((l) => l + '\n').join(''));
    const w = world(1000, `${join(dir, 'audit.log')}, ${join(dir, 'audit.log.[0-9]*')}`);
    const files = w.s.files;
    files.stopped = true; // no timers of its own: the test reaps as the quick tick would
    const t = tailer(openSync(file, 'r'), 0);
    t.rotated = true;
    files.draining.add(t);
    await pump(w, t);
    await pump(w, t);
    for (const b of w.batches) b.answer();
    await settle();
    assert.equal(w.p.audit(t).grouper.openEvents, 1, ':32 is open');
    assert.equal(t.drained, true, 'nothing in flight: the reaper may look at it');
    // Reads paused behind a slow sink (no flush by the pump), the file quiet past 5 s: reaped.
    clock += 6000;
    await files.reapNow(clock);
    assert.equal(files.draining.has(t), true, 'not finished while :32 is open');
    assert.deepEqual(w.deleted, [], 'its checkpoint kept');
    await settle();
    for (const b of w.batches) b.answer();
    await settle();
    clock += 6000;
    await files.reapNow(clock);
    assert.equal(files.draining.has(t), false, 'finished once :32 was delivered');
    assert.deepEqual(missing(lines, w.batches), []);
    assert.deepEqual(
      w.batches.flatMap((b) => b.events.map((e) => e.fields.stamp)),
      ['1700000000.100:31', '1700000000.200:32'],
    );
    w.p.abort.abort();
  });
});
