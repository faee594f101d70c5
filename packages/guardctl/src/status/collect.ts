// Gathering `guardctl status`: the agent's status document from its socket, the helper from its
// pid file or /proc and its socket from lstat, auditd from /proc and auditctl. Nothing here writes
// or needs root; what a group member cannot see is reported as such.
import { execFileSync } from 'node:child_process';
import { lstatSync } from 'node:fs';
import { connect } from 'node:net';
import type { AgentStatus } from '@guard/agent/src/status/status';
import type { Install } from '../install';
import {
  allPids,
  flagValue,
  groupName,
  guardProgram,
  octal,
  readArgv,
  readPidFile,
  readProc,
  userName,
} from '../procs';
import type { AuditView, HelperView, StatusReport } from './report';

/** The status socket could not be read for a reason the operator must fix first (not "the agent is down"). */
export class StatusAccessError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function readAgentStatus(
  socket: string,
  install: Install,
  timeoutMs = 3000,
): Promise<AgentStatus> {
  return new Promise((resolve, reject) => {
    const c = connect(socket);
    let data = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(
        new Error(
          `no answer on ${socket} within ${timeoutMs / 1000} s (is guard-agent stuck? see its log)`,
        ),
      );
    }, timeoutMs);
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      data += d;
      if (data.length > 16 * 1024 * 1024)
        c.destroy(new Error('status document larger than 16 MiB'));
    });
    c.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(data) as AgentStatus);
      } catch {
        reject(
          new Error(
            `${socket} did not send a status document (is this guard-agent's status socket?)`,
          ),
        );
      }
    });
    c.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'EACCES' || e.code === 'EPERM') {
        reject(
          new StatusAccessError(
            'permission_denied',
            `cannot read ${socket} as ${userName(process.getuid?.() ?? -1)} (uid ${process.getuid?.()}): ` +
              `run as root or as a member of group ${install.group} (\`sudo usermod -aG ${install.group} USER\`, then log in again)`,
          ),
        );
        return;
      }
      const why: Record<string, string> = {
        ENOENT: 'no status socket (is guard-agent running?)',
        ECONNREFUSED: 'connection refused (guard-agent is not running; its socket is left over)',
        ENOTDIR: 'a component of the path is not a directory (check --status-socket)',
      };
      reject(new Error(`${socket}: ${why[e.code ?? ''] ?? `${e.code ?? ''} ${e.message}`}`));
    });
  });
}

function helperPid(
  pidFile: string,
  socket: string,
  defaultSocket: string,
): { pid: number; foundBy: 'pid file' | 'proc' } | null {
  const fromFile = readPidFile(pidFile);
  if (fromFile !== null) {
    const argv = readArgv(fromFile);
    if (argv && guardProgram(argv)?.program === 'guard-helper')
      return { pid: fromFile, foundBy: 'pid file' };
  }
  // The helper serving this socket: `--socket S`, or no --socket and S is the default (socket activation).
  for (const pid of allPids()) {
    const argv = readArgv(pid);
    if (!argv || guardProgram(argv)?.program !== 'guard-helper') continue;
    const s = flagValue(argv, '--socket');
    if (s === socket || (s === undefined && socket === defaultSocket))
      return { pid, foundBy: 'proc' };
  }
  return null;
}

export function viewHelper(socket: string, pidFile: string, defaultSocket: string): HelperView {
  const found = helperPid(pidFile, socket, defaultSocket);
  const view: HelperView = {
    pid: found?.pid ?? null,
    foundBy: found?.foundBy ?? null,
    uid: null,
    user: null,
    uidNote: null,
    socket: {
      path: socket,
      exists: false,
      isSocket: false,
      mode: null,
      owner: null,
      group: null,
      error: null,
    },
  };
  if (found) {
    const p = readProc(found.pid);
    if (p?.uids) {
      view.uid = p.uids[1] ?? p.uids[0] ?? null;
      view.user = view.uid === null ? null : userName(view.uid);
    } else {
      view.uidNote = 'unknown (cannot see: /proc is mounted with hidepid)';
    }
  }
  try {
    const st = lstatSync(socket);
    Object.assign(view.socket, {
      exists: true,
      isSocket: st.isSocket(),
      mode: octal(st.mode),
      owner: userName(st.uid),
      group: groupName(st.gid),
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    view.socket.error =
      code === 'EACCES' ? 'cannot see: permission denied on its directory' : (code ?? String(e));
    // EACCES: it may well exist; we cannot tell, so do not call the helper down for it
    if (code === 'EACCES') Object.assign(view.socket, { exists: true, isSocket: true });
  }
  return view;
}

export function viewAudit(agent: AgentStatus | null): AuditView {
  let auditdRunning: boolean | null = false;
  let sawAny = false;
  for (const pid of allPids()) {
    const argv = readArgv(pid);
    if (!argv) continue;
    sawAny = true;
    if (argv[0] === 'auditd' || argv[0]?.endsWith('/auditd')) {
      auditdRunning = true;
      break;
    }
  }
  if (!sawAny) auditdRunning = null;

  let guardRules: number | null = null;
  let guardRulesNote: string | null = null;
  if (process.getuid?.() !== 0) guardRulesNote = 'unknown (needs root)';
  else {
    try {
      const out = execFileSync('auditctl', ['-l'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 5000,
      });
      guardRules = out.split('\n').filter((l) => l.includes('guard-')).length;
    } catch (e) {
      const err = e as { code?: string; stderr?: string };
      guardRulesNote =
        err.code === 'ENOENT'
          ? 'none: the audit trail is OFF, auditd is not installed (install.sh --with-auditd turns it on)'
          : `unknown (auditctl -l failed: ${
              String(err.stderr ?? '')
                .trim()
                .split('\n')[0] || 'no reason given'
            })`;
    }
  }

  let accessGranted: boolean | null = null;
  let accessNote: string | null = null;
  const auditSources = agent?.sources.filter((s) => s.type === 'audit') ?? [];
  if (!agent) accessNote = 'unknown (agent unreachable)';
  else if (auditSources.length === 0) accessNote = 'no audit source configured';
  else {
    const files = auditSources.flatMap((s) => s.files);
    const refused = files.find((f) => f.state === 'refused' && f.refusal?.code === 'audit_group');
    if (files.some((f) => f.state === 'flowing' || f.state === 'idle' || f.state === 'rotated'))
      accessGranted = true;
    else if (refused) {
      accessGranted = false;
      accessNote = `audit_group: ${refused.refusal?.message ?? ''}`;
    } else accessNote = 'unknown (no audit file open yet)';
  }
  return { auditdRunning, guardRules, guardRulesNote, accessGranted, accessNote };
}

export async function collectStatus(
  paths: {
    statusSocket: string;
    helperSocket: string;
    helperPid: string;
    defaultHelperSocket: string;
  },
  install: Install,
): Promise<StatusReport> {
  let agent: AgentStatus | null = null;
  let agentError: string | null = null;
  try {
    agent = await readAgentStatus(paths.statusSocket, install);
  } catch (e) {
    if (e instanceof StatusAccessError) throw e;
    agentError = (e as Error).message;
  }
  return {
    statusSocket: paths.statusSocket,
    agent,
    agentError,
    helper: viewHelper(paths.helperSocket, paths.helperPid, paths.defaultHelperSocket),
    audit: viewAudit(agent),
  };
}
