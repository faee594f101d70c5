import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeLine, escapeBytes } from '../../src/parsers/escape';

/** decodeLine over a whole buffer built from byte values and strings. */
function decode(...parts: Array<number | string>): { text: string; escaped: boolean } {
  const buf = Buffer.concat(
    parts.map((p) => (typeof p === 'number' ? Buffer.from([p]) : Buffer.from(p))),
  );
  return decodeLine(buf, 0, buf.length);
}

describe('decodeLine: clean lines', () => {
  test('ASCII is returned as is', () => {
    assert.deepEqual(decode('Nov 24 09:05:01 web1 sshd[1]: hello'), {
      text: 'Nov 24 09:05:01 web1 sshd[1]: hello',
      escaped: false,
    });
  });

  test('valid UTF-8 (2, 3 and 4 bytes) and TAB are kept', () => {
    assert.deepEqual(decode('zoë\t€ 😀 日本'), { text: 'zoë\t€ 😀 日本', escaped: false });
  });

  test('a U+FFFD that was in the file as valid UTF-8 is kept and not flagged', () => {
    assert.deepEqual(decode('bad \uFFFD char'), { text: 'bad \uFFFD char', escaped: false });
  });

  test('respects start and end within a larger buffer', () => {
    const buf = Buffer.from('first\nsecond line\nthird');
    assert.deepEqual(decodeLine(buf, 6, 17), { text: 'second line', escaped: false });
  });

  test('an empty line', () => {
    assert.deepEqual(decode(''), { text: '', escaped: false });
  });

  test('a backslash already in the text is left alone', () => {
    assert.deepEqual(decode('C:\\x1b\\path'), { text: 'C:\\x1b\\path', escaped: false });
  });
});

describe('decodeLine: CR', () => {
  test('one trailing CR (CRLF) is stripped silently', () => {
    assert.deepEqual(decode('line', 0x0d), { text: 'line', escaped: false });
  });

  test('only one trailing CR is stripped; the other is escaped', () => {
    assert.deepEqual(decode('line', 0x0d, 0x0d), { text: 'line\\x0d', escaped: true });
  });

  test('a CR mid-line is escaped (it would overwrite the line on a terminal)', () => {
    assert.deepEqual(decode('user ok', 0x0d, 'user root'), {
      text: 'user ok\\x0duser root',
      escaped: true,
    });
  });

  test('a line that is only a CR becomes empty', () => {
    assert.deepEqual(decode(0x0d), { text: '', escaped: false });
  });
});

describe('decodeLine: control characters', () => {
  test('NUL', () => {
    assert.deepEqual(decode('a', 0x00, 'b'), { text: 'a\\x00b', escaped: true });
  });

  test('an ANSI escape sequence (ESC [ 31 m)', () => {
    assert.deepEqual(decode('x', 0x1b, '[31mred', 0x1b, '[0m'), {
      text: 'x\\x1b[31mred\\x1b[0m',
      escaped: true,
    });
  });

  test('every C0 control except TAB, and DEL', () => {
    for (let b = 0; b < 0x20; b++) {
      if (b === 0x09) continue;
      const r = decode('<', b, '>');
      // A trailing CR would be stripped, but here it is mid-line.
      assert.deepEqual(
        r,
        { text: `<\\x${b.toString(16).padStart(2, '0')}>`, escaped: true },
        `byte ${b}`,
      );
    }
    assert.deepEqual(decode('<', 0x7f, '>'), { text: '<\\x7f>', escaped: true });
  });

  test('C1 controls U+0080–U+009F are escaped as \\u00HH (CSI U+009B included)', () => {
    assert.deepEqual(decode('a', 0xc2, 0x9b, '31m', 0xc2, 0x80, 0xc2, 0x9f), {
      text: 'a\\u009b31m\\u0080\\u009f',
      escaped: true,
    });
  });

  test('U+00A0 (C2 A0) is not a control', () => {
    assert.deepEqual(decode(0xc2, 0xa0), { text: '\u00a0', escaped: false });
  });

  test('valid text around escapes is kept, multi-byte included', () => {
    assert.deepEqual(decode('zoë', 0x1b, '€'), { text: 'zoë\\x1b€', escaped: true });
  });
});

describe('decodeLine: invalid UTF-8', () => {
  test('a lone continuation byte', () => {
    assert.deepEqual(decode('a', 0x80, 'b'), { text: 'a\\x80b', escaped: true });
  });

  test('a truncated sequence (E2 82 without its third byte), mid-line and at the end', () => {
    assert.deepEqual(decode('a', 0xe2, 0x82, 'b'), { text: 'a\\xe2\\x82b', escaped: true });
    assert.deepEqual(decode('a', 0xf0, 0x9f, 0x98), { text: 'a\\xf0\\x9f\\x98', escaped: true });
  });

  test('overlong encodings ("/" as C0 AF and E0 80 AF)', () => {
    assert.deepEqual(decode(0xc0, 0xaf), { text: '\\xc0\\xaf', escaped: true });
    assert.deepEqual(decode(0xe0, 0x80, 0xaf), { text: '\\xe0\\x80\\xaf', escaped: true });
    assert.deepEqual(decode(0xf0, 0x80, 0x80, 0xaf), {
      text: '\\xf0\\x80\\x80\\xaf',
      escaped: true,
    });
  });

  test('surrogates encoded in UTF-8 (CESU-8 / WTF-8: ED A0 80, ED BF BF)', () => {
    assert.deepEqual(decode(0xed, 0xa0, 0x80), { text: '\\xed\\xa0\\x80', escaped: true });
    assert.deepEqual(decode(0xed, 0xbf, 0xbf), { text: '\\xed\\xbf\\xbf', escaped: true });
    // ED 9F BF is U+D7FF, just below the surrogates: valid.
    assert.deepEqual(decode(0xed, 0x9f, 0xbf), { text: '\uD7FF', escaped: false });
  });

  test('above U+10FFFF (F4 90 80 80) and bytes that never occur (F5–FF)', () => {
    assert.deepEqual(decode(0xf4, 0x90, 0x80, 0x80), {
      text: '\\xf4\\x90\\x80\\x80',
      escaped: true,
    });
    assert.deepEqual(decode('x', 0xff, 0xfe), { text: 'x\\xff\\xfe', escaped: true });
  });

  test('Latin-1 text (a log written in ISO-8859-1) keeps its ASCII and escapes the rest', () => {
    assert.deepEqual(decode('caf', 0xe9, ' cr', 0xe8, 'me'), {
      text: 'caf\\xe9 cr\\xe8me',
      escaped: true,
    });
  });

  test('valid sequences next to invalid ones are decoded', () => {
    assert.deepEqual(decode(0xe2, 0x82, 0xac, 0x80, 0xe2, 0x82, 0xac), {
      text: '€\\x80€',
      escaped: true,
    });
  });

  test('the output is always valid UTF-16 without lone surrogates or U+FFFD', () => {
    const bytes: number[] = [];
    for (let i = 0; i < 5000; i++) bytes.push((i * 7919 + 13) & 0xff);
    const r = decode(...bytes);
    assert.equal(r.escaped, true);
    assert.equal(Buffer.from(r.text, 'utf8').toString('utf8'), r.text); // no lone surrogates
    assert.equal(r.text.includes('\uFFFD'), false);
  });
});

describe('decodeLine: long lines', () => {
  test('a 1 MiB clean line is one string, quickly', () => {
    const buf = Buffer.alloc(1 << 20, 'abcdefghij €');
    const t0 = performance.now();
    const r = decodeLine(buf, 0, buf.length);
    const ms = performance.now() - t0;
    assert.equal(r.escaped, false);
    assert.equal(r.text, buf.toString('utf8')); // 2^20 = 74898 × 14 + 4: ends on a whole character
    assert.ok(ms < 200, `${ms} ms`);
  });

  test('a 1 MiB line full of controls is one string, quickly', () => {
    const buf = Buffer.alloc(1 << 20, 'a\x1b\x00\xff', 'latin1');
    const t0 = performance.now();
    const r = decodeLine(buf, 0, buf.length);
    const ms = performance.now() - t0;
    assert.equal(r.escaped, true);
    assert.equal(r.text.length, (1 << 18) * (1 + 4 + 4 + 4));
    assert.ok(r.text.startsWith('a\\x1b\\x00\\xffa'));
    assert.ok(ms < 1000, `${ms} ms`);
  });
});

describe('decodeLine: the fast path for valid UTF-8 with control characters (#20)', () => {
  test('gives exactly the byte walk’s result on random lines', () => {
    // Pieces: ASCII, every C0 and DEL, C1 as UTF-8, valid 2-4 byte characters, U+FFFD itself,
    // invalid bytes and truncated sequences, a CR: either path may be taken, results must agree.
    const pieces: number[][] = [
      [0x61],
      [0x20],
      [0x09],
      [0x5c, 0x78],
      ...Array.from({ length: 32 }, (_, c) => [c]),
      [0x7f],
      [0xc2, 0x80],
      [0xc2, 0x9f],
      [0xc2, 0xa0],
      [0xc3, 0xa9],
      [0xe2, 0x80, 0xae],
      [0xf0, 0x9f, 0x98, 0x80],
      [0xef, 0xbf, 0xbd],
      [0xff],
      [0x80],
      [0xe2, 0x80],
      [0x0d],
    ];
    let seed = 20;
    const rnd = (n: number) => {
      seed = (seed * 48271) % 2147483647;
      return seed % n;
    };
    let fast = 0;
    for (let i = 0; i < 20_000; i++) {
      const bytes: number[] = [];
      for (let k = rnd(12); k >= 0; k--) bytes.push(...pieces[rnd(pieces.length)]!);
      if (rnd(3) === 0) for (let k = rnd(6); k >= 0; k--) bytes.push(0x61 + rnd(26));
      const buf = Buffer.from(bytes);
      let end = buf.length;
      if (end > 0 && buf[end - 1] === 0x0d) end--; // decodeLine strips one trailing CR
      const want = escapeBytes(buf, 0, end);
      const r = decodeLine(buf, 0, buf.length);
      assert.equal(r.text, r.escaped ? want : buf.toString('utf8', 0, end), JSON.stringify(bytes));
      if (r.escaped) assert.equal(r.text, want);
      if (r.escaped && !buf.subarray(0, end).includes(0xff)) fast++;
    }
    assert.ok(fast > 1000);
  });

  test('an auditd ENRICHED record: the 0x1d separator escaped, nothing else touched', () => {
    const line = Buffer.from('type=CWD msg=audit(1.000:2): cwd="/tmp"\x1dUID="root" é', 'utf8');
    assert.deepEqual(decodeLine(line, 0, line.length), {
      text: 'type=CWD msg=audit(1.000:2): cwd="/tmp"\\x1dUID="root" é',
      escaped: true,
    });
  });
});
