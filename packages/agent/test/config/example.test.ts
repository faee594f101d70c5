// The example the installer puts at /etc/guard/guard.conf must load in both programs that read it,
// and it and docs/configuration.md must mention every key the schema knows.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load';
import schema from '../../src/config/schema.json';

const root = join(__dirname, '../../../..');
const example = readFileSync(join(root, 'packages/agent/guard.conf.example'), 'utf8');
const docs = readFileSync(join(root, 'docs/configuration.md'), 'utf8');

// The helper is another package (and a root-surface budget): reach it by path, typed here by hand.
interface HelperPolicy {
  agentUid: number;
  auditGid: number;
  sources: { name: string; type: string; patterns: { glob: string }[] }[];
}
const { loadPolicy } = require('../../../helper/src/policy') as {
  loadPolicy(file: string): HelperPolicy;
};

const isRoot = process.getuid?.() === 0;

describe(
  'guard.conf.example',
  { skip: isRoot ? false : 'the helper accepts only root-owned configs: run as root' },
  () => {
    // The helper refuses configs in group/other-writable trees (so not /tmp): a root-owned 0755 dir under /run.
    const dir = isRoot ? mkdtempSync('/run/guard-config-test-') : '';
    if (isRoot) chmodSync(dir, 0o755);
    after(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    // loadPolicy looks [agent] user and [helper] audit_group up in /etc/passwd and /etc/group, where
    // this machine may have no guard or guard-audit: root stands in for both.
    function install(text: string, name: string): string {
      const file = join(dir, name);
      const patched = text
        .replace(/^user = guard$/m, 'user = root')
        .replace(/^audit_group = guard-audit$/m, 'audit_group = root');
      assert.notEqual(patched, text);
      writeFileSync(file, patched, { mode: 0o640 });
      return file;
    }

    function bothAgree(file: string): void {
      const config = loadConfig(file);
      const policy = loadPolicy(file);
      assert.equal(policy.agentUid, 0);
      assert.deepEqual(
        policy.sources.map((s) => ({
          name: s.name,
          type: s.type,
          paths: s.patterns.map((p) => p.glob),
        })),
        config.sources.map((s) => ({ name: s.name, type: s.type, paths: s.paths })),
        'the agent tails exactly what the helper allows',
      );
    }

    test('loads as shipped in the agent and in the helper, with the same sources', () => {
      const file = install(example, 'guard.conf');
      bothAgree(file);
      const config = loadConfig(file);
      assert.deepEqual(
        config.sources.map((s) => s.name),
        ['syslog', 'auth', 'kern', 'dpkg', 'audit', 'journal'],
      );
      assert.ok(config.sources.some((s) => s.paths.includes('/var/log/syslog')));
      assert.ok(config.sources.some((s) => s.paths.includes('/var/log/auth.log')));
      assert.deepEqual(
        config.sinks.map((s) => [s.name, s.type]),
        [['local', 'file']],
      );
      assert.equal(config.redact.builtin, true);
    });

    test('loads with every commented-out example uncommented (the http sink, tags, exclude, pattern)', () => {
      for (const f of ['token', 'es.apikey', 'hec.token', 'otel.key', 'kafka.password'])
        writeFileSync(join(dir, f), 'secret-token\n', { mode: 0o640 });
      for (const f of ['ca.pem', 'client.pem', 'client.key'])
        writeFileSync(join(dir, f), 'PEM\n', { mode: 0o640 });
      const uncommented = example
        .replace(/^;(\[sink\.[a-z]+\]|[a-z_]+(\[\])? = .*)$/gm, '$1')
        .replace(/\/etc\/guard\//g, `${dir}/`);
      const file = install(uncommented, 'guard-full.conf');
      bothAgree(file);
      const config = loadConfig(file);
      const backend = config.sinks.find((s) => s.name === 'backend');
      assert.ok(backend?.type === 'http');
      assert.equal(backend.tokenFile, `${dir}/token`);
      assert.equal(backend.caFile, `${dir}/ca.pem`);
      const types = config.sinks.map((s) => `${s.name}:${s.type}`);
      assert.deepEqual(types, [
        'local:file',
        'backend:http',
        'elastic:elasticsearch',
        'splunk:splunk_hec',
        'otel:otlp',
        'grafana:loki',
        'siem:syslog',
        'collector:syslog',
        'stream:kafka',
      ]);
      assert.equal(config.agent.hostname, 'web-01');
      assert.equal(config.redact.patterns.length, 1);
      assert.equal(config.sources.find((s) => s.name === 'auth')?.exclude.length, 1);
    });
  },
);

describe('every key is documented', () => {
  type Props = Record<string, unknown>;
  const defs = (schema as unknown as { definitions: Record<string, { properties?: Props }> })
    .definitions;
  const sections: [string, string][] = [
    ['agent', 'agent'],
    ['helper', 'helper'],
    ['source', 'source'],
    ['http sink', 'httpSink'],
    ['elasticsearch sink', 'elasticsearchSink'],
    ['splunk_hec sink', 'splunkHecSink'],
    ['otlp sink', 'otlpSink'],
    ['loki sink', 'lokiSink'],
    ['kafka sink', 'kafkaSink'],
    ['file sink', 'fileSink'],
    ['syslog sink', 'syslogSink'],
    ['redact', 'redact'],
    ['metrics', 'metrics'],
  ];

  for (const [what, def] of sections) {
    test(`${what}: in docs/configuration.md and in guard.conf.example`, () => {
      for (const key of Object.keys(defs[def]?.properties ?? {})) {
        assert.match(
          docs,
          new RegExp(`^\\| \`${key}(\\[\\])?\` \\|`, 'm'),
          `docs/configuration.md has no table row for ${what} key ${key}`,
        );
        assert.match(
          example,
          new RegExp(`^;?${key}(\\[\\])? = `, 'm'),
          `guard.conf.example does not show ${what} key ${key}`,
        );
      }
    });
  }
});

test('docs/configuration.md shows the shipped example verbatim', () => {
  const block = /## The shipped example[\s\S]*?```ini\n([\s\S]*?)```/.exec(docs)?.[1];
  assert.equal(block, example);
});
