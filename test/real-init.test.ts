// guard under the real inits users run: Debian 12 containers booted with systemd 252 and with
// sysvinit + OpenRC 0.45 as PID 1 (test/lib/container.ts), the real installer run inside from this
// checkout, and what an operator would check — with numbered lines flowing from a root-only log to
// the default file sink the whole time, counted by sequence number at the end (0 missing).
//
// systemd: the previous commit installed first, then upgraded to this checkout (config and
// checkpoints kept); services active; `guardctl status` healthy and `verify` 0 FAIL; online
// `systemd-analyze security` helper ≤ 0.9, agent ≤ 1.1; `systemd-analyze verify` clean; no V8 flag
// warning in the journal; the helper's open path logged; helper SIGKILL and SIGTERM, agent SIGKILL
// and abort each recovered within a bound; reload; install twice; reboot; purge leaves nothing.
// OpenRC: the same, with install.sh building from a checkout without dist/ or node_modules.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Container, containersSupported, type InitKind } from './lib/container';
import {
  buildEarlierCommit,
  copyCheckout,
  countSeq,
  lastWritten,
  SEQ_SOURCE,
  startWriter,
  stopWriter,
} from './lib/guard-in-container';
import { sleep } from './lib/proc';

const unsupported = containersSupported();
if (unsupported) throw new Error(`cannot boot containers here: ${unsupported}`);

/** The installer's summary line without auditd. */
const AUDIT_OFF =
  /audit trail: OFF: auditd is not installed \(re-run install\.sh --with-auditd to turn it on\)/;
/** What must come back within this after a fault (the units restart after 1 s and 2 s). */
const RECOVER_MS = 30_000;
/** Paths that change on any running system, or that only this test writes: not guard's. */
const NOISE = [
  '/opt/',
  '/var/log/journal',
  '/var/lib/systemd/',
  '/var/lib/dbus/',
  '/var/tmp/',
  '/tmp/',
  '/root/.npm',
  '/root/.cache',
  '/root/.node-gyp',
  '/var/log/guard-seq.log',
  '/usr/local/sbin/guard-seq-writer',
  '/var/cache/',
  '/var/lib/apt/',
  '/var/log/wtmp',
  '/var/log/btmp',
  '/var/log/lastlog',
  '/var/log/rc.log',
  '/etc/ld.so.cache',
  '/etc/.pwd.lock',
  '/usr/lib/node_modules/', // the test's Node (withNode), its node-gyp's __pycache__
  '/usr/lib/rc/cache', // OpenRC's dependency cache
  '/var/log/dmesg', // rotated at boot
];
const SNAPSHOT = `find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run \\) -prune -o -print | sort; echo ==users; getent passwd | cut -d: -f1 | sort; echo ==groups; getent group | cut -d: -f1 | sort`;

function diffSnapshot(before: string, after: string): string[] {
  const a = new Set(before.split('\n'));
  const b = new Set(after.split('\n'));
  const changed = [
    ...[...b].filter((x) => !a.has(x)).map((x) => `+ ${x}`),
    ...[...a].filter((x) => !b.has(x)).map((x) => `- ${x}`),
  ];
  return changed.filter((c) => !NOISE.some((n) => c.slice(2).startsWith(n)));
}

function exposure(out: string): number {
  const m = /Overall exposure level for \S+:\s*([0-9.]+)/.exec(out);
  assert.ok(m, `no exposure score in:\n${out}`);
  return Number(m[1]);
}

/** The host of each test: the container and what every step checks. */
class Host {
  ct!: Container;
  constructor(readonly kind: InitKind) {}

  /** pid of the node process running PROGRAM (inside the container's PID namespace), or 0 */
  async pid(program: 'guard-helper' | 'guard-agent'): Promise<number> {
    const out = await this.ct.sh('ps -eo pid=,args=');
    for (const line of out.split('\n')) {
      const m = /^\s*(\d+)\s+(\S+)\s.*\/usr\/lib\/guard\/([a-z-]+)\.js(\s|$)/.exec(line);
      if (m && /(^|\/)node$/.test(m[2]!) && m[3] === program) return Number(m[1]);
    }
    return 0;
  }

  async active(): Promise<boolean> {
    const cmd =
      this.kind === 'systemd'
        ? 'systemctl is-active --quiet guard-helper guard-agent'
        : 'rc-service guard-helper status >/dev/null && rc-service guard-agent status >/dev/null';
    return (await this.ct.exec(cmd)).code === 0;
  }

  async status(): Promise<{ code: number | null; out: string }> {
    const r = await this.ct.exec('guardctl status');
    return { code: r.code, out: r.stdout + r.stderr };
  }

  /** Both services active, both processes there, and `guardctl status` healthy (exit 0). */
  async waitHealthy(ms = RECOVER_MS): Promise<number> {
    const t0 = Date.now();
    let last = '';
    while (Date.now() - t0 < ms) {
      if (
        (await this.active()) &&
        (await this.pid('guard-helper')) &&
        (await this.pid('guard-agent'))
      ) {
        const s = await this.status();
        if (s.code === 0) return Date.now() - t0;
        last = s.out;
      }
      await sleep(250);
    }
    const diag = await this.ct.exec(
      this.kind === 'systemd'
        ? 'systemctl status --no-pager guard-helper guard-agent; journalctl --no-pager -n 40 -u guard-helper -u guard-agent'
        : 'rc-status; tail -n 20 /var/log/guard-helper.log /var/log/guard/agent.log',
    );
    throw new Error(
      `not healthy within ${ms} ms\n--- guardctl status\n${last}\n--- ${diag.stdout}${diag.stderr}`,
    );
  }

  /** Waits until the sink holds the line numbered n (the agent ships within a second or two). */
  async waitShipped(n: number, ms = 30_000): Promise<void> {
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      const sink = await this.ct.exec(
        `grep -c "guard-seq ${n}\\b" /var/lib/guard/out/events.ndjson`,
      );
      if (sink.stdout.trim() !== '' && Number(sink.stdout) > 0) return;
      await sleep(250);
    }
    throw new Error(`line ${n} did not reach the sink within ${ms} ms`);
  }

  async install(dir: string, ...args: string[]): Promise<string> {
    const r = await this.ct.exec(`bash ${dir}/installer/install.sh ${args.join(' ')} 2>&1`, {
      timeoutMs: 10 * 60_000,
    });
    assert.equal(r.code, 0, `install.sh ${args.join(' ')} failed:\n${r.stdout.slice(-6000)}`);
    return r.stdout;
  }

  async verify(): Promise<string> {
    const r = await this.ct.exec('guardctl verify 2>&1');
    const fails = r.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
    assert.deepEqual(fails, [], `guardctl verify:\n${r.stdout}`);
    assert.equal(r.code, 0, r.stdout);
    return r.stdout;
  }

  /** Signal to PROGRAM's process; back and healthy within RECOVER_MS with a new pid. */
  async fault(program: 'guard-helper' | 'guard-agent', signal: string): Promise<number> {
    const old = await this.pid(program);
    // systemd restarts the agent with the helper (PartOf=); OpenRC's supervise-daemon leaves it
    const other =
      program === 'guard-helper' && this.kind === 'openrc' ? await this.pid('guard-agent') : 0;
    assert.ok(old > 0, `${program} is not running before ${signal}`);
    await this.ct.sh(`kill -${signal} ${old}`);
    const t0 = Date.now();
    while ((await this.pid(program)) === old || (await this.pid(program)) === 0) {
      if (Date.now() - t0 > RECOVER_MS) throw new Error(`${program} not restarted after ${signal}`);
      await sleep(200);
    }
    const ms = await this.waitHealthy(RECOVER_MS - (Date.now() - t0));
    if (other)
      assert.equal(
        await this.pid('guard-agent'),
        other,
        `the agent was stopped or restarted when the helper got ${signal}`,
      );
    return Date.now() - t0 + ms * 0;
  }
}

async function appendSeqSource(h: Host): Promise<void> {
  await h.ct.sh(`cat >>/etc/guard/guard.conf <<'EOF'\n${SEQ_SOURCE}\nEOF`);
}

// GUARD_REAL_INIT=systemd (or openrc) narrows a run by hand to one init; CI runs both.
const kinds = (process.env.GUARD_REAL_INIT ?? 'systemd,openrc').split(',') as InitKind[];
for (const kind of kinds) {
  describe(
    `guard under ${kind === 'systemd' ? 'systemd 252' : 'sysvinit + OpenRC 0.45'} as PID 1 (Debian 12 container)`,
    { timeout: 15 * 60_000 },
    () => {
      const h = new Host(kind);
      let pristine = '';
      let oldDir = '';
      let confHash = '';

      before(async () => {
        h.ct = await Container.boot(kind, { withNode: true });
        pristine = await h.ct.sh(SNAPSHOT);
      });
      after(async () => {
        if (oldDir) rmSync(oldDir, { recursive: true, force: true });
        await h.ct?.destroy();
      });

      if (kind === 'systemd') {
        it('installs the previous commit, ships a root-only log, then upgrades to this checkout: config and checkpoints kept', async () => {
          const old = buildEarlierCommit();
          oldDir = old.dir;
          copyCheckout(h.ct, '/opt/guard-old', { from: old.dir });
          await h.install('/opt/guard-old', '--no-build');
          await startWriter(h.ct);
          await appendSeqSource(h);
          await h.ct.sh('systemctl restart guard-helper guard-agent');
          await sleep(1500);
          await h.waitShipped(lastWritten(h.ct));
          confHash = await h.ct.sh('sha256sum /etc/guard/guard.conf');
          const checkpoints = await h.ct.sh(
            'find /var/lib/guard -type f -not -path "*/out/*" | sort',
          );
          assert.notEqual(checkpoints.trim(), '', 'the old install wrote no checkpoint');
          const dupBefore = countSeq(h.ct).duplicates;

          copyCheckout(h.ct, '/opt/guard');
          const out = await h.install('/opt/guard');
          assert.match(out, /dist\/ is up to date/);
          assert.match(out, AUDIT_OFF, 'the installer summary says the audit trail is off');
          assert.equal(
            await h.ct.sh('sha256sum /etc/guard/guard.conf'),
            confHash,
            'config changed',
          );
          const kept = await h.ct.sh('find /var/lib/guard -type f -not -path "*/out/*" | sort');
          for (const f of checkpoints.trim().split('\n'))
            assert.ok(kept.includes(f), `checkpoint ${f} gone after the upgrade`);
          await h.waitHealthy();
          await sleep(1500);
          await h.waitShipped(lastWritten(h.ct));
          const c = countSeq(h.ct);
          console.log(
            `upgrade from ${old.commit.slice(0, 10)}: ${c.written} lines, ${c.missing.length} missing, ${c.duplicates - dupBefore} duplicated by the upgrade`,
          );
          assert.deepEqual(
            c.missing.filter((n) => n < lastWritten(h.ct) - 100),
            [],
          );
          assert.ok(
            c.duplicates - dupBefore <= 1000,
            `more than one batch duplicated: ${c.duplicates - dupBefore}`,
          );
        });
      } else {
        it('builds and installs from a checkout without dist/ or node_modules (npm ci without test-only builds)', async () => {
          copyCheckout(h.ct, '/opt/guard', { withDist: false });
          const out = await h.install('/opt/guard');
          assert.match(out, /building: dist\//);
          assert.doesNotMatch(out, /node-pty/);
          assert.match(out, /init: openrc/);
          assert.match(out, AUDIT_OFF, 'the installer summary says the audit trail is off');
          await startWriter(h.ct);
          await appendSeqSource(h);
          await h.ct.sh(
            'rc-service guard-agent stop && rc-service guard-helper restart && rc-service guard-agent start',
          );
          await sleep(1500);
          await h.waitShipped(lastWritten(h.ct));
          confHash = await h.ct.sh('sha256sum /etc/guard/guard.conf');
        });
      }

      it('services active, guardctl status healthy, verify 0 FAIL, the audit trail said to be off', async () => {
        console.log(`healthy after ${await h.waitHealthy()} ms`);
        const s = await h.status();
        assert.match(
          s.out,
          /audit trail is OFF,\s+auditd is not installed\s+\(install\.sh\s+--with-auditd\s+turns it on\)/,
          s.out,
        );
        const v = await h.verify();
        assert.match(v, /SKIP\s+audit trail: OFF: auditd is not installed.*--with-auditd/);
        console.log(
          v
            .split('\n')
            .filter((l) => /^(PASS|FAIL|SKIP)/.test(l))
            .reduce(
              (m, l) => {
                const k = l.slice(0, 4);
                m[k] = (m[k] ?? 0) + 1;
                return m;
              },
              {} as Record<string, number>,
            ),
        );
        const agent = await h.pid('guard-agent');
        const helper = await h.pid('guard-helper');
        // what verify's OpenRC defect matched: supervise-daemon is no guard process
        assert.match(v, new RegExp(`guard-agent runs as guard: pid ${agent} `));
        assert.match(v, new RegExp(`guard-helper runs as root: pid ${helper} `));
        assert.match(s.out, new RegExp(`\\b${helper}\\b`));
      });

      if (kind === 'systemd') {
        it('online exposure ≤ 0.9 (helper) and ≤ 1.1 (agent); systemd-analyze verify clean; no V8 warning; the open path logged', async () => {
          const helper = exposure(
            await h.ct.sh('systemd-analyze security --no-pager guard-helper.service 2>&1 || true'),
          );
          const agent = exposure(
            await h.ct.sh('systemd-analyze security --no-pager guard-agent.service 2>&1 || true'),
          );
          console.log(`online exposure: helper ${helper}, agent ${agent}`);
          assert.ok(helper <= 0.9, `helper ${helper}`);
          assert.ok(agent <= 1.1, `agent ${agent}`);
          const r = await h.ct.exec(
            'systemd-analyze verify /etc/systemd/system/guard-helper.service /etc/systemd/system/guard-agent.service 2>&1',
          );
          assert.equal(r.code, 0, r.stdout);
          const journal = await h.ct.sh(
            `journalctl --no-pager -o cat _PID=${await h.pid('guard-helper')}`,
          );
          assert.doesNotMatch(journal, /Warning: disabling flag/);
          // under the unit (RestrictSUIDSGID=yes) openat2 answers ENOSYS: the walk is the open path
          assert.match(journal, /"open_path":"walk"|"openat2":false/);
          assert.doesNotMatch(journal, /"open_path":"openat2"|"openat2":true/);
          assert.match((await h.status()).out, /open path: walk/);
        });
      } else {
        it('the helper holds only CAP_CHOWN and CAP_DAC_READ_SEARCH, the agent none, both no_new_privs', async () => {
          const status = async (pid: number) => h.ct.sh(`cat /proc/${pid}/status`);
          const hs = await status(await h.pid('guard-helper'));
          assert.match(hs, /^CapBnd:\s*0*5$/m);
          assert.match(hs, /^NoNewPrivs:\s*1$/m);
          const as = await status(await h.pid('guard-agent'));
          assert.match(as, /^CapBnd:\s*0+$/m);
          assert.match(as, /^CapEff:\s*0+$/m);
          assert.match(as, /^NoNewPrivs:\s*1$/m);
          const log = await h.ct.sh('cat /var/log/guard-helper.log');
          assert.doesNotMatch(log, /Warning: disabling flag/);
          assert.match(log, /"open_path":"openat2"|"openat2":true/);
          assert.match((await h.status()).out, /open path: openat2/);
        });
      }

      it('helper SIGKILL, helper SIGTERM, agent SIGKILL, agent abort: each back and healthy within 30 s', async () => {
        const times: string[] = [];
        for (const [p, sig] of [
          ['guard-helper', 'KILL'],
          ['guard-helper', 'TERM'],
          ['guard-agent', 'KILL'],
          ['guard-agent', 'ABRT'],
        ] as const) {
          times.push(`${p} SIG${sig}: ${await h.fault(p, sig)} ms`);
        }
        console.log(times.join('; '));
      });

      it('reload keeps both running and healthy; [metrics] textfile turned on by it is written under the real service', async () => {
        await h.ct.sh(
          `printf '\\n[metrics]\\ntextfile = /var/lib/guard-metrics/guard.prom\\ninterval_ms = 1000\\n' >>/etc/guard/guard.conf`,
        );
        confHash = await h.ct.sh('sha256sum /etc/guard/guard.conf');
        const before = [await h.pid('guard-helper'), await h.pid('guard-agent')];
        await h.ct.sh(
          kind === 'systemd'
            ? 'systemctl reload guard-helper guard-agent'
            : 'rc-service guard-helper reload && rc-service guard-agent reload',
        );
        await sleep(1000);
        await h.waitHealthy();
        assert.deepEqual([await h.pid('guard-helper'), await h.pid('guard-agent')], before);
        // the unit lets the agent write there (ReadWritePaths=), and node_exporter may read it
        let prom = '';
        for (let i = 0; i < 40 && !/^guard_up 1$/m.test(prom); i++) {
          await sleep(250);
          prom = (await h.ct.exec('cat /var/lib/guard-metrics/guard.prom')).stdout;
        }
        if (!/^guard_up 1$/m.test(prom)) {
          const logs = await h.ct.exec(
            kind === 'systemd'
              ? 'journalctl --no-pager -o cat -n 30 -u guard-agent'
              : 'tail -n 30 /var/log/guard/agent.log; ls -la /var/lib/guard-metrics',
          );
          assert.fail(`no metrics file:\n${prom}\n--- agent log:\n${logs.stdout}${logs.stderr}`);
        }
        assert.match(prom, /^guard_source_lines_read_total\{source="seq",type="file"\} [1-9]/m);
        assert.equal(
          (
            await h.ct.sh(
              'stat -c "%U:%G %a" /var/lib/guard-metrics /var/lib/guard-metrics/guard.prom',
            )
          ).trim(),
          'guard:guard 755\nguard:guard 644',
        );
      });

      it('install twice: the same result, the config untouched', async () => {
        await h.install('/opt/guard');
        assert.equal(await h.ct.sh('sha256sum /etc/guard/guard.conf'), confHash);
        await h.waitHealthy();
        await h.verify();
      });

      it('after a reboot both come back, and no line written meanwhile is missing', async () => {
        await h.ct.reboot();
        console.log(`healthy ${await h.waitHealthy(60_000)} ms after boot`);
        await startWriter(h.ct);
        await sleep(2000);
        await stopWriter(h.ct);
        const last = lastWritten(h.ct);
        await h.waitShipped(last);
        const c = countSeq(h.ct);
        console.log(
          `${kind}: ${c.written} lines written, ${c.missing.length} missing, ${c.duplicates} duplicates (last ${last}) ${c.duplicatedRanges}`,
        );
        assert.deepEqual(c.missing, []);
        assert.ok(c.duplicates <= 1000, `${c.duplicates} duplicates`);
      });

      it('--uninstall --purge leaves nothing: file system, users and groups as before the install', async () => {
        await h.install('/opt/guard', '--uninstall', '--purge');
        assert.equal(await h.pid('guard-helper'), 0);
        assert.equal(await h.pid('guard-agent'), 0);
        const diff = diffSnapshot(pristine, await h.ct.sh(SNAPSHOT));
        assert.deepEqual(diff, []);
      });
    },
  );
}
