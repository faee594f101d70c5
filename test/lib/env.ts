// The common world of a helper system test: users, a sandbox with logs and a root-only secret, a
// config, a running guard-helper, and the check that it still serves after an attack.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Helper, type HelperOptions } from './helper';
import { hello, open, runPeer, reply, type Action, type PeerOutput } from './peer';
import { killAll, sleep } from './proc';
import { Sandbox } from './sandbox';
import { TestUsers, type TestUser } from './users';

export interface Env {
  sb: Sandbox;
  users: TestUsers;
  /** the configured agent user: own primary group (the socket's group), member of the audit group */
  agent: TestUser;
  /** an agent-like user NOT in the audit group (served only by a second helper configured for it) */
  agent2: TestUser;
  /** a different uid whose supplementary groups include the agent's group, so it can connect */
  other: TestUser;
  /** owns logs/app (and whatever else a test gives it) */
  attacker: TestUser;
  auditGroup: { name: string; gid: number };
  socket: string;
  config: string;
  helper: Helper;
  helperOptions: HelperOptions;
  /** the helper's descriptor count once warmed up, no client connected */
  baselineFds: number;
  baselineRssKiB: number;
  secretText: string;
  rootOnlyText: string;
  publicText: string;
  /** the legit file every test opens at the end: root-owned 0600, only the helper can hand it out */
  legitPath: string;
}

export interface EnvOptions {
  /** extra config sections, appended after the standard ones */
  extraConfig?: (env: Env) => string;
  /** extra sandbox layout, run before the helper starts */
  layout?: (env: Env) => void;
  /** commands the helper runs under (see onlyWalk in ./helper) */
  helperPrefix?: string[];
}

export function standardConfig(
  env: Pick<Env, 'sb' | 'agent' | 'auditGroup'>,
  agentName = env.agent.name,
): string {
  const s = env.sb.dir;
  return [
    '; guard system test config',
    '[agent]',
    `user = ${agentName}`,
    '',
    '[helper]',
    `audit_group = ${env.auditGroup.name}`,
    '',
    '[source.app]',
    'type = file',
    `paths = ${s}/logs/app/*.log, ${s}/logs/root-only.log`,
    '',
    '[source.audit]',
    'type = audit',
    `paths = ${s}/audit/audit.log`,
    '',
  ].join('\n');
}

export async function setupEnv(opts: EnvOptions = {}): Promise<Env> {
  const users = new TestUsers();
  const partial: Partial<Env> = { users };
  try {
    const auditGroup = users.group('aud');
    const agent = users.user('agent', [auditGroup.name]);
    const agent2 = users.user('agent2');
    const other = users.user('other', [agent.group]);
    const attacker = users.user('att');
    const sb = new Sandbox();
    Object.assign(partial, { sb, auditGroup, agent, agent2, other, attacker });
    const env = partial as Env;
    env.secretText = `SECRET-${randomBytes(8).toString('hex')}\n`;
    env.rootOnlyText = `ROOT-ONLY-LOG ${randomBytes(4).toString('hex')}\n`;
    env.publicText = 'PUBLIC-A line one\n';
    sb.mkdir('etc');
    sb.mkdir('run');
    sb.mkdir('secret', 0o700);
    sb.file('secret/secret.txt', env.secretText, 0o600);
    sb.file('secret/a.log', env.secretText, 0o600);
    sb.mkdir('logs');
    sb.mkdir('logs/app', 0o755, attacker);
    sb.file('logs/app/a.log', env.publicText, 0o644, attacker);
    env.legitPath = sb.file('logs/root-only.log', env.rootOnlyText, 0o600);
    sb.mkdir('audit', 0o750);
    sb.file('audit/audit.log', 'type=DAEMON_START msg=audit(1700000000.000:1): op=start\n', 0o600);
    env.socket = sb.path('run', 'helper.sock');
    opts.layout?.(env);
    env.config = sb.writeConfig(
      'etc/guard.conf',
      standardConfig(env) + (opts.extraConfig ? `\n${opts.extraConfig(env)}\n` : ''),
    );
    env.helperOptions = {
      helperJs: sb.helperJs,
      config: env.config,
      socket: env.socket,
      ...(opts.helperPrefix ? { prefix: opts.helperPrefix } : {}),
    };
    await startMainHelper(env);
    return env;
  } catch (e) {
    await teardownEnv(partial);
    throw e;
  }
}

async function startMainHelper(env: Env): Promise<void> {
  env.helper = await Helper.start(env.helperOptions);
  // warm up (first connection), then take the baseline with nobody connected
  await legitOpen(env);
  await sleep(300);
  env.baselineFds = env.helper.fdCount();
  env.baselineRssKiB = env.helper.rssKiB();
}

/**
 * For beforeEach: when an earlier test left the helper dead or holding descriptors (that test
 * has already failed for it), start a fresh one so the failure does not cascade into every later
 * test. Returns a note saying what was wrong, or null.
 */
export async function ensureHealthyHelper(env: Env | undefined): Promise<string | null> {
  if (!env?.helper) return null;
  let why: string | null = null;
  if (!env.helper.running)
    why = `guard-helper had exited; its last lines: ${env.helper.dump(2).replace(/\n/g, ' | ')}`;
  else {
    const n = await env.helper.settleFds(env.baselineFds, 1000);
    if (n > env.baselineFds)
      why = `guard-helper held ${n} descriptors (baseline ${env.baselineFds})`;
  }
  if (!why) return null;
  await env.helper.stop();
  await startMainHelper(env);
  console.log(`[restarted guard-helper before this test: ${why}]`);
  return why;
}

export async function teardownEnv(env: Partial<Env> | undefined): Promise<void> {
  if (!env) return;
  try {
    await env.helper?.stop();
  } catch {
    /* ignore */
  }
  await killAll();
  const problems = env.users?.cleanup() ?? [];
  try {
    env.sb?.cleanup();
  } catch (e) {
    problems.push(String(e));
  }
  if (problems.length) console.error(`teardown: ${problems.join('; ')}`);
}

/** The agent opens the legit file on a fresh connection: granted, with a descriptor onto its content. */
export async function legitOpen(
  env: Env,
  helper: Helper = env.helper,
  socket = env.socket,
  user: TestUser = env.agent,
): Promise<void> {
  const out = await runPeer(env.sb, user, socket, [
    { a: 'connect' },
    { a: 'req', json: hello },
    { a: 'req', json: open(env.legitPath), read: 64 },
  ]);
  const h = reply(out, 1);
  assert.equal(h.json?.ok, true, `hello refused: ${JSON.stringify(h)}\n${helper.dump()}`);
  const r = reply(out, 2);
  assert.equal(r.json?.ok, true, `legit open refused: ${JSON.stringify(r)}\n${helper.dump()}`);
  assert.equal(r.gotFd, true, 'legit open granted without a descriptor');
  assert.equal(r.head, env.rootOnlyText, 'the descriptor does not read the legit file');
  assert.equal(r.writable, false, 'the descriptor handed out is writable');
  assert.equal(out.unexpectedFds, 0);
}

/**
 * The end of every attack: the helper is alive, a legit open is still granted, and its descriptor
 * table is back to the baseline. Returns the descriptor count seen.
 */
export async function assertStillServing(
  env: Env,
  helper: Helper = env.helper,
  baseline = env.baselineFds,
  socket = env.socket,
  user: TestUser = env.agent,
): Promise<number> {
  assert.ok(helper.running, `guard-helper is not running any more\n${helper.dump()}`);
  await legitOpen(env, helper, socket, user);
  const n = await helper.settleFds(baseline);
  assert.ok(
    n <= baseline,
    `helper descriptors not back to baseline: ${n} > ${baseline}\n${helper.fdList().join('\n')}`,
  );
  return n;
}

/** Asserts a reply is a refusal with one of `codes` and came with no descriptor. */
export function assertRefused(
  r:
    | { json?: { ok?: boolean; error?: string } | undefined; gotFd?: boolean; head?: string }
    | undefined,
  codes: string | string[],
  what: string,
): void {
  const want = Array.isArray(codes) ? codes : [codes];
  assert.ok(r, `${what}: no reply`);
  assert.notEqual(r.gotFd, true, `${what}: a descriptor was sent (head ${JSON.stringify(r.head)})`);
  assert.equal(r.json?.ok, false, `${what}: not refused: ${JSON.stringify(r)}`);
  assert.ok(
    want.includes(String(r.json?.error)),
    `${what}: error ${JSON.stringify(r.json?.error)}, expected ${want.join(' or ')}: ${JSON.stringify(r)}`,
  );
}

export async function agentPeer(
  env: Env,
  actions: Action[],
  timeoutMs?: number,
): Promise<PeerOutput> {
  return runPeer(
    env.sb,
    env.agent,
    env.socket,
    actions,
    timeoutMs !== undefined ? { timeoutMs } : {},
  );
}
