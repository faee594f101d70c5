import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileFilter } from '../../src/transforms/filter';

describe('compileFilter', () => {
  test('no rules: null, so the pipeline skips the step', () => {
    assert.equal(compileFilter([], []), null);
  });

  test('include only: keep lines matching any include', () => {
    const f = compileFilter([/sshd/, /sudo/], [])!;
    assert.equal(f('web1 sshd[1]: Accepted'), true);
    assert.equal(f('web1 sudo: alice'), true);
    assert.equal(f('web1 CRON[2]: session opened'), false);
  });

  test('exclude only: drop lines matching any exclude', () => {
    const f = compileFilter([], [/CRON/, /session closed/])!;
    assert.equal(f('web1 sshd[1]: Accepted'), true);
    assert.equal(f('web1 CRON[2]: x'), false);
    assert.equal(f('web1 sshd[1]: session closed for user bob'), false);
  });

  test('include and exclude: exclude wins', () => {
    const f = compileFilter([/sshd/], [/Accepted publickey/])!;
    assert.equal(f('sshd[1]: Failed password for root'), true);
    assert.equal(f('sshd[1]: Accepted publickey for alice'), false);
    assert.equal(f('sudo: alice'), false);
  });

  test('regexes with g or y flags do not carry lastIndex from one line to the next', () => {
    const g = /sshd/g;
    const f = compileFilter([g], [/x/y])!;
    for (let i = 0; i < 5; i++) assert.equal(f('sshd[1]: ok'), true);
    assert.equal(g.lastIndex, 0); // the caller's regex is not touched either
    assert.equal(f('xsshd'), false); // the sticky exclude still matches at position 0
  });

  test('flags such as i are kept', () => {
    const f = compileFilter([/SSHD/i], [])!;
    assert.equal(f('sshd[1]: ok'), true);
  });
});
