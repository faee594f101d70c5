// Rotated generations, journal sources and paged `list` against the real helper (docs/protocol.md):
// a generation of an allowed name opens; a generation-looking name of a name no pattern allows, of a
// deny-listed name, or a symlink with a generation's name, is refused with no descriptor sent; a
// journal source is served like a file source but has no generations; a glob matching more names
// than one reply holds is listed in full across pages, each name once. Under both open paths (the
// walk forced as in production, by a seccomp filter answering openat2 with ENOSYS).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  agentPeer,
  assertRefused,
  assertStillServing,
  ensureHealthyHelper,
  setupEnv,
  teardownEnv,
  type Env,
} from './lib/env';
import { onlyWalk } from './lib/helper';
import { hello, open, reply, type Action } from './lib/peer';

const MANY = 3100;

for (const openPath of ['openat2', 'walk'] as const)
  describe(`guard-helper: rotated generations, journal sources, paged list (${openPath})`, () => {
    let env: Env;
    before(async () => {
      env = await setupEnv({
        ...(openPath === 'walk' ? { helperPrefix: onlyWalk } : {}),
        layout: (e) => {
          const sb = e.sb;
          sb.mkdir('logs/gen', 0o755);
          for (const f of [
            'app.log',
            'app.log.1',
            'app.log.2.gz',
            'app.log-20240131',
            'notes.txt.1',
          ])
            sb.file(`logs/gen/${f}`, `GEN ${f}\n`, 0o600);
          sb.file('logs/gen/tls.key.1', e.secretText, 0o600); // a generation of a deny-listed name
          sb.file('logs/gen/app.log.gz', 'NOT A GENERATION\n', 0o600);
          sb.symlink(`${sb.dir}/secret/secret.txt`, 'logs/gen/app.log.3', e.attacker);
          sb.mkdir('journal/m0', 0o755);
          sb.file('journal/m0/system.journal', 'LPKSHHRH', 0o640);
          sb.file('journal/m0/system.journal.1', 'LPKSHHRH', 0o640);
          sb.mkdir('logs/many', 0o755);
          for (let i = 0; i < MANY; i++)
            writeFileSync(`${sb.dir}/logs/many/${String(i).padStart(40, 'x')}.log`, '');
          for (let i = 0; i < 200; i++)
            writeFileSync(`${sb.dir}/logs/many/${String(i).padStart(40, 'x')}.log.1.gz`, '');
        },
        extraConfig: (e) => {
          const s = e.sb.dir;
          return [
            '[source.gen]',
            `paths = ${s}/logs/gen/*.log, ${s}/logs/gen/*.key`,
            '[source.jrn]',
            'type = journal',
            `paths = ${s}/journal/*/*.journal`,
            '[source.many]',
            `paths = ${s}/logs/many/*.log`,
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

    it('uses the open path under test', () => {
      assert.equal(env.helper.events('listening')[0]?.open_path, openPath);
    });

    it('opens a generation of an allowed name and lists generations beside the live file', async () => {
      const s = env.sb.dir;
      const out = await agentPeer(env, [
        { a: 'connect' },
        { a: 'req', json: hello },
        { a: 'req', json: open(`${s}/logs/gen/app.log.1`), read: 64 },
        { a: 'req', json: open(`${s}/logs/gen/app.log-20240131`), read: 64 },
        { a: 'req', json: open(`${s}/logs/gen/app.log.2.gz`) },
        { a: 'req', json: { op: 'list', source: 'gen' } },
        { a: 'req', json: { op: 'list', source: 'jrn' } },
        { a: 'req', json: open(`${s}/journal/m0/system.journal`), read: 64 },
      ]);
      assert.equal(reply(out, 2).head, 'GEN app.log.1\n');
      assert.equal(reply(out, 3).head, 'GEN app.log-20240131\n');
      assert.equal(reply(out, 4).json?.ok, true);
      assert.deepEqual(reply(out, 5).json, {
        ok: true,
        op: 'list',
        source: 'gen',
        files: [`${s}/logs/gen/app.log`],
        // the symlink is named (open says why it refuses it); tls.key.1 is not
        generations: [
          `${s}/logs/gen/app.log-20240131`,
          `${s}/logs/gen/app.log.1`,
          `${s}/logs/gen/app.log.2.gz`,
          `${s}/logs/gen/app.log.3`,
        ],
      });
      assert.deepEqual(reply(out, 6).json?.files, [`${s}/journal/m0/system.journal`]);
      assert.deepEqual(reply(out, 6).json?.generations, []);
      assert.equal(reply(out, 7).head, 'LPKSHHRH');
      assert.equal(out.unexpectedFds, 0);
    });

    it('refuses generation-looking names of names no pattern allows, deny-listed or symlinked', async () => {
      const s = env.sb.dir;
      const cases: Array<[string, string, string]> = [
        ['generation of a name no pattern allows', `${s}/logs/gen/notes.txt.1`, 'not_allowed'],
        ['a compressor extension alone', `${s}/logs/gen/app.log.gz`, 'not_allowed'],
        ['generation of a deny-listed name', `${s}/logs/gen/tls.key.1`, 'deny_listed'],
        ['generation of a secret outside', `${s}/secret/secret.txt.1`, 'not_allowed'],
        ['symlink named like a generation', `${s}/logs/gen/app.log.3`, 'symlink'],
        ['journal sources have no generations', `${s}/journal/m0/system.journal.1`, 'not_allowed'],
      ];
      const actions: Action[] = [{ a: 'connect' }, { a: 'req', json: hello }];
      for (const [label, path] of cases)
        actions.push(
          { a: 'req', json: open(path), read: 64, label },
          { a: 'req', json: open(path), label },
        );
      const out = await agentPeer(env, actions);
      cases.forEach(([label, , code], i) => {
        assertRefused(reply(out, 2 + 2 * i), code, `open ${label}`);
        assertRefused(reply(out, 3 + 2 * i), code, `again ${label}`);
      });
      assert.equal(out.unexpectedFds, 0);
      await assertStillServing(env);
    });

    it(`lists ${MANY} names and 200 generations under one glob across pages, each once`, async () => {
      const out = await agentPeer(env, [
        { a: 'connect' },
        { a: 'req', json: hello },
        { a: 'listAll', name: 'many' },
      ]);
      const all = reply(out, 2) as unknown as {
        files: string[];
        generations: string[];
        pages: number;
        truncated: boolean;
        bytes: number;
        error?: string;
      };
      assert.equal(all.error, undefined, JSON.stringify(all).slice(0, 500));
      assert.equal(all.files.length, MANY);
      assert.equal(all.generations.length, 200);
      assert.equal(new Set([...all.files, ...all.generations]).size, MANY + 200);
      assert.ok(all.pages >= 4, `${all.pages} pages`); // 1024 names a page at most
      assert.ok(all.bytes <= 65536, `a reply of ${all.bytes} bytes`);
      assert.equal(all.truncated, false);
      await assertStillServing(env);
    });
  });
