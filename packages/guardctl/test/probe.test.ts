import assert from 'node:assert/strict';
import { closeSync, openSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { FakeHelper, type FakeConnection } from '@guard/protocol/test/fake-helper';
import { PROTOCOL_VERSION } from '@guard/protocol/wire';
import { main } from '../src/main';

async function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { stdout: (l) => out.push(l), stderr: (l) => err.push(l), env });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

let helper: FakeHelper | undefined;
afterEach(() => {
  helper?.close();
  helper = undefined;
});

/** A fake helper that grants one file (with a real descriptor) and refuses everything else. */
function grantingHelper(lie = false) {
  const h = (helper = new FakeHelper((raw: unknown, conn: FakeConnection) => {
    const req = raw as { op: string; path: string };
    if (req.op === 'hello')
      return conn.reply({
        ok: true,
        op: 'hello',
        version: PROTOCOL_VERSION,
        policy: 'ab'.repeat(32),
        uid: 0,
        audit: false,
        open_path: 'openat2',
      });
    if (req.path !== file) {
      return conn.reply({
        ok: false,
        op: req.op,
        error: 'not_allowed',
        message: `no [source.*] pattern matches ${req.path}`,
      });
    }
    const st = statSync(file, { bigint: true });
    const fd = openSync(file, 'r');
    conn.reply(
      {
        ok: true,
        op: 'open',
        path: file,
        dev: String(st.dev),
        ino: String(lie ? st.ino + 1n : st.ino),
        size: Number(st.size),
      },
      fd,
    );
    closeSync(fd);
  }));
  const file = join(h.dir, 'app.log');
  writeFileSync(file, 'twelve bytes');
  return { h, file };
}

describe('guardctl', () => {
  it('--help lists probe and exits 0', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /guardctl probe PATH \[--socket S\] \[--json\]/);
  });
  it('no command or an unknown one exits 2 with the usage', async () => {
    assert.equal((await run([])).code, 2);
    const r = await run(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
  });
  it('probe without exactly one PATH, or with an unknown option, is a usage error', async () => {
    assert.match((await run(['probe'])).stderr, /exactly one PATH/);
    assert.equal((await run(['probe', '/a', '/b'])).code, 2);
    const r = await run(['probe', '/a', '--frob']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage: guardctl probe/);
  });
});

describe('guardctl probe', () => {
  it('prints granted with the identity of the descriptor it checked, exit 0', async () => {
    const { h, file } = grantingHelper();
    const st = statSync(file, { bigint: true });
    const r = await run(['probe', file, '--socket', h.socketPath]);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, `granted: ${file} (dev ${st.dev}, ino ${st.ino}, size 12 bytes)`);
    assert.equal(r.code, 0);
    const conn = await h.connection();
    assert.deepEqual(conn.requests, [
      { op: 'hello', version: PROTOCOL_VERSION },
      { op: 'open', path: file },
    ]);
  });

  it('--json, and the socket from GUARD_HELPER_SOCKET', async () => {
    const { h, file } = grantingHelper();
    const st = statSync(file, { bigint: true });
    const r = await run(['probe', '--json', file], { GUARD_HELPER_SOCKET: h.socketPath });
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), {
      granted: true,
      path: file,
      dev: String(st.dev),
      ino: String(st.ino),
      size: 12,
    });
  });

  it('prints the refusal code and message, exit 1 (also as JSON)', async () => {
    const { h } = grantingHelper();
    const r = await run(['probe', '/var/log/other.log', '--socket', h.socketPath]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stdout,
      'refused: not_allowed: no [source.*] pattern matches /var/log/other.log',
    );
    const j = await run(['probe', '/var/log/other.log', '--socket', h.socketPath, '--json']);
    assert.equal(j.code, 1);
    assert.deepEqual(JSON.parse(j.stdout), {
      granted: false,
      code: 'not_allowed',
      message: 'no [source.*] pattern matches /var/log/other.log',
    });
  });

  it('exit 2 when the descriptor is not the file the reply names', async () => {
    const { h, file } = grantingHelper(true);
    const r = await run(['probe', file, '--socket', h.socketPath]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /guard-helper bug/);
  });

  it('exit 2 with an actionable sentence when there is no socket', async () => {
    const r = await run(['probe', '/var/log/syslog', '--socket', '/nonexistent/helper.sock']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      /cannot connect to \/nonexistent\/helper.sock: no such socket \(is guard-helper running\?/,
    );
  });

  it('exit 2 when the helper refuses this user (peer)', async () => {
    const h = (helper = new FakeHelper(
      () => {},
      (conn) => {
        conn.reply({ ok: false, op: null, error: 'peer', message: 'uid 0 is not the agent user' });
        conn.close();
        return false;
      },
    ));
    const r = await run(['probe', '/var/log/syslog', '--socket', h.socketPath]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /refused this user .*uid 0 is not the agent user.*sudo -u guard/);
  });

  it('exit 2 naming both versions when the helper speaks another protocol version', async () => {
    const h = (helper = new FakeHelper((raw, conn) =>
      conn.reply({
        ok: false,
        op: 'hello',
        error: 'version',
        message: `the client speaks protocol version ${(raw as { version: number }).version}, this helper 9`,
      }),
    ));
    const r = await run(['probe', '/var/log/syslog', '--socket', h.socketPath]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      new RegExp(
        `refused this guardctl's protocol version: the client speaks protocol version ${PROTOCOL_VERSION}, this helper 9`,
      ),
    );
  });

  it('exit 2 when the helper closes the connection without answering', async () => {
    const h = (helper = new FakeHelper((_req, conn) => conn.close()));
    const r = await run(['probe', '/var/log/syslog', '--socket', h.socketPath]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /closed the connection before answering/);
  });
});

describe('guardctl probe, socket path mistakes', () => {
  it('a path that is not a socket', async () => {
    const r = await run(['probe', '/var/log/syslog', '--socket', __dirname]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot connect to .*: not a socket \(check --socket/);
  });
});
