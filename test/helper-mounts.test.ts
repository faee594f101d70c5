// Mount crossing (issue 12, item 1): a mount inside an allowed directory must not hand out what is
// mounted there. Each helper runs in its own private mount namespace (unshare -m, propagation
// private), where the mounts are made before it starts, so nothing outside the test is touched:
// /etc, a root-only directory and a single root-only file bind-mounted inside an allowed directory,
// and an allowed tree that is itself a tmpfs mount (like a separate /var/log partition), which must
// keep working, with a bind mount inside it. Under both open paths: openat2 (RESOLVE_NO_XDEV from
// the allowed root) and the component walk (STATX_MNT_ID), forced by a seccomp filter that answers
// openat2 with ENOSYS, as systemd 252 does under the helper's unit.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertRefused, legitOpen, setupEnv, teardownEnv, type Env } from './lib/env';
import { Helper, inMountNamespace, onlyWalk } from './lib/helper';
import { hello, open, reply, runPeer } from './lib/peer';

describe('guard-helper never crosses a mount below an allowed directory', () => {
  let env: Env;
  before(async () => {
    env = await setupEnv({
      layout: (e) => {
        const sb = e.sb;
        sb.mkdir('logs/mnt');
        sb.mkdir('logs/mnt/etc');
        sb.mkdir('logs/mnt/secret');
        sb.file('logs/mnt/file.log', '');
        sb.mkdir('logs/mnt/real');
        sb.file('logs/mnt/real/ok.log', 'REAL\n', 0o600);
        sb.mkdir('logs/own');
      },
      extraConfig: (e) => {
        const s = e.sb.dir;
        return [
          '[source.mnt]',
          `paths = ${s}/logs/mnt/*/*, ${s}/logs/mnt/*.log`,
          '[source.own]',
          `paths = ${s}/logs/own/*.log, ${s}/logs/own/*/*`,
        ].join('\n');
      },
    });
  });
  after(async () => {
    await teardownEnv(env);
  });

  for (const path of ['openat2', 'walk'] as const) {
    it(`refuses bind mounts of /etc, a root-only directory and a file; serves a tree on its own mount (${path})`, async () => {
      const s = env.sb.dir;
      const socket = env.sb.path('run', `mounts-${path}.sock`);
      const mounts = [
        `S='${s}'`,
        'mount --bind /etc "$S/logs/mnt/etc"',
        'mount --bind "$S/secret" "$S/logs/mnt/secret"',
        'mount --bind "$S/secret/secret.txt" "$S/logs/mnt/file.log"',
        'mount -t tmpfs -o mode=0755 tmpfs "$S/logs/own"',
        `printf 'ON-ITS-OWN-MOUNT\\n' > "$S/logs/own/app.log"`,
        'chmod 600 "$S/logs/own/app.log"',
        'mkdir "$S/logs/own/sub"',
        'mount --bind "$S/secret" "$S/logs/own/sub"',
      ].join('\n');
      const helper = await Helper.start({
        ...env.helperOptions,
        socket,
        prefix: [...inMountNamespace(mounts), ...(path === 'walk' ? onlyWalk : [])],
      });
      try {
        const listening = helper.events('listening')[0];
        assert.equal(listening?.open_path, path, JSON.stringify(listening));
        const crossing = [
          `${s}/logs/mnt/etc/passwd`,
          `${s}/logs/mnt/etc/shadow`,
          `${s}/logs/mnt/secret/secret.txt`,
          `${s}/logs/mnt/file.log`,
          `${s}/logs/own/sub/secret.txt`,
        ];
        const out = await runPeer(env.sb, env.agent, socket, [
          { a: 'connect' },
          { a: 'req', json: hello },
          ...crossing.flatMap((p) => [
            { a: 'req' as const, json: open(p), read: 64 },
            { a: 'req' as const, json: open(p) },
          ]),
          { a: 'req', json: open(`${s}/logs/mnt/real/ok.log`), read: 64 },
          { a: 'req', json: open(`${s}/logs/own/app.log`), read: 64 },
          { a: 'req', json: { op: 'list', source: 'mnt' } },
          { a: 'req', json: { op: 'list', source: 'own' } },
        ]);
        crossing.forEach((p, i) => {
          assertRefused(reply(out, 2 + 2 * i), 'mount', `open ${p}`);
          assertRefused(reply(out, 3 + 2 * i), 'mount', `again ${p}`);
        });
        let i = 2 + 2 * crossing.length;
        assert.equal(reply(out, i++).head, 'REAL\n', 'a file below the root on its mount');
        assert.equal(reply(out, i++).head, 'ON-ITS-OWN-MOUNT\n', 'an allowed root that is a mount');
        // list descends no directory on another mount; a bind-mounted file is named, open refuses it
        assert.deepEqual(reply(out, i++).json?.files, [
          `${s}/logs/mnt/file.log`,
          `${s}/logs/mnt/real/ok.log`,
        ]);
        assert.deepEqual(reply(out, i++).json?.files, [`${s}/logs/own/app.log`]);
        assert.equal(out.unexpectedFds, 0);
        await legitOpen(env, helper, socket);
      } finally {
        await helper.stop();
      }
    });
  }
});
