// The audit trail end to end: guard's rule set loaded into a real auditd (a private one, its log in
// the sandbox), the real helper as root, the real agent as a test user in the test audit group,
// events triggered on purpose and checked at the HTTPS receiver: grouped, keyed guard-…, argv
// decoded. Then the agent's user leaves the audit group: its audit source is refused and status
// says why. Afterwards exactly the rules this test loaded are removed and its auditd is stopped.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  asLoginUser,
  auditdRunning,
  auditStatus,
  startPrivateAuditd,
  systemAuditLog,
} from './lib/audit';
import {
  AgentProcess,
  readStatus,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';
import { killPid, sleep } from './lib/proc';
import { repoRoot } from './lib/sandbox';

const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' });
const guardRules = () =>
  sh('auditctl', ['-l'])
    .stdout.split('\n')
    .filter((l) => / -k guard-|key=guard-/.test(l));

type Received = {
  message: string;
  fields?: Record<string, any>;
  flags?: string[];
  parser?: string;
};

describe('audit events end to end (real auditd, guard rules, helper as root, agent in the audit group)', () => {
  let env: AgentEnv;
  let agent: AgentProcess | null = null;
  let auditd: ChildProcess | null = null;
  let enabledBefore = '0';
  const rulesBefore: string[] = [];
  let auditLog = '';

  before(async () => {
    enabledBefore = auditStatus().enabled ?? '0';
    rulesBefore.push(...guardRules());
    assert.deepEqual(
      rulesBefore,
      [],
      'guard- rules are already loaded on this machine: refusing to touch them',
    );
    // Use the auditd that runs (its own log), or start a private one with its log in the sandbox.
    const running = auditdRunning();
    env = await setupAgentEnv({
      sources: (e) =>
        [
          '[source.audit]',
          'type = audit',
          `paths = ${running ? systemAuditLog() : e.sb.path('audit/audit.log')}`,
          'start_at = end',
          '',
        ].join('\n'),
    });
    if (!running) {
      env.sb.mkdir('audit', 0o700);
      auditLog = env.sb.path('audit/audit.log');
      auditd = await startPrivateAuditd(env.sb.mkdir('auditd', 0o700), auditLog);
      for (let i = 0; i < 50 && !existsSync(auditLog); i++) await sleep(100);
    } else {
      auditLog = systemAuditLog();
      console.log(`# using the auditd that runs (pid ${auditStatus().pid}), log ${auditLog}`);
    }
    const load = sh('bash', [
      join(repoRoot, 'audit-rules/load.sh'),
      '--out',
      env.sb.path('etc/50-guard.rules'),
      '--guard-uid',
      String(env.agent.uid),
      join(repoRoot, 'audit-rules/50-guard.rules.in'),
    ]);
    assert.match(
      load.stdout + load.stderr,
      /\d+ rules loaded, 0 rejected/,
      load.stdout + load.stderr,
    );
    agent = await AgentProcess.start(env);
  });

  after(async () => {
    await agent?.stop();
    sh('bash', [join(repoRoot, 'audit-rules/unload.sh')]);
    const left = guardRules();
    if (auditd?.pid) {
      killPid(auditd.pid, 'SIGTERM');
      await new Promise((r) => auditd!.once('exit', r));
    }
    sh('auditctl', ['-e', enabledBefore]);
    await teardownAgentEnv(env);
    assert.deepEqual(left, [], 'unload removed every rule this test loaded');
  });

  it('ships whole events: keyed guard-…, records grouped, argv with spaces and quotes decoded', async () => {
    const tag = `guardtest${process.pid}`;
    // a write to a watched directory (guard-systemd), then a failed open of a protected file by an
    // ordinary login (guard-access), then a privileged command run with awkward arguments (guard-priv)
    asLoginUser(
      4242,
      0,
      `touch /etc/systemd/system/${tag}.tmp; rm -f /etc/systemd/system/${tag}.tmp`,
    );
    asLoginUser(4242, 4242, 'cat /etc/shadow');
    asLoginUser(4242, 4242, `/usr/bin/passwd "two words ${tag}" 'a "quoted" arg' || true`);

    const events = () => env.receiver.events as unknown as Received[];
    const keyed = (k: string) => events().filter((e) => [e.fields?.key].flat().includes(k));
    await until(
      () =>
        keyed('guard-systemd').length > 0 &&
        keyed('guard-access').length > 0 &&
        keyed('guard-priv').some((e) => JSON.stringify(e.fields?.argv ?? '').includes(tag)),
      30_000,
      'guard-systemd, guard-access and guard-priv events at the receiver',
    ).catch((e: Error) => {
      throw new Error(
        `${e.message}; keys seen: ${JSON.stringify([...new Set(events().map((x) => x.fields?.key))])}`,
      );
    });

    const write = keyed('guard-systemd').find((e) =>
      JSON.stringify(e.fields?.paths ?? []).includes(tag),
    )!;
    assert.ok(write, 'the write names the file');
    assert.ok(
      (write.fields!.records as unknown[]).length >= 3,
      'SYSCALL, CWD, PATH… grouped into one event',
    );
    assert.equal(write.parser, 'audit');

    const denied = keyed('guard-access').find((e) => e.fields?.exe === '/usr/bin/cat')!;
    assert.ok(denied, 'the refused open is there');
    assert.equal(denied.fields!.success, false);
    assert.equal(denied.fields!.exitName, 'EACCES');
    assert.equal(denied.fields!.auid, 4242);

    const priv = keyed('guard-priv').find((e) =>
      JSON.stringify(e.fields?.argv ?? '').includes(tag),
    )!;
    assert.deepEqual(priv.fields!.argv, ['/usr/bin/passwd', `two words ${tag}`, 'a "quoted" arg']);
    assert.ok(!('uid=0' in (priv.fields as object)), 'no field invented from argument text');
    assert.match(priv.message, /type=EXECVE/, 'the raw records travel with the event');
    if (process.env.GUARD_PRINT_AUDIT_EXAMPLE) console.log(JSON.stringify(priv, null, 1));
  });

  it('removing the agent user from the audit group revokes audit access, and status says why', async () => {
    sh('gpasswd', ['-d', env.agent.name, env.auditGroup.name]);
    await agent!.stop();
    agent = await AgentProcess.start(env); // group lists are fixed per process: a restart picks it up
    await until(
      async () => Boolean((await readStatus(env)).sources[0].listError),
      15_000,
      'the refusal in status',
    );
    const source = (await readStatus(env)).sources[0];
    assert.match(source.listError, /^audit_group: .*audit group/, source.listError);
    assert.ok(
      !source.files.some((f: { state: string }) => f.state === 'flowing'),
      'nothing of the audit trail is read any more',
    );
  });
});
