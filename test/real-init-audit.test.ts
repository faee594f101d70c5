// `install.sh --with-auditd` on a stock Debian 12 booted with systemd 252 as PID 1 (which has no
// auditd): auditd installed with apt and enabled, guard's rules written persistently to rules.d and
// compiled into audit.rules by augenrules — and triggers of four rule groups (identity, hostname,
// systemd, modules) arriving at the default sink.
//
// The kernel accepts auditd and audit rule changes only from the initial PID namespace
// (kernel/audit.c: audit_netlink_ok() answers EPERM to AUDIT_SET, AUDIT_ADD_RULE, … from any other),
// so auditd cannot run inside the container, whatever capabilities nspawn gives it: the test checks
// that the installer reports exactly that, then runs the container's own auditd and auditctl from
// the host's PID namespace inside the container's mount namespace (nsenter -m), which is what a
// host would do. The audit subsystem is the whole machine's: all of that holds
// /tmp/guard-audit.lock, and the test removes exactly the rules it loaded (keyed guard-) and stops
// the auditd it started, by PID, and restores the enabled flag.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Container, containersSupported } from './lib/container';
import { copyCheckout } from './lib/guard-in-container';
import { alive, killPid, run, sleep, start, track } from './lib/proc';

const unsupported = containersSupported();
if (unsupported) throw new Error(`cannot boot containers here: ${unsupported}`);

const LOCK = '/tmp/guard-audit.lock';

describe(
  'install.sh --with-auditd under systemd 252 (Debian 12 container)',
  { timeout: 10 * 60_000 },
  () => {
    let ct: Container;
    let auditd: ChildProcess | null = null;
    let holder: ChildProcess | null = null;
    let enabledBefore = '';
    let loaded = false;

    /** a command in the container's mount namespace but the host's PID namespace */
    const hostPidNs = (args: string[], timeoutMs = 60_000) =>
      run('/usr/bin/nsenter', ['-t', String(ct.pid1), '-m', '--', ...args], { timeoutMs });

    before(async () => {
      ct = await Container.boot('systemd', { withNode: true });
    });
    after(async () => {
      // exactly what this test did, undone: its rules, its auditd, the enabled flag
      if (loaded) {
        const r = await hostPidNs(['bash', '/opt/guard/audit-rules/unload.sh']);
        if (r.code !== 0) console.error(`unload.sh: ${r.stdout}${r.stderr}`);
      }
      if (auditd?.pid && alive(auditd.pid)) {
        killPid(auditd.pid, 'SIGTERM');
        for (let i = 0; i < 100 && alive(auditd.pid); i++) await sleep(100);
        killPid(auditd.pid, 'SIGKILL');
      }
      if (enabledBefore) await run('auditctl', ['-e', enabledBefore]);
      if (holder) {
        holder.stdin?.end();
        for (let i = 0; i < 50 && holder.exitCode === null; i++) await sleep(100);
      }
      await ct?.destroy();
    });

    it('installs and enables auditd, writes the rules persistently, and says why auditd cannot start here', async () => {
      copyCheckout(ct, '/opt/guard');
      const r = await ct.exec('bash /opt/guard/installer/install.sh --with-auditd 2>&1', {
        timeoutMs: 8 * 60_000,
      });
      assert.equal(r.code, 0, r.stdout.slice(-5000));
      assert.match(r.stdout, /installing auditd \(--with-auditd\)/);
      assert.match(r.stdout, /auditd did not start.*container.*initial PID namespace/);
      assert.match(
        r.stdout,
        /audit trail: rules in \/etc\/audit\/rules\.d\/50-guard\.rules, not loaded now/,
      );
      assert.equal((await ct.sh('systemctl is-enabled auditd')).trim(), 'enabled');
      const why = await ct.sh(
        'journalctl --no-pager -o cat -u auditd | grep -i -m3 "error\\|unable\\|failed" || true',
      );
      console.log(`auditd in the container: ${why.trim().replace(/\n/g, ' | ')}`);
      assert.match(
        await ct.sh('stat -c "%U:%G %a" /etc/audit/rules.d/50-guard.rules'),
        /^root:root 640/,
      );
      // augenrules compiled rules.d into what auditd loads at boot
      const rules = await ct.sh('grep -c -- "-k guard-" /etc/audit/audit.rules');
      assert.ok(Number(rules) > 50, `audit.rules holds ${rules} guard rules`);
      const v = await ct.sh('guardctl verify 2>&1 || true');
      assert.match(v, /PASS\s+\/etc\/audit\/rules\.d\/50-guard\.rules is root:root 0640/);
    });

    it('with auditd running (from the host PID namespace), triggers of four rule groups arrive at the sink', async () => {
      // one auditd per machine: hold the lock (released when holder's stdin ends), then start ours
      holder = track(
        spawn('/usr/bin/flock', ['-w', '600', '-o', LOCK, 'sh', '-c', 'echo locked; read x'], {
          stdio: ['pipe', 'pipe', 'inherit'],
        }),
      );
      await new Promise<void>((res, rej) => {
        holder!.stdout!.on('data', (d: Buffer) => /locked/.test(d.toString()) && res());
        holder!.once('exit', (c) => rej(new Error(`flock ${LOCK} exited ${c}`)));
      });
      // a test that does not take the lock may still run one: wait for it to end
      let st = execFileSync('auditctl', ['-s'], { encoding: 'utf8' });
      for (let i = 0; i < 480 && !/^pid 0$/m.test(st); i++) {
        await sleep(500);
        st = execFileSync('auditctl', ['-s'], { encoding: 'utf8' });
      }
      assert.match(st, /^pid 0$/m, `another auditd runs on this machine for 4 minutes:\n${st}`);
      enabledBefore = /^enabled (\d)/m.exec(st)?.[1] ?? '';
      auditd = start('/usr/bin/nsenter', ['-t', String(ct.pid1), '-m', '--', '/sbin/auditd', '-n']);
      let stderr = '';
      auditd.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const t0 = Date.now();
      while (!/^pid [1-9]/m.test(execFileSync('auditctl', ['-s'], { encoding: 'utf8' }))) {
        assert.ok(alive(auditd.pid!), `auditd exited: ${stderr}`);
        assert.ok(Date.now() - t0 < 20_000, `auditd did not register: ${stderr}`);
        await sleep(200);
      }
      const uid = (await ct.sh('id -u guard')).trim();
      loaded = true;
      const load = await hostPidNs([
        'bash',
        '/opt/guard/audit-rules/load.sh',
        '--guard-uid',
        uid,
        '/opt/guard/audit-rules/50-guard.rules.in',
      ]);
      console.log(`load.sh: ${load.stdout.trim()}`);
      assert.match(load.stdout, /rules loaded, 0 rejected/);
      // the agent finds audit.log at its next rescan (10 s)
      const deadline = Date.now() + 40_000;
      while (!/audit access granted/.test((await ct.exec('guardctl status')).stdout)) {
        assert.ok(Date.now() < deadline, (await ct.exec('guardctl status')).stdout);
        await sleep(500);
      }
      await ct.sh(
        'useradd --system --no-create-home guardt-trig; hostname guardt-trig; ' +
          'touch /etc/systemd/guardt-trig.conf; touch /etc/modprobe.d/guardt-trig.conf; ' +
          'rm -f /etc/systemd/guardt-trig.conf /etc/modprobe.d/guardt-trig.conf; userdel guardt-trig',
      );
      const keys = ['guard-identity', 'guard-hostname', 'guard-systemd', 'guard-modules'];
      const until = Date.now() + 30_000;
      let missing = keys;
      while (missing.length && Date.now() < until) {
        const sink = (await ct.exec('cat /var/lib/guard/out/events.ndjson')).stdout;
        missing = keys.filter((k) => !sink.includes(`"${k}"`));
        if (missing.length) await sleep(500);
      }
      assert.deepEqual(missing, [], 'rule groups whose events did not reach the sink');
    });
  },
);
