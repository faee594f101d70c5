import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { after, describe, test } from 'node:test';
import { splitGeneration } from '@guard/protocol/wire';
import {
  isDenied,
  listSource,
  loadPolicy,
  matching,
  pathSyntaxError,
  type Policy,
} from '../src/policy';

/** The names of the sources whose patterns allow the path. */
const sourcesOf = (policy: Policy, path: string) => [
  ...new Set(matching(policy, path).map(([s]) => s.name)),
];

// Configs must sit in root-owned, non-writable directories (the helper's StrictModes), so not /tmp.
const dir = mkdtempSync('/run/guard-unit-');
chmodSync(dir, 0o755);
after(() => rmSync(dir, { recursive: true, force: true }));

function conf(text: string, mode = 0o640): string {
  const file = `${dir}/guard-${Math.random().toString(36).slice(2)}.conf`;
  writeFileSync(file, text, { mode });
  chmodSync(file, mode);
  return file;
}

describe('path syntax', () => {
  test('accepts absolute normalised paths', () => {
    for (const p of ['/var/log/syslog', '/var/log/a.b..c', '/var/log/.hidden', '/x'])
      assert.equal(pathSyntaxError(p), null, p);
  });
  test('refuses what could resolve elsewhere than it reads', () => {
    for (const p of [
      '',
      'var/log/syslog',
      './x',
      '/var//log',
      '/var/log/',
      '/var/./log',
      '/var/../etc/shadow',
      '/var/log/..',
      '/var/log/a\0b',
      '/var/log/a\nb',
      '/var/log/\x1b[2J',
      '/var/log/\x7f',
      '/var/log/\u009b2J',
      '/var/log/\u0085',
      '/' + 'a'.repeat(4095),
    ]) {
      assert.notEqual(pathSyntaxError(p), null, JSON.stringify(p));
    }
  });
});

describe('deny-list', () => {
  test('credentials, keys and kernel interfaces', () => {
    for (const p of [
      '/etc/shadow',
      '/etc/gshadow',
      '/etc/shadow-',
      '/etc/security/opasswd',
      '/proc/self/environ',
      '/proc',
      '/sys/kernel/x',
      '/dev/mem',
      '/etc/guard/token',
      '/root/.bash_history',
      '/home/u/.ssh/id_ed25519',
      '/etc/ssh/ssh_host_rsa_key',
      '/var/log/app/server.key',
      '/etc/ssl/private/x.pem',
      '/var/lib/guard/state.json',
      '/etc/krb5.keytab',
      '/etc/shadow+',
      '/etc/gshadow+',
      '/etc/nshadow',
      '/etc/shadow.bak',
      '/var/backups/shadow.bak',
      '/etc/letsencrypt/live/x/privkey.pem',
      '/etc/pki/tls/private/x.pem',
      '/run/credentials/svc/token',
      '/run/secrets/db',
      '/etc/ipsec.secrets',
      '/etc/wireguard/wg0.conf',
      '/etc/NetworkManager/system-connections/wifi.nmconnection',
      '/home/u/.netrc',
      '/home/u/.pgpass',
      '/home/u/.bash_history',
      '/opt/app/tls/server.pem',
      '/var/lib/sss/secrets/x',
      '/run/user/1000/keyring/control',
    ]) {
      assert.ok(isDenied(p), p);
    }
  });
  test('ordinary logs pass', () => {
    for (const p of [
      '/var/log/syslog',
      '/var/log/auth.log',
      '/var/log/audit/audit.log',
      '/var/log/keys.log',
      '/var/log/devices.log',
      '/var/log/ssh_host.log',
    ]) {
      assert.ok(!isDenied(p), p);
    }
  });
});

describe('loadPolicy and globs', () => {
  const policy = loadPolicy(
    conf(`
[agent]
user = root
[helper]
audit_group = root
[source.sys]
paths = /var/log/syslog, /var/log/app/*.log, /var/log/n[0-9].log, /var/log/x[!a].log, /var/log/q?.log, /var/log/lit[.log, /var/log/r[.-0]x.log
[source.audit]
type = audit
`),
  );
  const match = (p: string) => sourcesOf(policy, p);
  test('exact paths and globs within one component', () => {
    assert.deepEqual(match('/var/log/syslog'), ['sys']);
    assert.deepEqual(match('/var/log/syslog.1'), ['sys'], 'a rotated generation');
    assert.deepEqual(match('/var/log/app/web.log'), ['sys']);
    assert.deepEqual(match('/var/log/n7.log'), ['sys']);
    assert.deepEqual(match('/var/log/xb.log'), ['sys']);
    assert.deepEqual(match('/var/log/q1.log'), ['sys']);
    assert.deepEqual(match('/var/log/lit[.log'), ['sys']);
  });
  test('no prefix confusion, no crossing a /', () => {
    for (const p of [
      '/var/log/syslogx',
      '/var/log-evil/syslog',
      '/var/log/app-evil/x.log',
      '/var/log/appx.log',
      '/var/log/app/sub/x.log',
      '/var/log/app/x.logx',
      '/var/log/xa.log',
      '/var/log/x/.log',
      '/var/log/q/.log',
      '/var/log/nx.log',
      '/var/log/litx.log',
      '/var/log/r/x.log',
    ]) {
      assert.deepEqual(match(p), [], p);
    }
  });
  test('audit sources default to auditd log and its rotations', () => {
    assert.deepEqual(match('/var/log/audit/audit.log'), ['audit']);
    assert.deepEqual(match('/var/log/audit/audit.log.3'), ['audit']);
    assert.deepEqual(match('/var/log/audit/audit.log.x'), []);
    assert.equal(policy.sources.find((s) => s.name === 'audit')?.type, 'audit');
  });
  test("each pattern's allowed root is its deepest directory with no glob character", () => {
    const roots = (globs: string) =>
      loadPolicy(
        conf(`[agent]\nuser = root\n[helper]\naudit_group = root\n[source.s]\npaths = ${globs}\n`),
      ).sources[0]!.patterns.map((p) => p.root);
    assert.deepEqual(
      roots('/var/log/syslog, /var/log/app/*.log, /var/log/*/x/y.log, /x.log, /*/a'),
      ['/var/log', '/var/log/app', '/var/log', '', ''],
    );
    assert.deepEqual(roots('/a/b[0-9]/c, /a/b?/c, /srv/lit[.log'), ['/a', '/a', '/srv']);
  });
  test('the digest changes with the allow-list', () => {
    const other = loadPolicy(
      conf(
        '[agent]\nuser = root\n[helper]\naudit_group = root\n[source.sys]\npaths = /var/log/syslog\n',
      ),
    );
    assert.match(policy.digest, /^[0-9a-f]{64}$/);
    assert.notEqual(other.digest, policy.digest);
  });
});

describe('rotated generations', () => {
  test('splitGeneration knows logrotate suffixes and nothing else', () => {
    for (const [p, base] of <Array<[string, string]>>[
      ['/v/x.log.1', '/v/x.log'],
      ['/v/x.log.12.gz', '/v/x.log'],
      ['/v/x.log-20240131', '/v/x.log'],
      ['/v/x.log-2024013107.xz', '/v/x.log'],
      ['/v/x.log-20240131-1712345678.zst', '/v/x.log'],
      ['/v/x.log-2024-01-31.bz2', '/v/x.log'],
      ['/v/syslog.3.Z', '/v/syslog'],
    ])
      assert.equal(splitGeneration(p)?.base, base, p);
    for (const p of [
      '/v/x.log.gz',
      '/v/x.log',
      '/v/x.log.1234567',
      '/v/x.log-2024013',
      '/v/x.log.1.tar',
      '/v/.1',
      '/v/x.log.1/y',
      '/v/x.log-2024-1-31',
    ])
      assert.equal(splitGeneration(p), null, p);
  });
  const policy = loadPolicy(
    conf(`
[agent]
user = root
[helper]
audit_group = root
[source.app]
paths = /var/log/app/*.log, /var/log/keys/*
[source.audit]
type = audit
paths = /var/log/aud/audit.log
[source.j]
type = journal
`),
  );
  const match = (p: string) => sourcesOf(policy, p);
  test('a generation of an allowed name is allowed, of any other name not', () => {
    assert.deepEqual(match('/var/log/app/web.log.1'), ['app']);
    assert.deepEqual(match('/var/log/app/web.log-20240131.gz'), ['app']);
    for (const p of [
      '/var/log/app/web.log.gz',
      '/var/log/app/web.txt.1',
      '/var/log/app/sub/web.log.1',
      '/var/log/app.1/web.log',
      '/var/log/aud/audit.log.1', // audit and journal sources have no generations
      '/var/log/journal/m/system.journal.1',
    ])
      assert.deepEqual(match(p), [], p);
  });
  test('a generation of a deny-listed name is deny-listed', () => {
    for (const p of [
      '/var/log/keys/tls.key.1',
      '/var/log/keys/id_rsa-20240131.gz',
      '/etc/shadow.1',
    ])
      assert.ok(isDenied(p), p);
    assert.ok(!isDenied('/var/log/keys/tls.log.1'));
  });
  test('journal sources default to the persistent and volatile journals, not audit-gated', () => {
    assert.deepEqual(match('/var/log/journal/0123abcd/system.journal'), ['j']);
    assert.deepEqual(match('/run/log/journal/0123abcd/user-1000.journal'), ['j']);
    assert.deepEqual(match('/var/log/journal/system.journal'), []);
    assert.equal(policy.sources.find((s) => s.name === 'j')?.type, 'journal');
  });
  test('list names generations beside the live files, in the same pages', () => {
    const d = `${dir}/gen`;
    mkdirSync(d);
    for (const f of [
      'a.log',
      'a.log.1',
      'a.log.2.gz',
      'a.log-20240131',
      'a.log.gz',
      'b.txt.1',
      'k.key',
      'k.key.1',
      'gone.log.1',
    ])
      writeFileSync(`${d}/${f}`, 'x');
    const s = loadPolicy(
      conf(
        `[agent]\nuser = root\n[helper]\naudit_group = root\n[source.s]\npaths = ${d}/*.log, ${d}/*.key\n`,
      ),
    ).sources[0]!;
    assert.deepEqual(listSource(s), {
      files: [`${d}/a.log`],
      generations: [`${d}/a.log-20240131`, `${d}/a.log.1`, `${d}/a.log.2.gz`, `${d}/gone.log.1`],
    });
    const first = listSource(s, '', { names: 2, bytes: 60_000, entries: 100_000 });
    assert.deepEqual(first, {
      files: [`${d}/a.log`],
      generations: [`${d}/a.log-20240131`],
      next: `${d}/a.log-20240131`,
    });
    assert.deepEqual(
      listSource(s, first.next ?? '', { names: 2, bytes: 60_000, entries: 100_000 }),
      {
        files: [],
        generations: [`${d}/a.log.1`, `${d}/a.log.2.gz`],
        next: `${d}/a.log.2.gz`,
      },
    );
  });
});

describe('loadPolicy refuses', () => {
  const refuses = (file: string, re: RegExp) => assert.throws(() => loadPolicy(file), re);
  test('a config writable by group or others, or not owned by root', () => {
    refuses(conf('[agent]\nuser = root\n', 0o660), /must be owned by root and not writable/);
    refuses(conf('[agent]\nuser = root\n', 0o646), /must be owned by root and not writable/);
    const f = conf('[agent]\nuser = root\n');
    chownSync(f, 65534, 0);
    refuses(f, /is owned by uid 65534: it and every directory above it must be owned by root/);
  });
  test('a parent directory writable by others', () => {
    const sub = `${dir}/open`;
    mkdirSync(sub, { mode: 0o777 });
    chmodSync(sub, 0o777);
    writeFileSync(`${sub}/guard.conf`, '[agent]\nuser = root\n', { mode: 0o600 });
    refuses(`${sub}/guard.conf`, new RegExp(`${sub} is writable by everyone: it and every`));
  });
  test('errors name the file, section and key', () => {
    const f = conf('[agent]\n');
    refuses(f, new RegExp(`${f}: \\[agent\\] user`));
    refuses(
      conf('[agent]\nuser = no-such-user-guard\n'),
      /user "no-such-user-guard" does not exist/,
    );
    refuses(
      conf(
        '[agent]\nuser = root\n[helper]\naudit_group = root\n[source.a]\ntype = socket\npaths=/x\n',
      ),
      /\[source\.a\] type: expected "file", "audit" or "journal"/,
    );
    refuses(
      conf('[agent]\nuser = root\n[helper]\naudit_group = root\n[source.a]\npaths = var/log/x\n'),
      /\[source\.a\] paths: .*got "var\/log\/x"/,
    );
    refuses(
      conf(
        '[agent]\nuser = root\n[helper]\naudit_group = root\n[source.a]\npaths = /var/../etc/shadow\n',
      ),
      /\[source\.a\] paths/,
    );
  });
});

describe('listSource', () => {
  test('names every matching entry but directories, never descends through a link, never names deny-listed ones', () => {
    const logs = `${dir}/logs`;
    mkdirSync(`${logs}/app`, { recursive: true });
    mkdirSync(`${logs}/secret-dir`, { recursive: true });
    for (const f of ['a.log', 'b.log', 'c.txt', 'tls.key']) writeFileSync(`${logs}/app/${f}`, 'x');
    writeFileSync(`${logs}/secret-dir/hidden.log`, 'x');
    symlinkSync(`${logs}/secret-dir/hidden.log`, `${logs}/app/link.log`);
    symlinkSync(`${logs}/secret-dir`, `${logs}/linkdir`);
    mkdirSync(`${logs}/app/dir.log`);
    const policy = loadPolicy(
      conf(
        `[agent]\nuser = root\n[helper]\naudit_group = root\n[source.s]\npaths = ${logs}/app/*.log, ${logs}/*/hidden.log, ${logs}/app/*.key\n`,
      ),
    );
    const s = policy.sources[0]!;
    // link.log is named (open will refuse it, and the agent shows why); linkdir/ is not descended
    assert.deepEqual(listSource(s), {
      files: [
        `${logs}/app/a.log`,
        `${logs}/app/b.log`,
        `${logs}/app/link.log`,
        `${logs}/secret-dir/hidden.log`,
      ],
      generations: [],
    });
    const one = listSource(s, '', { names: 1, bytes: 60_000, entries: 100_000 });
    assert.deepEqual(one, {
      files: [`${logs}/app/a.log`],
      generations: [],
      next: `${logs}/app/a.log`,
    });
  });
  test('a directory stuffed by a user cannot make the reply or the walk unbounded', () => {
    const big = `${dir}/big`;
    mkdirSync(big);
    for (let i = 0; i < 3000; i++) writeFileSync(`${big}/${String(i).padStart(200, '0')}.log`, '');
    const s = loadPolicy(
      conf(
        `[agent]\nuser = root\n[helper]\naudit_group = root\n[source.s]\npaths = ${big}/*.log, ${big}/*.txt\n`,
      ),
    ).sources[0]!;
    const all = listSource(s);
    assert.equal(all.truncated, undefined);
    assert.equal(all.next, all.files.at(-1));
    assert.ok(Buffer.byteLength(JSON.stringify(all)) <= 60_100, 'reply fits in 64 KiB');
    // every name exactly once across the pages, in order
    const names: string[] = [];
    for (let page = all; ; page = listSource(s, page.next)) {
      names.push(...page.files);
      if (!page.next) break;
    }
    assert.equal(names.length, 3000);
    assert.deepEqual(names, [...new Set(names)].sort());
    const fewEntries = listSource(s, '', { names: 1024, bytes: 60_000, entries: 10 });
    assert.equal(fewEntries.truncated, true);
    assert.ok(fewEntries.files.length <= 10);
    // names full of control characters: each is 1 byte on disk but 6 in the JSON reply
    const ctl = `${dir}/ctl`;
    mkdirSync(ctl);
    for (let i = 0; i < 400; i++)
      writeFileSync(`${ctl}/${String(i).padStart(4, '0')}${'\x01'.repeat(200)}.log`, '');
    const c = loadPolicy(
      conf(
        `[agent]\nuser = root\n[helper]\naudit_group = root\n[source.c]\npaths = ${ctl}/*.log\n`,
      ),
    ).sources[0]!;
    const listed = listSource(c);
    assert.ok(listed.next);
    assert.ok(
      Buffer.byteLength(JSON.stringify(listed)) <= 60_100,
      `reply of ${Buffer.byteLength(JSON.stringify(listed))} bytes`,
    );
    const txt = listSource({ ...s, patterns: [s.patterns[1]!] }, '', {
      names: 1024,
      bytes: 60_000,
      entries: 500,
    });
    assert.deepEqual(
      txt,
      { files: [], generations: [], truncated: true },
      'a scan that finds nothing still stops',
    );
  });
  test('holds at most a few pages of names, whatever the directory holds', () => {
    const s = loadPolicy(
      conf(
        `[agent]\nuser = root\n[helper]\naudit_group = root\n[source.s]\npaths = ${dir}/big/*.log\n`,
      ),
    ).sources[0]!;
    const names: string[] = [];
    for (let page = listSource(s, '', { names: 100, bytes: 60_000, entries: 100_000 }); ;) {
      assert.ok(page.files.length <= 100);
      names.push(...page.files);
      if (!page.next) break;
      page = listSource(s, page.next, { names: 100, bytes: 60_000, entries: 100_000 });
    }
    assert.equal(names.length, 3000);
    assert.deepEqual(names, [...new Set(names)].sort());
  });
});
