// `guardctl verify`: the checks an auditor would make by hand on a live host, each a line
// `PASS|FAIL|SKIP  <what>: <found>`. A check says what it found, not only whether it liked it.
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadConfig } from '@guard/agent/src/config/load';
import { installPaths, underRoot, type Install } from '../install';
import {
  allPids,
  flagValue,
  groupName,
  guardProgram,
  lookupGroup,
  lookupUser,
  octal,
  readArgv,
  readProc,
  userGids,
  userName,
  type Passwd,
  type ProcInfo,
} from '../procs';

export type Verdict = 'PASS' | 'FAIL' | 'SKIP';
export interface CheckResult {
  verdict: Verdict;
  what: string;
  found: string;
}

const pass = (what: string, found: string): CheckResult => ({ verdict: 'PASS', what, found });
const fail = (what: string, found: string): CheckResult => ({ verdict: 'FAIL', what, found });
const skip = (what: string, found: string): CheckResult => ({ verdict: 'SKIP', what, found });

function describe(st: Stats): string {
  return `${userName(st.uid)}:${groupName(st.gid)} ${octal(st.mode)}`;
}

/**
 * Can `user` (with `gids`) modify this inode, or replace it through `parent`? The owner can always
 * chmod; otherwise the permission bits that apply (owner, else group, else other) decide.
 */
export function writableBy(
  st: { uid: number; gid: number; mode: number },
  uid: number,
  gids: number[],
): string | null {
  if (uid === 0) return 'is root';
  if (st.uid === uid) return 'owned by the user';
  if (gids.includes(st.gid))
    return st.mode & 0o020
      ? `group-writable (group ${groupName(st.gid)} is one of the user's)`
      : null;
  return st.mode & 0o002 ? 'world-writable' : null;
}

/** Sticky directories (like /tmp): write access lets a user replace only entries it owns. */
function canReplaceChild(dir: Stats, child: Stats, uid: number, gids: number[]): string | null {
  const w = writableBy(dir, uid, gids);
  if (!w) return null;
  if (dir.mode & 0o1000 && child.uid !== uid && w !== 'owned by the user') return null;
  return w;
}

export interface VerifyInput {
  install: Install;
  /** the agent's status document, if its socket could be read (it names the agent's pid) */
  agentPidFromStatus: number | null;
  /** guardctl's own pid, never counted as a stray root process */
  selfPid: number;
}

interface GuardProc {
  info: ProcInfo;
  program: string;
  script: string;
}

function guardProcesses(install: Install, config: string, codeDir: string): GuardProc[] {
  const out: GuardProc[] = [];
  for (const pid of allPids()) {
    const argv = readArgv(pid);
    if (!argv) continue;
    const g = guardProgram(argv);
    if (!g || g.program === 'guardctl') continue; // an operator may run guardctl as root
    // this install's programs: run from its code, or with its config (or the default config when ROOT is /)
    const cfg = flagValue(argv, '--config');
    const ours =
      g.script.startsWith(codeDir + '/') ||
      g.script.startsWith(join(install.root, 'usr/sbin') + '/') ||
      cfg === config ||
      (cfg === undefined && install.root === '/');
    if (!ours) continue;
    const info = readProc(pid);
    if (info) out.push({ info, program: g.program, script: g.script });
  }
  return out;
}

const capsZero = (c: NonNullable<ProcInfo['caps']>, bounding: boolean) =>
  c.CapEff === 0n && c.CapPrm === 0n && c.CapAmb === 0n && (!bounding || c.CapBnd === 0n);
const capText = (c: NonNullable<ProcInfo['caps']>) =>
  `CapEff=${c.CapEff.toString(16)} CapPrm=${c.CapPrm.toString(16)} CapAmb=${c.CapAmb.toString(16)} CapBnd=${c.CapBnd.toString(16)}`;

export function runChecks(input: VerifyInput): CheckResult[] {
  const { install } = input;
  const P = installPaths(install);
  const results: CheckResult[] = [];
  const U = install.user;

  // --- the account
  const user = lookupUser(U);
  const gids = user ? userGids(user) : [];
  if (!user) results.push(fail(`user ${U} exists`, 'no such user (getent passwd)'));
  else {
    results.push(
      pass(`user ${U} exists`, `uid ${user.uid}, gid ${user.gid} (${groupName(user.gid)})`),
    );
    results.push(
      /\/(nologin|false)$/.test(user.shell)
        ? pass(`user ${U} has no login shell`, user.shell)
        : fail(
            `user ${U} has no login shell`,
            `shell is ${user.shell || '(empty: /bin/sh)'}; set it with \`usermod -s /usr/sbin/nologin ${U}\``,
          ),
    );
    results.push(homeCheck(user, gids));
  }
  const group = lookupGroup(install.group);
  const audit = lookupGroup(install.auditGroup);
  results.push(
    group
      ? pass(`group ${install.group} exists`, `gid ${group.gid}`)
      : fail(`group ${install.group} exists`, 'no such group'),
  );
  results.push(
    audit
      ? pass(`group ${install.auditGroup} exists`, `gid ${audit.gid}`)
      : fail(`group ${install.auditGroup} exists`, 'no such group'),
  );
  if (user && group) {
    results.push(
      user.gid === group.gid
        ? pass(`user ${U}'s primary group is ${install.group}`, groupName(user.gid))
        : fail(`user ${U}'s primary group is ${install.group}`, `it is ${groupName(user.gid)}`),
    );
  }
  if (user && audit) {
    results.push(
      gids.includes(audit.gid)
        ? pass(
            `user ${U} is in group ${install.auditGroup}`,
            `groups ${gids.map(groupName).join(',')}`,
          )
        : fail(
            `user ${U} is in group ${install.auditGroup}`,
            `groups ${gids.map(groupName).join(',')}: audit sources will be refused (\`usermod -aG ${install.auditGroup} ${U}\`)`,
          ),
    );
  }

  // --- the processes
  const procs = guardProcesses(install, P.config, P.codeDir);
  const helpers = procs.filter((p) => p.program === 'guard-helper');
  if (helpers.length === 0) results.push(fail('guard-helper runs as root', 'not running'));
  for (const h of helpers) {
    const uids = h.info.uids;
    results.push(
      uids === null
        ? fail(
            'guard-helper runs as root',
            `pid ${h.info.pid}: cannot read /proc/${h.info.pid}/status`,
          )
        : uids.every((u) => u === 0)
          ? pass('guard-helper runs as root', `pid ${h.info.pid} uid ${uids.join('/')}`)
          : fail(
              'guard-helper runs as root',
              `pid ${h.info.pid} runs as uid ${uids.join('/')}: it cannot open restricted logs`,
            ),
    );
  }
  const agents = procs.filter(
    (p) => p.program === 'guard-agent' || p.info.pid === input.agentPidFromStatus,
  );
  if (
    input.agentPidFromStatus !== null &&
    !agents.some((a) => a.info.pid === input.agentPidFromStatus)
  ) {
    const info = readProc(input.agentPidFromStatus);
    if (info) agents.push({ info, program: 'guard-agent', script: info.argv[1] ?? '' });
  }
  if (agents.length === 0) {
    results.push(fail(`guard-agent runs as ${U}`, 'not running'));
  }
  const direct = install.init === 'none';
  for (const a of agents) {
    const { pid, uids, caps } = a.info;
    if (uids === null || caps === null) {
      results.push(
        fail(
          `guard-agent runs as ${U}`,
          `pid ${pid}: cannot read /proc/${pid}/status (run verify as root)`,
        ),
      );
      continue;
    }
    results.push(
      user && uids.every((u) => u === user.uid)
        ? pass(`guard-agent runs as ${U}`, `pid ${pid} uid ${uids.join('/')}`)
        : fail(
            `guard-agent runs as ${U}`,
            `pid ${pid} runs as uid ${uids.join('/')} (${userName(uids[1] ?? -1)})`,
          ),
    );
    const what = `guard-agent holds no capabilities${direct ? ' (bounding set empty too)' : ''}`;
    results.push(
      capsZero(caps, direct)
        ? pass(what, `pid ${pid} ${capText(caps)}`)
        : fail(what, `pid ${pid} ${capText(caps)}`),
    );
  }
  const known = new Set([...helpers, ...agents].map((p) => p.info.pid));
  const strays = procs.filter(
    (p) =>
      !known.has(p.info.pid) && p.info.pid !== input.selfPid && p.info.uids?.some((u) => u === 0),
  );
  results.push(
    strays.length === 0
      ? pass(
          'only guard-helper runs as root',
          `${procs.length} guard process${procs.length === 1 ? '' : 'es'} seen`,
        )
      : fail(
          'only guard-helper runs as root',
          strays.map((s) => `pid ${s.info.pid} ${s.script} as root`).join('; '),
        ),
  );

  // --- the files
  type Want = [path: string, owner: string, group: string, mode: number];
  const rootFiles = (files: string[], mode: number): Want[] =>
    files.map((f) => [f, 'root', 'root', mode]);
  const want: Want[] = [
    [P.configDir, 'root', install.group, 0o750],
    [P.config, 'root', install.group, 0o640],
    [P.stateDir, U, install.group, 0o750],
    [P.logDir, U, install.group, 0o750],
    [P.runDir, 'root', install.group, 0o750],
    [P.helperSocket, 'root', install.group, 0o660],
    [P.agentRunDir, U, install.group, 0o750],
    [P.statusSocket, U, install.group, 0o660],
    [P.codeDir, 'root', 'root', 0o755],
    // the code 0644; a Node runtime installed with it (the packages') is a program: 0755
    ...codeFiles(P.codeDir).map((f): Want => [
      f,
      'root',
      'root',
      install.node && f === underRoot(install.root, install.node) ? 0o755 : 0o644,
    ]),
    ...rootFiles(P.wrappers, 0o755),
  ];
  if (install.init === 'systemd') want.push(...rootFiles(P.units, 0o644));
  if (install.init === 'openrc') want.push(...rootFiles(P.initScripts, 0o755));
  for (const [path, owner, grp, mode] of want) {
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      results.push(
        fail(
          `${path} is ${owner}:${grp} ${octal(mode)}`,
          code === 'ENOENT' ? 'missing' : `cannot stat: ${code}`,
        ),
      );
      continue;
    }
    const found = describe(st);
    const ok =
      userName(st.uid) === owner &&
      groupName(st.gid) === grp &&
      (st.mode & 0o7777) === mode &&
      !st.isSymbolicLink();
    results.push(
      ok
        ? pass(`${path} is ${owner}:${grp} ${octal(mode)}`, found)
        : fail(
            `${path} is ${owner}:${grp} ${octal(mode)}`,
            `found ${st.isSymbolicLink() ? 'a symlink ' : ''}${found}`,
          ),
    );
  }
  if (existsSync(P.auditRules)) {
    const st = lstatSync(P.auditRules);
    const ok = st.uid === 0 && st.gid === 0 && (st.mode & 0o7777) === 0o640;
    results.push(
      ok
        ? pass(`${P.auditRules} is root:root 0640`, describe(st))
        : fail(`${P.auditRules} is root:root 0640`, `found ${describe(st)}`),
    );
  } else if (!auditdInstalled(install.root)) {
    results.push(
      skip(
        'audit trail',
        "OFF: auditd is not installed, so there is no audit trail to ship; `install.sh --with-auditd` installs it and loads guard's rules",
      ),
    );
  } else {
    results.push(
      fail(
        `${P.auditRules} is root:root 0640`,
        "missing although auditd is installed: guard's audit rules are not in place; re-run install.sh (--with-auditd also enables auditd)",
      ),
    );
  }

  // --- config and secrets: not writable by the agent user, not readable by the world
  if (user) {
    const secrets: string[] = [];
    try {
      const cfg = loadConfig(P.config);
      for (const s of cfg.sinks)
        if (s.type === 'http')
          for (const f of [s.tokenFile, s.clientKeyFile]) if (f) secrets.push(f);
      results.push(
        pass(
          `${P.config} is valid`,
          `${cfg.sources.length} sources, ${cfg.sinks.length} sinks, ${secrets.length} secrets files`,
        ),
      );
    } catch (e) {
      results.push(fail(`${P.config} is valid`, (e as Error).message.split('\n')[0] ?? String(e)));
    }
    for (const f of [P.config, ...secrets]) results.push(secretCheck(f, user, gids));
    results.push(
      pathChainCheck(
        `${P.configDir} and its parents are not writable by ${U}`,
        [P.config],
        user,
        gids,
        false,
      ),
    );
  }

  // --- installed code: every file, and every directory up to /, not writable by the agent user
  if (user) {
    const files = [...codeFiles(P.codeDir), ...P.wrappers].filter((f) => existsSync(f));
    results.push(pathChainCheck(`installed code is not writable by ${U}`, files, user, gids));
  }

  // --- units
  results.push(...unitChecks(install, P.units));
  return results;
}

/** auditd's tools where a package puts them, in the install's ROOT (verify runs with whatever PATH sudo gives). */
function auditdInstalled(root: string): boolean {
  return ['/usr/sbin/auditctl', '/sbin/auditctl', '/usr/bin/auditctl'].some((p) =>
    existsSync(underRoot(root, p)),
  );
}

function codeFiles(codeDir: string): string[] {
  try {
    return readdirSync(codeDir)
      .sort()
      .map((n) => join(codeDir, n));
  } catch {
    return [];
  }
}

function homeCheck(user: Passwd, gids: number[]): CheckResult {
  const what = `user ${user.name} has no usable home`;
  let st: Stats;
  try {
    st = lstatSync(user.home);
  } catch {
    return pass(what, `${user.home || '(none)'} does not exist`);
  }
  const w = writableBy(st, user.uid, gids);
  return w
    ? fail(what, `${user.home} exists and is ${w} (${describe(st)})`)
    : pass(what, `${user.home} is not writable by ${user.name} (${describe(st)})`);
}

function secretCheck(path: string, user: Passwd, gids: number[]): CheckResult {
  const what = `${path} is not writable by ${user.name} nor world-readable`;
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    return fail(what, `cannot stat: ${(e as NodeJS.ErrnoException).code}`);
  }
  const w = writableBy(st, user.uid, gids);
  const problems = [
    ...(w ? [w] : []),
    ...(st.mode & 0o004 ? ['world-readable'] : []),
    ...(st.isSymbolicLink() ? ['a symlink'] : []),
  ];
  return problems.length
    ? fail(what, `${problems.join(', ')} (${describe(st)})`)
    : pass(what, describe(st));
}

/** Each file, and each directory from it up to /, must be neither writable by the user nor replaceable by it. */
function pathChainCheck(
  what: string,
  files: string[],
  user: Passwd,
  gids: number[],
  checkFiles = true,
): CheckResult {
  const problems: string[] = [];
  const seen = new Set<string>(); // `${dir}\0${child}` pairs checked
  const dirs = new Set<string>();
  for (const f of files) {
    let child: Stats;
    try {
      child = lstatSync(f);
    } catch (e) {
      problems.push(`${f}: cannot stat (${(e as NodeJS.ErrnoException).code})`);
      continue;
    }
    const w = checkFiles ? writableBy(child, user.uid, gids) : null;
    if (w) problems.push(`${f} is ${w} (${describe(child)})`);
    for (let p = f, c = child, d = dirname(f); ; p = d, d = dirname(d)) {
      const key = `${d}\0${p}`;
      if (seen.has(key)) break;
      seen.add(key);
      dirs.add(d);
      const dst = lstatSync(d);
      const dw = canReplaceChild(dst, c, user.uid, gids);
      if (dw && !problems.some((x) => x.startsWith(`${d} `)))
        problems.push(`${d} is ${dw} (${describe(dst)})`);
      if (d === '/') break;
      c = dst; // the next pass asks whether d's parent can replace d
    }
  }
  return problems.length
    ? fail(what, problems.join('; '))
    : pass(
        what,
        `${checkFiles ? `${files.length} files and ` : ''}${dirs.size} directories up to / checked`,
      );
}

/** `systemd-analyze security` exposure: ≤ 0.9 for the helper, ≤ 1.1 for the agent. */
export const UNIT_LIMITS: Record<string, number> = {
  'guard-helper.service': 0.9,
  'guard-agent.service': 1.1,
};

export function parseExposure(output: string): number | null {
  const m = /Overall exposure level for \S+:\s*([0-9.]+)/.exec(output);
  return m ? Number(m[1]) : null;
}

function unitChecks(install: Install, units: string[]): CheckResult[] {
  if (install.init !== 'systemd') {
    return [
      skip(
        'units are hardened',
        install.init === 'none'
          ? 'init is none: no init system supervises guard here (direct mode), so there are no units to check'
          : 'init is openrc: OpenRC scripts have no systemd-analyze measure',
      ),
    ];
  }
  const out: CheckResult[] = [];
  for (const unit of units) {
    const name = unit.split('/').pop()!;
    const limit = UNIT_LIMITS[name]!;
    const what = `${name} is hardened (systemd-analyze security ≤ ${limit})`;
    if (!existsSync(unit)) {
      out.push(fail(what, `${unit} is missing`));
      continue;
    }
    let text: string;
    try {
      text = execFileSync(
        'systemd-analyze',
        [
          'security',
          '--offline=true',
          ...(install.root !== '/' ? [`--root=${install.root}`] : []),
          unit,
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 },
      );
    } catch (e) {
      const err = e as { code?: string; stdout?: string; stderr?: string };
      if (err.code === 'ENOENT') {
        out.push(skip(what, 'systemd-analyze is not installed'));
        continue;
      }
      text = `${err.stdout ?? ''}${err.stderr ?? ''}`; // it exits non-zero above its own threshold
    }
    const score = parseExposure(text);
    out.push(
      score === null
        ? fail(what, `could not read a score: ${text.trim().split('\n').pop() ?? ''}`)
        : score <= limit
          ? pass(what, `exposure ${score}`)
          : fail(what, `exposure ${score}`),
    );
  }
  return out;
}

export function formatResult(r: CheckResult): string {
  return `${r.verdict}  ${r.what}: ${r.found}`;
}
