// Where guard is installed and as whom: `install.json` (written by installer/install.sh) read from
// `--root DIR`, or from beside this bundle when it is the installed /usr/lib/guard/guardctl.js,
// else the defaults. Every path guardctl looks at is ROOT-relative, as in the install contract.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export type InitSystem = 'systemd' | 'openrc' | 'none';

export interface Install {
  root: string;
  user: string;
  group: string;
  auditGroup: string;
  init: InitSystem;
  /** the node that runs guard: the host's (install.sh) or the packages' own, root:root 0755 */
  node?: string;
  /** where the units are: /etc/systemd/system (install.sh), the distribution's (the packages) */
  unitDir: string;
  /** where these facts came from: the install.json read, or 'defaults' */
  from: string;
}

export interface InstallPaths {
  config: string;
  configDir: string;
  stateDir: string;
  logDir: string;
  runDir: string;
  helperSocket: string;
  helperPid: string;
  agentRunDir: string;
  statusSocket: string;
  agentPid: string;
  codeDir: string;
  wrappers: string[];
  units: string[];
  initScripts: string[];
  auditRules: string;
}

export function underRoot(root: string, abs: string): string {
  return root === '/' ? abs : join(root, abs);
}

export function installPaths(i: Install): InstallPaths {
  const r = (p: string) => underRoot(i.root, p);
  return {
    config: r('/etc/guard/guard.conf'),
    configDir: r('/etc/guard'),
    stateDir: r('/var/lib/guard'),
    logDir: r('/var/log/guard'),
    runDir: r('/run/guard'),
    helperSocket: r('/run/guard/helper.sock'),
    helperPid: r('/run/guard/helper.pid'),
    agentRunDir: r('/run/guard/agent'),
    statusSocket: r('/run/guard/agent/agent.sock'),
    agentPid: r('/run/guard/agent/agent.pid'),
    codeDir: r('/usr/lib/guard'),
    wrappers: [r('/usr/sbin/guard-helper'), r('/usr/sbin/guard-agent'), r('/usr/bin/guardctl')],
    units: [r(`${i.unitDir}/guard-helper.service`), r(`${i.unitDir}/guard-agent.service`)],
    initScripts: [r('/etc/init.d/guard-helper'), r('/etc/init.d/guard-agent')],
    auditRules: r('/etc/audit/rules.d/50-guard.rules'),
  };
}

/** The init system of this host when install.json does not say: systemd as PID 1, OpenRC, or none. */
export function detectInit(): InitSystem {
  if (existsSync('/run/systemd/system')) return 'systemd';
  if (existsSync('/run/openrc/softlevel')) return 'openrc';
  return 'none';
}

/** Thrown for an install.json that exists but cannot be used: the operator must fix or reinstall. */
export class InstallInfoError extends Error {
  readonly code = 'install_json';
}

/**
 * `rootOpt`: --root DIR. Without it, install.json beside the running bundle (`bundleDir`), if any.
 * A missing install.json means defaults; an unreadable or malformed one is an error, not a guess.
 */
export function loadInstall(rootOpt: string | undefined, bundleDir: string): Install {
  const file =
    rootOpt !== undefined
      ? join(rootOpt, 'usr/lib/guard/install.json')
      : join(bundleDir, 'install.json');
  const defaults: Install = {
    root: rootOpt ?? '/',
    user: 'guard',
    group: 'guard',
    auditGroup: 'guard-audit',
    init: detectInit(),
    unitDir: '/etc/systemd/system',
    from: 'defaults',
  };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return defaults;
    throw new InstallInfoError(
      `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)} (it should be root:root 0644; reinstall or fix its mode)`,
    );
  }
  let j: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new Error('not a JSON object');
    j = v as Record<string, unknown>;
  } catch (e) {
    throw new InstallInfoError(
      `${file} is not valid install information (${(e as Error).message}): rerun installer/install.sh`,
    );
  }
  const str = (k: string, d: string): string => {
    const v = j[k];
    if (v === undefined) return d;
    if (typeof v !== 'string' || v === '')
      throw new InstallInfoError(
        `${file}: "${k}" must be a non-empty string: rerun installer/install.sh`,
      );
    return v;
  };
  const init = str('init', defaults.init);
  if (init !== 'systemd' && init !== 'openrc' && init !== 'none') {
    throw new InstallInfoError(
      `${file}: "init" is ${JSON.stringify(init)}, expected systemd, openrc or none: rerun installer/install.sh`,
    );
  }
  return {
    root: rootOpt ?? str('root', '/'),
    user: str('user', defaults.user),
    group: str('group', defaults.group),
    auditGroup: str('auditGroup', defaults.auditGroup),
    init,
    ...(j.node !== undefined ? { node: str('node', '') } : {}),
    unitDir: str('unitDir', defaults.unitDir),
    from: file,
  };
}
