// Hostile names and content (issue #12, items 2 and 4), against the real helper (root) and the real
// agent (a test user): a user who can create files where an allowed glob looks chooses their names
// and what is in them. guardctl status, probe and check-config, in a real pseudo-terminal
// (node-pty) and piped, must write none of it raw; --json must stay valid JSON; the events must be
// flagged where the text hides something (bidi controls, invisible characters) and where a writer
// stalled mid-line.
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { spawn as ptySpawn } from 'node-pty';
import {
  AgentProcess,
  readStatus,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';
import { asUser, cleanEnv, run, type RunAs } from './lib/proc';

// The names of the issue: an OSC window title, clear screen, cursor home, an 8-bit CSI, and a
// right-to-left override that makes `gol.exe` read `exe.log`.
const OSC_NAME = 'x\x1b]0;PWNED\x07\x1b[2J\x1b[H.log';
const C1_NAME = 'y\u009b2J\u009b31mred.log';
const BIDI_NAME = 'invoice\u202Egol.exe.log';
const LINK_NAME = 'z\x1b]0;LINKED\x07\x1b[2J.log';

/** Anything a terminal acts on or hides, except guardctl's SGR colours and the pty's CR LF. */
const RAW = /[\x00-\x09\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f\p{Cf}\u2028\u2029]|\x1b(?!\[[0-9;]*m)/u;

function rawAt(out: string): string {
  const m = RAW.exec(out);
  return m
    ? `raw ${JSON.stringify(m[0])} at ${m.index}: ${JSON.stringify(out.slice(Math.max(0, m.index - 40), m.index + 40))}`
    : '';
}

describe('hostile file names and content (real helper, real agent)', () => {
  let env: AgentEnv;
  let agent: AgentProcess;
  const T = '2026-11-24T09:05:01.123456+00:00 testhost';

  before(async () => {
    env = await setupAgentEnv({
      sources: (e) =>
        [
          '[source.app]',
          `paths = ${e.logs}/*.log`,
          'parser = syslog',
          'start_at = beginning',
          '',
          '[source.js]',
          `paths = ${e.logs}/*.json`,
          'parser = json',
          'start_at = beginning',
          '',
          '[source.aud]',
          'type = audit',
          `paths = ${e.logs}/audit/audit.log`,
          'start_at = beginning',
          '',
          '[source.audtext]',
          'type = audit',
          `paths = ${e.logs}/audit-text/audit.log`,
          'start_at = beginning',
          'audit_records = text',
          '',
        ].join('\n'),
    });
    const logs = env.logs;
    writeFileSync(
      `${logs}/app.log`,
      [
        `${T} app[1]: plain line`,
        `${T} app[1]: invoice \u202Egnp.exe`, // bidi override
        `${T} app[1]: pass\u200Bword`, // zero-width space
        `${T} app[1]: ok \u200D joiner and caf\u00e9`, // ZWJ alone is not flagged
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    writeFileSync(`${logs}/${OSC_NAME}`, `${T} app[2]: in the OSC file\n`, { mode: 0o600 });
    writeFileSync(`${logs}/${C1_NAME}`, `${T} app[3]: in the C1 file\n`, { mode: 0o600 });
    writeFileSync(`${logs}/${BIDI_NAME}`, `${T} app[4]: in the bidi file\n`, { mode: 0o600 });
    writeFileSync(`${logs}/j.json`, '{"msg":"pay \\u202egnp.exe","n":1}\n{"msg":"fine","n":2}\n', {
      mode: 0o600,
    });
    // a symlink the helper refuses: its name lands in the FILE column and the problem list
    env.sb.symlink('/etc/hostname', `logs/${LINK_NAME}`);
    writeFileSync(`${logs}/slow.log`, `${T} app[5]: a writer who stal`, { mode: 0o600 });
    env.sb.mkdir('logs/audit', 0o700);
    env.sb.mkdir('logs/audit-text', 0o700);
    writeFileSync(
      `${logs}/audit-text/audit.log`,
      `type=USER_CMD msg=audit(1700000000.100:900): pid=1 uid=0 auid=1000 ses=1 msg='cwd="/" cmd=${Buffer.from('cat invoice\u202egnp.exe').toString('hex').toUpperCase()} res=success'\n`,
      { mode: 0o600 },
    );
    writeFileSync(
      `${logs}/audit/audit.log`,
      // auditd hex-encodes a command line with a bidi override; the event decodes it
      `type=USER_CMD msg=audit(1700000000.100:900): pid=1 uid=0 auid=1000 ses=1 msg='cwd="/" cmd=${Buffer.from('cat invoice\u202egnp.exe').toString('hex').toUpperCase()} res=success'\n` +
        // and a record whose writer stalls mid-line
        'type=USER_CMD msg=audit(1700000000.200:901): pid=2 uid=0 auid=1000 ses=1 msg=\'cwd="/" cmd=6C73 exe="/usr/bi',
      { mode: 0o600 },
    );
    agent = await AgentProcess.start(env);
    await until(() => env.receiver.events.length >= 8, 20_000, 'the first events delivered').catch(
      (e: Error) => {
        throw new Error(
          `${e.message}; ${env.receiver.events.length} received; agent: ${agent.dump(30)}`,
        );
      },
    );
  });
  after(async () => {
    await agent?.stop();
    await teardownAgentEnv(env);
  });

  const byMessage = (part: string) => env.receiver.events.filter((e) => e.message.includes(part));

  it('events with bidi controls or invisible characters are flagged; ordinary text is not', () => {
    assert.deepEqual(byMessage('invoice \u202Egnp')[0]?.flags, ['bidi']);
    assert.deepEqual(byMessage('pass\u200Bword')[0]?.flags, ['invisible']);
    assert.equal(byMessage('joiner and caf')[0]?.flags, undefined);
    assert.equal(byMessage('plain line')[0]?.flags, undefined);
    // decoded by the JSON parser from an ASCII \u escape: the field carries it, the event says so
    const j = env.receiver.events.find((e) => (e.fields as { n?: number } | undefined)?.n === 1);
    assert.deepEqual(j?.flags, ['bidi']);
    assert.equal(
      env.receiver.events.find((e) => (e.fields as { n?: number } | undefined)?.n === 2)?.flags,
      undefined,
    );
    // a file name with a bidi override: every event of that file
    const inBidi = byMessage('in the bidi file')[0];
    assert.equal(inBidi?.path, `${env.logs}/${BIDI_NAME}`);
    assert.deepEqual(inBidi?.flags, ['bidi']);
    // names with control characters are the helper's to refuse (bad_path): nothing read from them
    assert.equal(byMessage('in the OSC file').length, 0);
    assert.equal(byMessage('in the C1 file').length, 0);
  });

  it('a writer who stalls mid-line: the head is flagged partial, the rest continuation', async () => {
    await until(() => byMessage('a writer who stal').length === 1, 10_000, 'the partial line');
    assert.deepEqual(byMessage('a writer who stal')[0]!.flags, ['partial']);
    appendFileSync(`${env.logs}/slow.log`, `led mid-line\n${T} app[5]: next line\n`);
    await until(() => byMessage('next line').length === 1, 10_000, 'the rest');
    const rest = byMessage('led mid-line')[0]!;
    assert.equal(rest.message, 'led mid-line');
    assert.deepEqual(rest.flags, ['continuation', 'unparsed']); // no syslog header: it is a rest
    assert.equal(
      rest.offset,
      byMessage('a writer who stal')[0]!.offset + `${T} app[5]: a writer who stal`.length,
    );
    assert.equal(byMessage('next line')[0]!.flags, undefined);
  });

  it('audit: a hex-decoded bidi override is flagged; a record cut mid-line is partial, its rest continuation', async () => {
    const audit = () => env.receiver.events.filter((e) => e.source === 'aud');
    await until(() => audit().length >= 2, 15_000, 'the audit events');
    const bidi = audit().find((e) => (e.fields as { serial?: number }).serial === 900);
    assert.deepEqual(bidi?.flags, ['bidi']);
    const cut = audit().find((e) => (e.fields as { serial?: number }).serial === 901);
    assert.deepEqual(cut?.flags, ['malformed', 'partial']);
    appendFileSync(`${env.logs}/audit/audit.log`, 'n/sudo" res=success\'\n');
    await until(() => audit().length >= 3, 15_000, 'the rest of the record');
    const rest = audit().find((e) => e.message === 'n/sudo" res=success\'');
    assert.deepEqual(rest?.flags, ['unparsed', 'continuation']);
    // audit_records = text: the record's own fields are not shipped, the summary's decoded
    // command still earns the flag, and the record is there as auditd wrote it.
    const textEvent = () => env.receiver.events.find((e) => e.source === 'audtext');
    await until(() => textEvent() !== undefined, 15_000, 'the audit_records = text event');
    const text = textEvent()!;
    assert.deepEqual(text.flags, ['bidi']);
    const fields = text.fields as { records?: unknown; msg?: { cmd?: string } };
    assert.equal(fields.records, undefined);
    assert.equal(fields.msg?.cmd, 'cat invoice\u202egnp.exe');
    assert.equal(text.message, bidi?.message);
  });

  const statusArgs = (...extra: string[]) => [
    env.sb.guardctlJs,
    'status',
    '--status-socket',
    env.statusSocket,
    '--helper-socket',
    env.sb.path('run/helper.sock'),
    ...extra,
  ];

  /** Runs node with args in a real pseudo-terminal of `cols` columns (as `user`). */
  function inPty(
    args: string[],
    cols: number,
    user?: RunAs,
  ): Promise<{ out: string; code: number }> {
    const [cmd, argv] = asUser(user, process.execPath, args);
    return new Promise((resolve) => {
      const p = ptySpawn(cmd, argv, {
        cols,
        rows: 80,
        cwd: '/',
        env: { ...cleanEnv, TERM: 'xterm-256color' } as Record<string, string>,
      });
      let out = '';
      p.onData((d) => {
        out += d;
      });
      p.onExit(({ exitCode }) => setTimeout(() => resolve({ out, code: exitCode }), 50));
    });
  }

  it('guardctl status in a pty (80 and 200 columns) and piped: no raw control, C1 or bidi character', async () => {
    await until(
      async () =>
        (await readStatus(env)).sources[0].files.filter(
          (f: { state: string }) => f.state === 'refused',
        ).length === 3,
      10_000,
      'the symlink refused',
    );
    for (const cols of [80, 200]) {
      const { out, code } = await inPty(statusArgs(), cols);
      assert.equal(code, 1, out); // degraded: the refused symlink
      assert.equal(rawAt(out), '', `status at ${cols} columns`);
      assert.match(out, /\x1b\[[0-9;]*m/, 'colours are still written');
      if (cols === 200)
        assert.match(out, /x1b\[|u009b/, `the hostile names are shown, escaped: ${out}`);
    }
    const piped = await run(process.execPath, statusArgs());
    assert.equal(rawAt(piped.stdout + piped.stderr), '');
    for (const name of [OSC_NAME, C1_NAME, BIDI_NAME, LINK_NAME]) {
      const shown = name
        .replace(/[\x00-\x1f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
        .replace(
          /[\u0080-\u009f\u202e]/g,
          (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
        );
      assert.ok(piped.stdout.includes(`${env.logs}/${shown}`), `piped: ${shown} in full`);
    }
    assert.match(piped.stdout, /^guard: degraded/m);
  });

  it('guardctl status --json: valid JSON, the names exactly as they are, nothing raw', async () => {
    const r = await run(process.execPath, statusArgs('--json'));
    assert.equal(rawAt(r.stdout), '');
    const j = JSON.parse(r.stdout) as {
      sources: { files: { path: string }[] }[];
      reasons: string[];
    };
    const paths = j.sources.flatMap((s) => s.files.map((f) => f.path));
    assert.ok(
      j.reasons.some((x) => x.includes(OSC_NAME)),
      'the problem list, decoded, is the name',
    );
    for (const name of [OSC_NAME, C1_NAME, BIDI_NAME, LINK_NAME])
      assert.ok(paths.includes(`${env.logs}/${name}`), name);
  });

  it('guardctl probe (as the agent user) in a pty: granted and refused answers are escaped', async () => {
    const socket = env.sb.path('run/helper.sock');
    const granted = await inPty(
      [env.sb.guardctlJs, 'probe', `${env.logs}/${BIDI_NAME}`, '--socket', socket],
      80,
      env.agent,
    );
    assert.equal(granted.code, 0, granted.out);
    assert.equal(rawAt(granted.out), '');
    assert.match(granted.out, /granted: .*invoice\\u202egol\.exe\.log/);
    for (const name of [OSC_NAME, C1_NAME, LINK_NAME]) {
      const refused = await inPty(
        [env.sb.guardctlJs, 'probe', `${env.logs}/${name}`, '--socket', socket],
        80,
        env.agent,
      );
      assert.equal(refused.code, 1, refused.out);
      assert.equal(rawAt(refused.out), '', name);
      assert.match(refused.out, /refused: /);
    }
    const json = await run(
      process.execPath,
      [env.sb.guardctlJs, 'probe', `${env.logs}/${C1_NAME}`, '--socket', socket, '--json'],
      { user: env.agent },
    );
    assert.equal(rawAt(json.stdout), '');
    assert.equal((JSON.parse(json.stdout) as { granted: boolean }).granted, false);
  });

  it('guardctl check-config in a pty: a hostile value in the file is reported escaped', async () => {
    const bad = env.sb.file(
      'etc/hostile.conf',
      `[agent]\nuser = guard\n[source.x]\npaths = /var/log/\x1b]2PWNED\x07\u009b2J\u202e.log\n`,
    );
    const r = await inPty([env.sb.guardctlJs, 'check-config', bad], 80);
    assert.equal(r.code, 1, r.out);
    assert.equal(rawAt(r.out), '');
    // the loader quotes the value as JSON (\u001b); the C1 and bidi characters JSON leaves raw
    assert.match(r.out, /\\u001b\]2PWNED\\u0007\\u009b2J\\u202e/);
  });
});
