import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

// `guardctl … | head` closes the pipe early: guardctl must exit quietly, not die with a stack trace.
test('a reader that goes away (EPIPE) ends guardctl quietly', async () => {
  const child = spawn(process.execPath, [join(__dirname, '../../../dist/guardctl.js'), '--help'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.destroy(); // closed before guardctl writes a byte
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  assert.equal(stderr, '', 'nothing on stderr');
  assert.equal(code, 0);
});
