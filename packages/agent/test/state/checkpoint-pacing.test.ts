// The checkpoint store (state/checkpoints.ts): empty slots (created, never written) are no
// checkpoint, not an unreadable one; and the pacing of non-durable saves (save()): with a few
// files every save writes at once (a kill re-sends at most the batch in flight); with thousands,
// a save waits until four times the last one's cost has passed, and what it held back is written
// by then without being asked again.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CheckpointStore, type Checkpoint } from '../../src/state/checkpoints';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function store(): { s: CheckpointStore; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'guard-cp-'));
  dirs.push(dir);
  return { s: new CheckpointStore(dir), dir };
}

function cp(i: number, offset: number): Checkpoint {
  return {
    path: `/var/log/x/f${i}.log`,
    source: 'x',
    dev: '1',
    ino: String(i),
    key: `1.${i}.abcdef01`,
    fingerprint: 'abcdef0123456789',
    fingerprintBytes: 64,
    offset,
    updated: '2026-12-06T00:00:00.000Z',
  };
}

/** The offsets on disk (the newer of the two slots). */
function onDisk(dir: string): Map<string, number> {
  let best: { seq: number; files: Checkpoint[] } = { seq: -1, files: [] };
  for (const slot of ['checkpoints-a.json', 'checkpoints-b.json']) {
    try {
      const text = readFileSync(join(dir, slot), 'utf8');
      const j = JSON.parse(text.slice(0, text.indexOf('\n'))) as typeof best;
      if (j.seq > best.seq) best = j;
    } catch {
      // not written yet
    }
  }
  return new Map(best.files.map((f) => [f.key, f.offset]));
}

test('a few files: every save writes at once', () => {
  const { s, dir } = store();
  for (let i = 0; i < 10; i++) s.set(cp(i, 0));
  for (let round = 1; round <= 50; round++) {
    s.set(cp(round % 10, round));
    s.save(false);
    assert.equal(onDisk(dir).get(`1.${round % 10}.abcdef01`), round, `round ${round}`);
  }
  s.close();
});

test('20,000 files: saves close together wait, and what waited is written without being asked', async () => {
  const { s, dir } = store();
  for (let i = 0; i < 20_000; i++) s.set(cp(i, 0));
  s.save(false); // the first one writes, and takes long enough (~10 ms) to pace the next
  s.set(cp(7, 100));
  s.save(false);
  s.set(cp(8, 200));
  s.save(false);
  const now = onDisk(dir);
  assert.equal(now.size, 20_000);
  assert.equal(now.get('1.7.abcdef01'), 0, 'held back');
  // written by the deferred save, within four times a save's cost (well under a second here)
  const deadline = Date.now() + 2000;
  while (onDisk(dir).get('1.8.abcdef01') !== 200 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 5));
  assert.equal(onDisk(dir).get('1.7.abcdef01'), 100);
  assert.equal(onDisk(dir).get('1.8.abcdef01'), 200);
  // a durable save is never held back
  s.set(cp(9, 300));
  s.save(true);
  assert.equal(onDisk(dir).get('1.9.abcdef01'), 300);
  s.close();
});

test('after close() a save writes nothing, at once or later', async () => {
  const { s, dir } = store();
  for (let i = 0; i < 20_000; i++) s.set(cp(i, 0));
  s.save(false);
  s.set(cp(1, 50));
  s.save(false); // held back: a timer is armed
  s.close();
  s.set(cp(2, 60));
  s.save(false);
  s.save(true);
  await new Promise((r) => setTimeout(r, 300));
  const now = onDisk(dir);
  assert.equal(now.get('1.1.abcdef01'), 0);
  assert.equal(now.get('1.2.abcdef01'), 0);
});

test('slots created and never written (a kill between open and write) are a first start, not a crash', () => {
  const { dir } = store();
  writeFileSync(join(dir, 'checkpoints-a.json'), '');
  writeFileSync(join(dir, 'checkpoints-b.json'), '');
  const s = new CheckpointStore(dir);
  assert.equal(s.existed, false, 'nothing was ever saved here');
  s.set(cp(1, 10));
  s.save(true);
  s.close();
  const again = new CheckpointStore(dir);
  assert.equal(again.existed, true);
  assert.equal(onDisk(dir).get('1.1.abcdef01'), 10);
  again.close();
  // two slots that hold something and parse as nothing are still refused (torn by a power loss
  // is one slot; both unreadable means something else wrote there)
  writeFileSync(join(dir, 'checkpoints-a.json'), '{"version":2,"se');
  writeFileSync(join(dir, 'checkpoints-b.json'), 'garbage');
  assert.throws(() => new CheckpointStore(dir), /no readable checkpoint slot/);
});
