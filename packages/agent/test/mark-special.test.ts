import assert from 'node:assert/strict';
import { test } from 'node:test';
import { markSpecial } from '../src/pipeline';

// The pipeline copies a "clean" line's bytes into JSON as they are: markSpecial must flag every line
// holding a byte JSON escapes (or decodeLine does): '"', '\', DEL, and every C0 control but '\n'.
test('markSpecial flags exactly the lines a regex over each line flags', () => {
  const special = /["\\\x00-\x09\x0b-\x1f\x7f]/;
  const alphabet = 'abc xyz:[]{}=-_./0123456789"\\\t\r\x1b\x00\x7f\x01\x1f';
  let seed = 99;
  const rnd = (n: number) => {
    seed = (seed * 48271) % 2147483647;
    return seed % n;
  };
  const dirty = new Uint8Array(512);
  for (let round = 0; round < 500; round++) {
    const lines = Array.from({ length: 1 + rnd(300) }, () => {
      let l = '';
      for (let k = rnd(60); k > 0; k--) l += rnd(8) === 0 ? alphabet[rnd(alphabet.length)] : 'a';
      return l;
    });
    const from = rnd(1000); // where the piece's first byte is in the buffer
    const starts: number[] = [];
    let at = from;
    for (const l of lines) {
      starts.push(at);
      at += l.length + 1;
    }
    const k0 = rnd(3); // the piece may start after other lines of the chunk
    const piece = lines.slice(k0);
    if (piece.length === 0) continue;
    markSpecial(piece.join('\n'), starts[k0]!, starts, k0, lines.length, dirty);
    piece.forEach((l, i) =>
      assert.equal(dirty[i], special.test(l) ? 1 : 0, `line ${i} ${JSON.stringify(l)}`),
    );
  }
});
