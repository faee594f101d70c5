// Fuzzing (issue #12, item 5) of the config loader: INI text from a grammar of guard.conf (every
// section and key the schema knows, values of every kind and none, duplicates, `[]` lists,
// comments, junk). Properties: loadConfig either returns a config or throws ConfigError, never
// anything else; every problem names the file; a config it accepts loads the same twice.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { ConfigError, loadConfig } from '../../src/config/load';
import { fuzz } from './budget';

const dir = mkdtempSync(join(tmpdir(), 'guard-fuzz-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const pick = <T>(...xs: T[]) => fc.constantFrom(...xs);
const KEYS: Record<string, string[]> = {
  agent: [
    'user',
    'helper_socket',
    'status_socket',
    'state_dir',
    'hostname',
    'tags',
    'max_line_bytes',
    'partial_line_timeout_ms',
    'poll_interval_ms',
    'rotate_check_interval_ms',
    'rescan_interval_ms',
    'max_buffer_bytes',
    'log_level',
  ],
  helper: ['audit_group'],
  source: ['type', 'paths', 'parser', 'start_at', 'include', 'exclude', 'tags', 'sinks'],
  sink: [
    'type',
    'url',
    'token_file',
    'ca_file',
    'compression',
    'timeout_ms',
    'retry_initial_ms',
    'retry_max_ms',
    'batch_max_events',
    'batch_max_bytes',
    'batch_max_wait_ms',
    'path',
    'max_bytes',
    'max_files',
  ],
  redact: ['builtin', 'pattern', 'replacement'],
  metrics: ['textfile', 'listen', 'interval_ms'],
};
const value = fc.oneof(
  pick('guard', 'file', 'audit', 'http', 'syslog', 'json', 'plain', 'end', 'beginning', 'gzip'),
  pick('true', 'false', 'info', 'debug', 'loud', '', '-1', '0', '1024', '65536', '1e9', '16M'),
  pick(
    '/var/log/*.log',
    '/var/log/a.log, /var/log/b.log',
    '/var/log/../etc/shadow',
    'relative',
    '/a//b',
  ),
  pick('https://siem.example/in', 'https://u:p@x/', 'htps://x', '(', '^ERROR', '\\;', 'a # b'),
  pick(
    '9477',
    '127.0.0.1:9477',
    '[::1]:0',
    '99999',
    ':80',
    '/var/lib/m/guard.prom',
    '/a/../b.prom',
  ),
  fc.string({ maxLength: 20 }),
  fc.integer().map(String),
);
const name = fc.oneof(pick('auth', 'audit', 'siem', 'local', 'x-1'), fc.string({ maxLength: 6 }));
const keyLine = (section: string) =>
  fc
    .tuple(
      fc.oneof({ weight: 5, arbitrary: pick(...KEYS[section]!) }, fc.string({ maxLength: 8 })),
      pick('', '', '[]'),
      pick(' = ', '=', ' =', ' '),
      value,
    )
    .map(([k, list, eq, v]) => `${k}${list}${eq}${v}`);
const section = fc.oneof(
  fc.tuple(pick('agent', 'helper', 'redact', 'metrics'), fc.constant('')).map(([s]) => s),
  fc.tuple(pick('source', 'sink'), name).map(([s, n]) => `${s}.${n}`),
);
const block = section.chain((s) =>
  fc
    .array(
      fc.oneof(
        { weight: 6, arbitrary: keyLine(s.split('.')[0]!) },
        { weight: 1, arbitrary: pick('; comment', '# comment', '', '[', 'junk', '[agent') },
        { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
      ),
      { maxLength: 8 },
    )
    .map((lines) => [`[${s}]`, ...lines].join('\n')),
);
const conf = fc
  .tuple(
    fc.array(block, { maxLength: 5 }),
    pick(
      '[agent]\nuser = guard\n',
      '[agent]\nuser = guard\n[source.auth]\npaths = /var/log/auth.log\n',
      '',
    ),
  )
  .map(([blocks, base]) => base + blocks.join('\n') + '\n');

describe('fuzz: config loader', () => {
  test('a config or ConfigError naming the file, never anything else; deterministic', () => {
    let n = 0;
    let accepted = 0;
    fc.assert(
      fc.property(conf, (text) => {
        const file = join(dir, `c${n++}.conf`);
        writeFileSync(file, text);
        let first: unknown;
        try {
          first = loadConfig(file);
        } catch (e) {
          assert.ok(e instanceof ConfigError, `not a ConfigError: ${(e as Error).stack}`);
          assert.ok(e.problems.length > 0);
          for (const p of e.problems) assert.ok(p.startsWith(`${file}: `), p);
          return;
        }
        accepted++;
        assert.deepEqual(
          JSON.parse(
            JSON.stringify(loadConfig(file), (_k, v) => (v instanceof RegExp ? String(v) : v)),
          ),
          JSON.parse(JSON.stringify(first, (_k, v) => (v instanceof RegExp ? String(v) : v))),
        );
      }),
      fuzz(0xc0f1, 800),
    );
    assert.ok(accepted > 0, 'some configs were good');
  });
});
