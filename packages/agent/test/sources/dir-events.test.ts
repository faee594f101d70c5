// The pure parts of "many files": struct inotify_event parsing and the descriptor bound.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  IN_CREATE,
  IN_MODIFY,
  IN_Q_OVERFLOW,
  parseInotifyEvents,
} from '../../src/sources/file/dir-events';
import { fileBudget, HEADROOM, openFileLimit } from '../../src/sources/file/open-files';

/** One event as the kernel writes it: the name NUL-padded to `len` bytes. */
function event(wd: number, mask: number, cookie: number, name: string, len?: number): Buffer {
  const n = Buffer.from(name, 'utf8');
  const size = len ?? (name === '' ? 0 : Math.ceil((n.length + 1) / 16) * 16);
  const b = Buffer.alloc(16 + size);
  b.writeInt32LE(wd, 0);
  b.writeUInt32LE(mask, 4);
  b.writeUInt32LE(cookie, 8);
  b.writeUInt32LE(size, 12);
  n.copy(b, 16);
  return b;
}

describe('parseInotifyEvents', () => {
  test('several events in one read, names without their padding', () => {
    const buf = Buffer.concat([
      event(1, IN_MODIFY, 0, 'app.log'),
      event(2, IN_CREATE, 0, 'a-name-of-exactly-32-bytes.log..'),
      event(-1, IN_Q_OVERFLOW, 0, ''),
      event(7, IN_MODIFY, 9, 'naïve.log'),
    ]);
    assert.deepEqual(parseInotifyEvents(buf, buf.length), [
      { wd: 1, mask: IN_MODIFY, cookie: 0, name: 'app.log' },
      { wd: 2, mask: IN_CREATE, cookie: 0, name: 'a-name-of-exactly-32-bytes.log..' },
      { wd: -1, mask: IN_Q_OVERFLOW, cookie: 0, name: '' },
      { wd: 7, mask: IN_MODIFY, cookie: 9, name: 'naïve.log' },
    ]);
  });

  test('only the bytes the read returned count', () => {
    const buf = Buffer.concat([event(1, IN_MODIFY, 0, 'a'), Buffer.alloc(64, 0xff)]);
    assert.equal(parseInotifyEvents(buf, 32).length, 1);
  });

  test('a name running past the read, or a cut header, is refused, not guessed at', () => {
    const e = event(1, IN_MODIFY, 0, 'app.log');
    assert.throws(() => parseInotifyEvents(e, e.length - 1), /past the read/);
    assert.throws(() => parseInotifyEvents(e, 10), /less than an event header/);
    const lying = event(1, IN_MODIFY, 0, 'x', 4096);
    assert.throws(() => parseInotifyEvents(lying.subarray(0, 48), 48), /past the read/);
  });
});

describe('the descriptor bound', () => {
  const dir = mkdtempSync(join(tmpdir(), 'guard-limits-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const limits = (soft: string) => {
    const p = join(dir, `limits-${soft}`);
    writeFileSync(
      p,
      'Limit                     Soft Limit           Hard Limit           Units     \n' +
        'Max cpu time              unlimited            unlimited            seconds   \n' +
        `Max open files            ${soft.padEnd(21)}524288               files     \n`,
    );
    return p;
  };

  test('RLIMIT_NOFILE is read from /proc/self/limits', () => {
    assert.equal(openFileLimit(limits('1024')), 1024);
    assert.equal(openFileLimit(limits('unlimited')), Number.MAX_SAFE_INTEGER);
    assert.equal(openFileLimit(join(dir, 'none')), null);
    assert.ok((openFileLimit() ?? 0) > 0, 'this process has a limit');
  });

  test('automatic: the limit less the headroom; configured: never past that', () => {
    assert.deepEqual(fileBudget(0, 1024), { max: 1024 - HEADROOM, limit: 1024, clamped: false });
    assert.deepEqual(fileBudget(100, 1024), { max: 100, limit: 1024, clamped: false });
    assert.deepEqual(fileBudget(5000, 1024), {
      max: 1024 - HEADROOM,
      limit: 1024,
      clamped: true,
    });
    assert.equal(fileBudget(0, 64).max, 16, 'a tiny limit still leaves a few files');
    assert.equal(fileBudget(0, null).max, 1024 - HEADROOM, 'unknown: as if 1024');
  });
});
