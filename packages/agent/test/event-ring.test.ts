import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventRing } from '../src/pipeline';
import type { Ticket } from '../src/sources/file/tailer';

test('EventRing: FIFO through growth and wrap-around, like an array', () => {
  const ring = new EventRing();
  const model: { size: number; ticket: Ticket; end: number }[] = [];
  const tickets = Array.from({ length: 7 }, (_, i) => ({ endOffset: i }) as unknown as Ticket);
  let seed = 1;
  const rnd = (n: number) => {
    seed = (seed * 48271) % 2147483647;
    return seed % n;
  };
  for (let round = 0; round < 20_000; round++) {
    if (rnd(3) !== 0) {
      for (let k = rnd(50); k > 0; k--) {
        const e = { size: rnd(100_000), ticket: tickets[rnd(7)]!, end: 2 ** 40 + round * 100 + k };
        ring.push(e.size, e.ticket, e.end);
        model.push(e);
      }
    } else {
      const n = Math.min(model.length, rnd(80));
      for (let k = 0; k < Math.min(n, ring.length); k++) assert.equal(ring.size(k), model[k]!.size);
      const got = ring.shift(n);
      const want = model.splice(0, n);
      assert.deepEqual(
        got.tickets,
        want.map((e) => e.ticket),
      );
      assert.deepEqual(
        got.ends,
        want.map((e) => e.end),
      );
    }
    assert.equal(ring.length, model.length);
  }
});
