// The packages `npm run package` builds (.deb, .rpm, tarball), checked without a package manager
// installing them: every file, owner and mode against installer/layout.sh, the maintainer scripts,
// the pinned runtime and the addons it loads, lintian on the .deb. Then the tarball run from the
// directory it was unpacked in: the real helper as root and the real agent as a throwaway user, on
// the tarball's own Node, shipping a root-only log. No RPM host can be booted here: the .rpm is
// checked for contents, scripts and modes only. Installing the .deb for real, in a Debian 12
// container booted with systemd and no Node: test/package-deb.test.ts.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { alive, killPid, run, sleep, start } from './lib/proc';
import { repoRoot, Sandbox } from './lib/sandbox';
import { TestUsers } from './lib/users';
import { deb, ensurePackages, layout, packagesDir, rpm, tgz, version } from './lib/packages';

const out = packagesDir;
const L = layout;
const pin = JSON.parse(readFileSync(join(repoRoot, 'installer/package/runtime.json'), 'utf8')) as {
  version: string;
};
const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });

/** What every package holds, from / (the tarball's wrappers and units differ only in place). */
function expected(unitDir: string, doc: string): Map<string, number> {
  const addons = sh('bash', ['-c', 'cd "$1" && ls *.node', 'x', join(repoRoot, 'dist')])
    .split('\n')
    .filter(Boolean);
  const m = new Map<string, number>();
  for (const f of ['guard-helper.js', 'guard-agent.js', 'guardctl.js', 'install.json', ...addons])
    m.set(`${L.GUARD_LIB}/${f}`, 0o644);
  m.set(L.GUARD_RUNTIME!, 0o755);
  for (const w of L.GUARD_WRAPPERS!.split(' ')) m.set(`/usr/${w}`, 0o755);
  for (const s of L.GUARD_SERVICES!.split(' ')) {
    m.set(`${unitDir}/${s}.service`, 0o644);
    m.set(`${L.GUARD_SHARE}/openrc/${s}`, 0o644);
  }
  for (const f of ['50-guard.rules.in', 'load.sh', 'unload.sh'])
    m.set(`${L.GUARD_SHARE}/audit-rules/${f}`, 0o644);
  m.set(`${L.GUARD_SHARE}/guard.conf.example`, 0o644);
  m.set(L.GUARD_CONF!, 0o640);
  m.set(`${doc}/copyright`, 0o644);
  m.set(`${doc}/node.LICENSE`, 0o644);
  return m;
}

const modeOf = (perms: string): number => {
  // "-rwxr-xr-x" → 0o755 (no set-id bits expected anywhere; an s or t fails the comparison)
  let m = 0;
  for (let i = 1; i < 10; i++) m = (m << 1) | (perms[i] === '-' ? 0 : 1);
  return /[sStT]/.test(perms) ? -1 : m;
};

/** [path from /, mode, owner] of the regular files in a tar listing (tar -tv). */
function tarFiles(listing: string, strip: RegExp): Map<string, [number, string]> {
  const m = new Map<string, [number, string]>();
  for (const line of listing.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || !f[0]!.startsWith('-')) continue;
    m.set(f[5]!.replace(strip, '/'), [modeOf(f[0]!), f[1]!]);
  }
  return m;
}

function assertTree(what: string, got: Map<string, [number, string]>, want: Map<string, number>) {
  const extra = [...got.keys()].filter((p) => !want.has(p));
  const missing = [...want.keys()].filter((p) => !got.has(p));
  assert.deepEqual({ extra, missing }, { extra: [], missing: [] }, `${what}: files`);
  for (const [p, [mode]] of got)
    assert.equal(mode.toString(8), want.get(p)!.toString(8), `${what}: ${p} mode`);
}

/** The layout and the shared steps are in a maintainer script, and it ends with CALL. */
function assertScript(what: string, text: string, call: RegExp) {
  assert.ok(text.includes(readFileSync(join(repoRoot, 'installer/layout.sh'), 'utf8')), what);
  assert.ok(
    text.includes(readFileSync(join(repoRoot, 'installer/package/maint.sh'), 'utf8')),
    what,
  );
  const tail = text.trimEnd().split('\n').slice(-5).join('\n');
  assert.match(tail, call, `${what} ends with ${call}`);
  execFileSync('bash', ['-n'], { input: text });
}

let lintian: Promise<{ code: number | null; out: string }>;

describe('the packages (npm run package)', () => {
  before(
    () => {
      ensurePackages();
      // lintian reads the whole runtime (~2 min on a loaded machine): start it now, await it below
      lintian = new Promise((resolve) => {
        const p = spawn('lintian', ['--tag-display-limit', '0', deb], { stdio: 'pipe' });
        let text = '';
        p.stdout.on('data', (d: Buffer) => (text += d));
        p.stderr.on('data', (d: Buffer) => (text += d));
        p.once('close', (code) => resolve({ code, out: text }));
      });
    },
    { timeout: 16 * 60_000 },
  );

  it('prints the package sizes', (t) => {
    for (const f of [deb, rpm, tgz])
      t.diagnostic(`${(statSync(f).size / 1048576).toFixed(1)} MiB  ${f.slice(out.length + 1)}`);
  });

  it('.deb: files, owners and modes as installer/layout.sh says; the config a conffile', () => {
    const listing = sh('dpkg-deb', ['-c', deb]);
    const files = tarFiles(listing, /^\.\//);
    const want = expected(L.GUARD_DEB_UNIT_DIR!, '/usr/share/doc/guard');
    want.set('/usr/share/doc/guard/changelog.gz', 0o644);
    want.set('/usr/share/lintian/overrides/guard', 0o644);
    assertTree('.deb', files, want);
    for (const [p, [, owner]] of files) assert.equal(owner, 'root/root', p);
    assert.match(listing, /^drwxr-x--- root\/root .* \.\/etc\/guard\/$/m);
    const ctl = sh('dpkg-deb', ['-f', deb]);
    assert.match(ctl, /^Package: guard$/m);
    assert.match(ctl, new RegExp(`^Version: ${version}$`, 'm'));
    assert.match(ctl, /^Depends: .*libc6 \(>= [0-9.]+\)/m);
    assert.doesNotMatch(ctl, /nodejs/, 'no Node from the distribution');
    const dir = mkdtempSync('/tmp/guard-deb-ctl-');
    try {
      sh('dpkg-deb', ['-e', deb, dir]);
      assert.equal(readFileSync(join(dir, 'conffiles'), 'utf8'), `${L.GUARD_CONF}\n`);
      const scripts: [string, RegExp][] = [
        ['postinst', /configure\) guard_configure ;;/],
        ['prerm', /remove\|deconfigure\) guard_stop ;;/],
        ['postrm', /remove\) guard_removed ;;\n\s*purge\) guard_removed; guard_purge ;;/],
      ];
      for (const [name, call] of scripts) {
        assert.equal(statSync(join(dir, name)).mode & 0o777, 0o755, name);
        assertScript(`.deb ${name}`, readFileSync(join(dir, name), 'utf8'), call);
      }
      assert.ok(
        readFileSync(join(dir, 'postrm'), 'utf8').includes(
          readFileSync(join(repoRoot, 'audit-rules/unload.sh'), 'utf8').trimEnd(),
        ),
        'postrm carries audit-rules/unload.sh for purge',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('.deb: the runtime is the pinned Node, loads every addon, and the units and wrappers run it', () => {
    const dir = mkdtempSync('/tmp/guard-deb-x-');
    try {
      sh('dpkg-deb', ['-x', deb, dir]);
      const node = join(dir, L.GUARD_RUNTIME!);
      assert.equal(sh(node, ['--version']).trim(), `v${pin.version}`);
      const addons = sh('bash', ['-c', 'ls "$1"/*.node', 'x', join(dir, L.GUARD_LIB!)])
        .split('\n')
        .filter(Boolean);
      assert.ok(addons.length >= 1);
      sh(node, [
        '-e',
        'for (const f of process.argv.slice(1)) process.dlopen({ exports: {} }, f)',
        ...addons,
      ]);
      const install = JSON.parse(readFileSync(join(dir, L.GUARD_LIB!, 'install.json'), 'utf8'));
      assert.equal(install.node, L.GUARD_RUNTIME);
      assert.equal(install.unitDir, L.GUARD_DEB_UNIT_DIR);
      assert.equal(install.init, undefined, 'the init system is found at run time');
      for (const s of L.GUARD_SERVICES!.split(' ')) {
        const unit = readFileSync(join(dir, L.GUARD_DEB_UNIT_DIR!, `${s}.service`), 'utf8');
        assert.match(
          unit,
          new RegExp(`^ExecStart=${L.GUARD_RUNTIME} .*${L.GUARD_LIB}/${s}\\.js `, 'm'),
        );
        const wrapper = readFileSync(join(dir, 'usr/sbin', s), 'utf8');
        assert.match(wrapper, new RegExp(`^exec ${L.GUARD_RUNTIME} `, 'm'));
        assert.doesNotMatch(unit + wrapper, /\/usr\/bin\/node/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('.deb: lintian reports no error', { timeout: 15 * 60_000 }, async (t) => {
    const { out: text } = await lintian;
    const errors = text.split('\n').filter((l) => /^E: /.test(l));
    const warnings = text.split('\n').filter((l) => /^W: /.test(l));
    t.diagnostic(`lintian: ${errors.length} errors, ${warnings.length} warnings`);
    assert.deepEqual(errors, []);
    assert.match(text, /^W: guard: /m, 'lintian ran and looked at the package');
  });

  it('.rpm: files, owners and modes; config(noreplace); scriptlets; no Node dependency', () => {
    const q = (fmt: string) => sh('rpm', ['-qp', '--qf', fmt, rpm]);
    assert.equal(q('%{NAME} %{VERSION} %{ARCH}'), `guard ${version} x86_64`);
    const files = new Map<string, [number, string]>();
    for (const line of q('[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILENAMES}\n]')
      .split('\n')
      .filter(Boolean)) {
      const [perms, owner, path] = line.split(' ') as [string, string, string];
      if (perms.startsWith('d')) {
        if (path === L.GUARD_CONF_DIR)
          assert.equal(`${perms} ${owner}`, `drwxr-x--- root/${L.GUARD_GROUP}`);
        else assert.equal(`${perms} ${owner}`, 'drwxr-xr-x root/root', path);
        continue;
      }
      files.set(path, [modeOf(perms), owner]);
      assert.equal(owner, path === L.GUARD_CONF ? `root/${L.GUARD_GROUP}` : 'root/root', path);
    }
    assertTree('.rpm', files, expected(L.GUARD_RPM_UNIT_DIR!, '/usr/share/licenses/guard'));
    const flags = q('[%{FILEFLAGS:fflags} %{FILENAMES}\n]');
    assert.match(flags, new RegExp(`^cn ${L.GUARD_CONF}$`, 'm'), 'guard.conf: %config(noreplace)');
    const requires = sh('rpm', ['-qp', '--requires', rpm]);
    assert.match(requires, /^libc\.so\.6\(GLIBC_2\.\d+\)\(64bit\)$/m);
    assert.doesNotMatch(requires, /node/i);
    const scriptlets: [string, RegExp][] = [
      ['PREIN', /^guard_accounts$/m],
      ['POSTIN', /^guard_configure$/m],
      ['PREUN', /^if \[ "\$1" = 0 \]; then guard_stop; fi$/m],
      ['POSTUN', /^if \[ "\$1" = 0 \]; then guard_removed; fi$/m],
    ];
    for (const [tag, call] of scriptlets) {
      assert.equal(q(`%{${tag}PROG}`), '/bin/bash', tag);
      assertScript(`.rpm ${tag}`, q(`%{${tag}}`), call);
    }
  });

  it('tarball: files, owners and modes; setup.sh; FILES lists every file', () => {
    const name = `guard-${version}-linux-x64`;
    const listing = sh('tar', ['-tvzf', tgz, '--numeric-owner']);
    const files = tarFiles(listing, new RegExp(`^${name}/`));
    for (const [p, [, owner]] of files) assert.equal(owner, '0/0', p);
    const setup = files.get('/setup.sh');
    const list = files.get('/FILES');
    files.delete('/setup.sh');
    files.delete('/FILES');
    assert.equal(setup?.[0], 0o755);
    assert.equal(list?.[0], 0o644);
    assertTree('tarball', files, expected(L.GUARD_RPM_UNIT_DIR!, '/usr/share/doc/guard'));
    const text = sh('tar', ['-xzOf', tgz, `${name}/setup.sh`]);
    assertScript('setup.sh', text, /esac$/);
    assert.match(text, /install\)[\s\S]*guard_configure/);
    assert.match(text, /remove\)[\s\S]*guard_stop[\s\S]*guard_removed[\s\S]*guard_purge/);
    assert.deepEqual(
      sh('tar', ['-xzOf', tgz, `${name}/FILES`])
        .split('\n')
        .filter(Boolean)
        .sort(),
      [...files.keys()].sort(),
    );
  });

  describe('tarball: runs from the directory it was unpacked in', () => {
    const users = new TestUsers();
    let sb: Sandbox;
    let helperPid = 0;
    let agentPid = 0;

    after(async () => {
      // Gone before its user is removed: userdel refuses a user with a process (it was left behind).
      const pids = [agentPid, helperPid].filter((p) => p > 0);
      for (const p of pids) killPid(p);
      for (let i = 0; i < 100 && pids.some(alive); i++) await sleep(50);
      for (const p of pids) if (alive(p)) killPid(p, 'SIGKILL');
      for (let i = 0; i < 40 && pids.some(alive); i++) await sleep(50);
      for (const problem of users.cleanup()) console.log(`cleanup: ${problem}`);
      if (sb) rmSync(sb.dir, { recursive: true, force: true });
    });

    it(
      'ships a root-only log on its own Node: every line once',
      { timeout: 120_000 },
      async (t) => {
        const audit = users.group('taud');
        const agent = users.user('tagent', [audit.name]);
        sb = new Sandbox();
        sb.mkdir('pkg');
        sh('tar', ['-xzf', tgz, '-C', sb.path('pkg'), '--no-same-owner']);
        const dir = sb.path('pkg', `guard-${version}-linux-x64`);
        const owner = { uid: agent.uid, gid: agent.gid };
        sb.mkdir('run');
        sb.mkdir('run/agent', 0o750, owner);
        sb.mkdir('state', 0o750, owner);
        sb.mkdir('logs', 0o700);
        const log = sb.file('logs/app.log', '', 0o600);
        const events = sb.path('state/out/events.ndjson');
        const conf = sb.writeConfig(
          'guard.conf',
          [
            '[agent]',
            `user = ${agent.name}`,
            `helper_socket = ${sb.path('run/helper.sock')}`,
            `status_socket = ${sb.path('run/agent/agent.sock')}`,
            `state_dir = ${sb.path('state')}`,
            'poll_interval_ms = 100',
            'rescan_interval_ms = 1000',
            '[helper]',
            `audit_group = ${audit.name}`,
            '[source.app]',
            'type = file',
            `paths = ${sb.path('logs')}/*.log`,
            'parser = plain',
            'start_at = beginning',
            '[sink.local]',
            'type = file',
            `path = ${events}`,
            '',
          ].join('\n'),
          0o640,
          { uid: 0, gid: agent.gid },
        );
        const helper = start(join(dir, 'usr/sbin/guard-helper'), [
          '--config',
          conf,
          '--socket',
          sb.path('run/helper.sock'),
        ]);
        helperPid = helper.pid!;
        for (let i = 0; i < 100 && !existsSync(sb.path('run/helper.sock')); i++) await sleep(100);
        assert.ok(existsSync(sb.path('run/helper.sock')), 'the helper listens');
        const a = start(join(dir, 'usr/sbin/guard-agent'), ['--config', conf], { user: agent });
        agentPid = a.pid!;
        let said = '';
        for (const s of [a.stdout, a.stderr, helper.stdout, helper.stderr])
          s?.setEncoding('utf8').on('data', (d: string) => (said += d));
        // both run the tarball's Node, not the host's /usr/bin/node
        // (setpriv and the wrapper's sh exec in turn: wait for the last exec)
        const runtime = join(dir, L.GUARD_RUNTIME!);
        const exe = async (pid: number) => {
          let e = '';
          for (let i = 0; i < 50 && e !== runtime; i++, await sleep(100))
            e = readlinkSync(`/proc/${pid}/exe`);
          return e;
        };
        assert.equal(await exe(helperPid), runtime);
        assert.equal(await exe(agentPid), runtime);

        const N = 500;
        appendFileSync(log, Array.from({ length: N }, (_, i) => `tarball line ${i}\n`).join(''));
        const seen = new Map<number, number>();
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          seen.clear();
          if (existsSync(events))
            for (const l of readFileSync(events, 'utf8').split('\n')) {
              const m = /tarball line (\d+)/.exec(l);
              if (m) seen.set(Number(m[1]), (seen.get(Number(m[1])) ?? 0) + 1);
            }
          if (seen.size === N) break;
          await sleep(200);
        }
        const missing = Array.from({ length: N }, (_, i) => i).filter((i) => !seen.has(i)).length;
        const dup = [...seen.values()].filter((c) => c > 1).length;
        t.diagnostic(`tarball run: ${N} lines, ${missing} missing, ${dup} duplicated`);
        assert.equal(missing, 0, `guard-agent said:\n${said.slice(-3000)}`);
        assert.equal(dup, 0);

        const status = await run(
          join(dir, 'usr/bin/guardctl'),
          [
            'status',
            '--json',
            '--status-socket',
            sb.path('run/agent/agent.sock'),
            '--helper-socket',
            sb.path('run/helper.sock'),
          ],
          { timeoutMs: 30_000 },
        );
        // the tarball's guardctl, on its own Node too: both halves seen, healthy
        const doc = JSON.parse(status.stdout);
        assert.equal(status.code, 0, status.stdout + status.stderr);
        assert.equal(doc.health, 'healthy');
        assert.equal(doc.helper.pid, helperPid);
        assert.equal(doc.agent.pid, agentPid);
      },
    );
  });
});
