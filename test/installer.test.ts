// installer/install.sh end to end, as root, under a throwaway ROOT with throwaway user and group
// names: dry run, install (direct mode: this host runs neither systemd as PID 1 nor OpenRC),
// re-install as an upgrade, uninstall, purge. The installer creates the user and groups itself, so
// the names are only generated here; `after` removes whatever is left, even after a failure.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { killPid, pidsRunning, procStatus, run, sleep, type RunResult } from './lib/proc';
import { repoRoot } from './lib/sandbox';

const suffix = randomBytes(3).toString('hex');
const USER = `guardt-inst-${suffix}`;
const GROUP = USER;
const AUDIT = `guardt-iaud-${suffix}`;
const installer = join(repoRoot, 'installer', 'install.sh');
let ROOT = '';

const names = () => ['--root', ROOT, '--user', USER, '--group', GROUP, '--audit-group', AUDIT];
async function install(...args: string[]): Promise<RunResult> {
  // --no-build: the test runs on the dist/ `npm run build` just made; a source edited meanwhile by
  // someone else must not make the installer rebuild the shared checkout under the test.
  const r = await run('/bin/bash', [installer, ...names(), '--no-build', ...args], {
    timeoutMs: 120_000,
  });
  assert.equal(
    r.code,
    0,
    `install.sh ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`,
  );
  return r;
}

function getent(db: 'passwd' | 'group', name: string): string[] | null {
  try {
    return execFileSync('getent', [db, name], { encoding: 'utf8' }).trim().split(':');
  } catch {
    return null;
  }
}
const gidOf = (g: string) => Number(getent('group', g)![2]);
const uidOf = (u: string) => Number(getent('passwd', u)![2]);

const ourPids = (): number[] => pidsRunning(`${ROOT}/usr/lib/guard/`);

const pidFrom = (rel: string) => Number(readFileSync(join(ROOT, rel), 'utf8').trim());

/** [relative path, uid, gid, mode] of everything under ROOT, sorted. */
function tree(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const n of readdirSync(dir).sort()) {
      const p = join(dir, n);
      const st = lstatSync(p);
      out.push(
        `${p.slice(ROOT.length)} ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}${st.isDirectory() ? '/' : ''}`,
      );
      if (st.isDirectory()) walk(p);
    }
  };
  walk(ROOT);
  return out;
}

function assertMode(
  rel: string,
  owner: string,
  group: string,
  mode: number,
  kind: 'dir' | 'file' | 'socket',
): void {
  const p = join(ROOT, rel);
  const st = lstatSync(p);
  const is = kind === 'dir' ? st.isDirectory() : kind === 'socket' ? st.isSocket() : st.isFile();
  assert.ok(is, `${rel} is not a ${kind}`);
  assert.equal(st.uid, owner === 'root' ? 0 : uidOf(owner), `${rel} owner`);
  assert.equal(st.gid, group === 'root' ? 0 : gidOf(group), `${rel} group`);
  assert.equal((st.mode & 0o7777).toString(8), mode.toString(8), `${rel} mode`);
}

async function waitGone(pids: number[], ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (pids.some((p) => existsSync(`/proc/${p}`)) && Date.now() < deadline) await sleep(50);
}

describe('installer/install.sh', { concurrency: false }, () => {
  before(() => {
    ROOT = mkdtempSync('/run/guard-inst-');
    chmodSync(ROOT, 0o755);
  });

  after(async () => {
    const left = ourPids();
    for (const pid of left) killPid(pid, 'SIGKILL');
    await waitGone(left);
    if (getent('passwd', USER))
      try {
        execFileSync('userdel', [USER], { stdio: 'pipe' });
      } catch (e) {
        console.error(String(e));
      }
    for (const g of [AUDIT, GROUP]) {
      if (getent('group', g))
        try {
          execFileSync('groupdel', [g], { stdio: 'pipe' });
        } catch (e) {
          console.error(String(e));
        }
    }
    if (ROOT) rmSync(ROOT, { recursive: true, force: true });
  });

  test('--dry-run prints every action and changes nothing', async () => {
    const r = await install('--init', 'none', '--dry-run');
    for (const want of [
      `+ groupadd --system ${AUDIT}`,
      '+ useradd --system --no-create-home',
      `install -d -o root -g ${GROUP} -m 0750 ${ROOT}/etc/guard`,
      `+ write ${ROOT}/usr/lib/.guard.new.`,
      `+ write ${ROOT}/etc/guard/guard.conf (0640 root:${GROUP})`,
      'start-helper.cjs',
      'setpriv --reuid=',
      'neither systemd nor OpenRC runs here',
      '(dry run: nothing was changed)',
    ]) {
      assert.ok(
        r.stdout.includes(want),
        `dry run does not show ${JSON.stringify(want)}:\n${r.stdout}`,
      );
    }
    assert.equal(getent('passwd', USER), null, 'dry run created the user');
    assert.equal(getent('group', AUDIT), null, 'dry run created the audit group');
    assert.deepEqual(readdirSync(ROOT), [], 'dry run wrote under ROOT');
    assert.deepEqual(ourPids(), [], 'dry run started something');
  });

  let firstTree: string[] = [];
  let firstPids: number[] = [];

  test('install: user, groups, layout, config, install.json (direct mode)', async () => {
    const r = await install('--init', 'none');
    assert.match(r.stdout, /no supervisor/);
    assert.match(r.stdout, new RegExp(`events: +${ROOT}/var/lib/guard/out/events.ndjson`));

    const pw = getent('passwd', USER)!;
    assert.ok(pw, 'no user');
    assert.match(pw[6]!, /\/(nologin|false)$/, `login shell ${pw[6]}`);
    assert.equal(pw[5], '/nonexistent');
    assert.equal(existsSync('/nonexistent'), false, 'a home directory was created');
    assert.equal(Number(pw[3]), gidOf(GROUP), 'primary group');
    assert.ok(getent('group', AUDIT)![3]!.split(',').includes(USER), `${USER} is not in ${AUDIT}`);

    assertMode('usr/lib/guard', 'root', 'root', 0o755, 'dir');
    for (const f of [
      'guard-helper.js',
      'guard-agent.js',
      'guardctl.js',
      'fdpass.node',
      'fdpass-connect.node',
      'install.json',
    ])
      assertMode(`usr/lib/guard/${f}`, 'root', 'root', 0o644, 'file');
    for (const [w, js, opts] of [
      ['usr/sbin/guard-helper', 'guard-helper', '--no-expose-wasm --jitless '],
      [
        'usr/sbin/guard-agent',
        'guard-agent',
        '--max-semi-space-size=4 --liftoff-only --v8-pool-size=1 ',
      ],
      ['usr/bin/guardctl', 'guardctl', ''],
    ] as const) {
      assertMode(w, 'root', 'root', 0o755, 'file');
      assert.equal(
        readFileSync(join(ROOT, w), 'utf8'),
        `#!/bin/sh\nexec '${process.execPath}' ${opts}'${ROOT}/usr/lib/guard/${js}.js' "$@"\n`,
      );
    }
    assertMode('etc/guard', 'root', GROUP, 0o750, 'dir');
    assertMode('etc/guard/guard.conf', 'root', GROUP, 0o640, 'file');
    assertMode('var/lib/guard', USER, GROUP, 0o750, 'dir');
    assertMode('var/lib/guard-metrics', USER, GROUP, 0o755, 'dir');
    assertMode('var/log/guard', USER, GROUP, 0o750, 'dir');
    assertMode('run/guard', 'root', GROUP, 0o750, 'dir');
    assertMode('run/guard/agent', USER, GROUP, 0o750, 'dir');
    assertMode('run/guard/helper.sock', 'root', GROUP, 0o660, 'socket');
    assertMode('run/guard/agent/agent.sock', USER, GROUP, 0o660, 'socket');
    assertMode('var/log/guard/helper.log', 'root', GROUP, 0o640, 'file');
    assertMode('var/log/guard/agent.log', USER, GROUP, 0o640, 'file');
    if (existsSync(join(repoRoot, 'audit-rules/50-guard.rules')))
      assertMode('etc/audit/rules.d/50-guard.rules', 'root', 'root', 0o640, 'file');

    const conf = readFileSync(join(ROOT, 'etc/guard/guard.conf'), 'utf8');
    for (const line of [
      `user = ${USER}`,
      `audit_group = ${AUDIT}`,
      `helper_socket = ${ROOT}/run/guard/helper.sock`,
      `status_socket = ${ROOT}/run/guard/agent/agent.sock`,
      `state_dir = ${ROOT}/var/lib/guard`,
      `path = ${ROOT}/var/lib/guard/out/events.ndjson`,
    ]) {
      assert.ok(conf.split('\n').includes(line), `guard.conf lacks ${JSON.stringify(line)}`);
    }

    const info = JSON.parse(
      readFileSync(join(ROOT, 'usr/lib/guard/install.json'), 'utf8'),
    ) as Record<string, string>;
    const version = (
      JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }
    ).version;
    assert.deepEqual(
      { ...info, installedAt: 'x' },
      {
        version,
        root: ROOT,
        user: USER,
        group: GROUP,
        auditGroup: AUDIT,
        node: process.execPath,
        init: 'none',
        installedAt: 'x',
      },
    );
    assert.ok(
      Math.abs(Date.parse(info.installedAt!) - Date.now()) < 120_000,
      `installedAt ${info.installedAt}`,
    );
    // the code is byte-for-byte the build
    for (const f of [
      'guard-helper.js',
      'guard-agent.js',
      'guardctl.js',
      'fdpass.node',
      'fdpass-connect.node',
    ]) {
      assert.ok(
        readFileSync(join(ROOT, 'usr/lib/guard', f)).equals(
          readFileSync(join(repoRoot, 'dist', f)),
        ),
        `${f} differs from dist/`,
      );
    }
    firstTree = tree().filter(
      (l) => !/\.(pid|sock|log) |install\.json|\/var\/lib\/guard\//.test(l),
    );
  });

  test('nothing installed is writable by the agent user, up to ROOT', async () => {
    const uid = uidOf(USER);
    const r = await run(
      '/usr/bin/setpriv',
      [
        `--reuid=${uid}`,
        `--regid=${gidOf(GROUP)}`,
        '--init-groups',
        '--',
        'find',
        ROOT,
        '-writable',
      ],
      { timeoutMs: 30_000 },
    );
    const writable = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((p) => p.slice(ROOT.length));
    // its own directories (the metrics directory too), and the helper's socket (connecting needs
    // write permission: 0660 root:GROUP)
    const own =
      /^\/(var\/lib\/guard|var\/lib\/guard-metrics|var\/log\/guard|run\/guard\/agent)(\/|$)|^\/run\/guard\/helper\.sock$/;
    assert.deepEqual(
      writable.filter((p) => !own.test(p)),
      [],
      `writable by ${USER} outside its own directories`,
    );
    assert.ok(writable.includes('/var/lib/guard'), `the check saw nothing (stderr: ${r.stderr})`);
    assert.ok(!writable.includes('/var/log/guard/helper.log'));
  });

  test('helper runs as root with two capabilities, agent as the user with none', () => {
    const helper = pidFrom('run/guard/helper.pid');
    const agent = pidFrom('run/guard/agent/agent.pid');
    firstPids = [helper, agent];
    assert.deepEqual(
      ourPids().sort(),
      [...firstPids].sort(),
      'processes running ROOT code are not exactly the two in the pid files',
    );
    const h = procStatus(helper);
    assert.equal(h.Uid!.split(/\s+/)[0], '0');
    assert.equal(
      h.CapBnd,
      '0000000000000005',
      'helper bounding set: CAP_CHOWN and CAP_DAC_READ_SEARCH only',
    );
    assert.equal(h.NoNewPrivs, '1');
    assert.match(
      readFileSync(`/proc/${helper}/cmdline`, 'utf8'),
      new RegExp(
        `${ROOT}/usr/lib/guard/guard-helper\\.js\\0--config\\0${ROOT}/etc/guard/guard\\.conf\\0--socket`,
      ),
    );
    const a = procStatus(agent);
    assert.deepEqual(a.Uid!.split(/\s+/), Array(4).fill(String(uidOf(USER))));
    assert.deepEqual(a.Gid!.split(/\s+/), Array(4).fill(String(gidOf(GROUP))));
    assert.ok(
      a.Groups!.split(/\s+/).includes(String(gidOf(AUDIT))),
      `agent groups ${a.Groups} lack ${AUDIT}`,
    );
    for (const k of ['CapEff', 'CapPrm', 'CapBnd', 'CapInh', 'CapAmb'])
      assert.equal(a[k], '0000000000000000', `agent ${k}`);
    assert.equal(a.NoNewPrivs, '1');
    const log = readFileSync(join(ROOT, 'var/log/guard/helper.log'), 'utf8');
    assert.match(log, /"event":"listening"/);
    assert.match(
      log,
      new RegExp(`"event":"connected","pid":${agent},"uid":${uidOf(USER)},"audit":true`),
      'the agent never reached the helper (as a member of the audit group)',
    );
  });

  test('re-running is an upgrade: same files, config kept, processes restarted not duplicated', async () => {
    const conf = join(ROOT, 'etc/guard/guard.conf');
    const marker = `; operator's edit ${randomBytes(4).toString('hex')}\n`;
    writeFileSync(conf, readFileSync(conf, 'utf8') + marker);
    const r = await install('--init', 'none');
    assert.match(r.stdout, /guard\.conf exists: kept/);
    assert.ok(readFileSync(conf, 'utf8').endsWith(marker), 'the config was overwritten');
    assert.deepEqual(
      tree().filter((l) => !/\.(pid|sock|log) |install\.json|\/var\/lib\/guard\//.test(l)),
      firstTree,
    );
    await waitGone(firstPids);
    for (const p of firstPids)
      assert.equal(existsSync(`/proc/${p}`), false, `old process ${p} still runs`);
    const now = [pidFrom('run/guard/helper.pid'), pidFrom('run/guard/agent/agent.pid')];
    assert.deepEqual(ourPids().sort(), [...now].sort(), 'not exactly one helper and one agent');
    assert.notDeepEqual(now, firstPids);
    assert.deepEqual(
      readdirSync(join(ROOT, 'usr/lib')),
      ['guard'],
      'a temp code directory was left behind',
    );
  });

  test('a pid file naming someone else is not trusted', async () => {
    // the agent user owns run/guard/agent: it could name any process in agent.pid
    const agent = pidFrom('run/guard/agent/agent.pid');
    writeFileSync(join(ROOT, 'run/guard/agent/agent.pid'), `${process.pid}\n`);
    const r = await install('--init', 'none');
    assert.match(r.stdout, /names no running guard-agent \(stale\)/);
    // the real agent was not in the pid file, so it survived; end it by PID and install once more
    killPid(agent, 'SIGTERM');
    await waitGone([agent]);
    await install('--init', 'none');
    assert.equal(ourPids().length, 2);
  });

  test('--uninstall stops and removes guard, keeps config, state, logs, user and groups', async () => {
    const pids = ourPids();
    await install('--uninstall');
    await waitGone(pids);
    assert.deepEqual(ourPids(), []);
    for (const gone of [
      'usr/lib/guard',
      'usr/sbin/guard-helper',
      'usr/sbin/guard-agent',
      'usr/bin/guardctl',
      'run/guard',
    ]) {
      assert.equal(existsSync(join(ROOT, gone)), false, `${gone} left after --uninstall`);
    }
    for (const kept of ['etc/guard/guard.conf', 'var/lib/guard', 'var/log/guard/agent.log'])
      assert.ok(existsSync(join(ROOT, kept)), `${kept} removed`);
    assert.ok(
      getent('passwd', USER) && getent('group', AUDIT),
      'user or group removed without --purge',
    );
    await install('--uninstall'); // twice is fine
  });

  test('--uninstall --purge leaves no user, group, file or process', async () => {
    await install('--init', 'none');
    assert.equal(ourPids().length, 2);
    const pids = ourPids();
    await install('--uninstall', '--purge');
    await waitGone(pids);
    assert.deepEqual(ourPids(), []);
    assert.deepEqual(readdirSync(ROOT), [], `left under ROOT: ${tree().join(', ')}`);
    assert.equal(getent('passwd', USER), null);
    assert.equal(getent('group', GROUP), null);
    assert.equal(getent('group', AUDIT), null);
    assert.ok(statSync(ROOT).isDirectory());
    await install('--uninstall', '--purge'); // and again
  });
});
