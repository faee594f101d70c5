import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { guardProgram } from '../src/procs';

describe('guardProgram: which process is a guard program', () => {
  it('node running a bundle, with node options first', () => {
    assert.deepEqual(
      guardProgram([
        '/usr/bin/node',
        '--no-expose-wasm',
        '--jitless',
        '/usr/lib/guard/guard-helper.js',
        '--config',
        'x',
      ]),
      { program: 'guard-helper', script: '/usr/lib/guard/guard-helper.js' },
    );
    assert.equal(guardProgram(['node', '/usr/lib/guard/guard-agent.js'])?.program, 'guard-agent');
  });
  it('the installed sh wrapper', () => {
    assert.equal(
      guardProgram(['/bin/sh', '/usr/sbin/guard-agent', '--config', 'c'])?.program,
      'guard-agent',
    );
    assert.equal(guardProgram(['/usr/bin/guardctl', 'status'])?.program, 'guardctl');
  });
  it("not OpenRC's supervisor, setpriv before its exec, or a program that only names one", () => {
    assert.equal(
      guardProgram([
        'supervise-daemon',
        'guard-agent',
        '--start',
        '--pidfile',
        '/run/x',
        '/usr/sbin/guard-agent',
      ]),
      null,
    );
    assert.equal(
      guardProgram(['/usr/bin/setpriv', '--reuid=guard', '--', '/usr/sbin/guard-agent']),
      null,
    );
    assert.equal(guardProgram(['vi', '/usr/lib/guard/guard-helper.js']), null);
    assert.equal(guardProgram(['/usr/bin/tail', '-f', '/var/log/guard-helper.log']), null);
  });
});
