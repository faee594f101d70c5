import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  AUDIT_PATHS,
  ConfigError,
  JOURNAL_PATHS,
  changesNeedingRestart,
  loadConfig,
  pathSyntaxError,
} from '../../src/config/load';
import type { FileSinkConfig, HttpSinkConfig } from '../../src/config/types';

const dir = mkdtempSync(join(tmpdir(), 'guard-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(text: string, mode = 0o640): string {
  const path = join(dir, `f${++n}`);
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
  return path;
}
const conf = (text: string): string => file(text);

/** The problem lines of a config that must not load. */
function problems(text: string): { path: string; lines: string[] } {
  const path = conf(text);
  try {
    loadConfig(path);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.file, path);
    for (const line of e.problems) assert.ok(line.startsWith(`${path}: `), line);
    return { path, lines: e.problems };
  }
  assert.fail('expected a ConfigError');
}

/** Exactly one problem, and it is this line. */
function oneProblem(text: string, expected: (path: string) => string): void {
  const { path, lines } = problems(text);
  assert.deepEqual(lines, [expected(path)]);
}

const MINIMAL = '[agent]\nuser = guard\n';

describe('defaults', () => {
  test('a config with only [agent] user gets every default from types.ts', () => {
    const c = loadConfig(conf(MINIMAL));
    assert.deepEqual(c.agent, {
      user: 'guard',
      helperSocket: '/run/guard/helper.sock',
      statusSocket: '/run/guard/agent/agent.sock',
      stateDir: '/var/lib/guard',
      hostname: hostname(),
      tags: [],
      maxLineBytes: 65536,
      partialLineTimeoutMs: 5000,
      pollIntervalMs: 250,
      rotateCheckIntervalMs: 1000,
      rescanIntervalMs: 10000,
      maxBufferBytes: 4 * 1024 * 1024,
      logLevel: 'info',
      watch: 'auto',
      watchRescanIntervalMs: 300000,
      closeIdleAfterMs: 300000,
      maxOpenFiles: 0,
    });
    assert.deepEqual(c.sources, []);
    assert.deepEqual(c.redact, { builtin: true, patterns: [], replacement: '[REDACTED]' });
  });

  test('no sink: a file sink named local under state_dir', () => {
    const c = loadConfig(conf('[agent]\nuser = guard\nstate_dir = /srv/guard\n'));
    assert.deepEqual(c.sinks, [
      {
        name: 'local',
        type: 'file',
        path: '/srv/guard/out/events.ndjson',
        maxBytes: 100 * 1024 * 1024,
        maxFiles: 5,
        batch: { maxEvents: 1000, maxBytes: 1024 * 1024, maxWaitMs: 5 },
      } satisfies FileSinkConfig,
    ]);
  });

  test('a configured sink replaces the default one; a source may still name "local" only if it exists', () => {
    const c = loadConfig(conf(`${MINIMAL}[sink.out]\ntype = file\npath = /srv/out.ndjson\n`));
    assert.deepEqual(
      c.sinks.map((s) => s.name),
      ['out'],
    );
    const { lines } = problems(
      `${MINIMAL}[source.a]\npaths = /var/log/a\nsinks = local\n[sink.out]\ntype = file\n`,
    );
    assert.match(lines[0]!, /\[source\.a\] sinks: no sink named "local"/);
  });

  test('sources: file and audit defaults, lists and regexes', () => {
    const c = loadConfig(
      conf(`${MINIMAL}
[source.app]
paths = /var/log/app/*.log ,  /var/log/other.log,
include[] = ^ERROR
include[] = \\d{3}
exclude = healthcheck
tags = web, prod
[source.audit]
type = audit
`),
    );
    const [app, audit] = c.sources;
    assert.ok(app && audit);
    assert.deepEqual(
      { ...app, include: app.include.map(String), exclude: app.exclude.map(String) },
      {
        name: 'app',
        type: 'file',
        paths: ['/var/log/app/*.log', '/var/log/other.log'],
        parser: 'syslog',
        startAt: 'end',
        include: ['/^ERROR/', '/\\d{3}/'],
        exclude: ['/healthcheck/'],
        tags: ['web', 'prod'],
        sinks: null,
      },
    );
    assert.deepEqual(audit.paths, AUDIT_PATHS);
    assert.equal(audit.parser, 'audit');
    assert.ok(app.include[1]!.test('code 503'));
  });

  test('values are converted: numbers, booleans, lists given as key[] lines', () => {
    const c = loadConfig(
      conf(`[agent]
user = guard
max_line_bytes = 1024
tags[] = a, b
tags[] = c
[redact]
builtin = false
pattern[] = secret=\\S+
replacement = ***
`),
    );
    assert.equal(c.agent.maxLineBytes, 1024);
    assert.deepEqual(
      c.agent.tags,
      ['a, b', 'c'],
      'in key[] form each line is one item, as the helper reads paths[]',
    );
    assert.equal(c.redact.builtin, false);
    assert.equal(c.redact.replacement, '***');
    assert.equal(
      'x secret=1 y secret=2'.replace(c.redact.patterns[0]!, '*'),
      'x * y *',
      'redaction patterns replace every match',
    );
  });

  test('an http sink with every default', () => {
    const token = file('tok\n');
    const c = loadConfig(
      conf(
        `${MINIMAL}[sink.siem]\ntype = http\nurl = https://siem.example/ingest\ntoken_file = ${token}\n`,
      ),
    );
    assert.deepEqual(c.sinks, [
      {
        name: 'siem',
        type: 'http',
        url: 'https://siem.example/ingest',
        tokenFile: token,
        auth: 'bearer',
        authHeader: null,
        caFile: null,
        clientCertFile: null,
        clientKeyFile: null,
        compression: 'gzip',
        timeoutMs: 30000,
        retryInitialMs: 500,
        retryMaxMs: 60000,
        batch: { maxEvents: 1000, maxBytes: 1048576, maxWaitMs: 5 },
      } satisfies HttpSinkConfig,
    ]);
  });
});

describe('schema errors name the file, the section, the key and what was expected', () => {
  test('a number out of its range or not a number', () => {
    oneProblem(
      `${MINIMAL}max_line_bytes = big\n`,
      (f) =>
        `${f}: [agent] max_line_bytes: expected a whole number from 1024 to 16777216, got "big"`,
    );
    oneProblem(
      `${MINIMAL}max_line_bytes = 100\n`,
      (f) =>
        `${f}: [agent] max_line_bytes: expected a whole number from 1024 to 16777216, got "100"`,
    );
    oneProblem(
      `${MINIMAL}poll_interval_ms = 0x10\n`,
      (f) => `${f}: [agent] poll_interval_ms: expected a whole number from 10 to 60000, got "0x10"`,
    );
    oneProblem(
      `${MINIMAL}poll_interval_ms\n`,
      (f) => `${f}: [agent] poll_interval_ms: expected a whole number from 10 to 60000, got true`,
    );
  });

  test('an enum and a boolean', () => {
    oneProblem(
      `${MINIMAL}log_level = loud\n`,
      (f) => `${f}: [agent] log_level: expected "debug", "info", "warn" or "error", got "loud"`,
    );
    oneProblem(
      `${MINIMAL}[redact]\nbuiltin = yes\n`,
      (f) => `${f}: [redact] builtin: expected true or false, got "yes"`,
    );
    oneProblem(
      `${MINIMAL}[source.a]\ntype = journald\npaths = /x\n`,
      (f) => `${f}: [source.a] type: expected "file", "audit" or "journal", got "journald"`,
    );
  });

  test('a URL', () => {
    oneProblem(
      `${MINIMAL}[sink.siem]\ntype = http\nurl = htps://x\n`,
      (f) => `${f}: [sink.siem] url: expected an http:// or https:// URL, got "htps://x"`,
    );
  });

  test('required keys', () => {
    oneProblem('[agent]\n', (f) => `${f}: [agent] user: required: expected the agent's user name`);
    oneProblem('', (f) => `${f}: [agent] user: required: expected the agent's user name`);
    oneProblem(
      `${MINIMAL}[source.app]\nparser = json\n`,
      (f) =>
        `${f}: [source.app] paths: required: expected comma-separated absolute, normalised paths or globs`,
    );
    oneProblem(
      `${MINIMAL}[sink.x]\npath = /x\n`,
      (f) =>
        `${f}: [sink.x] type: required: expected "http", "elasticsearch", "splunk_hec", "otlp", "loki", "kafka", "file" or "syslog"`,
    );
    oneProblem(
      `${MINIMAL}[sink.x]\ntype = http\n`,
      (f) => `${f}: [sink.x] url: required: expected an http:// or https:// URL`,
    );
  });

  test('every problem is reported, in file order', () => {
    const { path, lines } = problems(`[agent]
user = guard
max_line_bytes = big
log_level = loud
[source.auth]
pathz = /var/log/auth.log
[redact]
builtin = maybe
`);
    assert.deepEqual(lines, [
      `${path}: [agent] max_line_bytes: expected a whole number from 1024 to 16777216, got "big"`,
      `${path}: [agent] log_level: expected "debug", "info", "warn" or "error", got "loud"`,
      `${path}: [source.auth] pathz: unknown key (did you mean "paths"?)`,
      `${path}: [source.auth] paths: required: expected comma-separated absolute, normalised paths or globs`,
      `${path}: [redact] builtin: expected true or false, got "maybe"`,
    ]);
  });
});

describe('unknown keys and sections', () => {
  test('a typo gets a suggestion', () => {
    oneProblem(
      `${MINIMAL}[source.auth]\npaths = /var/log/auth.log\nexlude = x\n`,
      (f) => `${f}: [source.auth] exlude: unknown key (did you mean "exclude"?)`,
    );
    oneProblem(
      `[agent]\nuser = guard\nhostnam = x\n`,
      (f) => `${f}: [agent] hostnam: unknown key (did you mean "hostname"?)`,
    );
    oneProblem(
      `${MINIMAL}[redact]\npatterns[] = x\n`,
      (f) => `${f}: [redact] patterns: unknown key (did you mean "pattern"?)`,
    );
  });

  test('nothing close: the known keys are listed', () => {
    oneProblem(
      `${MINIMAL}[helper]\nsocket = /x\n`,
      (f) => `${f}: [helper] socket: unknown key (known keys: audit_group)`,
    );
  });

  test('a key of the other sink type', () => {
    oneProblem(
      `${MINIMAL}[sink.f]\ntype = file\nurl = https://x\n`,
      (f) =>
        `${f}: [sink.f] url: unknown key for a file sink (known keys: type, path, max_bytes, max_files, batch_max_events, batch_max_bytes, batch_max_wait_ms)`,
    );
    oneProblem(
      `${MINIMAL}[sink.h]\ntype = http\nurl = https://x\npath = /x\n`,
      (f) => `${f}: [sink.h] path: unknown key for an http sink (did you mean "auth"?)`,
    );
  });

  test('unknown sections, misspelt section kinds, keys outside any section', () => {
    oneProblem(
      `${MINIMAL}[agnet]\nx = 1\n`,
      (f) => `${f}: [agnet]: unknown section (did you mean "[agent]"?)`,
    );
    oneProblem(
      `${MINIMAL}[sources.app]\npaths = /x\n`,
      (f) => `${f}: [sources.app]: unknown section (did you mean "[source.app]"?)`,
    );
    oneProblem(
      `${MINIMAL}[snk]\ntype = file\n`,
      (f) => `${f}: [snk]: unknown section (did you mean "[sink.NAME]"?)`,
    );
    oneProblem(
      `user = guard\n${MINIMAL}`,
      (f) => `${f}: user: key outside any section (put it under the [section] it belongs to)`,
    );
    oneProblem(
      `${MINIMAL}[source]\npaths = /x\n`,
      (f) => `${f}: [source] paths: unknown key (a source is a section of its own: [source.paths])`,
    );
    oneProblem(
      `${MINIMAL}[source.a.b]\npaths = /x\n`,
      (f) => `${f}: [source.a.b]: unknown section`,
    );
  });

  test('source and sink names', () => {
    oneProblem(
      `${MINIMAL}[source.bad name]\npaths = /x\n`,
      (f) => `${f}: [source.bad name]: a source name must be 1 to 64 letters, digits, "_" or "-"`,
    );
    oneProblem(
      `${MINIMAL}[sink.${'x'.repeat(65)}]\ntype = file\n`,
      (f) =>
        `${f}: [sink.${'x'.repeat(65)}]: a sink name must be 1 to 64 letters, digits, "_" or "-"`,
    );
  });

  test('a key given twice without [] (ini would drop all but the last)', () => {
    oneProblem(
      `${MINIMAL}[source.a]\npaths = /x\nexclude = a\nexclude = b\n`,
      (f) =>
        `${f}: [source.a] exclude: given more than once (only the last would count); for a list write exclude[] = … on each line`,
    );
    assert.equal(
      loadConfig(conf(`${MINIMAL}[source.a]\npaths = /x\nexclude[] = a\nexclude = b\n`)).sources[0]!
        .exclude.length,
      2,
    );
  });
});

describe('regular expressions', () => {
  test('a regex that does not compile names the key, the regex and the reason', () => {
    oneProblem(
      `${MINIMAL}[source.auth]\npaths = /var/log/auth.log\ninclude[] = ok\ninclude[] = (unclosed\n`,
      (f) =>
        `${f}: [source.auth] include: invalid regular expression "(unclosed": Unterminated group`,
    );
    oneProblem(
      `${MINIMAL}[redact]\npattern = [a-\n`,
      (f) =>
        `${f}: [redact] pattern: invalid regular expression "[a-": Unterminated character class`,
    );
    oneProblem(
      `${MINIMAL}[source.a]\npaths = /x\nexclude = a{2,1}\n`,
      (f) =>
        `${f}: [source.a] exclude: invalid regular expression "a{2,1}": numbers out of order in {} quantifier`,
    );
  });

  test('an empty regex is refused (it would match everything)', () => {
    oneProblem(
      `${MINIMAL}[source.a]\npaths = /x\nexclude[] =\n`,
      (f) => `${f}: [source.a] exclude: empty regular expression (it would match every line)`,
    );
  });

  test('ini escapes: \\; and \\# are the characters, other backslashes stay', () => {
    const c = loadConfig(
      conf(`${MINIMAL}[source.a]\npaths = /x\ninclude[] = a\\;b\\#c\\d ; comment\n`),
    );
    assert.equal(c.sources[0]!.include[0]!.source, 'a;b#c\\d');
  });
});

describe('paths (as the helper requires them)', () => {
  test('relative and unnormalised paths are refused, each named', () => {
    const { path, lines } = problems(
      `${MINIMAL}[source.app]\npaths = var/log/x, /var/log/ok, /var//log/y, /var/log/../z\n`,
    );
    assert.deepEqual(lines, [
      `${path}: [source.app] paths: expected comma-separated absolute, normalised paths or globs, got "var/log/x" (path must be absolute)`,
      `${path}: [source.app] paths: expected comma-separated absolute, normalised paths or globs, got "/var//log/y" (path must be normalised (no //, . or .. components))`,
      `${path}: [source.app] paths: expected comma-separated absolute, normalised paths or globs, got "/var/log/../z" (path must be normalised (no //, . or .. components))`,
    ]);
    oneProblem(
      `[agent]\nuser = guard\nstate_dir = /var/lib/guard/\n`,
      (f) =>
        `${f}: [agent] state_dir: expected an absolute, normalised path, got "/var/lib/guard/" (path must not end with /)`,
    );
    oneProblem(
      `${MINIMAL}[source.a]\npaths =\n`,
      (f) =>
        `${f}: [source.a] paths: expected comma-separated absolute, normalised paths or globs, got ""`,
    );
  });

  test('same verdicts as packages/helper/src/policy.ts', () => {
    const helper = require('../../../helper/src/policy') as {
      pathSyntaxError(p: string): string | null;
    };
    for (const p of [
      '/var/log/syslog',
      '/x',
      '/',
      'rel',
      './x',
      '/a//b',
      '/a/',
      '/a/./b',
      '/a/..',
      '/a/.hidden',
      '/a\u009bb',
      '/a\0b',
      '/' + 'é'.repeat(2048),
    ]) {
      assert.equal(pathSyntaxError(p), helper.pathSyntaxError(p), JSON.stringify(p));
    }
  });

  test('a file sink must not write what a source reads, nor what another sink writes', () => {
    const { path, lines } = problems(
      `${MINIMAL}[source.app]\npaths = /srv/out/*.ndjson\n[sink.a]\ntype = file\npath = /srv/out/e.ndjson\n[sink.b]\ntype = file\npath = /srv/out/e.ndjson\n`,
    );
    assert.deepEqual(lines, [
      `${path}: [sink.a] path: /srv/out/e.ndjson is read by [source.app]: the agent would ship its own output forever`,
      `${path}: [sink.b] path: /srv/out/e.ndjson is also written by [sink.a]`,
      `${path}: [sink.b] path: /srv/out/e.ndjson is read by [source.app]: the agent would ship its own output forever`,
    ]);
  });
});

describe('sinks', () => {
  test('a source naming a sink that does not exist', () => {
    const token = file('t');
    oneProblem(
      `${MINIMAL}[source.auth]\npaths = /var/log/auth.log\nsinks = siem, lcoal\n[sink.local]\ntype = file\n[sink.siem]\ntype = http\nurl = https://x\ntoken_file = ${token}\n`,
      (f) =>
        `${f}: [source.auth] sinks: no sink named "lcoal" (did you mean "local"?) (sinks: local, siem)`,
    );
    oneProblem(
      `${MINIMAL}[source.a]\npaths = /x\nsinks = ,\n`,
      (f) =>
        `${f}: [source.a] sinks: expected comma-separated sink names, got "," (leave it out for every sink)`,
    );
  });

  test('a missing or unreadable token file', () => {
    const missing = join(dir, 'no-such-token');
    oneProblem(
      `${MINIMAL}[sink.siem]\ntype = http\nurl = https://x\ntoken_file = ${missing}\n`,
      (f) => `${f}: [sink.siem] token_file: cannot read ${missing}: ENOENT`,
    );
    oneProblem(
      `${MINIMAL}[sink.siem]\ntype = http\nurl = https://x\nca_file = ${dir}\n`,
      (f) => `${f}: [sink.siem] ca_file: ${dir} is not a regular file`,
    );
    const empty = file('\n');
    oneProblem(
      `${MINIMAL}[sink.siem]\ntype = http\nurl = https://x\ntoken_file = ${empty}\n`,
      (f) => `${f}: [sink.siem] token_file: ${empty} is empty`,
    );
    const open = file('tok', 0o644);
    oneProblem(
      `${MINIMAL}[sink.siem]\ntype = http\nurl = https://x\ntoken_file = ${open}\n`,
      (f) =>
        `${f}: [sink.siem] token_file: ${open} is readable by every user (mode 0644); chmod o-rwx it`,
    );
    oneProblem(
      `${MINIMAL}[sink.siem]\ntype = http\nurl = https://x\ntoken_file = etc/token\n`,
      (f) =>
        `${f}: [sink.siem] token_file: expected an absolute, normalised path, got "etc/token" (path must be absolute)`,
    );
  });

  test('EACCES, as the agent user would see it', () => {
    const locked = file('tok', 0o000);
    const text = `${MINIMAL}[sink.siem]\ntype = http\nurl = https://x\ntoken_file = ${locked}\n`;
    // Root reads every file: check as an unprivileged user (nobody) by switching the effective uid
    // (the kernel checks file access by it) around the synchronous load, as the agent would see it.
    const asRoot = process.geteuid?.() === 0;
    const f = conf(text);
    chmodSync(dir, 0o755);
    chmodSync(f, 0o644);
    if (asRoot) process.seteuid!(65534);
    let lines: string[] = [];
    try {
      loadConfig(f);
    } catch (e) {
      lines = (e as ConfigError).problems;
    } finally {
      if (asRoot) process.seteuid!(0);
    }
    chmodSync(dir, 0o700);
    assert.deepEqual(lines, [`${f}: [sink.siem] token_file: cannot read ${locked}: EACCES`]);
  });

  test('credentials in a URL are refused and never echoed', () => {
    const { path, lines } = problems(
      `${MINIMAL}[sink.siem]\ntype = http\nurl = https://user:hunter2@siem.example/in\n`,
    );
    assert.deepEqual(lines, [
      `${path}: [sink.siem] url: must not contain credentials (got https://…:…@siem.example/in); put the token in a file and name it in token_file`,
    ]);
    assert.ok(!lines.join('').includes('hunter2'));
    oneProblem(
      `${MINIMAL}[sink.siem]\ntype = http\nurl = https://siem.example/in?api_key=abc\n`,
      (f) =>
        `${f}: [sink.siem] url: must not carry a secret in its query ("api_key=…"); put the token in a file and name it in token_file`,
    );
  });

  test('TLS settings that cannot work', () => {
    const token = file('t');
    const pem = file('pem');
    oneProblem(
      `${MINIMAL}[sink.siem]\ntype = http\nurl = http://siem.example/in\ntoken_file = ${token}\n`,
      (f) =>
        `${f}: [sink.siem] token_file: would be sent in clear text to siem.example: use an https:// url`,
    );
    loadConfig(
      conf(
        `${MINIMAL}[sink.siem]\ntype = http\nurl = http://127.0.0.1:8080/in\ntoken_file = ${token}\n`,
      ),
    ); // a local TLS-terminating proxy
    oneProblem(
      `${MINIMAL}[sink.siem]\ntype = http\nurl = http://siem.example/in\nca_file = ${pem}\n`,
      (f) =>
        `${f}: [sink.siem] ca_file: only used with an https:// url, and url is "http://siem.example/in"`,
    );
    oneProblem(
      `${MINIMAL}[sink.siem]\ntype = http\nurl = https://siem.example/in\nclient_cert_file = ${pem}\n`,
      (f) =>
        `${f}: [sink.siem] client_key_file: required with client_cert_file (mutual TLS needs both)`,
    );
  });

  test('cross-key limits', () => {
    oneProblem(
      `${MINIMAL}[sink.siem]\ntype = http\nurl = https://x\nretry_initial_ms = 5000\nretry_max_ms = 1000\n`,
      (f) => `${f}: [sink.siem] retry_max_ms: must be at least retry_initial_ms (5000), got 1000`,
    );
    oneProblem(
      `${MINIMAL}max_line_bytes = 1048576\nmax_buffer_bytes = 65536\n`,
      (f) => `${f}: [agent] max_buffer_bytes: must be at least max_line_bytes (1048576), got 65536`,
    );
  });
});

describe('audit sources', () => {
  test("audit paths default to the helper's, may be given, and need the audit parser", () => {
    const c = loadConfig(
      conf(
        `${MINIMAL}[source.audit]\ntype = audit\n[source.old]\ntype = audit\npaths = /srv/audit/*.log\n`,
      ),
    );
    assert.deepEqual(
      c.sources.map((s) => s.paths),
      [AUDIT_PATHS, ['/srv/audit/*.log']],
    );
    oneProblem(
      `${MINIMAL}[source.audit]\ntype = audit\nparser = syslog\n`,
      (f) =>
        `${f}: [source.audit] parser: an audit source is read with the audit parser, got "syslog"`,
    );
  });

  test('audit_records: parsed by default, text when asked, only with the audit parser', () => {
    const c = loadConfig(
      conf(
        `${MINIMAL}[source.audit]\ntype = audit\n[source.lean]\ntype = audit\naudit_records = text\n` +
          `[source.f]\ntype = file\npaths = /var/log/x.log\nparser = audit\naudit_records = text\n` +
          `[source.s]\ntype = file\npaths = /var/log/y.log\n`,
      ),
    );
    assert.deepEqual(
      c.sources.map((s) => s.auditRecords),
      ['parsed', 'text', 'text', undefined],
    );
    oneProblem(
      `${MINIMAL}[source.audit]\ntype = audit\naudit_records = all\n`,
      (f) => `${f}: [source.audit] audit_records: expected "parsed" or "text", got "all"`,
    );
    oneProblem(
      `${MINIMAL}[source.s]\ntype = file\npaths = /var/log/y.log\naudit_records = text\n`,
      (f) =>
        `${f}: [source.s] audit_records: only a source read with the audit parser has audit_records`,
    );
  });
});

describe('journal sources', () => {
  test('default paths, the journal parser, unit and identifier lists, user journals', () => {
    const c = loadConfig(
      conf(
        `${MINIMAL}[source.j]\ntype = journal\nunits = ssh, cron.timer\nexclude_units = x\n` +
          `identifiers = sudo\nexclude_identifiers = CRON, noise\nuser_journals = true\n` +
          `[source.k]\ntype = journal\npaths = /srv/journal/*/*.journal\n`,
      ),
    );
    const [j, k] = c.sources;
    assert.deepEqual(j!.paths, JOURNAL_PATHS);
    assert.equal(j!.parser, 'journal');
    assert.deepEqual(j!.journal, {
      units: ['ssh.service', 'cron.timer'],
      excludeUnits: ['x.service'],
      identifiers: ['sudo'],
      excludeIdentifiers: ['CRON', 'noise'],
      userJournals: true,
    });
    assert.deepEqual(k!.paths, ['/srv/journal/*/*.journal']);
    assert.equal(k!.journal!.userJournals, false);
  });

  test('parsers and journal keys only where they belong', () => {
    oneProblem(
      `${MINIMAL}[source.j]\ntype = journal\nparser = syslog\n`,
      (f) =>
        `${f}: [source.j] parser: a journal source's entries are events already (leave parser out), got "syslog"`,
    );
    oneProblem(
      `${MINIMAL}[source.f]\npaths = /var/log/x.log\nparser = journal\n`,
      (f) =>
        `${f}: [source.f] parser: the journal parser is for type = journal sources, got "journal"`,
    );
    oneProblem(
      `${MINIMAL}[source.f]\npaths = /var/log/x.log\nunits = ssh\n`,
      (f) => `${f}: [source.f] units: only a type = journal source has units`,
    );
  });
});

describe('the file itself', () => {
  test('a missing file', () => {
    const missing = join(dir, 'nope.conf');
    assert.throws(
      () => loadConfig(missing),
      (e: unknown) =>
        e instanceof ConfigError && e.problems[0] === `${missing}: cannot read: ENOENT`,
    );
  });

  test('the message of a ConfigError holds every line', () => {
    const path = conf('[agent]\nuser = guard\nlog_level = x\npoll_interval_ms = 1\n');
    assert.throws(
      () => loadConfig(path),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.split('\n').length === 3 &&
        e.message.startsWith(`${path}: 2 problems:`),
    );
  });
});

describe('reload', () => {
  test('keys a SIGHUP cannot apply', () => {
    const a = loadConfig(conf(MINIMAL));
    const b = loadConfig(conf('[agent]\nuser = guard2\nstate_dir = /srv/g\nlog_level = debug\n'));
    assert.deepEqual(changesNeedingRestart(a, b), ['[agent] user', '[agent] state_dir']);
    assert.deepEqual(changesNeedingRestart(a, a), []);
  });
});

describe('[sink.NAME] type = kafka', () => {
  test('defaults, and every key read', () => {
    const c = loadConfig(conf(`${MINIMAL}[sink.k]\ntype = kafka\nbrokers = k1:9092, [::1]:9093\n`));
    assert.deepEqual(c.sinks[0], {
      name: 'k',
      type: 'kafka',
      brokers: ['k1:9092', '[::1]:9093'],
      topic: 'guard',
      key: '${host}/${source}',
      compression: 'gzip',
      tls: false,
      caFile: null,
      clientCertFile: null,
      clientKeyFile: null,
      sasl: 'none',
      saslUsername: null,
      saslPasswordFile: null,
      idempotence: true,
      maxMessageBytes: 1000000,
      timeoutMs: 30000,
      retryInitialMs: 500,
      retryMaxMs: 60000,
      batch: { maxEvents: 1000, maxBytes: 1048576, maxWaitMs: 5 },
    });
    const ca = file('CA');
    const pw = file('secret\n', 0o600);
    const k = loadConfig(
      conf(
        `${MINIMAL}[sink.k]\ntype = kafka\nbrokers = k1:9093\ntopic = guard-\${source}\nkey = \${host}\ncompression = none\n` +
          `ca_file = ${ca}\nsasl = scram-sha-512\nsasl_username = guard\nsasl_password_file = ${pw}\nmax_message_bytes = 2048\n`,
      ),
    ).sinks[0];
    assert.equal(k?.type, 'kafka');
    if (k?.type !== 'kafka') return;
    assert.equal(k.tls, true, 'ca_file implies tls');
    assert.equal(k.topic, 'guard-${source}');
    assert.equal(k.key, '${host}');
    assert.equal(k.sasl, 'scram-sha-512');
    assert.equal(k.saslPasswordFile, pw);
    assert.equal(k.maxMessageBytes, 2048);
  });

  test('bad brokers, placeholders, topic characters, SASL without TLS: one clear problem each', () => {
    const { lines } = problems(
      `${MINIMAL}[sink.k]\ntype = kafka\nbrokers = k1\ntopic = guard \${path}\n`,
    );
    assert.ok(
      lines.some((l) => l.endsWith('[sink.k] brokers: expected host:port, got "k1"')),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) =>
        l.includes('[sink.k] topic: expected ${host} or ${source} in it, got ${path}'),
      ),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => l.includes('[sink.k] topic: expected a Kafka topic name')),
      lines.join('\n'),
    );
    const pw = file('secret\n', 0o600);
    oneProblem(
      `${MINIMAL}[sink.k]\ntype = kafka\nbrokers = k1:9092\nsasl = plain\nsasl_username = u\nsasl_password_file = ${pw}\n`,
      (f) => `${f}: [sink.k] sasl: would send the password in clear text: set tls = true`,
    );
  });
});

describe('[metrics]', () => {
  test('both off by default; a port alone listens on 127.0.0.1; HOST:PORT and [IPv6]:PORT', () => {
    assert.deepEqual(loadConfig(conf(MINIMAL)).metrics, {
      textfile: null,
      listen: null,
      intervalMs: 15000,
    });
    const m = (keys: string) => loadConfig(conf(`${MINIMAL}[metrics]\n${keys}\n`)).metrics;
    assert.deepEqual(m('textfile = /var/lib/guard-metrics/guard.prom\nlisten = 9477'), {
      textfile: '/var/lib/guard-metrics/guard.prom',
      listen: { host: '127.0.0.1', port: 9477 },
      intervalMs: 15000,
    });
    assert.deepEqual(m('listen = 0.0.0.0:9477').listen, { host: '0.0.0.0', port: 9477 });
    assert.deepEqual(m('listen = [::1]:9477').listen, { host: '::1', port: 9477 });
    assert.deepEqual(m('listen = localhost:0').listen, { host: 'localhost', port: 0 });
    assert.equal(m('interval_ms = 60000').intervalMs, 60000);
  });

  test('a textfile node_exporter would not read, a bad path, a bad port', () => {
    const { lines } = problems(
      `${MINIMAL}[metrics]\ntextfile = /var/lib/guard-metrics/guard.txt\nlisten = 70000\n`,
    );
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0]!, /\[metrics\] textfile: expected an absolute path ending in \.prom/);
    assert.match(lines[1]!, /\[metrics\] listen: expected a port up to 65535, got 70000/);
    const bad = problems(
      `${MINIMAL}[metrics]\ntextfile = /var/lib/../guard.prom\nlisten = a b:1\n`,
    );
    assert.match(bad.lines.join('\n'), /textfile: .*normalised/);
    assert.match(bad.lines.join('\n'), /listen: expected PORT \(on 127\.0\.0\.1\), HOST:PORT/);
  });
});

describe('max_in_flight', () => {
  test('the SIEM sinks take 1–3 (default 3); http does not take it', () => {
    const c = loadConfig(
      conf(
        `${MINIMAL}[sink.es]\ntype = elasticsearch\nurl = http://127.0.0.1:9200\n` +
          `[sink.hec]\ntype = splunk_hec\nurl = http://127.0.0.1:8088\nacknowledgements = false\nmax_in_flight = 1\n`,
      ),
    );
    const byName = new Map(c.sinks.map((s) => [s.name, s]));
    assert.equal((byName.get('es') as HttpSinkConfig).maxInFlight, 3);
    assert.equal((byName.get('hec') as HttpSinkConfig).maxInFlight, 1);
    for (const bad of ['0', '4']) {
      const { lines } = problems(
        `${MINIMAL}[sink.o]\ntype = otlp\nurl = http://127.0.0.1:4318\nmax_in_flight = ${bad}\n`,
      );
      assert.equal(lines.length, 1);
      assert.match(lines[0]!, /\[sink\.o\] max_in_flight: /);
    }
    const { lines } = problems(
      `${MINIMAL}[sink.h]\ntype = http\nurl = https://x\nmax_in_flight = 2\n`,
    );
    assert.match(lines.join('\n'), /\[sink\.h\] max_in_flight: unknown key/);
  });
});
