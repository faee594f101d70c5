import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as validate from '../src/generated/validate.js';
import { MAX_REQUEST_BYTES, parseRequest, type Request } from '../src/wire';

const parse = (text: string) => parseRequest(Buffer.from(text, 'utf8'));

function assertRejected(text: string | Buffer, code: 'bad_request' | 'unknown_op' = 'bad_request') {
  const r = typeof text === 'string' ? parse(text) : parseRequest(text);
  assert.equal(r.ok, false, `accepted ${String(text).slice(0, 80)}`);
  if (!r.ok) {
    assert.equal(r.code, code, r.message);
    assert.ok(r.message.length > 0 && r.message.length <= 120, `message too long: ${r.message}`);
  }
  return r;
}

describe('parseRequest accepts every valid request', () => {
  const valid: Request[] = [
    { op: 'hello', version: 1 },
    { op: 'hello', version: 2 }, // a version the helper does not speak is its answer to give, not a parse error
    { op: 'list', source: 'syslog' },
    { op: 'list', source: 'a' },
    { op: 'list', source: 'A-z_0.9'.padEnd(64, 'x') },
    { op: 'open', path: '/var/log/syslog' },
    { op: 'watch', source: 'auth' },
    { op: 'open', path: '/var/log/auth.log', descriptor: false },
    { op: 'open', path: `/${'a'.repeat(4000)}` },
    { op: 'open', path: 'relative/is/for/the/helper/to/refuse' },
  ];
  for (const req of valid) {
    it(`${JSON.stringify(req).slice(0, 60)}`, () => {
      assert.deepEqual(parse(JSON.stringify(req)), { ok: true, request: req });
    });
  }
  it('keys in any order, whitespace, 1.0 as the integer 1', () => {
    assert.deepEqual(parse(' {\n"version" : 1.0 , "op":"hello"}\n'), {
      ok: true,
      request: { op: 'hello', version: 1 },
    });
  });
});

describe('parseRequest refuses malformed requests as bad_request', () => {
  const cases: Record<string, string> = {
    'invalid JSON': '{"op":"hello",',
    'empty packet': '',
    'NaN version (not JSON)': '{"op":"hello","version":NaN}',
    'float version': '{"op":"hello","version":1.5}',
    'string version': '{"op":"hello","version":"1"}',
    'null version': '{"op":"hello","version":null}',
    'boolean version': '{"op":"hello","version":true}',
    'missing version': '{"op":"hello"}',
    'extra key on hello': '{"op":"hello","version":1,"x":1}',
    'number source': '{"op":"list","source":5}',
    'empty source': '{"op":"list","source":""}',
    'source with slash': '{"op":"list","source":"a/b"}',
    'source with newline at end': '{"op":"list","source":"syslog\\n"}',
    'source of 65 characters': `{"op":"list","source":"${'s'.repeat(65)}"}`,
    'missing source': '{"op":"list"}',
    'path not a string': '{"op":"open","path":["/var/log/syslog"]}',
    'empty path': '{"op":"open","path":""}',
    'missing path': '{"op":"open"}',
    'watch without a source': '{"op":"watch"}',
    'descriptor true': '{"op":"open","path":"/x","descriptor":true}',
    'descriptor as a string': '{"op":"open","path":"/x","descriptor":"false"}',
    'extra key on open': '{"op":"open","path":"/var/log/syslog","flags":"w"}',
    '__proto__ key': '{"op":"open","path":"/var/log/syslog","__proto__":{"x":1}}',
    'a list key on open': '{"op":"open","path":"/x","source":"syslog"}',
    null: 'null',
    array: '[{"op":"hello","version":1}]',
    string: '"hello"',
    number: '1',
    'missing op': '{"version":1}',
    'op not a string': '{"op":1,"version":1}',
    'op null': '{"op":null}',
  };
  for (const [name, text] of Object.entries(cases))
    it(name, () => {
      assertRejected(text);
    });

  it('a path over 4095 characters', () => {
    // Over the 4096-byte packet limit as well; the schema limit holds on its own, checked directly.
    const path = `/${'p'.repeat(4095)}`;
    const r = assertRejected(JSON.stringify({ op: 'open', path }));
    assert.match(r.ok ? '' : r.message, /over 4096 bytes/);
  });
  it('a packet over 4096 bytes, even if valid JSON', () => {
    assertRejected(Buffer.alloc(MAX_REQUEST_BYTES + 1, ' '));
  });
  it('invalid UTF-8', () => {
    assertRejected(
      Buffer.concat([
        Buffer.from('{"op":"open","path":"/var/log/'),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('"}'),
      ]),
    );
  });
  it('names the failing field without echoing the value', () => {
    const r = assertRejected('{"op":"open","path":42}');
    assert.equal(r.ok ? '' : r.message, 'open request /path must be string');
  });
  it('does not echo an attacker-chosen extra key', () => {
    const r = assertRejected(`{"op":"open","path":"/x","${'k'.repeat(500)}\\n[forged]":1}`);
    assert.doesNotMatch(r.ok ? '' : r.message, /kkk|forged/);
  });
});

describe('parseRequest refuses unknown ops as unknown_op', () => {
  for (const op of ['read', 'write', 'HELLO', 'constructor', '__proto__', 'toString', '']) {
    it(JSON.stringify(op), () => {
      assertRejected(JSON.stringify({ op, path: '/x' }), 'unknown_op');
    });
  }
  it('echoes at most a short, quoted prefix of the op', () => {
    const r = assertRejected(
      JSON.stringify({ op: `${'x'.repeat(1000)}\n2026 guard-helper: granted /etc/shadow` }),
      'unknown_op',
    );
    const message = r.ok ? '' : r.message;
    assert.ok(message.length <= 100, message);
    assert.doesNotMatch(message, /\n/);
  });
});

describe('the generated validator', () => {
  it('has one validator per op of the protocol, each for its own op (the helper looks ops up there)', () => {
    assert.deepEqual(Object.keys(validate.byOp).sort(), ['hello', 'list', 'open', 'watch']);
    for (const [op, check] of Object.entries(validate.byOp)) {
      assert.equal(check, validate[op as keyof typeof validate.byOp]);
      assert.equal(check({ op: op === 'open' ? 'list' : 'open', path: '/x', source: 'x' }), false);
    }
  });
  it('does not load ajv (or anything else) at run time', () => {
    const code = readFileSync(join(__dirname, '../src/generated/validate.js'), 'utf8');
    assert.doesNotMatch(code, /require\("ajv/);
    assert.doesNotMatch(code, /\brequire\(/);
  });
  it('enforces the 4095-character path limit on its own', () => {
    assert.equal(validate.open({ op: 'open', path: `/${'p'.repeat(4094)}` }), true);
    assert.equal(validate.open({ op: 'open', path: `/${'p'.repeat(4095)}` }), false);
  });
});
