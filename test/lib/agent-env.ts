// The world of an agent system test: throwaway users, a sandbox, the real helper as root, a real
// HTTPS receiver with a CA made for the test, and guard-agent run as the agent user.
import { connect } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { Helper } from './helper';
import { Receiver, makeTestCa } from './https-receiver';
import { teardownEnv } from './env';
import { killPid, sleep, start } from './proc';
import { Sandbox } from './sandbox';
import { TestUsers, type TestUser } from './users';

export interface AgentEnv {
  users: TestUsers;
  agent: TestUser;
  auditGroup: { name: string; gid: number };
  sb: Sandbox;
  receiver: Receiver;
  helper: Helper;
  config: string;
  logs: string;
  state: string;
  statusSocket: string;
}

export interface AgentEnvOptions {
  /** extra lines for [agent] */
  agentKeys?: string[];
  /** [source.*] and extra [sink.*] sections; default: one syslog source on logs/*.log */
  sources?: (env: AgentEnv) => string;
  /** The [sink.siem] http sink to env.receiver (default true). Without it the sinks of `sources`
   *  alone move the checkpoints (a second sink lagging behind would make a crash resend more). */
  siemSink?: boolean;
}

export function agentConfig(env: AgentEnv, opts: AgentEnvOptions): string {
  const s = env.sb.dir;
  return [
    '[agent]',
    `user = ${env.agent.name}`,
    `helper_socket = ${s}/run/helper.sock`,
    `status_socket = ${env.statusSocket}`,
    `state_dir = ${env.state}`,
    'poll_interval_ms = 100',
    'rotate_check_interval_ms = 200',
    'rescan_interval_ms = 1000',
    'partial_line_timeout_ms = 1000',
    ...(opts.agentKeys ?? []),
    '',
    '[helper]',
    `audit_group = ${env.auditGroup.name}`,
    '',
    opts.sources
      ? opts.sources(env)
      : [
          '[source.app]',
          'type = file',
          `paths = ${env.logs}/*.log`,
          'parser = syslog',
          'start_at = beginning',
          '',
        ].join('\n'),
    ...(opts.siemSink === false
      ? []
      : [
          '[sink.siem]',
          'type = http',
          `url = ${env.receiver.url}`,
          `ca_file = ${s}/etc/ca.pem`,
          'retry_initial_ms = 100',
          'retry_max_ms = 1000',
          '',
        ]),
  ].join('\n');
}

export async function setupAgentEnv(opts: AgentEnvOptions = {}): Promise<AgentEnv> {
  const users = new TestUsers();
  const env = { users } as AgentEnv;
  try {
    env.auditGroup = users.group('aud');
    env.agent = users.user('agent', [env.auditGroup.name]);
    env.sb = new Sandbox();
    const owner = { uid: env.agent.uid, gid: env.agent.gid };
    env.sb.mkdir('etc');
    env.sb.mkdir('run');
    env.sb.mkdir('run/agent', 0o750, owner);
    env.statusSocket = env.sb.path('run/agent/agent.sock');
    env.state = env.sb.mkdir('state', 0o750, owner);
    env.logs = env.sb.mkdir('logs', 0o700); // root-only: the agent can reach these files only through the helper
    const ca = makeTestCa(env.sb.mkdir('ca', 0o700));
    env.sb.file('etc/ca.pem', require('node:fs').readFileSync(ca.caCert, 'utf8'), 0o644);
    env.receiver = await Receiver.start(ca);
    env.config = env.sb.writeConfig('etc/guard.conf', agentConfig(env, opts), 0o640, {
      uid: 0,
      gid: env.agent.gid,
    });
    env.helper = await Helper.start({
      helperJs: env.sb.helperJs,
      config: env.config,
      socket: env.sb.path('run/helper.sock'),
    });
    return env;
  } catch (e) {
    await teardownAgentEnv(env);
    throw e;
  }
}

export async function teardownAgentEnv(env: Partial<AgentEnv> | undefined): Promise<void> {
  try {
    await env?.receiver?.down();
  } catch {
    /* ignore */
  }
  await teardownEnv(env);
}

/** guard-agent, run as the agent user; its pino lines collected. */
export class AgentProcess {
  readonly lines: Record<string, unknown>[] = [];
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr = '';

  /** `extraFds`: descriptors the agent inherits as fd 3, 4, … (strays it must close); `prefix`: a
   *  command that execs the agent (same pid), e.g. prlimit for a descriptor limit. */
  constructor(env: AgentEnv, opts: { extraFds?: number[]; prefix?: string[] } = {}) {
    const argv = [env.sb.agentJs, '--config', env.config];
    const [cmd, args] = opts.prefix?.length
      ? [opts.prefix[0]!, [...opts.prefix.slice(1), process.execPath, ...argv]]
      : [process.execPath, argv];
    this.proc = start(cmd, args, { user: env.agent, extraFds: opts.extraFds });
    let buf = '';
    this.proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.lines.push({ raw: line });
        }
      }
    });
    this.proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) => this.proc.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  static async start(env: AgentEnv, opts: { prefix?: string[] } = {}): Promise<AgentProcess> {
    const a = new AgentProcess(env, opts);
    await a.waitFor(
      (l) => l.msg === 'guard-agent running' || l.msg === 'status socket listening',
      15_000,
    );
    return a;
  }

  async waitFor(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs = 10_000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find(pred);
      if (hit) return hit;
      if (this.proc.exitCode !== null)
        throw new Error(`guard-agent exited ${this.proc.exitCode}: ${this.dump()}`);
      if (Date.now() > deadline) throw new Error(`timed out; guard-agent said: ${this.dump()}`);
      await sleep(50);
    }
  }

  dump(n = 15): string {
    return [...this.lines.slice(-n).map((l) => JSON.stringify(l)), this.stderr.slice(-2000)].join(
      '\n',
    );
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.proc.exitCode !== null) return this.proc.exitCode;
    killPid(this.pid, signal);
    return this.exited;
  }
}

/** Reads the agent's status document from its socket (as root). */
export function readStatus(env: AgentEnv): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const c = connect(env.statusSocket);
    let data = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      data += d;
    });
    c.on('end', () => {
      try {
        resolve(JSON.parse(data) as Record<string, any>);
      } catch (e) {
        reject(e);
      }
    });
    c.on('error', reject);
  });
}

/** Waits until cond() holds, polling. */
export async function until(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}
