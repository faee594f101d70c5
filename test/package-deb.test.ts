// The .deb as a user installs it: a Debian 12 container booted with systemd 252 as PID 1 and NO
// Node.js (test/lib/container.ts), `apt-get install ./guard_*.deb` → both services running,
// `guardctl status` healthy, `guardctl verify` without a FAIL, numbered lines from a root-only file
// arriving; an upgrade from the previous build (while the lines keep coming) keeps the config and
// the checkpoints and loses no line; `apt-get remove` keeps config and state, `apt-get purge`
// leaves the file system, the users and the groups as they were before the install.
// The previous build is this .deb re-versioned to <version>~prev (dpkg orders it first): the
// maintainer scripts' upgrade path, not a change of code, is what is tested.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Container, containersSupported } from './lib/container';
import {
  countSeq,
  lastWritten,
  SEQ_LOG,
  SEQ_SOURCE,
  startWriter,
  stopWriter,
} from './lib/guard-in-container';
import { deb, ensurePackages, layout as L, tgz, version } from './lib/packages';
import { sleep } from './lib/proc';

const PREV = `${version}~prev`;

/** This .deb with another version in its control file (and its install.json). */
function reversioned(dir: string): string {
  const tree = join(dir, 'tree');
  execFileSync('dpkg-deb', ['-R', deb, tree]);
  const control = join(tree, 'DEBIAN/control');
  writeFileSync(
    control,
    readFileSync(control, 'utf8').replace(/^Version: .*$/m, `Version: ${PREV}`),
  );
  const install = join(tree, L.GUARD_LIB!, 'install.json');
  const j = JSON.parse(readFileSync(install, 'utf8'));
  writeFileSync(install, JSON.stringify({ ...j, version: PREV }, null, 1) + '\n');
  const md5 = join(tree, 'DEBIAN/md5sums');
  const sum = execFileSync('md5sum', [install], { encoding: 'utf8' }).split(' ')[0];
  writeFileSync(
    md5,
    readFileSync(md5, 'utf8').replace(/^\S+(  usr\/lib\/guard\/install\.json)$/m, `${sum}$1`),
  );
  const out = join(dir, `guard_${PREV}_amd64.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z1', '--build', tree, out], {
    stdio: 'ignore',
  });
  rmSync(tree, { recursive: true, force: true });
  return out;
}

// Everything but what changes on any running system (logs, apt's and dpkg's own records, caches,
// runtime state), what the test itself adds (the copied packages, the line writer and its log), and
// the backups (/etc/passwd- …) that useradd and userdel leave of the files they edit.
const SNAPSHOT = `find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
-o -path /var/tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/apt -o -path /var/lib/dpkg \
-o -path /var/lib/systemd -o -path /root -o -name '*-' -path '/etc/*' -o -path /usr/local/sbin/guard-seq-writer \\) -prune -o -print | sort`;
const ACCOUNTS = 'cat /etc/passwd /etc/group /etc/shadow /etc/gshadow';
const diff = (a: string, b: string) => {
  const A = new Set(a.split('\n'));
  const B = new Set(b.split('\n'));
  return { added: [...B].filter((x) => !A.has(x)), removed: [...A].filter((x) => !B.has(x)) };
};

describe('the .deb (then the tarball) in a Debian 12 container with systemd and no Node', () => {
  let ct: Container | undefined;
  let tmp = '';

  before(
    async () => {
      const why = containersSupported();
      if (why) throw new Error(`cannot boot a container here: ${why}`);
      ensurePackages();
      tmp = mkdtempSync('/var/tmp/guard-deb-');
      ct = await Container.boot('systemd');
    },
    { timeout: 25 * 60_000 },
  );
  after(async () => {
    await ct?.destroy();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const status = async () => ct!.exec('guardctl status --json', { timeoutMs: 30_000 });
  const mainPids = async () =>
    (await ct!.sh('systemctl show -p MainPID --value guard-helper guard-agent'))
      .split('\n')
      .filter(Boolean)
      .join('\n');
  const waitHealthy = async (ms: number) => {
    const t0 = Date.now();
    let r = await status();
    while (r.code !== 0 && Date.now() - t0 < ms) {
      await sleep(200);
      r = await status();
    }
    assert.equal(r.code, 0, `guardctl status not healthy:\n${r.stdout}\n${r.stderr}`);
    return Date.now() - t0;
  };
  const waitForSeq = async (ms: number) => {
    const deadline = Date.now() + ms;
    let c = countSeq(ct!);
    while ((c.missing.length > 0 || c.written === 0) && Date.now() < deadline) {
      await sleep(300);
      c = countSeq(ct!);
    }
    return c;
  };
  let snapshot: { files: string; accounts: string };

  it(
    'apt-get install: both services run, status healthy, verify 0 FAIL',
    { timeout: 400_000 },
    async (t) => {
      assert.notEqual((await ct!.exec('command -v node')).code, 0, 'no Node in the container');
      snapshot = { files: await ct!.sh(SNAPSHOT), accounts: await ct!.sh(ACCOUNTS) };
      const prev = reversioned(tmp);
      await ct!.copyIn(prev, `/root/${prev.split('/').pop()}`);
      const t0 = Date.now();
      const r = await ct!.exec(
        `cd /root && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ./guard_${PREV}_amd64.deb`,
        { timeoutMs: 300_000 },
      );
      assert.equal(r.code, 0, `apt-get install:\n${r.stdout}\n${r.stderr}`);
      const aptMs = Date.now() - t0;
      const healthyMs = aptMs + (await waitHealthy(60_000));
      t.diagnostic(
        `install: apt-get ${(aptMs / 1000).toFixed(1)} s, healthy after ${(healthyMs / 1000).toFixed(1)} s`,
      );
      assert.match(r.stdout, /guard: systemd: guard-helper guard-agent enabled and \(re\)started/);
      assert.equal(
        (await ct!.sh('systemctl is-active guard-helper guard-agent')).trim(),
        'active\nactive',
      );
      assert.equal(
        (await ct!.sh('systemctl is-enabled guard-helper guard-agent')).trim(),
        'enabled\nenabled',
      );
      const exe = await ct!.sh(
        'for s in guard-helper guard-agent; do readlink /proc/$(systemctl show -p MainPID --value $s)/exe; done',
      );
      assert.equal(
        exe.trim(),
        `${L.GUARD_RUNTIME}\n${L.GUARD_RUNTIME}`,
        'both run the bundled Node',
      );
      const v = await ct!.exec('guardctl verify', { timeoutMs: 60_000 });
      const fails = v.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
      t.diagnostic(
        `verify: ${v.stdout.split('\n').filter((l) => l.startsWith('PASS')).length} PASS, ${fails.length} FAIL, ${v.stdout.split('\n').filter((l) => l.startsWith('SKIP')).length} SKIP`,
      );
      assert.deepEqual(fails, [], v.stdout);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    },
  );

  it('a line from a root-only file arrives', { timeout: 120_000 }, async () => {
    await ct!.sh(`cat >>${L.GUARD_CONF} <<'EOF'\n${SEQ_SOURCE}\nEOF`);
    await startWriter(ct!);
    assert.equal((await ct!.sh(`stat -c '%U:%G %a' ${SEQ_LOG}`)).trim(), 'root:root 600');
    await ct!.sh('systemctl reload guard-helper && systemctl reload guard-agent');
    await sleep(1000);
    const c = await waitForSeq(60_000);
    assert.ok(c.written > 0 && c.missing.length < c.written, JSON.stringify(c).slice(0, 500));
  });

  it(
    'upgrade: config and checkpoints kept, both services restarted, no line lost',
    { timeout: 300_000 },
    async (t) => {
      const conf = await ct!.sh(`cat ${L.GUARD_CONF}`);
      const checkpoints = await ct!.sh(`ls ${L.GUARD_STATE}`);
      const pids = await mainPids();
      await ct!.copyIn(deb, `/root/guard_${version}_amd64.deb`);
      const during = lastWritten(ct!);
      const r = await ct!.exec(
        `cd /root && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ./guard_${version}_amd64.deb`,
        { timeoutMs: 300_000 },
      );
      assert.equal(r.code, 0, `apt-get install (upgrade):\n${r.stdout}\n${r.stderr}`);
      assert.match(
        r.stdout,
        new RegExp(`Unpacking guard \\(${version}\\) over \\(${PREV.replace('~', '~')}\\)`),
      );
      assert.equal((await ct!.sh(`dpkg-query -W -f '\${Version}' guard`)).trim(), version);
      assert.equal(await ct!.sh(`cat ${L.GUARD_CONF}`), conf, 'the edited config is kept');
      for (const f of checkpoints.split('\n').filter(Boolean))
        assert.match(await ct!.sh(`ls ${L.GUARD_STATE}`), new RegExp(`^${f}$`, 'm'));
      const after = await mainPids();
      const [h0, a0] = pids.split('\n');
      const [h1, a1] = after.split('\n');
      assert.ok(
        h1 !== h0 && a1 !== a0 && h1 !== '0' && a1 !== '0',
        `restarted: ${pids} → ${after}`,
      );
      await waitHealthy(60_000);
      // more lines after the upgrade, then every line counted
      while (lastWritten(ct!) < during + 100) await sleep(200);
      await stopWriter(ct!);
      const c = await waitForSeq(90_000);
      t.diagnostic(
        `upgrade: ${c.written} lines written, ${c.missing.length} missing, ${c.duplicates} duplicated`,
      );
      assert.deepEqual(c.missing, []);
      assert.equal(c.duplicates, 0);
    },
  );

  it('remove keeps config and state; purge leaves nothing', { timeout: 300_000 }, async () => {
    const rm = await ct!.exec('DEBIAN_FRONTEND=noninteractive apt-get remove -y guard', {
      timeoutMs: 300_000,
    });
    assert.equal(rm.code, 0, rm.stdout + rm.stderr);
    assert.match(rm.stdout, /guard: stopped/);
    for (const s of ['guard-helper', 'guard-agent'])
      assert.notEqual((await ct!.exec(`systemctl is-active ${s}`)).stdout.trim(), 'active');
    assert.notEqual((await ct!.exec(`test -e ${L.GUARD_LIB}`)).code, 0, 'the code is gone');
    assert.notEqual((await ct!.exec(`test -e ${L.GUARD_RUNTIME}`)).code, 0);
    await ct!.sh(`test -f ${L.GUARD_CONF} && test -d ${L.GUARD_STATE} && id ${L.GUARD_USER}`);

    const purge = await ct!.exec('DEBIAN_FRONTEND=noninteractive apt-get purge -y guard', {
      timeoutMs: 300_000,
    });
    assert.equal(purge.code, 0, purge.stdout + purge.stderr);
    assert.match(purge.stdout, /guard: purged/);
    await ct!.sh(`rm -f ${SEQ_LOG}`);
    const now = { files: await ct!.sh(SNAPSHOT), accounts: await ct!.sh(ACCOUNTS) };
    assert.deepEqual(diff(snapshot.files, now.files), { added: [], removed: [] }, 'file system');
    assert.deepEqual(diff(snapshot.accounts, now.accounts), { added: [], removed: [] }, 'accounts');
    assert.equal((await ct!.exec('dpkg -s guard')).code, 1, 'dpkg knows nothing of guard');
  });

  it(
    "the tarball's setup.sh: install, healthy, remove --purge leaves nothing",
    { timeout: 300_000 },
    async (t) => {
      const name = `guard-${version}-linux-x64`;
      await ct!.copyIn(tgz, `/root/${name}.tar.gz`);
      await ct!.sh(`cd /root && tar -xzf ${name}.tar.gz`);
      const t0 = Date.now();
      const r = await ct!.exec(`/root/${name}/setup.sh install`, { timeoutMs: 300_000 });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /guard: systemd: guard-helper guard-agent enabled and \(re\)started/);
      const ms = Date.now() - t0 + (await waitHealthy(60_000));
      t.diagnostic(`tarball: setup.sh install to healthy ${(ms / 1000).toFixed(1)} s`);
      const v = await ct!.exec('guardctl verify', { timeoutMs: 60_000 });
      assert.deepEqual(
        v.stdout.split('\n').filter((l) => l.startsWith('FAIL')),
        [],
        v.stdout,
      );
      const rm = await ct!.exec(`/root/${name}/setup.sh remove --purge`, { timeoutMs: 300_000 });
      assert.equal(rm.code, 0, rm.stdout + rm.stderr);
      await ct!.sh(`rm -rf /root/${name} /root/${name}.tar.gz`);
      const now = { files: await ct!.sh(SNAPSHOT), accounts: await ct!.sh(ACCOUNTS) };
      assert.deepEqual(diff(snapshot.files, now.files), { added: [], removed: [] }, 'file system');
      assert.deepEqual(
        diff(snapshot.accounts, now.accounts),
        { added: [], removed: [] },
        'accounts',
      );
    },
  );
});
