// guard's audit rules (audit-rules/) on the real kernel: load.sh generates and loads them one by one,
// every loaded rule is keyed guard-…, nothing is rejected on this host, `auditctl -l` holds exactly
// the generated rules, each major group fires on a harmless trigger (found with ausearch -k), guard's
// own uid and a read of the audit log fire nothing, the idle rate is measured, and unload.sh leaves
// `auditctl -l` exactly as it was.
//
// The audit subsystem is global to the machine. This file loads only guard-… rules and removes them
// by key; if no auditd runs it starts a private one (`auditd -n -c DIR`, its log in a temporary
// directory), stops exactly that PID and puts the kernel's `enabled` flag back (auditd turns it on
// and leaves it on). It never sends -e 2, -D, -b or -f. If the rules are locked (enabled 2) or
// auditd is not installed, the tests are skipped with the reason.
//
// Triggers run as uids with no passwd entry (no account is created) and set their own login uid
// (/proc/self/loginuid, allowed to root while loginuid is not immutable), because the rules, like
// the baselines, only follow processes that have one. None of them changes the system: the failed
// writes are refused by the kernel, the mount and the hostname are in private namespaces, the clock
// and module calls fail (EPERM, EBADF) and are recorded anyway.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { asLoginUser, auditStatus, startPrivateAuditd, systemAuditLog } from './lib/audit';
import { sleep } from './lib/proc';
import { repoRoot as repo } from './lib/sandbox';

const RULES_IN = join(repo, 'audit-rules', '50-guard.rules.in');
const LOAD = join(repo, 'audit-rules', 'load.sh');
const UNLOAD = join(repo, 'audit-rules', 'unload.sh');
const IDLE_SECONDS = Number(process.env.GUARD_AUDIT_IDLE_SECONDS ?? 60);
// uids with no account: the "guard" user for --guard-uid, and a throwaway login user
const GUARD_UID = 61_000 + Math.floor(Math.random() * 900) * 2;
const USER_UID = GUARD_UID + 1;
const HELPER_AUID = USER_UID + 2_000; // the login uid the stand-in for guard-helper runs under

function sh(cmd: string, args: string[], opts: { input?: string } = {}) {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    input: opts.input,
    env: { ...process.env, LC_ALL: 'C' },
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, pid: r.pid };
}
const has = (cmd: string) => sh('sh', ['-c', `command -v ${cmd}`]).status === 0;

function listRules(): string[] {
  const r = sh('auditctl', ['-l']);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l && l !== 'No rules');
}
function keyOf(tokens: string[]): string {
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] === '-k') return tokens[i + 1] ?? '';
    const next = tokens[i + 1] ?? '';
    if (tokens[i] === '-F' && next.startsWith('key=')) return next.slice(4);
  }
  return '';
}
/** A rule as a comparable string: what auditctl -l prints and what we wrote mean the same rule. */
function canonical(rule: string): string {
  const t = rule.trim().split(/\s+/);
  const parts: string[] = [];
  for (let i = 0; i < t.length; i++) {
    const [f, v] = [t[i], t[i + 1] ?? ''];
    i++;
    if (f === '-w') parts.push(`watch=${v.replace(/\/+$/, '')}`);
    else if (f === '-p') parts.push(`perm=${v.split('').sort().join('')}`);
    else if (f === '-k') parts.push(`key=${v}`);
    else if (f === '-a') parts.push(`action=${v}`);
    else if (f === '-S') {
      if (v !== 'all') parts.push(`syscalls=${v.split(',').sort().join(',')}`);
    } else if (f === '-F' || f === '-C') {
      let x = v.replace(/(auid[!=<>]*=?)unset$/, '$1-1').replace(/^auid!=4294967295$/, 'auid!=-1');
      if (x.startsWith('perm=')) x = `perm=${x.slice(5).split('').sort().join('')}`;
      parts.push(x);
    } else parts.push(`${f}=${v}`);
  }
  return parts.sort().join(' ');
}

type Ev = {
  serial: string;
  key: string;
  pid: string;
  auid: string;
  uid: string;
  syscall: string;
  success: string;
  names: string[];
  exe: string;
  types: string[];
};
/** Events in the audit log from byte `from`, grouped by serial. */
function readEvents(log: string, from: number): Ev[] {
  const size = statSync(log).size;
  if (size <= from) return [];
  const fd = openSync(log, 'r');
  const buf = Buffer.alloc(size - from);
  try {
    readSync(fd, buf, 0, buf.length, from);
  } finally {
    closeSync(fd);
  }
  const events = new Map<string, Ev>();
  for (const line of buf.toString('utf8').split('\n')) {
    const m = /msg=audit\([\d.]+:(\d+)\)/.exec(line);
    const serial = m?.[1];
    if (!serial) continue;
    let e = events.get(serial);
    if (!e)
      events.set(
        serial,
        (e = {
          serial,
          key: '',
          pid: '',
          auid: '',
          uid: '',
          syscall: '',
          success: '',
          names: [],
          exe: '',
          types: [],
        }),
      );
    const type = /^type=(\S+)/.exec(line)?.[1] ?? '';
    e.types.push(type);
    const field = (n: string) =>
      new RegExp(`[ ]${n}=("[^"]*"|\\S+)`).exec(line)?.[1]?.replace(/^"|"$/g, '');
    if (type === 'SYSCALL') {
      e.key = field('key') ?? '';
      e.pid = field('pid') ?? '';
      e.auid = field('auid') ?? '';
      e.uid = field('uid') ?? '';
      e.syscall = field('syscall') ?? '';
      e.success = field('success') ?? '';
      e.exe = field('exe') ?? '';
    } else if (type === 'PATH') {
      const n = field('name');
      if (n) e.names.push(n);
    }
  }
  return [...events.values()];
}

const skip = (() => {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const c of ['auditctl', 'auditd', 'ausearch', 'ausyscall', 'setpriv', 'unshare'])
    if (!has(c)) return `${c} is not installed (apt-get install auditd util-linux)`;
  if (auditStatus().enabled === '2') return 'the audit rules are locked (enabled 2) until reboot';
  if (!existsSync('/proc/self/loginuid')) return 'no /proc/self/loginuid';
  return false;
})();

describe('audit rules (audit-rules/)', { skip }, () => {
  let dir = '';
  let log = '/var/log/audit/audit.log';
  let auditd: ChildProcess | null = null;
  let enabledBefore = '';
  let rulesBefore: string[] = [];
  let generated = '';
  let loadOut = { status: null as number | null, stdout: '', stderr: '' };

  before(async () => {
    dir = mkdtempSync('/tmp/guard-audit-test.');
    const st = auditStatus();
    enabledBefore = st.enabled ?? '';
    rulesBefore = listRules();
    if (!/^[1-9]/.test(st.pid ?? '0')) {
      // a private auditd: the system's config with the log (and no plugins) in our directory
      log = join(dir, 'log', 'audit.log');
      mkdirSync(join(dir, 'log'), { mode: 0o750 });
      auditd = await startPrivateAuditd(join(dir, 'conf'), log);
      console.log(`# started a private auditd, pid ${auditd.pid}, log ${log}`);
    } else {
      log = systemAuditLog();
      console.log(`# using the running auditd (pid ${st.pid}), log ${log}`);
    }
    const out = join(dir, '50-guard.rules');
    loadOut = sh('bash', [LOAD, '--out', out, '--guard-uid', String(GUARD_UID), RULES_IN]);
    generated = existsSync(out) ? readFileSync(out, 'utf8') : '';
    console.log(
      loadOut.stderr
        .split('\n')
        .filter((l) => l)
        .map((l) => `# ${l}`)
        .join('\n'),
    );
    console.log(`# ${loadOut.stdout.trim()}`);
  });

  after(async () => {
    // remove what we loaded (even if a test failed), stop exactly the auditd we started, restore enabled
    const u = sh('bash', [UNLOAD]);
    if (u.status !== 0) console.log(`# unload.sh: ${u.stdout}${u.stderr}`);
    if (auditd && auditd.exitCode === null) {
      const done = new Promise((r) => auditd!.once('exit', r));
      process.kill(auditd.pid!, 'SIGTERM');
      await Promise.race([done, sleep(5000)]);
      if (auditd.exitCode === null && auditd.signalCode === null)
        process.kill(auditd.pid!, 'SIGKILL');
    }
    if (enabledBefore === '0' || enabledBefore === '1') {
      if (auditStatus().enabled !== enabledBefore) sh('auditctl', ['-e', enabledBefore]);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('load.sh loads every generated rule, none rejected, every one keyed guard-…', () => {
    assert.equal(loadOut.status, 0, loadOut.stdout + loadOut.stderr);
    const m = /^(\d+) rules loaded, (\d+) rejected, (\d+) skipped/m.exec(loadOut.stdout);
    assert.ok(m, loadOut.stdout);
    assert.equal(Number(m[2]), 0, 'rejected rules');
    const ruleLines = generated.split('\n').filter((l) => l && !l.startsWith('#'));
    assert.equal(Number(m[1]), ruleLines.length);
    assert.ok(ruleLines.length >= 40, `only ${ruleLines.length} rules`);
    // no control lines, no syscall this auditctl does not know, no placeholder left
    for (const l of ruleLines) {
      assert.match(l, /^-(a|w) /, l);
      assert.doesNotMatch(l, /@[A-Z_]+@/, l);
      assert.doesNotMatch(l, /\bfchmodat2\b|\bfile_setattr\b/, l);
      assert.match(keyOf(l.split(/\s+/)), /^guard-[a-z]+$/, l);
    }
    assert.match(
      generated,
      /# skipped \(.*does not exist on this host\)/,
      'watches on missing paths are commented out with the reason',
    );
    const added = listRules().filter((r) => !rulesBefore.includes(r));
    for (const r of added)
      assert.match(keyOf(r.split(/\s+/)), /^guard-/, `a rule without a guard- key appeared: ${r}`);
  });

  it('auditctl -l holds exactly the generated rules', () => {
    const loaded = listRules()
      .filter((r) => keyOf(r.split(/\s+/)).startsWith('guard-'))
      .map(canonical)
      .sort();
    const wanted = generated
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map(canonical)
      .sort();
    assert.deepEqual(loaded, wanted);
  });

  it('load.sh reports a bad line with file:line and loads the rest; unknown syscalls and control lines never reach auditctl', () => {
    const bad = join(dir, 'bad.rules.in');
    // control lines: only ones that would change nothing if they ever got through (never -e 2 or -D)
    writeFileSync(
      bad,
      [
        `-f ${auditStatus().failure}`,
        `-r ${auditStatus().rate_limit}`,
        '-a always,exit -F arch=b64 -S fchmodat2 -k guard-probe',
        '-w /nonexistent/guard-probe -p wa -k guard-probe',
        '-a always,exit -F arch=b64 -S chmod -F nosuchfield=1 -k guard-probe',
        '-w /etc/hostname -p wa -k other-key',
        `-a always,exit -F arch=b64 -S chmod,fchmodat2 -F auid=${USER_UID} -k guard-probe`,
      ].join('\n') + '\n',
    );
    const check = sh('bash', [LOAD, '--check-only', '--guard-uid', String(GUARD_UID), bad]);
    assert.equal(check.status, 0, check.stderr);
    assert.doesNotMatch(
      check.stdout
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .join('\n'),
      /^-[fr] /m,
      'control lines reach the generated rules',
    );
    // -e 2 and -D are refused too (checked without loading anything)
    const locked = join(dir, 'locked.rules.in');
    writeFileSync(locked, '-e 2\n-D\n-b 8192\n');
    const c2 = sh('bash', [LOAD, '--check-only', locked]);
    assert.match(c2.stderr, /:1: skipped: control line -e/);
    assert.match(c2.stderr, /:2: skipped: control line -D/);
    assert.match(c2.stderr, /check only: 0 rules to load, 3 skipped/);
    const r = sh('bash', [LOAD, '--guard-uid', String(GUARD_UID), bad]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^1 rules loaded, 1 rejected, 5 skipped/m);
    assert.match(r.stderr, new RegExp(`${bad.replace(/[.]/g, '\\.')}:5: auditctl: `));
    assert.match(r.stderr, /:1: skipped: control line -f/);
    assert.match(r.stderr, /:3: skipped: none of its syscalls \(fchmodat2\)/);
    assert.match(r.stderr, /:6: skipped: not keyed guard-/);
    assert.equal(auditStatus().enabled === '2', false);
    // the one that loaded (chmod only) is removed again by key
    const probe = listRules().filter((l) => l.includes('key=guard-probe'));
    assert.equal(probe.length, 1, probe.join('\n'));
    const one = probe[0] ?? '';
    assert.match(one, /-S chmod -F auid=/);
    assert.equal(sh('auditctl', ['-d', ...one.split(/\s+/).slice(1)]).status, 0);
  });

  it("each major group fires on a harmless trigger (ausearch -k), guard's own activity does not", async () => {
    const start = statSync(log).size;
    const stamp = `guard-audit-test-${process.pid}-${Date.now()}`;
    const tmpEtc = join('/etc/security', `${stamp}.conf`);
    const tmpSys = join('/etc/systemd', `${stamp}.conf`);
    const expect: Array<{ key: string; pid: number; what: string }> = [];
    const t = (key: string, what: string, r: { pid: number }) =>
      expect.push({ key, pid: r.pid, what });
    try {
      // root in a login session (auid = USER_UID) writes into watched directories, changes a mode
      t('guard-auth', `create ${tmpEtc}`, asLoginUser(USER_UID, 0, `: > ${tmpEtc}`));
      t('guard-systemd', `create ${tmpSys}`, asLoginUser(USER_UID, 0, `: > ${tmpSys}`));
    } finally {
      rmSync(tmpEtc, { force: true });
      rmSync(tmpSys, { force: true });
    }
    // a mode change outside the watched directories (inside one, the watch's key comes first)
    const plain = join(dir, `${stamp}.perm`);
    writeFileSync(plain, '');
    t('guard-perm', `chmod ${plain}`, asLoginUser(USER_UID, 0, `exec chmod 600 ${plain}`));
    // a logged-in unprivileged user: write attempts on watched files (refused, recorded), a refused read
    t(
      'guard-identity',
      'open /etc/shadow for writing',
      asLoginUser(USER_UID, USER_UID, ': >> /etc/shadow'),
    );
    t(
      'guard-session',
      'open /var/log/wtmp for writing',
      asLoginUser(USER_UID, USER_UID, ': >> /var/log/wtmp'),
    );
    t(
      'guard-hostname',
      'open /etc/hosts for writing',
      asLoginUser(USER_UID, USER_UID, ': >> /etc/hosts'),
    );
    t(
      'guard-audit',
      'open /etc/libaudit.conf for writing',
      asLoginUser(USER_UID, USER_UID, ': >> /etc/libaudit.conf'),
    );
    t(
      'guard-access',
      'read /etc/gshadow refused',
      asLoginUser(USER_UID, USER_UID, 'exec cat /etc/gshadow'),
    );
    t('guard-time', 'date -s refused (EPERM)', asLoginUser(USER_UID, USER_UID, 'exec date -s @0'));
    t(
      'guard-priv',
      'run setuid su',
      asLoginUser(USER_UID, USER_UID, 'exec su -c true root </dev/null'),
    );
    // private namespaces: a tmpfs mounted and a hostname set, invisible to the host
    t(
      'guard-mount',
      'mount tmpfs in a private mount namespace',
      asLoginUser(USER_UID, 0, `exec unshare -m --propagation private mount -t tmpfs none ${dir}`),
    );
    t(
      'guard-hostname',
      'sethostname in a private UTS namespace',
      asLoginUser(USER_UID, 0, 'exec unshare -u hostname guard-audit-test'),
    );
    if (has('python3')) {
      // finit_module(-1) fails with EBADF; ptrace(PTRACE_ATTACH, 1) as a user fails with EPERM
      t(
        'guard-modules',
        'finit_module(-1) (EBADF)',
        asLoginUser(
          USER_UID,
          0,
          'exec python3 -c "import ctypes; ctypes.CDLL(None, use_errno=True).syscall(313, -1, b\\"\\", 0)"',
        ),
      );
      t(
        'guard-ptrace',
        'PTRACE_ATTACH pid 1 (EPERM)',
        asLoginUser(
          USER_UID,
          USER_UID,
          'exec python3 -c "import ctypes; ctypes.CDLL(None, use_errno=True).ptrace(16, 1, 0, 0)"',
        ),
      );
    } else console.log('# python3 missing: guard-modules and guard-ptrace triggers not run');

    // guard itself: the agent's uid refused a file, and the helper (root) reading the audit log
    asLoginUser(GUARD_UID, GUARD_UID, 'exec cat /etc/gshadow');
    // (reads in watched places: the audit log, the audit log directory, a watched audit config file)
    asLoginUser(
      HELPER_AUID,
      0,
      `cat ${log} /etc/libaudit.conf /var/log/audit/audit.log >/dev/null 2>&1; exec ls /var/log/audit`,
    );

    let found: Ev[] = [];
    const missing = () =>
      expect.filter((x) => !found.some((e) => e.key === x.key && e.pid === String(x.pid)));
    for (let i = 0; i < 50; i++) {
      found = readEvents(log, start);
      if (missing().length === 0) break;
      await sleep(100);
    }
    const lines: string[] = [];
    for (const x of expect) {
      // ausearch -k KEY -p PID finds it too
      const a = sh('ausearch', ['-if', log, '-k', x.key, '-p', String(x.pid), '--raw']);
      const ok = a.status === 0 && a.stdout.includes(`key="${x.key}"`);
      lines.push(`# ${ok ? 'found' : 'MISSING'}: ${x.key.padEnd(15)} ${x.what} (pid ${x.pid})`);
    }
    console.log(lines.join('\n'));
    assert.deepEqual(
      missing().map((x) => `${x.key}: ${x.what}`),
      [],
    );
    assert.ok(
      lines.every((l) => l.startsWith('# found')),
      'ausearch -k did not find every trigger',
    );
    const own = found.filter(
      (e) =>
        (e.auid === String(GUARD_UID) || e.auid === String(HELPER_AUID)) &&
        e.key.startsWith('guard-'),
    );
    assert.deepEqual(
      own.map((e) => `${e.key} pid ${e.pid} ${e.exe} ${e.names.join(',')}`),
      [],
      "guard's own activity was audited",
    );
  });

  it(
    `idle: guard events per minute with the rules loaded (${IDLE_SECONDS} s sample)`,
    { timeout: (IDLE_SECONDS + 30) * 1000 },
    async () => {
      await sleep(1000);
      const start = statSync(log).size;
      const t0 = Date.now();
      await sleep(IDLE_SECONDS * 1000);
      const secs = (Date.now() - t0) / 1000;
      const events = readEvents(log, start);
      const guard = events.filter((e) => e.key.startsWith('guard-'));
      const byKey = new Map<string, Map<string, number>>();
      for (const e of guard) {
        const m = byKey.get(e.key) ?? new Map<string, number>();
        m.set(e.exe || '?', (m.get(e.exe || '?') ?? 0) + 1);
        byKey.set(e.key, m);
      }
      const perMin = (guard.length * 60) / secs;
      console.log(
        `# idle: ${guard.length} guard events in ${secs.toFixed(0)} s = ${perMin.toFixed(1)}/min (${events.length} audit events of any kind)`,
      );
      for (const [k, m] of byKey)
        console.log(`#   ${k}: ${[...m].map(([exe, n]) => `${n} by ${exe}`).join(', ')}`);
      // the only writer of the log during the sample is auditd: reading it must not feed back into it
      assert.equal(
        guard.filter((e) => e.key === 'guard-audit').length,
        0,
        'the audit log or config changed while idle',
      );
    },
  );

  it('unload.sh removes exactly the guard- rules: auditctl -l is as before', () => {
    const r = sh('bash', [UNLOAD]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^\d+ guard rules removed, 0 failed/m);
    assert.deepEqual(listRules(), rulesBefore);
  });
});
