import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hiddenFlags } from '../../src/parsers/hidden';

test('bidi controls: embeddings, overrides, isolates and marks are flagged bidi (issue #12)', () => {
  for (const c of [
    '\u202a',
    '\u202b',
    '\u202c',
    '\u202d',
    '\u202e',
    '\u2066',
    '\u2067',
    '\u2068',
    '\u2069',
    '\u200e',
    '\u200f',
    '\u061c',
  ])
    assert.deepEqual(hiddenFlags(`invoice ${c}gnp.exe`), ['bidi'], JSON.stringify(c));
});

test('other invisible format characters are flagged invisible', () => {
  for (const c of ['\u200b', '\u2060', '\u00ad', '\u2028', '\u2029', '\u{e0041}', '\ufeff'])
    assert.deepEqual(hiddenFlags(`pass${c}word`), ['invisible'], JSON.stringify(c));
  assert.deepEqual(hiddenFlags('a\u202eb\u200bc'), ['bidi', 'invisible']);
});

test('not flagged: plain and international text, ZWJ/ZWNJ, a BOM where RFC 5424 puts one', () => {
  for (const s of [
    '',
    'plain ascii line',
    'caf\u00e9 \u4e2d\u6587 \u0639\u0631\u0628\u064a \u05e2\u05d1\u05e8\u05d9\u05ea',
    '\u{1f468}\u200d\u{1f469}\u200d\u{1f467}', // an emoji family: joined by ZWJ
    '\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645', // Persian: ZWNJ
    '\ufeffAn application event',
    '<165>1 2003-10-11T22:14:15.003Z host app - ID47 - \ufeffmsg',
  ])
    assert.equal(hiddenFlags(s), null, JSON.stringify(s));
});
