// guardctl verify on a ROOT tree laid out by hand exactly as the install contract says (the
// installer is written in parallel), with the real helper as root and the real agent as the
// agent user started the way direct mode starts it (setpriv, no capabilities, empty bounding set).
// Everything passes; then one thing at a time is broken and verify must name exactly that.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { teardownEnv } from './lib/env';
import { Helper } from './lib/helper';
import { cleanEnv, killPid, run, track } from './lib/proc';
import { Sandbox, distDir } from './lib/sandbox';
import { TestUsers, type TestUser } from './lib/users';
import { until } from './lib/agent-env';

describe('guardctl verify (a ROOT tree per the install contract, real helper and agent)', () => {
  const users = new TestUsers();
  let sb: Sandbox;
  let ROOT: string;
  let agentUser: TestUser;
  let auditGroup: { name: string; gid: number };
  let helper: Helper;
  let agentPid: number | undefined;
  let conf: string;

  const mk = (rel: string, mode: number, uid: number, gid: number) =>
    sb.mkdir(join('root', rel), mode, { uid, gid });
  const startAgent = (asRoot = false) => {
    const js = join(ROOT, 'usr/lib/guard/guard-agent.js');
    const who = asRoot
      ? ['--reuid=0', '--regid=0', '--clear-groups']
      : [`--reuid=${agentUser.uid}`, `--regid=${agentUser.gid}`, '--init-groups'];
    // the contract's direct mode: setpriv … --no-new-privs --inh-caps=-all --bounding-set=-all.
    // guard-agent refuses to run as root, so "run as root" is a root process with the agent's
    // command line that stays up (what verify sees when a unit or script says User=root).
    const cmd = asRoot
      ? [process.execPath, '-e', 'setInterval(() => {}, 1e9)', js, '--config', conf]
      : [process.execPath, js, '--config', conf];
    const child = track(
      spawn(
        '/usr/bin/setpriv',
        [...who, '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all', '--', ...cmd],
        { env: cleanEnv, cwd: '/', stdio: 'ignore' },
      ),
    );
    agentPid = child.pid;
  };
  const statusSock = () => join(ROOT, 'run/guard/agent/agent.sock');
  const verify = () => run(process.execPath, [join(ROOT, 'usr/lib/guard/guardctl.js'), 'verify']);
  const fails = (out: string) => out.split('\n').filter((l) => l.startsWith('FAIL'));

  before(async () => {
    auditGroup = users.group('aud');
    agentUser = users.user('agent', [auditGroup.name]);
    sb = new Sandbox();
    ROOT = sb.mkdir('root');
    const G = agentUser.gid;
    const U = agentUser.uid;
    for (const d of [
      'usr',
      'usr/lib',
      'usr/sbin',
      'usr/bin',
      'etc',
      'var',
      'var/lib',
      'var/log',
      'run',
    ])
      mk(d, 0o755, 0, 0);
    const code = mk('usr/lib/guard', 0o755, 0, 0);
    for (const f of [
      'guard-helper.js',
      'guard-agent.js',
      'guardctl.js',
      'fdpass.node',
      'fdpass-connect.node',
    ]) {
      copyFileSync(join(distDir, f), join(code, f));
      chownSync(join(code, f), 0, 0);
      chmodSync(join(code, f), 0o644);
    }
    sb.file(
      'root/usr/lib/guard/install.json',
      JSON.stringify({
        version: '0.1.0',
        root: ROOT,
        user: agentUser.name,
        group: agentUser.group,
        auditGroup: auditGroup.name,
        node: process.execPath,
        init: 'none',
        installedAt: new Date().toISOString(),
      }),
      0o644,
    );
    for (const [w, prog] of [
      ['usr/sbin/guard-helper', 'guard-helper'],
      ['usr/sbin/guard-agent', 'guard-agent'],
      ['usr/bin/guardctl', 'guardctl'],
    ] as const) {
      sb.file(
        join('root', w),
        `#!/bin/sh\nexec ${process.execPath} ${ROOT}/usr/lib/guard/${prog}.js "$@"\n`,
        0o755,
      );
    }
    mk('etc/guard', 0o750, 0, G);
    mk('var/lib/guard', 0o750, U, G);
    mk('var/log/guard', 0o750, U, G);
    mk('run/guard', 0o750, 0, G);
    mk('run/guard/agent', 0o750, U, G);
    sb.mkdir('logs', 0o700);
    sb.file('logs/app.log', 'Nov 24 09:05:01 host app[1]: hello\n', 0o600);
    conf = sb.writeConfig(
      'root/etc/guard/guard.conf',
      [
        '[agent]',
        `user = ${agentUser.name}`,
        `helper_socket = ${ROOT}/run/guard/helper.sock`,
        `status_socket = ${statusSock()}`,
        `state_dir = ${ROOT}/var/lib/guard`,
        '',
        '[helper]',
        `audit_group = ${auditGroup.name}`,
        '',
        '[source.app]',
        'type = file',
        `paths = ${sb.path('logs')}/*.log`,
        '',
      ].join('\n'),
      0o640,
      { uid: 0, gid: G },
    );
    helper = await Helper.start({
      helperJs: join(code, 'guard-helper.js'),
      config: conf,
      socket: join(ROOT, 'run/guard/helper.sock'),
    });
    startAgent();
    await until(() => existsSync(statusSock()), 15_000, "the agent's status socket");
  });
  after(() => teardownEnv({ helper, users, sb }));

  it('a correct install: every line PASS or SKIP (units: init is none), exit 0', async () => {
    const r = await verify();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(fails(r.stdout), []);
    for (const l of r.stdout.split('\n').slice(1, -2)) assert.match(l, /^(PASS|SKIP)  /, l);
    assert.match(r.stdout, /^PASS  guard-helper runs as root: pid \d+ uid 0\/0\/0\/0$/m);
    assert.match(
      r.stdout,
      new RegExp(
        `^PASS  guard-agent runs as ${agentUser.name}: pid ${agentPid} uid ${agentUser.uid}/`,
        'm',
      ),
    );
    assert.match(
      r.stdout,
      /^PASS  guard-agent holds no capabilities \(bounding set empty too\): .*CapEff=0 CapPrm=0 CapAmb=0 CapBnd=0$/m,
    );
    assert.match(r.stdout, /^SKIP  units are hardened: init is none/m);
    assert.match(r.stdout, /^PASS  installed code is not writable by /m);
    assert.match(r.stdout, /agent\.sock is guardt-agent-\w+:guardt-agent-\w+ 0660: /);
  });

  it('config group-writable: FAIL lines name guard.conf only, exit 1', async () => {
    chmodSync(conf, 0o660);
    try {
      const r = await verify();
      assert.equal(r.code, 1, r.stdout);
      const f = fails(r.stdout);
      assert.ok(f.length >= 1, r.stdout);
      for (const l of f) assert.match(l, /guard\.conf/, l);
      assert.ok(
        f.some((l) => /guard\.conf is root:\S+ 0640: found root:\S+ 0660/.test(l)),
        f.join('\n'),
      );
      assert.ok(
        f.some((l) => /guard\.conf is not writable by .*: group-writable/.test(l)),
        f.join('\n'),
      );
    } finally {
      chmodSync(conf, 0o640);
    }
  });

  it("a code directory group-writable by the agent's group: FAIL lines name usr/lib/guard, exit 1", async () => {
    const dir = join(ROOT, 'usr/lib/guard');
    chownSync(dir, 0, agentUser.gid);
    chmodSync(dir, 0o775);
    try {
      const r = await verify();
      assert.equal(r.code, 1, r.stdout);
      const f = fails(r.stdout);
      for (const l of f) assert.match(l, /usr\/lib\/guard /, l);
      assert.ok(
        f.some((l) =>
          l.startsWith(`FAIL  ${dir} is root:root 0755: found root:${agentUser.group} 0775`),
        ),
        f.join('\n'),
      );
      assert.ok(
        f.some((l) =>
          l.startsWith(
            `FAIL  installed code is not writable by ${agentUser.name}: ${dir} is group-writable`,
          ),
        ),
        f.join('\n'),
      );
    } finally {
      chownSync(dir, 0, 0);
      chmodSync(dir, 0o755);
    }
  });

  it("the user's shell set to /bin/bash: exactly that FAIL, exit 1", async () => {
    execFileSync('usermod', ['-s', '/bin/bash', agentUser.name]);
    try {
      const r = await verify();
      assert.equal(r.code, 1, r.stdout);
      assert.deepEqual(fails(r.stdout), [
        `FAIL  user ${agentUser.name} has no login shell: shell is /bin/bash; set it with \`usermod -s /usr/sbin/nologin ${agentUser.name}\``,
      ]);
    } finally {
      execFileSync('usermod', ['-s', '/usr/sbin/nologin', agentUser.name]);
    }
  });

  it('the agent run as root: FAIL naming the pid and uid 0, exit 1', async () => {
    killPid(agentPid);
    await until(
      () => {
        try {
          process.kill(agentPid!, 0);
          return false;
        } catch {
          return true;
        }
      },
      5000,
      'the agent to exit',
    );
    startAgent(true);
    await until(
      () => {
        try {
          return readFileSync(`/proc/${agentPid}/cmdline`, 'utf8').includes('guard-agent.js');
        } catch {
          return false;
        }
      },
      5000,
      'the root stand-in',
    );
    const r = await verify();
    assert.equal(r.code, 1, r.stdout);
    const f = fails(r.stdout);
    assert.ok(
      f.includes(
        `FAIL  guard-agent runs as ${agentUser.name}: pid ${agentPid} runs as uid 0/0/0/0 (root)`,
      ),
      r.stdout,
    );
    // its socket goes with the real agent: the only other FAIL allowed is that it is missing
    for (const l of f) assert.match(l, /guard-agent runs as|agent\.sock is .*: missing/, l);
  });
});
