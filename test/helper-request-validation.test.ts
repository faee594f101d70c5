// Attack 1: malformed and hostile requests. Each is refused with no descriptor sent; the ones the
// protocol says close the connection do close it; the helper keeps serving and its descriptor
// table returns to the baseline.
import assert from 'node:assert/strict';
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
import { closedResult, hello, open, reply, type Action } from './lib/peer';
import { run } from './lib/proc';

describe('guard-helper request validation', () => {
  let env: Env;
  before(async () => {
    env = await setupEnv({
      layout: (e) => {
        // look-alikes of the allowed pattern <S>/logs/app/*.log, readable and owned by the attacker
        e.sb.mkdir('logs/app-evil', 0o755, e.attacker);
        e.sb.file('logs/app-evil/x.log', 'EVIL\n', 0o644, e.attacker);
        e.sb.file('logs/appx.log', 'EVIL\n', 0o644, e.attacker);
        e.sb.mkdir('logs/app/sub', 0o755, e.attacker);
        e.sb.file('logs/app/sub/a.log', 'EVIL\n', 0o644, e.attacker);
        e.sb.file('logs/app/a.log.bak', 'EVIL\n', 0o644, e.attacker);
      },
    });
  });
  after(async () => {
    await teardownEnv(env);
  });
  beforeEach(async () => {
    await ensureHealthyHelper(env);
  });

  it('refuses paths that are not absolute and normalised (bad_path), keeping the connection', async () => {
    const s = env.sb.dir;
    const bad: Array<[string, string]> = [
      ['dot-dot', `${s}/logs/app/../root-only.log`],
      ['dot-dot escaping', `${s}/logs/app/../../secret/secret.txt`],
      ['dot-dot at the end', `${s}/logs/app/..`],
      ['double slash', `${s}//logs/app/a.log`],
      ['double slash before leaf', `${s}/logs/app//a.log`],
      ['dot component', `${s}/logs/app/./a.log`],
      ['trailing slash on a file', `${s}/logs/app/a.log/`],
      ['trailing slash on a dir', `${s}/logs/app/`],
      ['NUL truncating to an allowed name', `${s}/logs/app/a.log\u0000.txt`],
      ['NUL at the end', `${s}/logs/app/a.log\u0000`],
      ['newline', `${s}/logs/app/a\n.log`],
      ['escape', `${s}/logs/app/a\u001b[2J.log`],
      ['DEL', `${s}/logs/app/a\u007f.log`],
      ['tab', `${s}/logs/app/a\t.log`],
      ['carriage return', `${s}/logs/app/a.log\r`],
      ['relative', 'logs/app/a.log'],
      ['relative dot', './a.log'],
      ['relative dot-dot', '../etc/shadow'],
    ];
    const actions: Action[] = [{ a: 'connect' }];
    for (const [label, path] of bad)
      actions.push(
        { a: 'req', json: open(path), read: 32, label },
        { a: 'req', json: { op: 'open', path }, label: `again ${label}` },
      );
    actions.push({ a: 'req', json: open(env.legitPath), read: 64, label: 'legit after' });
    const out = await agentPeer(env, actions);
    for (let i = 0; i < bad.length * 2; i++) {
      const r = reply(out, i + 1);
      assertRefused(r, 'bad_path', String(r.label));
    }
    const last = reply(out, bad.length * 2 + 1);
    assert.equal(
      last.json?.ok,
      true,
      `same connection no longer served after bad_path: ${JSON.stringify(last)}`,
    );
    assert.equal(last.head, env.rootOnlyText);
    assert.equal(out.unexpectedFds, 0);
    await assertStillServing(env);
  });

  // U+009B is a control character (Unicode Cc, the 8-bit CSI): terminals that honour C1 controls
  // interpret it as an escape sequence when an operator reads the helper's logs.
  it('refuses C1 control characters (U+0080-U+009F) as bad_path', async () => {
    const s = env.sb.dir;
    const out = await agentPeer(env, [
      { a: 'connect' },
      { a: 'req', json: open(`${s}/logs/app/a\u009b2J.log`), read: 32 },
      { a: 'req', json: open(`${s}/logs/app/a\u0085.log`), read: 32 },
    ]);
    assertRefused(reply(out, 1), 'bad_path', 'U+009B (CSI)');
    assertRefused(reply(out, 2), 'bad_path', 'U+0085 (NEL)');
    // and the refusal's log line names the path without the raw control (JSON.stringify leaves C1 raw)
    const lines = env.helper.rawLines.filter(
      (l) => l.includes('"refused"') && l.includes('a\\u009b2J.log'),
    );
    assert.equal(lines.length, 1, 'the refusal is logged, with the control escaped');
    assert.ok(
      !env.helper.rawLines.some((l) => /[\u0080-\u009f]/.test(l)),
      'no raw C1 control in the helper log',
    );
    await assertStillServing(env);
  });

  // U+202E (RIGHT-TO-LEFT OVERRIDE) and U+2028 (LINE SEPARATOR) are not controls: a path may hold
  // them, but a viewer would reorder or break the log line that names it.
  it('logs bidi overrides and line separators in a path or a list cursor escaped, never raw', async () => {
    const s = env.sb.dir;
    const out = await agentPeer(env, [
      { a: 'connect' },
      { a: 'req', json: open(`${s}/logs/app/gol.\u202eexe.log`), read: 32 },
      { a: 'req', json: open(`${s}/logs/app/x\u2028forged.log`), read: 32 },
      { a: 'req', json: { op: 'list', source: 'nope', cursor: `a\u2066\u2029b` } },
    ]);
    assertRefused(reply(out, 1), 'not_found', 'U+202E in a path');
    assertRefused(reply(out, 2), 'not_found', 'U+2028 in a path');
    assertRefused(reply(out, 3), 'not_allowed', 'bidi in a cursor');
    const logged = (needle: string) =>
      env.helper.rawLines.some((l) => l.includes('"refused"') && l.includes(needle));
    assert.ok(logged('gol.\\u202eexe.log'), 'the U+202E path is logged, escaped');
    assert.ok(logged('x\\u2028forged.log'), 'the U+2028 path is logged, escaped');
    assert.ok(logged('a\\u2066\\u2029b'), 'the cursor is logged, escaped');
    assert.ok(
      !env.helper.rawLines.some((l) => /[\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(l)),
      'no raw bidi override or line separator in the helper log',
    );
    await assertStillServing(env);
  });

  it('does not let a look-alike of an allowed pattern through (prefix confusion)', async () => {
    const s = env.sb.dir;
    const paths: Array<[string, string]> = [
      ['sibling dir with the same prefix', `${s}/logs/app-evil/x.log`],
      ['file with the dir as prefix', `${s}/logs/appx.log`],
      ['* must not cross a /', `${s}/logs/app/sub/a.log`],
      ['pattern anchored at the end', `${s}/logs/app/a.log.bak`],
      ['outside the sandbox', '/etc/passwd'],
      ['root-only file near a pattern', `${s}/secret/a.log`],
    ];
    const actions: Action[] = [{ a: 'connect' }];
    for (const [label, path] of paths)
      actions.push({ a: 'req', json: open(path), read: 32, label });
    actions.push({ a: 'req', json: open(`${s}/logs/app/a.log`), read: 64, label: 'allowed' });
    const out = await agentPeer(env, actions);
    paths.forEach(([label], i) => assertRefused(reply(out, i + 1), 'not_allowed', label));
    const ok = reply(out, paths.length + 1);
    assert.equal(ok.json?.ok, true, `allowed file refused: ${JSON.stringify(ok)}`);
    assert.equal(ok.head, env.publicText);
    assert.equal(out.unexpectedFds, 0);
    await assertStillServing(env);
  });

  // Requests the protocol answers with one refusal and then closes the connection.
  const closing: Array<{
    label: string;
    send: Action;
    codes: string[];
    allowSilentClose?: boolean;
  }> = [
    {
      label: 'path is a number',
      send: { a: 'send', json: { op: 'open', path: 1 } },
      codes: ['bad_request'],
    },
    {
      label: 'path is an array',
      send: { a: 'send', json: { op: 'open', path: ['/etc/passwd'] } },
      codes: ['bad_request'],
    },
    {
      label: 'path is an object',
      send: { a: 'send', json: { op: 'open', path: { toString: '/etc/passwd' } } },
      codes: ['bad_request'],
    },
    { label: 'path missing', send: { a: 'send', json: { op: 'open' } }, codes: ['bad_request'] },
    {
      label: 'version is a string',
      send: { a: 'send', json: { op: 'hello', version: '1' } },
      codes: ['bad_request'],
    },
    {
      label: 'extra key',
      send: { a: 'send', json: { op: 'open', path: '/x/y.log', uid: 0 } },
      codes: ['bad_request'],
    },
    {
      label: 'extra __proto__ key',
      send: { a: 'send', raw: '{"op":"open","path":"/x/y.log","__proto__":{"admin":true}}' },
      codes: ['bad_request'],
    },
    {
      label: 'not an object (array)',
      send: { a: 'send', raw: '[{"op":"open","path":"/x/y.log"}]' },
      codes: ['bad_request'],
    },
    { label: 'not an object (null)', send: { a: 'send', raw: 'null' }, codes: ['bad_request'] },
    { label: 'not an object (string)', send: { a: 'send', raw: '"open"' }, codes: ['bad_request'] },
    {
      label: 'op missing',
      send: { a: 'send', raw: '{"path":"/x/y.log"}' },
      codes: ['bad_request', 'unknown_op'],
    },
    {
      label: 'op is a number',
      send: { a: 'send', json: { op: 1, path: '/x/y.log' } },
      codes: ['bad_request', 'unknown_op'],
    },
    {
      label: 'unknown op',
      send: { a: 'send', json: { op: 'read', path: '/x/y.log' } },
      codes: ['unknown_op'],
    },
    {
      label: 'unknown op "constructor"',
      send: { a: 'send', json: { op: 'constructor' } },
      codes: ['unknown_op'],
    },
    {
      label: 'unknown op "__proto__"',
      send: { a: 'send', json: { op: '__proto__' } },
      codes: ['unknown_op'],
    },
    {
      label: 'unknown op "toString"',
      send: { a: 'send', json: { op: 'toString', path: '/x/y.log' } },
      codes: ['unknown_op'],
    },
    {
      label: 'list with a path as the source',
      send: { a: 'send', json: { op: 'list', source: '../app' } },
      codes: ['bad_request'],
    },
    {
      label: 'list with a source of 65 characters',
      send: { a: 'send', json: { op: 'list', source: 'a'.repeat(65) } },
      codes: ['bad_request'],
    },
    {
      label: 'invalid JSON',
      send: { a: 'send', raw: '{"op":"open","path":' },
      codes: ['bad_request'],
    },
    {
      label: 'invalid UTF-8',
      send: {
        a: 'send',
        b64: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]).toString('base64'),
      },
      codes: ['bad_request'],
    },
    {
      label: 'trailing garbage after JSON',
      send: { a: 'send', raw: '{"op":"hello","version":1}{"op":"hello","version":1}' },
      codes: ['bad_request'],
    },
    { label: '64 KiB packet', send: { a: 'send', fill: 65536 }, codes: ['too_large'] },
    {
      label: '4097-byte packet of valid JSON',
      send: { a: 'send', json: hello, padTo: 4097 },
      codes: ['too_large'],
    },
    {
      label: '5000-character path',
      send: { a: 'send', json: { op: 'open', path: `/${'a'.repeat(4999)}` } },
      codes: ['too_large', 'bad_path'],
    },
    // an empty path is "not absolute" (bad_path) or fails the schema (bad_request): either way refused
    {
      label: 'empty path',
      send: { a: 'send', json: { op: 'open', path: '' } },
      codes: ['bad_path', 'bad_request'],
    },
  ];

  it('refuses malformed requests and closes the connection, with no descriptor', async () => {
    const actions: Action[] = [];
    for (const c of closing) {
      actions.push(
        { a: 'connect', c: 'x' },
        { ...c.send, c: 'x', label: c.label },
        { a: 'expectClosed', c: 'x', label: c.label },
        { a: 'close', c: 'x' },
      );
    }
    const out = await agentPeer(env, actions, 120000);
    const problems: string[] = [];
    closing.forEach((c, i) => {
      const sent = reply(out, i * 4 + 1);
      const res = closedResult(out, i * 4 + 2);
      if (sent.error && sent.error !== 'EPIPE' && sent.error !== 'ECONNRESET')
        problems.push(`${c.label}: send failed ${sent.error}`);
      if (!res.closed)
        problems.push(`${c.label}: connection not closed (${JSON.stringify(res.replies)})`);
      if (res.replies.length > 1) problems.push(`${c.label}: ${res.replies.length} replies`);
      for (const r of res.replies) {
        if (r.gotFd) problems.push(`${c.label}: DESCRIPTOR SENT`);
        if (r.json?.ok !== false || !c.codes.includes(String(r.json?.error)))
          problems.push(
            `${c.label}: reply ${JSON.stringify(r.json ?? r)}, expected ${c.codes.join('|')}`,
          );
      }
      if (res.replies.length === 0 && !c.allowSilentClose)
        problems.push(`${c.label}: closed without a refusal (expected ${c.codes.join('|')})`);
    });
    assert.equal(out.unexpectedFds, 0, 'descriptors were sent');
    assert.deepEqual(problems, []);
    assert.ok(
      env.helper
        .events('closed')
        .some(
          (e) =>
            e.level === 'warn' && e.reason === 'protocol violation' && e.code === 'bad_request',
        ),
      'no protocol violation (bad_request) logged',
    );
    await assertStillServing(env);
  });

  it('survives an empty packet (sent with python: the addon refuses to send one)', async () => {
    // a zero-length SEQPACKET reads like end-of-file on the helper's side: closing is the answer
    const r = await run('/usr/bin/python3', [env.sb.sendFdsPy, env.socket, '0', ''], {
      user: env.agent,
      timeoutMs: 15000,
    });
    const res = JSON.parse(r.stdout.trim()) as {
      replies: Array<{ json: { ok?: boolean; error?: string } | null; fds: number }>;
      closed: boolean;
    };
    assert.equal(res.closed, true, `connection not closed: ${r.stdout}`);
    for (const x of res.replies) {
      assert.equal(x.fds, 0, 'descriptor sent');
      assert.equal(x.json?.ok, false);
    }
    await assertStillServing(env);
  });

  it('list: names only what a source allows; prototype names are no source', async () => {
    const out = await agentPeer(env, [
      { a: 'connect' },
      { a: 'req', json: { op: 'list', source: 'app' } },
      { a: 'req', json: { op: 'list', source: 'constructor' } },
      { a: 'req', json: { op: 'list', source: '__proto__' } },
      { a: 'req', json: { op: 'list', source: 'hasOwnProperty' } },
      { a: 'req', json: { op: 'list', source: 'nosuch' } },
    ]);
    const l = reply(out, 1);
    assert.equal(l.json?.ok, true, JSON.stringify(l));
    assert.equal(l.gotFd, false);
    const files = (l.json?.files ?? []) as string[];
    assert.ok(
      files.includes(env.sb.path('logs/app/a.log')) && files.includes(env.legitPath),
      `list app: ${JSON.stringify(files)}`,
    );
    for (const f of files)
      assert.ok(
        f === env.legitPath || /^[^/]*\.log$/.test(f.slice(env.sb.path('logs/app/').length)),
        `list app names a file no pattern allows: ${f}`,
      );
    for (let i = 2; i <= 5; i++)
      assertRefused(
        reply(out, i),
        'not_allowed',
        `list ${JSON.stringify((reply(out, i).json as { message?: string } | undefined)?.message)}`,
      );
    await assertStillServing(env);
  });

  it('serves a request of exactly 4096 bytes (the limit is inclusive)', async () => {
    const out = await agentPeer(env, [
      { a: 'connect' },
      { a: 'req', json: open(env.legitPath), padTo: 4096, read: 64 },
    ]);
    const r = reply(out, 1);
    assert.equal(r.json?.ok, true, `4096-byte request refused: ${JSON.stringify(r)}`);
    assert.equal(r.head, env.rootOnlyText);
    await assertStillServing(env);
  });

  it('keeps serving other connections while one misbehaves', async () => {
    const out = await agentPeer(env, [
      { a: 'connect', c: 'good' },
      { a: 'connect', c: 'bad' },
      { a: 'req', c: 'good', json: hello },
      { a: 'send', c: 'bad', fill: 65536 },
      { a: 'expectClosed', c: 'bad' },
      { a: 'req', c: 'good', json: open(env.legitPath), read: 64 },
    ]);
    assert.equal(reply(out, 2).json?.ok, true);
    assert.equal(closedResult(out, 4).closed, true);
    const r = reply(out, 5);
    assert.equal(r.json?.ok, true, `the good connection was hurt: ${JSON.stringify(r)}`);
    assert.equal(r.head, env.rootOnlyText);
    await assertStillServing(env);
  });
});
