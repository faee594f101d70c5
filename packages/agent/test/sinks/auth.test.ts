// The auth header each scheme sends, built from token_file: pure logic over a real file.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { AuthHeader } from '../../src/sinks/core/auth';
import { dir } from './fixtures';

function file(content: string): string {
  const p = join(dir, `secret-${Math.random().toString(36).slice(2)}`);
  writeFileSync(p, content, { mode: 0o600 });
  return p;
}

const headers = (a: AuthHeader): Record<string, string> => {
  const h: Record<string, string> = {};
  a.apply(h);
  return h;
};

describe('AuthHeader', () => {
  test('bearer, splunk, apikey, basic and a named header, from the file (trimmed)', () => {
    const f = file('s3cret\n');
    assert.deepEqual(headers(new AuthHeader({ scheme: 'bearer', file: f, header: null })), {
      authorization: 'Bearer s3cret',
    });
    assert.deepEqual(headers(new AuthHeader({ scheme: 'splunk', file: f, header: null })), {
      authorization: 'Splunk s3cret',
    });
    assert.deepEqual(headers(new AuthHeader({ scheme: 'apikey', file: f, header: null })), {
      authorization: 'ApiKey s3cret',
    });
    assert.deepEqual(headers(new AuthHeader({ scheme: 'header', file: f, header: 'DD-API-KEY' })), {
      'dd-api-key': 's3cret',
    });
    const basic = file('elastic:pa:ss\n');
    assert.deepEqual(headers(new AuthHeader({ scheme: 'basic', file: basic, header: null })), {
      authorization: `Basic ${Buffer.from('elastic:pa:ss').toString('base64')}`,
    });
    assert.deepEqual(headers(new AuthHeader({ scheme: 'none', file: null, header: null })), {});
    assert.deepEqual(headers(new AuthHeader({ scheme: 'bearer', file: null, header: null })), {});
  });

  test('refused: basic without user:password, control characters (header injection), an empty file', () => {
    assert.throws(
      () => new AuthHeader({ scheme: 'basic', file: file('justatoken'), header: null }),
      { code: 'GUARD_HTTP_TOKEN_INVALID' },
    );
    assert.throws(
      () => new AuthHeader({ scheme: 'bearer', file: file('a\r\nX-Evil: 1'), header: null }),
      { code: 'GUARD_HTTP_TOKEN_INVALID' },
    );
    assert.throws(() => new AuthHeader({ scheme: 'bearer', file: file('  \n'), header: null }), {
      code: 'GUARD_HTTP_TOKEN_EMPTY',
    });
  });

  test('changed(): true once the file holds a new secret; reload() keeps the old one on error', () => {
    const f = file('one');
    const a = new AuthHeader({ scheme: 'bearer', file: f, header: null });
    assert.equal(a.changed(), false);
    writeFileSync(f, 'two');
    assert.equal(a.changed(), true);
    assert.equal(a.value, 'Bearer two');
    writeFileSync(f, '');
    assert.throws(() => a.reload(), { code: 'GUARD_HTTP_TOKEN_EMPTY' });
    assert.equal(a.value, 'Bearer two');
  });
});
