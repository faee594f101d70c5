import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkConfig } from '../../src/config/check';

const dir = mkdtempSync(join(tmpdir(), 'guard-check-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('ok: one line summarising sources and sinks', () => {
  const file = join(dir, 'ok.conf');
  writeFileSync(
    file,
    '[agent]\nuser = guard\n[source.auth]\npaths = /var/log/auth.log\n[source.audit]\ntype = audit\n',
  );
  assert.deepEqual(checkConfig(file), {
    ok: true,
    lines: [
      `${file}: ok: 2 sources (auth, audit [audit]), 1 sink (local: file /var/lib/guard/out/events.ndjson)`,
    ],
  });
});

test('not ok: every problem, one per line', () => {
  const file = join(dir, 'bad.conf');
  writeFileSync(
    file,
    '[agent]\nuser = guard\nlog_level = loud\n[source.auth]\npathz = /var/log/auth.log\n[sink.siem]\ntype = http\nurl = htps://x\n',
  );
  const { ok, lines } = checkConfig(file);
  assert.equal(ok, false);
  assert.deepEqual(lines, [
    `${file}: [agent] log_level: expected "debug", "info", "warn" or "error", got "loud"`,
    `${file}: [source.auth] pathz: unknown key (did you mean "paths"?)`,
    `${file}: [source.auth] paths: required: expected comma-separated absolute, normalised paths or globs`,
    `${file}: [sink.siem] url: expected an http:// or https:// URL, got "htps://x"`,
  ]);
});

test('a file that cannot be read is a problem, not a crash', () => {
  assert.deepEqual(checkConfig(join(dir, 'missing.conf')), {
    ok: false,
    lines: [`${join(dir, 'missing.conf')}: cannot read: ENOENT`],
  });
});
