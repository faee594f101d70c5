// `guard-agent --check-config PATH` (issue #18): it checks the file it is given — as
// docs/configuration.md shows it — and fails on one it cannot read, instead of checking
// /etc/guard/guard.conf and passing a path it never read. The real bundle, as installed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const agentJs = join(__dirname, '..', 'dist', 'guard-agent.js');
const dir = mkdtempSync(join(tmpdir(), 'guard-check-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function agent(...args: string[]) {
  const r = spawnSync(process.execPath, [agentJs, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('guard-agent --check-config', () => {
  const good = join(dir, 'good.conf');
  const bad = join(dir, 'bad.conf');
  writeFileSync(good, '[agent]\nuser = guard\n[source.auth]\npaths = /var/log/auth.log\n');
  writeFileSync(bad, '[agent]\nuser = guard\nlog_level = loud\n');

  it('checks the file named after it: ok, and the line names that file', () => {
    const r = agent('--check-config', good);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${good.replace(/[.]/g, '\\.')}: ok: 1 source \\(auth\\)`));
  });

  it('a bad file fails, naming the file and the key', () => {
    const r = agent('--check-config', bad);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`^${bad.replace(/[.]/g, '\\.')}: \\[agent\\] log_level: `, 'm'),
    );
  });

  it('a file that does not exist fails (it used to pass, having checked another)', () => {
    const missing = join(dir, 'no-such.conf');
    const r = agent('--check-config', missing);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`${missing.replace(/[.]/g, '\\.')}: cannot read: ENOENT`));
  });

  it('--config FILE --check-config checks FILE too', () => {
    assert.equal(agent('--config', bad, '--check-config').code, 1);
    assert.equal(agent('--config', good, '--check-config').code, 0);
  });
});
