// Attack 6: the configuration. The helper refuses to start on a config someone other than root
// could have written (StrictModes-like); SIGHUP reloads it and a removed source is refused from
// then on, on old and new connections; the deny-list wins over any glob; `guardctl probe`
// reports grants and refusals with the right exit codes.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, statSync, writeFileSync } from 'node:fs';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  agentPeer,
  ensureHealthyHelper,
  assertRefused,
  assertStillServing,
  setupEnv,
  standardConfig,
  teardownEnv,
  type Env,
} from './lib/env';
import { Helper } from './lib/helper';
import { hello, open, probe, reply, runPeer, type Action } from './lib/peer';

describe('guard-helper configuration', () => {
  let env: Env;
  let goodConfig = '';
  const extraSection = (e: Env): string =>
    ['[source.extra]', 'type = file', `paths = ${e.sb.dir}/logs/extra/*.log`].join('\n');
  const denySection = (e: Env): string => {
    const s = e.sb.dir;
    return [
      '[source.deny]',
      'type = file',
      `paths = /etc/*shadow, /etc/*shadow-, /etc/guard/*, /dev/*, /sys/kernel/*, /proc/self/*, /proc/*/environ, /etc/ssh/ssh_host_*, ${s}/keys/*, ${s}/logs/app/*`,
    ].join('\n');
  };
  before(async () => {
    env = await setupEnv({
      layout: (e) => {
        e.sb.mkdir('logs/extra');
        e.sb.file('logs/extra/x.log', 'EXTRA\n', 0o600);
        e.sb.mkdir('keys', 0o700);
        for (const k of [
          'server.key',
          'tls.key',
          'ssh_host_ed25519_key',
          'ssh_host_rsa_key',
          'id_rsa',
          'id_rsa.pub',
          'id_ed25519',
          'id_ecdsa',
        ]) {
          e.sb.file(`keys/${k}`, `KEY ${k}\n`, 0o600);
        }
        e.sb.file('logs/app/stolen.key', 'KEY in an allowed dir\n', 0o644, e.attacker);
      },
      extraConfig: (e) => `${extraSection(e)}\n\n${denySection(e)}`,
    });
    goodConfig = standardConfig(env) + `\n${extraSection(env)}\n\n${denySection(env)}\n`;
  });
  after(async () => {
    await teardownEnv(env);
  });
  beforeEach(async () => {
    await ensureHealthyHelper(env);
  });

  /** Starts a helper on `config`; it must exit 1 with a config_error naming `culprit` (a path). */
  async function expectRefusalToStart(
    label: string,
    config: string,
    culprit?: string,
  ): Promise<void> {
    const r = await Helper.startExpectingExit({
      helperJs: env.sb.helperJs,
      config,
      socket: env.sb.path('run', `refuse-${label}.sock`),
    });
    const why = JSON.stringify(r.logs);
    assert.equal(r.listened, false, `${label}: the helper started listening: ${why}`);
    assert.equal(r.code, 1, `${label}: exit ${r.code} (${r.signal}): ${why}`);
    const e = r.logs.find((x) => x.event === 'config_error');
    assert.ok(e, `${label}: no config_error log line: ${why}`);
    assert.equal(typeof e.message, 'string');
    assert.ok(String(e.message).length > 0);
    if (culprit)
      assert.ok(
        String(e.message).includes(culprit),
        `${label}: the message does not name ${culprit}: ${String(e.message)}`,
      );
    console.log(`${label}: config_error: ${String(e.message)}`);
  }

  it('refuses to start when the config file is group-writable', async () => {
    const p = env.sb.writeConfig('etc/group-writable.conf', goodConfig, 0o664);
    await expectRefusalToStart('group-writable', p, p);
  });

  it('refuses to start when the config file is other-writable', async () => {
    const p = env.sb.writeConfig('etc/other-writable.conf', goodConfig, 0o646);
    await expectRefusalToStart('other-writable', p, p);
  });

  it('refuses to start when the config file is owned by a non-root user', async () => {
    const p = env.sb.writeConfig('etc/not-root.conf', goodConfig, 0o644, env.attacker);
    await expectRefusalToStart('owned-by-attacker', p, p);
  });

  it('refuses to start when a parent directory is other-writable (also with the sticky bit, like /tmp)', async () => {
    env.sb.mkdir('ow', 0o757);
    await expectRefusalToStart(
      'parent-other-writable',
      env.sb.writeConfig('ow/guard.conf', goodConfig),
      env.sb.path('ow'),
    );
    env.sb.mkdir('sticky', 0o1777);
    await expectRefusalToStart(
      'parent-sticky',
      env.sb.writeConfig('sticky/guard.conf', goodConfig),
      env.sb.path('sticky'),
    );
    env.sb.mkdir('gw', 0o775);
    await expectRefusalToStart(
      'parent-group-writable',
      env.sb.writeConfig('gw/guard.conf', goodConfig),
      env.sb.path('gw'),
    );
    // a grandparent
    env.sb.mkdir('ow2', 0o777);
    env.sb.mkdir('ow2/sub', 0o755);
    await expectRefusalToStart(
      'grandparent-other-writable',
      env.sb.writeConfig('ow2/sub/guard.conf', goodConfig),
      env.sb.path('ow2'),
    );
  });

  it('refuses to start when a parent directory is owned by a non-root user', async () => {
    env.sb.mkdir('attdir', 0o755, env.attacker);
    await expectRefusalToStart(
      'parent-owned-by-attacker',
      env.sb.writeConfig('attdir/guard.conf', goodConfig),
      env.sb.path('attdir'),
    );
  });

  it('refuses to start when the config is a symlink into a directory the attacker controls', async () => {
    // the link itself sits in a root-only directory, but the file it names can be replaced by the attacker
    env.sb.mkdir('logs/app/cfg', 0o755, env.attacker);
    env.sb.writeConfig('logs/app/cfg/guard.conf', goodConfig);
    const link = env.sb.symlink(env.sb.path('logs/app/cfg/guard.conf'), 'etc/link.conf');
    await expectRefusalToStart('symlink-to-attacker-dir', link);
  });

  it('refuses to start when the config is missing or unparsable', async () => {
    await expectRefusalToStart('missing', env.sb.path('etc/no-such.conf'));
    await expectRefusalToStart(
      'no-agent-user',
      env.sb.writeConfig(
        'etc/no-agent.conf',
        '[source.app]\ntype = file\npaths = /var/log/syslog\n',
      ),
    );
  });

  it('SIGHUP reload: a removed source is refused on connections opened before the reload and after it', async () => {
    const x = env.sb.path('logs/extra/x.log');
    const go = env.sb.path('run', 'go-reload');
    const mark = env.helper.logs.length;
    const actions: Action[] = [
      { a: 'connect' },
      { a: 'req', json: hello },
      { a: 'req', json: open(x), read: 16 },
      { a: 'mark', name: 'reload' },
      { a: 'waitFile', path: go },
      { a: 'req', json: open(x), read: 16 },
    ];
    const out = await runPeer(env.sb, env.agent, env.socket, actions, {
      onMark: async () => {
        // the same config without [source.extra]
        env.sb.writeConfig('etc/guard.conf', standardConfig(env) + `\n${denySection(env)}\n`);
        env.helper.hup();
        await env.helper.waitFor(
          (e) => e.event === 'reloaded' || e.event === 'reload_failed',
          10000,
          mark,
        );
        writeFileSync(go, '');
      },
    });
    const policyBefore = reply(out, 1).json?.policy;
    assert.equal(typeof policyBefore, 'string');
    const before = reply(out, 2);
    assert.equal(
      before.json?.ok,
      true,
      `extra source not granted before the reload: ${JSON.stringify(before)}`,
    );
    assert.equal(before.head, 'EXTRA\n');
    assert.equal(
      (out.results[4] as { found?: boolean }).found,
      true,
      'the test never gave the go-ahead',
    );
    assert.equal(
      env.helper.events('reloaded', mark).length,
      1,
      `no reloaded event: ${env.helper.dump(5)}`,
    );
    // the connection opened under the old policy: refused (not_allowed), or told to reconnect
    // (`reloaded`, then closed) -- never granted
    assertRefused(
      reply(out, 5),
      ['not_allowed', 'reloaded'],
      'open of a removed source on a connection opened before the reload',
    );
    // a new connection
    const out2 = await agentPeer(env, [
      { a: 'connect' },
      { a: 'req', json: hello },
      { a: 'req', json: open(x), read: 16 },
      { a: 'req', json: open(x) },
      { a: 'req', json: open(env.legitPath), read: 64 },
    ]);
    const h2 = reply(out2, 1);
    assert.equal(h2.json?.ok, true);
    assert.notEqual(h2.json?.policy, policyBefore, 'the policy digest did not change on reload');
    assertRefused(reply(out2, 2), 'not_allowed', 'open of a removed source on a new connection');
    assertRefused(
      reply(out2, 3),
      'not_allowed',
      'open again of a removed source on a new connection',
    );
    assert.equal(reply(out2, 4).json?.ok, true, 'a remaining source refused after the reload');
    const p = await probe(env.sb, env.agent, env.socket, x);
    assert.equal(p.code, 1);
    assert.equal(p.json?.code, 'not_allowed');
    await assertStillServing(env);
  });

  it('SIGHUP with a config that fails the ownership check keeps the old policy (reload_failed)', async () => {
    // start from a known policy: the config without [source.extra]
    env.sb.writeConfig('etc/guard.conf', standardConfig(env) + `\n${denySection(env)}\n`);
    const mark0 = env.helper.logs.length;
    env.helper.hup();
    await env.helper.waitFor(
      (e) => e.event === 'reloaded' || e.event === 'reload_failed',
      10000,
      mark0,
    );
    assert.equal(
      env.helper.events('reloaded', mark0).length,
      1,
      `reload of a good config failed: ${env.helper.dump(5)}`,
    );
    const before = await agentPeer(env, [{ a: 'connect' }, { a: 'req', json: hello }]);
    const digest = String(reply(before, 1).json?.policy);
    const mark = env.helper.logs.length;
    // group-writable: the new content must not be believed; the old policy stays
    env.sb.writeConfig('etc/guard.conf', goodConfig, 0o664);
    env.helper.hup();
    await env.helper.waitFor(
      (e) => e.event === 'reloaded' || e.event === 'reload_failed',
      10000,
      mark,
    );
    assert.equal(
      env.helper.events('reload_failed', mark).length,
      1,
      `expected reload_failed: ${env.helper.dump(5)}`,
    );
    const afterOut = await agentPeer(env, [
      { a: 'connect' },
      { a: 'req', json: hello },
      { a: 'req', json: open(env.sb.path('logs/extra/x.log')) },
    ]);
    assert.equal(
      String(reply(afterOut, 1).json?.policy),
      digest,
      'the policy changed although the reload failed',
    );
    assertRefused(reply(afterOut, 2), 'not_allowed', 'a source only the rejected config names');
    await assertStillServing(env);
    // restore a good config (still without extra), and reload it
    env.sb.writeConfig('etc/guard.conf', standardConfig(env) + `\n${denySection(env)}\n`);
    chmodSync(env.config, 0o644);
    chownSync(env.config, 0, 0);
    const mark2 = env.helper.logs.length;
    env.helper.hup();
    await env.helper.waitFor(
      (e) => e.event === 'reloaded' || e.event === 'reload_failed',
      10000,
      mark2,
    );
    assert.equal(env.helper.events('reloaded', mark2).length, 1);
    await assertStillServing(env);
  });

  it('refuses deny-listed paths even when a glob allows them', async () => {
    const s = env.sb.dir;
    const cases: string[] = [
      '/etc/shadow',
      '/etc/gshadow',
      '/etc/shadow-',
      '/etc/gshadow-',
      '/etc/guard/guard.conf',
      '/dev/null',
      '/dev/zero',
      '/sys/kernel/notes',
      '/proc/self/environ',
      '/proc/self/status',
      '/proc/1/environ',
      '/etc/ssh/ssh_host_ed25519_key',
      `${s}/keys/server.key`,
      `${s}/keys/tls.key`,
      `${s}/keys/ssh_host_ed25519_key`,
      `${s}/keys/ssh_host_rsa_key`,
      `${s}/keys/id_rsa`,
      `${s}/keys/id_rsa.pub`,
      `${s}/keys/id_ed25519`,
      `${s}/keys/id_ecdsa`,
      `${s}/logs/app/stolen.key`,
    ];
    const actions: Action[] = [{ a: 'connect' }];
    for (const p of cases)
      actions.push(
        { a: 'req', json: open(p), read: 16, label: p },
        { a: 'req', json: open(p), label: `again ${p}` },
      );
    const out = await agentPeer(env, actions);
    const failures: string[] = [];
    for (let i = 0; i < cases.length * 2; i++) {
      const r = reply(out, 1 + i);
      try {
        assertRefused(r, 'deny_listed', String(r.label));
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    assert.equal(out.unexpectedFds, 0, 'descriptors were sent');
    await assertStillServing(env);
    assert.deepEqual(failures, []);
  });

  it("guardctl probe: granted (exit 0) with the file's dev/ino, refused (exit 1) with a code, cannot ask (exit 2)", async () => {
    const st = statSync(env.legitPath, { bigint: true });
    const g = await probe(env.sb, env.agent, env.socket, env.legitPath);
    assert.equal(g.code, 0, `probe of the legit file: exit ${g.code}: ${g.stdout} ${g.stderr}`);
    assert.equal(g.json?.granted, true);
    assert.equal(g.json?.path, env.legitPath);
    assert.equal(g.json?.dev, String(st.dev));
    assert.equal(g.json?.ino, String(st.ino));
    assert.equal(g.json?.size, Number(st.size));

    const r = await probe(env.sb, env.agent, env.socket, env.sb.path('secret/secret.txt'));
    assert.equal(r.code, 1, `probe of the secret: exit ${r.code}: ${r.stdout} ${r.stderr}`);
    assert.equal(r.json?.granted, false);
    assert.equal(r.json?.code, 'not_allowed');
    assert.equal(typeof r.json?.message, 'string');

    const d = await probe(env.sb, env.agent, env.socket, '/etc/shadow');
    assert.equal(d.code, 1);
    assert.equal(d.json?.code, 'deny_listed');

    const n = await probe(env.sb, env.agent, env.sb.path('run', 'no-such.sock'), env.legitPath);
    assert.equal(n.code, 2, `probe with no helper: exit ${n.code}: ${n.stdout} ${n.stderr}`);

    // a stranger in the socket group is refused by the helper, not granted
    const o = await probe(env.sb, env.other, env.socket, env.legitPath);
    assert.notEqual(o.code, 0, `probe as another uid succeeded: ${o.stdout}`);
    assert.notEqual(o.json?.granted, true);
    await assertStillServing(env);
  });
});
