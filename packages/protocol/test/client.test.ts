import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  fstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import * as fdpass from '@guard/fdpass';
import { HelperClient, HelperConnectionError, HelperRefusal } from '../src/client';
import { PROTOCOL_VERSION } from '../src/wire';
import { FakeHelper, openDescriptorCount, type FakeConnection } from './fake-helper';

type AnyRequest = { op: string; [key: string]: unknown };
const HELLO = {
  ok: true,
  op: 'hello',
  version: PROTOCOL_VERSION,
  policy: 'x',
  uid: 1,
  audit: false,
};

let helper: FakeHelper | undefined;
let client: HelperClient | undefined;
afterEach(() => {
  client?.close();
  helper?.close();
  client = helper = undefined;
});

/** A file in the fake helper's directory, and the reply `open` would give for it. */
function makeFile(dir: string, name: string, content: string) {
  const path = join(dir, name);
  writeFileSync(path, content);
  const st = statSync(path, { bigint: true });
  return { path, reply: { path, dev: String(st.dev), ino: String(st.ino), size: Number(st.size) } };
}

/** Answers like the real helper: every request succeeds, `open` with a real read-only descriptor. */
function honestHelper(files: Record<string, ReturnType<typeof makeFile>>) {
  return (raw: unknown, conn: FakeConnection) => {
    const req = raw as AnyRequest;
    if (req.op === 'hello')
      return conn.reply({
        ok: true,
        op: 'hello',
        version: PROTOCOL_VERSION,
        policy: 'ab'.repeat(32),
        uid: 1,
        audit: false,
      });
    if (req.op === 'list')
      return conn.reply({
        ok: true,
        op: 'list',
        source: req.source,
        files: Object.keys(files).sort(),
        generations: [],
      });
    const file = files[String(req.path)];
    if (!file)
      return conn.reply({
        ok: false,
        op: req.op,
        error: 'not_found',
        message: `${String(req.path)} does not exist`,
      });
    // descriptor: false (HelperClient.stat): the identity without the file
    if (req.descriptor === false) return conn.reply({ ok: true, op: 'open', ...file.reply });
    const fd = openSync(file.path, 'r');
    try {
      conn.reply({ ok: true, op: 'open', ...file.reply }, fd);
    } finally {
      closeSync(fd); // the client now holds its own copy
    }
  };
}

describe('HelperClient against a real SOCK_SEQPACKET server', () => {
  it('says hello on connect and keeps the answer; a version mismatch either way is a clear error', async () => {
    let answer: (req: AnyRequest, conn: FakeConnection) => void = () => {};
    helper = new FakeHelper((raw, conn) => answer(raw as AnyRequest, conn));
    answer = (req, conn) =>
      conn.reply({
        ok: true,
        op: 'hello',
        version: req.version,
        policy: 'ab'.repeat(32),
        uid: 1,
        audit: false,
        open_path: 'walk',
      });
    client = await HelperClient.connect(helper.socketPath);
    assert.equal(client.helper?.version, PROTOCOL_VERSION);
    assert.equal(client.helper?.open_path, 'walk');
    client.close();
    // the helper refuses our version: its message names both
    answer = (req, conn) =>
      conn.reply({
        ok: false,
        op: 'hello',
        error: 'version',
        message: `the client speaks protocol version ${String(req.version)}, this helper 9`,
      });
    await assert.rejects(
      HelperClient.connect(helper.socketPath),
      (e: unknown) =>
        e instanceof HelperRefusal &&
        e.code === 'version' &&
        e.message.includes(`version ${PROTOCOL_VERSION}, this helper 9`),
    );
    // an older helper answers hello with its own version
    answer = (_req, conn) =>
      conn.reply({ ok: true, op: 'hello', version: 1, policy: 'x', uid: 1, audit: false });
    await assert.rejects(
      HelperClient.connect(helper.socketPath),
      (e: unknown) =>
        e instanceof HelperConnectionError &&
        e.code === 'helper_protocol' &&
        e.message === `helper speaks protocol version 1, this client ${PROTOCOL_VERSION}`,
    );
  });

  it('listAll follows the cursor until a reply has none; a cursor that does not move is an error', async () => {
    const names = Array.from({ length: 2500 }, (_, i) => `/v/${String(i).padStart(5, '0')}.log`);
    let stuck = false;
    const cursors: unknown[] = [];
    helper = new FakeHelper((raw, conn) => {
      const req = raw as AnyRequest;
      cursors.push(req.cursor);
      const rest = names.filter((n) => n > String(req.cursor ?? ''));
      const page = rest.slice(0, 1000);
      conn.reply({
        ok: true,
        op: 'list',
        source: req.source,
        files: page.filter((n) => !n.endsWith('7.log')),
        generations: page.filter((n) => n.endsWith('7.log')),
        ...(rest.length > page.length ? { next: stuck ? names[0] : page.at(-1) } : {}),
      });
    });
    client = await HelperClient.connect(helper.socketPath, { hello: false });
    const all = await client.listAll('s');
    assert.deepEqual([...all.files, ...all.generations].sort(), names);
    assert.equal(all.generations.length, 250);
    assert.equal(all.next, undefined);
    assert.deepEqual(cursors, [undefined, names[999], names[1999]]);
    stuck = true;
    await assert.rejects(
      client.listAll('s'),
      (e: unknown) => e instanceof HelperConnectionError && e.code === 'helper_protocol',
    );
  });

  it('pipelines requests, matches replies in order and receives the descriptor', async () => {
    const h = (helper = new FakeHelper(() => {}));
    const a = makeFile(h.dir, 'a.log', 'first file\n');
    const b = makeFile(h.dir, 'b.log', 'second\n');
    const answer = honestHelper({ [a.path]: a, [b.path]: b });
    client = await HelperClient.connect(h.socketPath, { hello: false });

    const hello = client.hello();
    const list = client.list('syslog');
    const openA = client.open(a.path);
    const statB = client.stat(b.path);
    const openB = client.open(b.path);
    // Every request reaches the server before it answers any: they were pipelined, not serialised.
    const conn = await h.connection();
    await conn.waitForRequests(5);
    assert.deepEqual(
      conn.requests.map((r) => (r as AnyRequest).op),
      ['hello', 'list', 'open', 'open', 'open'], // stat is an open with descriptor: false
    );
    const fdsBefore = openDescriptorCount();
    for (const req of conn.requests) answer(req, conn);

    assert.equal((await hello).version, PROTOCOL_VERSION);
    assert.deepEqual((await list).files, [a.path, b.path].sort());
    assert.deepEqual(await statB, { ok: true, op: 'open', ...b.reply });
    for (const [file, pending] of [
      [a, openA],
      [b, openB],
    ] as const) {
      const { reply, fd } = await pending;
      assert.deepEqual(reply, { ok: true, op: 'open', ...file.reply });
      assert.ok(fd >= 0);
      const st = fstatSync(fd, { bigint: true });
      assert.equal(String(st.dev), reply.dev);
      assert.equal(String(st.ino), reply.ino);
      const buf = Buffer.alloc(64);
      const n = readSync(fd, buf, 0, buf.length, 0);
      assert.equal(buf.subarray(0, n).toString(), file === a ? 'first file\n' : 'second\n');
      closeSync(fd);
    }
    assert.equal(openDescriptorCount(), fdsBefore, 'stat kept the descriptor it was sent');
  });

  it('turns a refusal into HelperRefusal and keeps the connection', async () => {
    const h = (helper = new FakeHelper((raw, conn) => {
      const req = raw as AnyRequest;
      if (req.op === 'open')
        conn.reply({
          ok: false,
          op: 'open',
          error: 'deny_listed',
          message: '/etc/shadow is on the built-in deny-list',
        });
      else conn.reply({ ...HELLO, audit: true });
    }));
    client = await HelperClient.connect(h.socketPath, { hello: false });
    await assert.rejects(client.open('/etc/shadow'), (e: unknown) => {
      assert.ok(e instanceof HelperRefusal);
      assert.equal(e.code, 'deny_listed');
      assert.equal(e.op, 'open');
      assert.equal(e.message, '/etc/shadow is on the built-in deny-list');
      return true;
    });
    // request() itself resolves with the refusal, and no descriptor.
    assert.deepEqual(await client.request({ op: 'open', path: '/etc/shadow' }), {
      reply: {
        ok: false,
        op: 'open',
        error: 'deny_listed',
        message: '/etc/shadow is on the built-in deny-list',
      },
      fd: -1,
    });
    assert.equal((await client.hello()).audit, true);
  });

  it('rejects every pending request with helper_closed when the helper closes, and later ones too', async () => {
    const h = (helper = new FakeHelper());
    client = await HelperClient.connect(h.socketPath, { hello: false });
    const pending = [client.list('a'), client.list('b'), client.hello()];
    const conn = await h.connection();
    await conn.waitForRequests(3);
    conn.close();
    for (const p of pending) {
      await assert.rejects(
        p,
        (e: unknown) => e instanceof HelperConnectionError && e.code === 'helper_closed',
      );
    }
    await assert.rejects(
      client.hello(),
      (e: unknown) => e instanceof HelperConnectionError && e.code === 'helper_closed',
    );
  });

  it('answers already sent before the close still resolve', async () => {
    const h = (helper = new FakeHelper((raw, conn) => {
      if ((raw as AnyRequest).op === 'hello') {
        conn.reply(HELLO);
        conn.close();
      }
    }));
    client = await HelperClient.connect(h.socketPath, { hello: false });
    const hello = client.hello();
    const list = client.list('syslog');
    assert.equal((await hello).op, 'hello');
    await assert.rejects(
      list,
      (e: unknown) => e instanceof HelperConnectionError && e.code === 'helper_closed',
    );
  });

  it('reports the peer refusal the helper sends before closing', async () => {
    const h = (helper = new FakeHelper(
      () => {},
      (conn) => {
        conn.reply({
          ok: false,
          op: null,
          error: 'peer',
          message: 'uid 1000 is not the agent user guard',
        });
        conn.close();
        return false;
      },
    ));
    client = await HelperClient.connect(h.socketPath, { hello: false });
    await h.connection();
    await assert.rejects(client.open('/var/log/syslog'), (e: unknown) => {
      assert.ok(e instanceof HelperRefusal, String(e));
      assert.equal(e.code, 'peer');
      assert.equal(e.op, null);
      return true;
    });
  });

  it('waits for the socket to become writable when the helper stops reading', async () => {
    const h = (helper = new FakeHelper(
      (raw, conn) =>
        conn.reply({
          ok: true,
          op: 'list',
          source: (raw as AnyRequest).source,
          files: [],
          generations: [],
        }),
      () => false, // do not read yet: the client's sends fill the socket and return false
    ));
    client = await HelperClient.connect(h.socketPath, { hello: false });
    const n = 300;
    const pending = Array.from({ length: n }, (_, i) => client!.list(`f${i}`));
    const conn = await h.connection();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(conn.requests.length, 0);
    const unsent = (client as unknown as { unsent: Buffer[] }).unsent;
    assert.ok(
      unsent.length > 0,
      'send never returned false: the test did not exercise backpressure',
    );
    conn.startReading();
    const replies = await Promise.all(pending);
    assert.deepEqual(
      replies.map((r) => r.source),
      Array.from({ length: n }, (_, i) => `f${i}`),
    );
    assert.equal(conn.requests.length, n);
  });

  describe('fails closed on protocol violations, closing stray descriptors', () => {
    async function violation(
      reply: (conn: FakeConnection, file: ReturnType<typeof makeFile>) => void,
      ask: (c: HelperClient) => Promise<unknown>,
      expect: RegExp,
    ) {
      const h = (helper = new FakeHelper());
      const file = makeFile(h.dir, 'x.log', 'x');
      client = await HelperClient.connect(h.socketPath, { hello: false });
      const conn = await h.connection();
      const before = openDescriptorCount();
      const p = ask(client);
      await conn.waitForRequests(1);
      const later = client.hello(); // queued behind the violation: fails with it
      await conn.waitForRequests(2);
      reply(conn, file);
      await assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof HelperConnectionError, String(e));
        assert.equal(e.code, 'helper_protocol');
        assert.match(e.message, expect);
        return true;
      });
      await assert.rejects(
        later,
        (e: unknown) => e instanceof HelperConnectionError && e.code === 'helper_protocol',
      );
      // The client's own socket is closed too, so it holds one descriptor fewer than before.
      assert.equal(openDescriptorCount(), before - 1, 'a received descriptor was left open');
    }
    // The addon attaches at most one descriptor: python3 sends the packet on the fake helper's
    // connection (inherited as its fd 3) with `count` descriptors of the file.
    const sendWithFds = (
      conn: FakeConnection,
      file: ReturnType<typeof makeFile>,
      message: unknown,
      count: number,
    ) => {
      const script = [
        'import os, socket, sys',
        's = socket.socket(fileno=3)',
        'fds = [os.open(sys.argv[1], os.O_RDONLY) for _ in range(int(sys.argv[2]))]',
        'socket.send_fds(s, [sys.argv[3].encode()], fds)',
        's.detach()',
      ].join('\n');
      const r = spawnSync(
        'python3',
        ['-c', script, file.path, String(count), JSON.stringify(message)],
        { stdio: ['ignore', 'ignore', 'pipe', conn.fd], encoding: 'utf8', timeout: 10_000 },
      );
      if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
    };
    const withFd = (conn: FakeConnection, file: ReturnType<typeof makeFile>, message: unknown) => {
      const fd = openSync(file.path, 'r');
      conn.reply(message, fd);
      closeSync(fd);
    };

    it('a descriptor attached to the reply to an open with descriptor: false (stat)', () =>
      violation(
        (conn, file) => withFd(conn, file, { ok: true, op: 'open', ...file.reply }),
        (c) => c.stat('/x'),
        /descriptor attached to a open reply/,
      ));
    it('a descriptor attached to a list reply', () =>
      violation(
        (conn, file) =>
          withFd(conn, file, { ok: true, op: 'list', source: 'x', files: [], generations: [] }),
        (c) => c.list('x'),
        /descriptor attached to a list reply/,
      ));
    for (const count of [2, 3, 8])
      it(`${count} descriptors attached to one open reply (a fake helper filling our table)`, () =>
        violation(
          (conn, file) => sendWithFds(conn, file, { ok: true, op: 'open', ...file.reply }, count),
          (c) => c.open('/x'),
          new RegExp(`a reply carried ${count} descriptors`),
        ));
    it('a descriptor attached to a refusal', () =>
      violation(
        (conn, file) =>
          withFd(conn, file, { ok: false, op: 'open', error: 'deny_listed', message: 'no' }),
        (c) => c.open('/x'),
        /descriptor attached to a refusal/,
      ));
    it('an open success without a descriptor', () =>
      violation(
        (conn, file) => conn.reply({ ok: true, op: 'open', ...file.reply }),
        (c) => c.open('/x'),
        /open reply without a descriptor/,
      ));
    it('a reply for another op', () =>
      violation(
        (conn) => conn.reply(HELLO),
        (c) => c.open('/x'),
        /hello reply while open request waits/,
      ));
    it('a reply that is not JSON', () =>
      violation(
        (conn) => conn.reply('not json'),
        (c) => c.hello(),
        /invalid reply packet/,
      ));
  });

  it('refuses to send a request over 4096 bytes, and the connection stays usable', async () => {
    const h = (helper = new FakeHelper(honestHelper({})));
    client = await HelperClient.connect(h.socketPath, { hello: false });
    await assert.rejects(
      client.open(`/${'a'.repeat(5000)}`),
      (e: unknown) => e instanceof HelperConnectionError && e.code === 'request_too_large',
    );
    assert.equal((await client.hello()).version, PROTOCOL_VERSION);
  });

  it('watch() sends an instance of its own, returns it with the watches the helper added; refusals and a descriptor on the reply reject', async () => {
    const h = (helper = new FakeHelper());
    const dirFd = fdpass.openNoFollow(h.dir, h.dir.length);
    let calls = 0;
    client = await HelperClient.connect(h.socketPath, { hello: false });
    const conn = h.connection();
    const replies = [
      (c: FakeConnection) => {
        // the helper's side: the watch goes into the instance the request carried
        const wd = fdpass.addWatch(c.fds[0]!, dirFd);
        c.reply({ ok: true, op: 'watch', source: 's', watches: [{ wd, dir: h.dir }] });
      },
      (c: FakeConnection) =>
        c.reply({ ok: false, op: 'watch', error: 'limit', message: 'over 4096 directories' }),
      (c: FakeConnection) => {
        const stray = openSync(h.dir, 'r');
        c.reply({ ok: true, op: 'watch', source: 's', watches: [] }, stray);
        closeSync(stray);
      },
    ];
    const w = client.watch('s');
    const served = await conn;
    served.startReading();
    const answer = async () => {
      await served.waitForRequests(++calls);
      replies[calls - 1]!(served);
    };
    await answer();
    const { fd, watches } = await w;
    try {
      assert.equal(watches.length, 1);
      assert.equal(watches[0]?.dir, h.dir);
      // a real instance: an event for a file created in the watched directory
      writeFileSync(join(h.dir, 'new.log'), '');
      const buf = Buffer.alloc(4096);
      const n = readSync(fd, buf);
      assert.ok(n >= 16);
      assert.equal(buf.readInt32LE(0), watches[0]?.wd);
      assert.ok((buf.readUInt32LE(4) & 0x100) !== 0, 'IN_CREATE');
      assert.throws(() => readSync(fd, buf), { code: 'EAGAIN' }, 'non-blocking');
    } finally {
      closeSync(fd);
      fdpass.close(dirFd);
    }
    const refused = client.watch('s');
    await answer();
    await assert.rejects(refused, (e: unknown) => e instanceof HelperRefusal && e.code === 'limit');
    assert.equal(served.fds.length, 2);
    assert.ok(
      served.fds.every((f) => f >= 0),
      'every watch request carried an instance',
    );
    const stray = client.watch('s');
    await answer();
    await assert.rejects(
      stray,
      (e: unknown) =>
        e instanceof HelperConnectionError &&
        e.code === 'helper_protocol' &&
        /descriptor attached to a watch reply/.test(e.message),
    );
    // the client closed its instances of the refused and the failed watch (the first was closed
    // above): once the fake helper drops its copies, no inotify instance is left in this process
    served.close();
    const instances = readdirSync('/proc/self/fd').filter((n) => {
      try {
        return readlinkSync(`/proc/self/fd/${n}`) === 'anon_inode:inotify';
      } catch {
        return false;
      }
    });
    assert.deepEqual(instances, [], 'an inotify instance was left open');
  });

  it('close() rejects what is still waiting with client_closed', async () => {
    const h = (helper = new FakeHelper());
    client = await HelperClient.connect(h.socketPath, { hello: false });
    const p = client.hello();
    client.close();
    client.close();
    await assert.rejects(
      p,
      (e: unknown) => e instanceof HelperConnectionError && e.code === 'client_closed',
    );
  });

  it('connect() throws the errno of a missing socket at once', async () => {
    const started = Date.now();
    await assert.rejects(
      HelperClient.connect('/nonexistent/guard/helper.sock'),
      (e: unknown) => (e as { code?: string }).code === 'ENOENT',
    );
    assert.ok(Date.now() - started < 500);
  });
});
