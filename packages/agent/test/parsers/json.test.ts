import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { getParser } from '../../src/parsers/index';
import { parseJson } from '../../src/parsers/json';
import { parsePlain } from '../../src/parsers/plain';
import { parseSyslog } from '../../src/parsers/syslog';

const NOW = new Date('2026-11-24T12:00:00Z');

describe('parseJson', () => {
  test('an object becomes the fields; an ISO `time` the time', () => {
    assert.deepEqual(
      parseJson(
        '{"time":"2026-11-24T09:05:01.123456Z","level":"info","msg":"hi","n":{"a":[1,2]}}',
        NOW,
      ),
      {
        time: '2026-11-24T09:05:01.123Z',
        fields: { time: '2026-11-24T09:05:01.123456Z', level: 'info', msg: 'hi', n: { a: [1, 2] } },
      },
    );
  });

  test('timestamp, @timestamp and ts are used too, with offsets converted to UTC', () => {
    assert.equal(
      parseJson('{"timestamp":"2026-11-24T10:05:01+01:00"}', NOW).time,
      '2026-11-24T09:05:01.000Z',
    );
    assert.equal(
      parseJson('{"@timestamp":"2026-11-24T09:05:01.5Z","x":1}', NOW).time,
      '2026-11-24T09:05:01.500Z',
    );
    assert.equal(parseJson('{"ts":"2026-11-24T09:05:01Z"}', NOW).time, '2026-11-24T09:05:01.000Z');
  });

  test('the first key that parses wins, in the order time, timestamp, @timestamp, ts', () => {
    assert.equal(
      parseJson('{"ts":"2020-01-01T00:00:00Z","time":"2026-11-24T09:05:01Z"}', NOW).time,
      '2026-11-24T09:05:01.000Z',
    );
    assert.equal(
      parseJson('{"time":"soon","timestamp":"2026-11-24T09:05:01Z"}', NOW).time,
      '2026-11-24T09:05:01.000Z',
    );
  });

  test('epoch numbers where seconds and milliseconds cannot be confused (pino ms, zap s)', () => {
    assert.equal(
      parseJson('{"time":1795511101123,"level":30}', NOW).time,
      '2026-11-24T09:05:01.123Z',
    );
    assert.equal(parseJson('{"ts":1795511101.5}', NOW).time, '2026-11-24T09:05:01.500Z');
    assert.equal(parseJson('{"time":42}', NOW).time, undefined);
  });

  test('no usable time: fields only', () => {
    assert.deepEqual(parseJson('{"msg":"x","time":"not a date"}', NOW), {
      fields: { msg: 'x', time: 'not a date' },
    });
    assert.deepEqual(parseJson('{"time":"1"}', NOW), { fields: { time: '1' } }); // Date.parse("1") is 2001
    assert.deepEqual(parseJson('{"time":null}', NOW), { fields: { time: null } });
  });

  test('leading whitespace is fine', () => {
    assert.deepEqual(parseJson('  \t{"a":1}', NOW), { fields: { a: 1 } });
  });

  test('"__proto__" is an ordinary key', () => {
    const r = parseJson('{"__proto__":{"polluted":1}}', NOW);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.deepEqual(Object.keys(r.fields!), ['__proto__']);
  });

  for (const line of [
    '',
    'plain text',
    '[1,2]',
    '"str"',
    '42',
    'null',
    '{"a":',
    '{"a":1} trailing',
    '{bad}',
    '{\\x00}',
  ]) {
    test(`unparsed: ${JSON.stringify(line)}`, () => {
      assert.deepEqual(parseJson(line, NOW), { flags: ['unparsed'] });
    });
  }
});

describe('parsePlain and getParser', () => {
  test('plain extracts nothing', () => {
    assert.deepEqual(parsePlain('anything at all', NOW), {});
  });

  test('getParser returns each parser by its config name', () => {
    assert.equal(getParser('syslog'), parseSyslog);
    assert.equal(getParser('json'), parseJson);
    assert.equal(getParser('plain'), parsePlain);
  });
});
