// auditd for system tests: the kernel's audit status, running a command under a login uid, and
// starting a private auditd (the system's config, its log where the test wants it, no plugins)
// when none runs. The audit subsystem is global: callers stop exactly the auditd they started.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './proc';

/** `auditctl -s` as key → value (pid, enabled, …). */
export function auditStatus(): Record<string, string> {
  const out =
    spawnSync('auditctl', ['-s'], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } })
      .stdout ?? '';
  return Object.fromEntries(
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const i = l.indexOf(' ');
        return [l.slice(0, i), l.slice(i + 1)];
      }),
  );
}

export const auditdRunning = (): boolean => /^[1-9]/.test(auditStatus().pid ?? '0');

/** The log file the system's auditd writes. */
export function systemAuditLog(): string {
  return (
    /^log_file\s*=\s*(\S+)/m.exec(readFileSync('/etc/audit/auditd.conf', 'utf8'))?.[1] ??
    '/var/log/audit/audit.log'
  );
}

/**
 * Runs `script` with sh as uid/gid `uid` (root when 0) with login uid `auid`, for a user with no
 * account: nothing is created. Returns its pid (to find its events) and how it ended.
 */
export function asLoginUser(
  auid: number,
  uid: number,
  script: string,
): { pid: number; status: number | null; stderr: string } {
  const drop =
    uid === 0
      ? 'exec'
      : `exec setpriv --reuid=${uid} --regid=${uid} --clear-groups --inh-caps=-all`;
  const r = spawnSync(
    'sh',
    ['-c', `echo ${auid} > /proc/self/loginuid || exit 97; ${drop} sh -c "$1"`, 'sh', script],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return { pid: r.pid ?? 0, status: r.status, stderr: r.stderr ?? '' };
}

/** Starts `auditd -n` with its config in confDir and its log at `log`; resolves once the kernel has it. */
export async function startPrivateAuditd(confDir: string, log: string): Promise<ChildProcess> {
  mkdirSync(join(confDir, 'plugins.d'), { recursive: true });
  writeFileSync(
    join(confDir, 'auditd.conf'),
    readFileSync('/etc/audit/auditd.conf', 'utf8')
      .replace(/^log_file\s*=.*$/m, `log_file = ${log}`)
      .replace(/^plugin_dir\s*=.*$/m, `plugin_dir = ${join(confDir, 'plugins.d')}`)
      .replace(/^flush\s*=.*$/m, 'flush = INCREMENTAL')
      .replace(/^freq\s*=.*$/m, 'freq = 1'),
    { mode: 0o600 },
  );
  const auditd = spawn('auditd', ['-n', '-c', confDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  auditd.stderr?.on('data', (d) => {
    err += d;
  });
  for (let i = 0; i < 50 && auditStatus().pid !== String(auditd.pid); i++) await sleep(100);
  if (auditStatus().pid !== String(auditd.pid))
    throw new Error(`private auditd did not register: ${err}`);
  return auditd;
}
