// Attack 2: links planted in a log directory the attacker owns (<S>/logs/app, attacker:attacker 0755).
// Symlinks of every kind and magic links are refused as `symlink` (or `deny_listed` when the path
// itself names /proc); a hard link to a secret in a directory a non-root user can write is
// refused as `hard_link`; no descriptor is ever sent; the helper keeps serving.
import assert from 'node:assert/strict';
import { linkSync, statSync } from 'node:fs';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  agentPeer,
  ensureHealthyHelper,
  assertRefused,
  assertStillServing,
  setupEnv,
  teardownEnv,
  type Env,
} from './lib/env';
import { identity, open, reply, type Action } from './lib/peer';

describe('guard-helper and links', () => {
  let env: Env;
  before(async () => {
    env = await setupEnv({
      layout: (e) => {
        const sb = e.sb;
        const s = sb.dir;
        const att = e.attacker;
        // leaf symlink to the root-only secret
        sb.symlink(`${s}/secret/secret.txt`, 'logs/app/leak.log', att);
        // relative leaf symlink, pointing out of the allowed directory
        sb.symlink('../../secret/secret.txt', 'logs/app/rel.log', att);
        // symlink to another allowed file: still a symlink, still refused
        sb.symlink('a.log', 'logs/app/alias.log', att);
        // symlinked intermediate directory: <S>/logs/app/linkdir -> <S>/secret (holds a.log)
        sb.symlink(`${s}/secret`, 'logs/app/linkdir', att);
        // a symlink higher up, planted by root: <S>/logs/alias -> <S>/logs/app
        sb.symlink(`${s}/logs/app`, 'logs/alias');
        // dangling symlink and a loop
        sb.symlink(`${s}/no/such/file.log`, 'logs/app/gone.log', att);
        sb.symlink('loop2.log', 'logs/app/loop1.log', att);
        sb.symlink('loop1.log', 'logs/app/loop2.log', att);
        // magic links (the pattern <S>/logs/magic/* allows any name here)
        sb.mkdir('logs/magic', 0o755, att);
        sb.symlink('/proc/self/root/etc/shadow', 'logs/magic/shadow', att);
        sb.symlink(`/proc/self/root${s}/secret/secret.txt`, 'logs/magic/secret', att);
        sb.symlink('/proc/self/fd/0', 'logs/magic/fd0', att);
        sb.symlink('/proc/self/cwd', 'logs/magic/cwd', att);
        sb.symlink('/proc/self/root', 'logs/magic/root', att);
        // a hard link to the secret in the attacker's directory. fs.protected_hardlinks=1 stops the
        // attacker from making it (they can neither read nor own the target), so root plants it:
        // the situation is that of a host with protected_hardlinks=0, or a file the attacker could
        // link earlier, or one whose owner/mode changed later.
        linkSync(`${s}/secret/secret.txt`, `${s}/logs/app/hard.log`);
        // the same in the magic directory, so a second pattern covers it
        linkSync(`${s}/secret/secret.txt`, `${s}/logs/magic/hard.txt`);
        // a hard link in a directory only root can write (see the test below for why it is allowed)
        sb.mkdir('logs/rootonly');
        sb.file('logs/rootonly/orig.log', 'ROOT-LINKED\n', 0o600);
        linkSync(`${s}/logs/rootonly/orig.log`, `${s}/logs/rootonly/linked.log`);
      },
      extraConfig: (e) => {
        const s = e.sb.dir;
        return [
          '[source.linked]',
          'type = file',
          `paths = ${s}/logs/app/*/*.log, ${s}/logs/alias/*.log, ${s}/logs/magic/*, ${s}/logs/magic/root/etc/*, ${s}/logs/rootonly/*.log`,
          '',
          '[source.magic]',
          'type = file',
          `paths = /proc/self/root${s}/logs/app/*.log, /proc/self/root/etc/*, /proc/self/fd/*, /proc/*/root${s}/secret/*`,
        ].join('\n');
      },
    });
  });
  after(async () => {
    await teardownEnv(env);
  });
  beforeEach(async () => {
    await ensureHealthyHelper(env);
  });

  async function expectAll(cases: Array<[string, string, string | string[]]>): Promise<void> {
    const actions: Action[] = [{ a: 'connect' }];
    for (const [label, path] of cases) {
      actions.push({ a: 'req', json: open(path), read: 64, label });
    }
    const out = await agentPeer(env, actions);
    const failures: string[] = [];
    cases.forEach(([label, , codes], i) => {
      try {
        assertRefused(reply(out, 1 + i), codes, `open ${label}`);
      } catch (e) {
        failures.push((e as Error).message);
      }
    });
    assert.equal(out.unexpectedFds, 0, `descriptors were sent: ${failures.join('\n')}`);
    assert.deepEqual(failures, []);
    await assertStillServing(env);
  }

  it('refuses symlinks: leaf, relative, to an allowed file, intermediate dir, higher dir, dangling, loop', async () => {
    const s = env.sb.dir;
    await expectAll([
      ['leaf symlink to the secret', `${s}/logs/app/leak.log`, 'symlink'],
      ['relative symlink out of the dir', `${s}/logs/app/rel.log`, 'symlink'],
      ['symlink to an allowed file', `${s}/logs/app/alias.log`, 'symlink'],
      ['symlinked intermediate directory', `${s}/logs/app/linkdir/a.log`, 'symlink'],
      [
        'symlinked intermediate directory (secret.txt)',
        `${s}/logs/app/linkdir/secret.txt`,
        ['symlink', 'not_allowed'],
      ],
      ['symlink higher up the path', `${s}/logs/alias/a.log`, 'symlink'],
      ['dangling symlink', `${s}/logs/app/gone.log`, 'symlink'],
      ['symlink loop', `${s}/logs/app/loop1.log`, 'symlink'],
    ]);
  });

  it('refuses magic links planted in an allowed directory and /proc/self/root paths', async () => {
    const s = env.sb.dir;
    await expectAll([
      ['symlink to /proc/self/root/etc/shadow', `${s}/logs/magic/shadow`, 'symlink'],
      ['symlink to /proc/self/root/<secret>', `${s}/logs/magic/secret`, 'symlink'],
      ['symlink to /proc/self/fd/0', `${s}/logs/magic/fd0`, 'symlink'],
      ['symlink to /proc/self/cwd', `${s}/logs/magic/cwd`, 'symlink'],
      ['through a symlink to /proc/self/root', `${s}/logs/magic/root/etc/passwd`, 'symlink'],
      // the request names /proc itself: deny-listed, even though a pattern covers it
      [
        '/proc/self/root/<allowed file>',
        `/proc/self/root${s}/logs/app/a.log`,
        ['deny_listed', 'symlink'],
      ],
      ['/proc/self/root/etc/shadow', '/proc/self/root/etc/shadow', ['deny_listed', 'symlink']],
      ['/proc/self/root/etc/passwd', '/proc/self/root/etc/passwd', ['deny_listed', 'symlink']],
      ['/proc/self/fd/0', '/proc/self/fd/0', ['deny_listed', 'symlink']],
      ['/proc/1/root/<secret>', `/proc/1/root${s}/secret/secret.txt`, ['deny_listed', 'symlink']],
      [
        '/proc/<helper pid>/root/<secret>',
        `/proc/${env.helper.pid}/root${s}/secret/secret.txt`,
        ['deny_listed', 'symlink'],
      ],
    ]);
  });

  it('refuses a hard link to the secret in a directory a non-root user can write (hard_link)', async () => {
    const s = env.sb.dir;
    assert.ok(statSync(`${s}/logs/app/hard.log`).nlink >= 2);
    await expectAll([
      ['hard link in the attacker-owned dir', `${s}/logs/app/hard.log`, 'hard_link'],
      ['hard link in the attacker-owned magic dir', `${s}/logs/magic/hard.txt`, 'hard_link'],
    ]);
  });

  // A hard link in a directory chain only root can write is allowed: nobody but root could have
  // made it, so it says nothing about an attacker; root creates such links for its own reasons
  // (logrotate's and package managers' link-then-rename, backups), and refusing them would stop
  // the agent from reading legitimate logs. The nlink check exists to stop a *non-root* user from
  // planting a second name for a file they cannot read inside a directory the allow-list covers.
  it('grants a hard link in a root-only directory, with the identity of the linked file', async () => {
    const s = env.sb.dir;
    const st = statSync(`${s}/logs/rootonly/linked.log`, { bigint: true });
    assert.equal(st.nlink, 2n);
    const out = await agentPeer(env, [
      { a: 'connect' },
      { a: 'req', json: open(`${s}/logs/rootonly/linked.log`), read: 64 },
      { a: 'req', json: identity(`${s}/logs/rootonly/orig.log`) },
    ]);
    const r = reply(out, 1);
    assert.equal(r.json?.ok, true, `refused: ${JSON.stringify(r)}`);
    assert.equal(r.head, 'ROOT-LINKED\n');
    assert.equal(r.json?.dev, String(st.dev));
    assert.equal(r.json?.ino, String(st.ino));
    assert.equal(r.dev, String(st.dev));
    assert.equal(r.ino, String(st.ino));
    const r2 = reply(out, 2);
    assert.equal(r2.json?.ok, true);
    assert.equal(r2.json?.op, 'open');
    assert.equal(r2.gotFd, false);
    assert.equal(r2.json?.ino, String(st.ino));
    await assertStillServing(env);
  });

  it('still grants the plain file in the attacker-owned directory', async () => {
    const out = await agentPeer(env, [
      { a: 'connect' },
      { a: 'req', json: open(`${env.sb.dir}/logs/app/a.log`), read: 64 },
    ]);
    const r = reply(out, 1);
    assert.equal(r.json?.ok, true, JSON.stringify(r));
    assert.equal(r.head, env.publicText);
    await assertStillServing(env);
  });
});
