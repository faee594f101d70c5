// The journal addon's readAsync() and the reader's read ahead (packages/journal, JournalReader),
// over the files of a real systemd-journald (test/lib/journald.ts), opened here as root: the read on
// libuv's pool gives what read() gives, the handle is refused to every other call while it runs,
// and a read ahead that a re-open makes stale (a rotation) is dropped, its entries read again once.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { closeSync, fstatSync, openSync, readdirSync, readlinkSync } from 'node:fs';
import pino from 'pino';
import { CURSOR_STRIDE, journalAddon, type JournalHandle } from '../packages/journal/src/index';
import {
  type HeldFile,
  JournalReader,
  MAX_ENTRIES,
} from '../packages/agent/src/sources/journal/journal-reader';
import { PrivateJournald } from './lib/journald';
import { killAll } from './lib/proc';
import { Sandbox } from './lib/sandbox';

const TAIL = ',"source":"t","path":"journal:x","host":"h","parser":"journal"}\n';
const LISTS = [[], [], [], []];

/** A read's buffers (as the agent's ReadArea). */
function area() {
  return {
    out: Buffer.allocUnsafe(1 << 20),
    sizes: new Float64Array(MAX_ENTRIES),
    meta: new Int32Array(MAX_ENTRIES * 3),
    cursors: Buffer.alloc((MAX_ENTRIES + 1) * CURSOR_STRIDE),
  };
}
type Area = ReturnType<typeof area>;
type Result = [number, number, boolean, number];

function readAsync(h: JournalHandle, a: Area): Promise<Result> {
  return new Promise((resolve, reject) => {
    journalAddon().readAsync(h, a.out, a.sizes, a.meta, a.cursors, MAX_ENTRIES, (err, r) =>
      err ? reject(err) : resolve(r!),
    );
  });
}

/** The lines and cursors of one read, as text. */
function taken(a: Area, r: Result): { lines: string; cursors: string[] } {
  let bytes = 0;
  const cursors: string[] = [];
  for (let k = 0; k <= r[0]; k++) {
    if (k < r[0]) bytes += a.sizes[k]!;
    const at = k * CURSOR_STRIDE;
    cursors.push(a.cursors.toString('latin1', at, a.cursors.indexOf(0, at)));
  }
  return { lines: a.out.toString('utf8', 0, bytes), cursors };
}

function openAll(files: string[]): number[] {
  return files.map((f) => openSync(f, 'r'));
}

/** This process's descriptors of files under `dir`. */
function heldUnder(dir: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`)) n++;
    } catch {
      // closed since the listing
    }
  }
  return n;
}

/** Numbers in `"message":"<tag> n=<k>"` of event lines. */
function numbers(lines: string, tag: string): number[] {
  return [...lines.matchAll(new RegExp(`"message":"${tag} n=(\\d+)"`, 'g'))].map((m) =>
    Number(m[1]),
  );
}

/** A reader of journal directory `m` from the start, no redaction triggers. */
function newReader(log: pino.Logger, lists: string[][] = LISTS): JournalReader {
  return new JournalReader(
    'm',
    {
      source: 't',
      tail: TAIL,
      maxValueBytes: 65536,
      lists,
      triggers: [],
      startAtEnd: false,
      onAcked: () => {},
      log,
    },
    null,
  );
}

/** Hands every journal file of `jd` to `reader` (opened here, as root) and syncs it. */
function holdAll(jd: PrivateJournald, reader: JournalReader): void {
  const ids = new Set<string>();
  for (const path of jd.files()) {
    const fd = openSync(path, 'r');
    const st = fstatSync(fd);
    ids.add(`${st.dev}:${st.ino}`);
    reader.add({ path, fd, dev: String(st.dev), ino: String(st.ino) });
  }
  reader.sync(ids);
}

describe('journal read ahead', { concurrency: false }, () => {
  let sb: Sandbox | undefined;
  let jd: PrivateJournald | undefined;

  before(() => {
    assert.ok(
      PrivateJournald.available(),
      'systemd-journald and nsenter are needed (systemd package)',
    );
    assert.equal(journalAddon().unavailable(), null);
  });
  afterEach(async () => {
    await jd?.stop();
    jd = undefined;
    sb?.cleanup();
    sb = undefined;
  });
  after(killAll);

  it('readAsync gives, chunk for chunk, the lines and cursors read() gives', async () => {
    sb = new Sandbox();
    jd = await PrivateJournald.start(sb, 'journal');
    await jd.numbered('ra', 0, 5_000);
    const addon = journalAddon();
    const sync = addon.open(openAll(jd.files()), TAIL, 65536, LISTS, ['password']);
    const async_ = addon.open(openAll(jd.files()), TAIL, 65536, LISTS, ['password']);
    addon.seekHead(sync);
    addon.seekHead(async_);
    const a = area();
    const b = area();
    let chunks = 0;
    let entries = 0;
    for (;;) {
      const r1 = addon.read(sync, a.out, a.sizes, a.meta, a.cursors, MAX_ENTRIES);
      const r2 = await readAsync(async_, b);
      assert.deepEqual(r2, r1);
      assert.deepEqual(taken(b, r2), taken(a, r1));
      assert.deepEqual([...b.meta.subarray(0, 3 * r2[0])], [...a.meta.subarray(0, 3 * r1[0])]);
      if (r1[0] + r1[1] === 0) break;
      chunks++;
      entries += r1[0];
    }
    addon.close(sync);
    addon.close(async_);
    assert.ok(entries >= 5_000 && chunks >= 5, `${entries} entries in ${chunks} chunks`);
  });

  it('while a read is in flight every other call on the handle is refused, and close() closes when it ends', async () => {
    sb = new Sandbox();
    jd = await PrivateJournald.start(sb, 'journal');
    await jd.numbered('busy', 0, 3_000);
    const addon = journalAddon();
    const h = addon.open(openAll(jd.files()), TAIL, 65536, LISTS, []);
    assert.ok(heldUnder(jd.machineDir) > 0);
    addon.seekHead(h);
    const a = area();
    const b = area();
    const pending = readAsync(h, a);
    const busy = { code: 'EBUSY' };
    assert.throws(() => addon.read(h, b.out, b.sizes, b.meta, b.cursors, MAX_ENTRIES), busy);
    assert.throws(() => addon.seekHead(h), busy);
    assert.throws(() => addon.seekTail(h), busy);
    assert.throws(() => addon.skipOne(h), busy);
    assert.throws(() => addon.seekCursor(h, 's=0;i=1'), busy);
    assert.throws(
      () => addon.readAsync(h, b.out, b.sizes, b.meta, b.cursors, MAX_ENTRIES, () => {}),
      busy,
    );
    // the refusals did not disturb the read: it ends with the first chunk
    const first = await pending;
    assert.equal(first[0], MAX_ENTRIES);
    const firstNumbers = numbers(taken(a, first).lines, 'busy');
    assert.deepEqual(firstNumbers.slice(0, 3), [0, 1, 2]);
    // close() while a read is in flight: the read ends with what it read, then the handle is closed
    const second = readAsync(h, a);
    addon.close(h);
    assert.throws(() => addon.seekHead(h), { code: 'ECLOSED' });
    const r = await second;
    assert.equal(r[0], MAX_ENTRIES);
    assert.equal(numbers(taken(a, r).lines, 'busy')[0], firstNumbers.at(-1)! + 1);
    assert.throws(() => addon.seekHead(h), { code: 'ECLOSED' });
    assert.equal(heldUnder(jd.machineDir), 0, "libsystemd's descriptors were closed");
  });

  it('a rotation while chunks are read ahead: they are dropped and read again after the re-open, every entry once', async () => {
    sb = new Sandbox();
    jd = await PrivateJournald.start(sb, 'journal');
    const total = 12_000;
    await jd.numbered('rot', 0, total);
    const logged: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => logged.push(l) });
    const reader = newReader(log);
    const held = new Map<string, number>();
    /** The helper's part: every journal file, held once; then the reader's sync, as refresh does. */
    const rescan = async (): Promise<void> => {
      const ids = new Set<string>();
      for (const path of jd!.files()) {
        const fd = openSync(path, 'r');
        const st = fstatSync(fd);
        const id = `${st.dev}:${st.ino}`;
        ids.add(id);
        if (held.has(id)) {
          closeSync(fd);
          continue;
        }
        held.set(id, fd);
        const f: HeldFile = { path, fd, dev: String(st.dev), ino: String(st.ino) };
        reader.add(f);
      }
      await reader.hold();
      try {
        reader.sync(ids);
      } finally {
        reader.release();
      }
    };
    await rescan();
    const seen: number[] = [];
    let chunks = 0;
    let dropped = 0;
    const take = (got: Awaited<ReturnType<JournalReader['next']>>): boolean => {
      if (got === null) return false;
      const a = got.area;
      let bytes = 0;
      for (let k = 0; k < got.count; k++) bytes += a.sizes[k]!;
      seen.push(...numbers(a.buf.toString('utf8', 0, bytes), 'rot'));
      got.ticket.remaining = 0;
      reader.acknowledge();
      chunks++;
      return true;
    };
    for (let idle = 0; idle < 3;) {
      if (!take(await reader.next(MAX_ENTRIES))) {
        idle++;
        continue;
      }
      if (chunks === 2 || chunks === 5) {
        // what was read ahead is ready (hold waits for the read in flight), then journald rotates
        await reader.hold();
        dropped += (reader as unknown as { ready: unknown[] }).ready.length;
        reader.release();
        await jd.rotate();
        await rescan();
      } else if (chunks === 8) {
        // the rescan (as the source's, in the background) while next() waits for the read in flight
        await jd.rotate();
        const [got] = await Promise.all([reader.next(MAX_ENTRIES), rescan()]);
        take(got);
      }
    }
    // at the end: a new entry is read by the next call, not a read ahead later
    await jd.numbered('rot', total, total + 1);
    const last = await reader.next(MAX_ENTRIES);
    assert.ok(take(last), 'the new entry is read at once');
    assert.equal(seen.at(-1), total);
    reader.close();
    assert.ok(dropped >= 2, `chunks were read ahead at the rotations (${dropped})`);
    assert.equal(logged.filter((l) => l.includes('"reading journal"')).length, 4, 'opened 4 times');
    const counts = new Map<number, number>();
    for (const n of seen) counts.set(n, (counts.get(n) ?? 0) + 1);
    let missing = 0;
    let duplicates = 0;
    for (let k = 0; k <= total; k++) {
      const c = counts.get(k) ?? 0;
      if (c === 0) missing++;
      else duplicates += c - 1;
    }
    assert.deepEqual({ missing, duplicates }, { missing: 0, duplicates: 0 });
    assert.deepEqual(
      seen,
      [...seen].sort((x, y) => x - y),
      'in order',
    );
  });

  it('a reader closed while a read ahead is in flight: nothing is used after, every descriptor is closed', async () => {
    sb = new Sandbox();
    jd = await PrivateJournald.start(sb, 'journal');
    await jd.numbered('cl', 0, 5_000);
    const log = pino({ level: 'silent' });
    const reader = newReader(log);
    holdAll(jd, reader);
    const got = await reader.next(MAX_ENTRIES);
    assert.equal(got?.count, MAX_ENTRIES);
    const flight = (reader as unknown as { inFlight: Promise<void> | null }).inFlight;
    assert.ok(flight !== null, 'a read ahead is in flight');
    reader.close(); // libsystemd's copies are closed when the read ends
    assert.ok(heldUnder(jd.machineDir) > 0, "libsystemd's copies are open while the read runs");
    await flight;
    assert.equal(await reader.next(MAX_ENTRIES), null);
    assert.equal(heldUnder(jd.machineDir), 0, 'every descriptor of the journal files closed');
  });

  it('an entry larger than the area, reached by a read ahead after filtered entries: read whole, every filtered entry counted', async () => {
    sb = new Sandbox();
    jd = await PrivateJournald.start(sb, 'journal');
    // chunks of 10 entries: 10 kept ones fill the first chunk exactly (journald's own are filtered
    // out), so the read ahead starts at the 5 filtered ones and then meets an entry of ~1.2 MB (more
    // than the 1 MiB area): it ends with 5 filtered and the size it needs
    const chunk = 10;
    const keep = Array.from({ length: chunk }, (_, k): [string, string][] => [
      ['MESSAGE', `keep n=${k}`],
      ['SYSLOG_IDENTIFIER', 'keep'],
    ]);
    await jd.native(keep);
    const other = Array.from({ length: 5 }, (_, k): [string, string][] => [
      ['MESSAGE', `other n=${k}`],
      ['SYSLOG_IDENTIFIER', 'other'],
    ]);
    const big: [string, string][] = [
      ['MESSAGE', 'big n=0'],
      ['SYSLOG_IDENTIFIER', 'keep'],
      ...Array.from({ length: 20 }, (_, k): [string, string] => [`X${k}`, 'v'.repeat(60_000)]),
    ];
    await jd.native([...other, big]);
    const all = await jd.entries();
    assert.equal(all.at(-1)?.message, 'big n=0');
    const reader = newReader(pino({ level: 'silent' }), [[], [], ['keep'], []]);
    holdAll(jd, reader);
    let count = 0;
    let filtered = 0;
    let bigLine = '';
    const chunkSizes: number[] = [];
    for (;;) {
      const got = await reader.next(chunk);
      if (got === null) break;
      count += got.count;
      filtered += got.filtered;
      chunkSizes.push(got.count);
      let at = 0;
      for (let k = 0; k < got.count; k++) {
        const line = got.area.buf.toString('utf8', at, at + got.area.sizes[k]!);
        if (line.includes('"message":"big n=0"')) bigLine = line;
        at += got.area.sizes[k]!;
      }
    }
    reader.close();
    assert.deepEqual(chunkSizes, [chunk, 1], 'a full chunk, then the large entry alone');
    assert.equal(count, chunk + 1);
    assert.equal(
      filtered,
      all.length - count,
      'every entry read is shipped or counted as filtered',
    );
    assert.ok(bigLine.length > 1 << 20, `the large entry whole (${bigLine.length} bytes)`);
    assert.equal(
      (JSON.parse(bigLine) as { fields: Record<string, string> }).fields.X19!.length,
      60_000,
    );
  });
});
