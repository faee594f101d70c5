// The agent's descriptor hygiene (issue #12, item 3, agent side), with the real agent as a test
// user fed by a fake helper (the protocol package's FakeHelper, real SCM_RIGHTS passing): a
// compromised or impostor helper hands over a descriptor open for writing, a directory, a FIFO, or
// a file other than the one its reply names. The agent must check each before reading it: closed
// unread, logged, shown as refused — and read the good file as always. It must also close the
// descriptors it inherits from whatever started it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeHelper, type FakeConnection } from '@guard/protocol/test/fake-helper';
import { PROTOCOL_VERSION } from '@guard/protocol/wire';
import {
  AgentProcess,
  readStatus,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';

/** The agent's open descriptors: fd → what it names. */
function fdsOf(pid: number): Map<number, string> {
  const out = new Map<number, string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.set(Number(fd), readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

describe('agent descriptor checks, against a fake helper', () => {
  let env: AgentEnv;
  let fake: FakeHelper;
  let agent: AgentProcess;
  let dir: string;
  const files: Record<string, string> = {};
  let stray: number;
  let strayPath: string;

  before(async () => {
    env = await setupAgentEnv();
    dir = env.sb.mkdir('fake-logs', 0o700);
    const T = '2026-11-24T09:05:01.123456+00:00 testhost app[1]:';
    for (const name of ['good', 'rdwr', 'wronly', 'mismatch', 'other']) {
      files[name] = `${dir}/${name}.log`;
      writeFileSync(files[name]!, `${T} ${name.toUpperCase()}-CONTENT line\n`, { mode: 0o600 });
    }
    files.dir = `${dir}/adir.log`;
    mkdirSync(files.dir, { mode: 0o700 });
    files.fifo = `${dir}/fifo.log`;
    execFileSync('mkfifo', ['-m', '600', files.fifo]);

    const identity = (p: string) => {
      const st = statSync(p, { bigint: true });
      return { dev: String(st.dev), ino: String(st.ino), size: Number(st.size) };
    };
    const opened: Record<
      string,
      () => { fd: number; id: { dev: string; ino: string; size: number } }
    > = {
      good: () => ({ fd: openSync(files.good!, 'r'), id: identity(files.good!) }),
      rdwr: () => ({ fd: openSync(files.rdwr!, 'r+'), id: identity(files.rdwr!) }),
      wronly: () => ({ fd: openSync(files.wronly!, 'a'), id: identity(files.wronly!) }),
      // the reply names mismatch.log, the descriptor is other.log
      mismatch: () => ({ fd: openSync(files.other!, 'r'), id: identity(files.mismatch!) }),
      adir: () => ({ fd: openSync(files.dir!, 'r'), id: identity(files.dir!) }),
      fifo: () => ({
        fd: openSync(files.fifo!, constants.O_RDONLY | constants.O_NONBLOCK),
        id: identity(files.fifo!),
      }),
    };
    const served = ['good', 'rdwr', 'wronly', 'mismatch', 'adir', 'fifo'].map(
      (n) => `${dir}/${n}.log`,
    );
    fake = new FakeHelper((req: unknown, conn: FakeConnection) => {
      const r = req as {
        op: string;
        path?: string;
        source?: string;
        version?: number;
        descriptor?: false;
      };
      if (r.op === 'hello')
        return conn.reply({
          ok: true,
          op: 'hello',
          version: PROTOCOL_VERSION,
          policy: 'fake',
          uid: 0,
          audit: false,
          open_path: 'openat2',
        });
      if (r.op === 'list')
        return conn.reply({
          ok: true,
          op: 'list',
          source: r.source,
          files: served,
          generations: [],
        });
      if (r.op === 'watch')
        // as the real helper where inotify is unavailable: the agent polls (an op left unanswered
        // would hold the agent's start until its request timeout)
        return conn.reply({
          ok: false,
          op: 'watch',
          error: 'unsupported',
          message: 'the fake helper makes no inotify instance',
        });
      const name = r.path!.slice(dir.length + 1, -'.log'.length);
      const make = opened[name];
      if (!make)
        return conn.reply({ ok: false, op: r.op, error: 'not_found', message: 'no such file' });
      const { fd, id } = make();
      // descriptor: false (the agent's rotation check): the identity, no descriptor
      conn.reply({ ok: true, op: 'open', path: r.path, ...id }, r.descriptor === false ? -1 : fd);
      closeSync(fd); // the agent holds its own copy now
    });
    // the agent user must reach the fake socket
    chmodSync(dirname(fake.socketPath), 0o755);
    chmodSync(fake.socketPath, 0o777);
    const config = readFileSync(env.config, 'utf8')
      .replace(/^helper_socket = .*$/m, `helper_socket = ${fake.socketPath}`)
      .replace(/^paths = .*$/m, `paths = ${dir}/*.log`);
    env.sb.writeConfig('etc/guard.conf', config, 0o640, { uid: 0, gid: env.agent.gid });

    // a stray: a root-only file the test opens and the agent inherits (as a supervisor's leak)
    strayPath = env.sb.file('stray-secret', 'STRAY-SECRET\n', 0o600);
    stray = openSync(strayPath, 'r');
    agent = new AgentProcess(env, { extraFds: [stray] });
    await agent.waitFor((l) => l.msg === 'guard-agent running', 15_000);
  });
  after(async () => {
    await agent?.stop();
    fake?.close();
    if (stray !== undefined) closeSync(stray);
    await teardownAgentEnv(env);
  });

  it('closes the descriptors it inherited, and says so', async () => {
    const warn = await agent.waitFor(
      (l) => l.msg === 'closed descriptors inherited from whatever started the agent',
    );
    const closed = warn.descriptors as { fd: number; what: string }[];
    assert.ok(
      closed.some((d) => d.fd === 3 && d.what === strayPath),
      JSON.stringify(closed),
    );
    for (const [, what] of fdsOf(agent.pid)) assert.notEqual(what, strayPath);
  });

  it('reads the good descriptor as always', async () => {
    await until(
      () => env.receiver.events.some((e) => e.message.includes('GOOD-CONTENT')),
      15_000,
      'the good file shipped',
    );
  });

  it('every bad descriptor is refused, logged, closed unread; nothing of theirs is shipped', async () => {
    const expect: Record<string, RegExp> = {
      rdwr: /is open for writing \(O_RDWR\)/,
      wronly: /is open for writing \(O_WRONLY\)/,
      mismatch: /is dev \d+ ino \d+, not the dev \d+ ino \d+ of the reply/,
      adir: /is not a regular file/,
      fifo: /is not a regular file/,
    };
    for (const [name, re] of Object.entries(expect)) {
      const l = await agent.waitFor(
        (x) =>
          x.msg === 'guard-helper sent a descriptor that failed a check; refused it' &&
          x.path === `${dir}/${name}.log`,
      );
      assert.match(String(l.err), re, name);
    }
    const s = await readStatus(env);
    const refused = (
      s.sources[0].files as { path: string; state: string; refusal?: { code: string } }[]
    )
      .filter((f) => f.state === 'refused')
      .map((f) => [f.path.slice(dir.length + 1), f.refusal?.code])
      .sort();
    assert.deepEqual(refused, [
      ['adir.log', 'bad_descriptor'],
      ['fifo.log', 'bad_descriptor'],
      ['mismatch.log', 'bad_descriptor'],
      ['rdwr.log', 'bad_descriptor'],
      ['wronly.log', 'bad_descriptor'],
    ]);
    for (const bad of ['RDWR-', 'WRONLY-', 'OTHER-', 'MISMATCH-'])
      assert.equal(
        env.receiver.events.filter((e) => e.message.includes(bad)).length,
        0,
        `nothing read from ${bad}`,
      );
    // closed: the agent holds no descriptor of any of them (only good.log)
    const held = [...fdsOf(agent.pid).values()].filter((w) => w.startsWith(dir));
    assert.deepEqual(held, [files.good]);
    // and it never wrote through them
    assert.equal(readFileSync(files.rdwr!, 'utf8').includes('RDWR-CONTENT'), true);
    assert.equal(fstatSync(stray).size, 'STRAY-SECRET\n'.length);
  });

  it('a second rescan asks again and refuses again: the check is on every descriptor', async () => {
    const before = agent.lines.filter((l) => l.path === `${dir}/rdwr.log`).length;
    await until(
      () => agent.lines.filter((l) => l.path === `${dir}/rdwr.log`).length > before,
      10_000,
      'a second refusal of rdwr.log',
    );
    const held = [...fdsOf(agent.pid).values()].filter((w) => w.startsWith(dir));
    assert.deepEqual(held, [files.good]);
  });
});
