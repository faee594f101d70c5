// The whole product as an operator meets it: install.sh for real (under a test root, with throwaway
// user and group names, no init system here so direct mode), a root-only log shipped to the default
// file sink, `guardctl status` healthy with the file flowing, `guardctl verify` passing — then broken
// on purpose and naming the break — and `--uninstall --purge` leaving nothing behind.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { killPid, run, sleep, type RunResult, pidsRunning } from './lib/proc';
import { repoRoot } from './lib/sandbox';

const suffix = randomBytes(3).toString('hex');
const USER = `guardt-e2e-${suffix}`;
const AUDIT = `guardt-eaud-${suffix}`;
let ROOT = '';

const exists = (db: 'passwd' | 'group', name: string): boolean => {
  try {
    execFileSync('getent', [db, name], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
};
const gid = (g: string) =>
  Number(execFileSync('getent', ['group', g], { encoding: 'utf8' }).split(':')[2]);

async function install(...args: string[]): Promise<RunResult> {
  const r = await run(
    '/bin/bash',
    [
      join(repoRoot, 'installer/install.sh'),
      '--root',
      ROOT,
      '--user',
      USER,
      '--group',
      USER,
      '--audit-group',
      AUDIT,
      '--init',
      'none',
      '--no-build',
      ...args,
    ],
    { timeoutMs: 120_000 },
  );
  assert.equal(r.code, 0, `install.sh ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

const guardctl = (...args: string[]) =>
  run(join(ROOT, 'usr/bin/guardctl'), [...args, '--root', ROOT], { timeoutMs: 30_000 });

const ourPids = (): number[] => pidsRunning(`${ROOT}/usr/lib/guard/`);

describe('install, ship, status, verify, break, purge (the installer for real, direct mode)', () => {
  before(() => {
    ROOT = mkdtempSync('/run/guard-test-e2e-');
    chmodSync(ROOT, 0o755);
  });
  after(async () => {
    if (ourPids().length || exists('passwd', USER))
      await install('--uninstall', '--purge').catch(() => undefined);
    for (const pid of ourPids()) killPid(pid, 'SIGKILL');
    for (const [db, n] of [
      ['passwd', USER],
      ['group', USER],
      ['group', AUDIT],
    ] as const) {
      if (exists(db, n))
        execFileSync(db === 'passwd' ? 'userdel' : 'groupdel', [n], { stdio: 'pipe' });
    }
    rmSync(ROOT, { recursive: true, force: true });
  });

  it('installs, ships a root-only log to the default file sink, and says healthy', async () => {
    await install();
    // The shipped example names the host's /var/log files; point the sources at this test's log
    // instead (keeping everything else the installer wrote), and re-run the installer: an upgrade
    // restarts both programs with the new config.
    const conf = join(ROOT, 'etc/guard/guard.conf');
    const logs = join(ROOT, 'logs');
    mkdirSync(logs, { mode: 0o700 });
    const log = join(logs, 'app.log');
    writeFileSync(log, '', { mode: 0o600 });
    const kept = readFileSync(conf, 'utf8')
      .split(/^(?=\[)/m)
      .filter((s) => !s.startsWith('[source.'))
      .join('');
    writeFileSync(
      conf,
      `${kept}\n[source.app]\ntype = file\npaths = ${logs}/*.log\nparser = syslog\nstart_at = beginning\n`,
    );
    chmodSync(conf, 0o640);
    chownSync(conf, 0, gid(USER));
    await install();

    const lines = Array.from(
      { length: 200 },
      (_, i) => `2026-11-24T09:05:01.000000+00:00 e2e sshd[7]: e2e line ${i}`,
    );
    appendFileSync(log, lines.join('\n') + '\n');
    const out = join(ROOT, 'var/lib/guard/out/events.ndjson');
    const shipped = () =>
      existsSync(out)
        ? readFileSync(out, 'utf8')
            .split('\n')
            .filter((l) => l.includes('e2e line'))
            .map((l) => JSON.parse(l) as { message: string; fields?: { program?: string } })
        : [];
    for (let t = 0; shipped().length < 200 && t < 150; t++) await sleep(100);
    const events = shipped();
    assert.deepEqual(
      events.map((e) => e.message),
      lines,
      `the default file sink ${out} holds every line, in order`,
    );
    assert.equal(events[0]!.fields?.program, 'sshd');

    const status = await guardctl('status', '--json');
    const doc = JSON.parse(status.stdout) as {
      health: string;
      reasons: string[];
      sources: { files: { path: string; state: string }[] }[];
    };
    assert.equal(
      status.code,
      0,
      `status exit ${status.code}: ${doc.health} ${doc.reasons.join('; ')}`,
    );
    assert.equal(doc.health, 'healthy');
    const file = doc.sources.flatMap((s) => s.files).find((f) => f.path === log);
    assert.equal(file?.state, 'flowing', JSON.stringify(doc.sources));
    const plain = await guardctl('status');
    assert.match(plain.stdout, /^guard: healthy/);
    assert.ok(!plain.stdout.includes('\x1b['), 'no colours when piped');
  });

  it('verify passes on the fresh install, and names each thing broken on purpose', async () => {
    const ok = await guardctl('verify');
    assert.equal(ok.code, 0, `verify failed on a fresh install:\n${ok.stdout}`);
    assert.ok(!/^FAIL/m.test(ok.stdout), ok.stdout);
    assert.match(ok.stdout, /^PASS .*agent.*no capabilities/m);

    const conf = join(ROOT, 'etc/guard/guard.conf');
    chmodSync(conf, 0o660); // writable by the guard group: the agent could widen its own allow-list
    const badConf = await guardctl('verify');
    chmodSync(conf, 0o640);
    assert.equal(badConf.code, 1);
    const confFails = badConf.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
    assert.ok(
      confFails.length > 0 && confFails.every((l) => l.includes('guard.conf')),
      `FAIL lines should name guard.conf only:\n${confFails.join('\n')}`,
    );

    const lib = join(ROOT, 'usr/lib/guard');
    chownSync(lib, 0, gid(USER));
    chmodSync(lib, 0o775); // the agent's group could replace the helper's code
    const badLib = await guardctl('verify');
    chmodSync(lib, 0o755);
    chownSync(lib, 0, 0);
    assert.equal(badLib.code, 1);
    const libFails = badLib.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
    assert.ok(
      libFails.length > 0 && libFails.every((l) => l.includes('usr/lib/guard')),
      `FAIL lines should name usr/lib/guard only:\n${libFails.join('\n')}`,
    );

    assert.equal((await guardctl('verify')).code, 0, 'restored: passes again');
  });

  it('--uninstall --purge leaves no user, group, file or process', async () => {
    await install('--uninstall', '--purge');
    assert.deepEqual(ourPids(), []);
    assert.equal(exists('passwd', USER), false);
    assert.equal(exists('group', USER), false);
    assert.equal(exists('group', AUDIT), false);
    assert.deepEqual(
      readdirSync(ROOT).filter((n) => n !== 'logs'),
      [],
      `left under ${ROOT}`,
    );
  });
});
