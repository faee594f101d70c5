// Cursors as data: the parts, the same entry across journald's /run→/var flush, gap sizes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseCursor, sameEntry, seqnumGap } from '../../src/sources/journal/cursor';

const S1 = '2a050c3ce3b840bcb55b67467f0af707';
const S2 = '9f1824b65d594369a38846d8ecdf922b';
const B = 'c73d9a176b424db58c3369ad1fc47642';
const cursor = (s: string, i: number, m = 'a1', t = 'b2', x = 'c3'): string =>
  `s=${s};i=${i.toString(16)};b=${B};m=${m};t=${t};x=${x}`;

describe('journal cursors', () => {
  test('parses the parts; rejects what is not a cursor', () => {
    assert.deepEqual(parseCursor(cursor(S1, 255)), {
      s: S1,
      i: 255,
      b: B,
      m: 'a1',
      t: 0xb2,
      x: 'c3',
    });
    assert.equal(parseCursor(''), null);
    assert.equal(parseCursor('s=x;i=zz;t=1'), null);
    assert.equal(parseCursor('garbage'), null);
    assert.equal(parseCursor(`s=${S1};t=1`), null);
  });

  test('the same entry: by seqnum within a sequence, by boot, stamps and hash across one', () => {
    const a = parseCursor(cursor(S1, 10))!;
    assert.ok(sameEntry(a, parseCursor(cursor(S1, 10, 'ff', 'ff', 'ff'))!));
    assert.ok(!sameEntry(a, parseCursor(cursor(S1, 11))!));
    // flushed from /run to /var: a new seqnum id (and seqnum), the rest kept
    assert.ok(sameEntry(a, parseCursor(cursor(S2, 3))!));
    assert.ok(!sameEntry(a, parseCursor(cursor(S2, 10, 'a1', 'b2', 'c4'))!));
    assert.ok(!sameEntry(a, parseCursor(cursor(S2, 10, 'a2'))!));
  });

  test('gaps: seqnums skipped within a sequence; uncountable across sequences', () => {
    const saved = parseCursor(cursor(S1, 100))!;
    assert.equal(seqnumGap(saved, parseCursor(cursor(S1, 101))!), 0);
    assert.equal(seqnumGap(saved, parseCursor(cursor(S1, 301))!), 200);
    assert.equal(seqnumGap(saved, parseCursor(cursor(S1, 50))!), 0);
    assert.equal(seqnumGap(saved, parseCursor(cursor(S2, 1))!), null);
  });
});
