// Filters and redaction end to end, on both of the agent's paths: a chunk of ASCII (a scan per chunk
// for secrets, events written as bytes) and any other chunk (line by line). The same lines are
// written to two files, one of them with a non-ASCII line first so that its chunk goes line by line;
// every event must come out the same from both.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  AgentProcess,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';

const TS = '2026-11-24T09:05:01.123456+00:00';
const LINES = [
  `${TS} h1 sshd[1]: keep a plain line`,
  `${TS} h1 app: keep url https://bob:hunter2@example.com/x`,
  `${TS} h1 app: keep Authorization: Bearer abcdef0123456789.xyz`,
  `${TS} h1 app: keep key AKIAABCDEFGHIJKLMNOP here`,
  `${TS} h1 app: keep a dangling password=`, // the per-chunk scan matches across the newline; per line, nothing
  'keep the next line, not a password',
  `${TS} h1 app: keep but drop this one`,
  `${TS} h1 app: no include word`,
  `${TS} h1 app: keep "quoted" \\ back\tslash`,
  `${TS} h1 app: keep esc \x1b[1m and token=abc\x01def`,
  '<34>1 2026-11-24T09:05:01.003Z mymachine su - ID47 - keep 5424',
  'keep unparsed line',
  'keep crlf\r',
  'keep -----BEGIN RSA PRIVATE KEY----- MIIEabc',
  'keep after the key line',
  'keep hunter2 and hunter3',
];

type Ev = Record<string, any>;
/** An event without what differs between the files: id, offset, path, and the read time of a line without a time of its own. */
const comparable = (e: Ev): Ev => {
  const { id: _i, offset: _o, path: _p, time, ...rest } = e;
  return (e.flags as string[] | undefined)?.includes('unparsed') ? rest : { time, ...rest };
};

function setup(sections: string[]): { env: () => AgentEnv; agent: () => AgentProcess } {
  let env: AgentEnv;
  let agent: AgentProcess;
  before(async () => {
    env = await setupAgentEnv({
      sources: (e) =>
        [
          '[source.app]',
          'type = file',
          `paths = ${e.logs}/*.log`,
          'parser = syslog',
          'start_at = beginning',
          'include[] = keep',
          'exclude[] = drop',
          '',
          ...sections,
          '',
        ].join('\n'),
    });
    writeFileSync(env.sb.path('logs/ascii.log'), LINES.join('\n') + '\n', { mode: 0o600 });
    writeFileSync(
      env.sb.path('logs/mixed.log'),
      ['keep caf\u00e9 first', ...LINES].join('\n') + '\n',
      { mode: 0o600 },
    );
    agent = await AgentProcess.start(env);
  });
  after(async () => {
    await agent?.stop();
    await teardownAgentEnv(env);
  });
  return { env: () => env, agent: () => agent };
}

async function both(env: AgentEnv): Promise<{ ascii: Ev[]; mixed: Ev[] }> {
  const from = (name: string) =>
    env.receiver.events.filter((e) => (e.path as string).endsWith(name));
  const kept = LINES.filter((l) => l.includes('keep') && !l.includes('drop')).length;
  await until(
    () => from('ascii.log').length >= kept && from('mixed.log').length >= kept + 1,
    20_000,
    `${kept} events from each file`,
  );
  const mixed = from('mixed.log');
  assert.equal(mixed[0]!.message, 'keep caf\u00e9 first');
  return { ascii: from('ascii.log'), mixed: mixed.slice(1) };
}

describe('filters and built-in redaction, per chunk and per line alike', () => {
  const w = setup([]);

  it('keeps what include/exclude keep, redacts the secrets, and writes the same events on both paths', async () => {
    const { ascii, mixed } = await both(w.env());
    assert.deepEqual(
      ascii.map(comparable),
      mixed.map(comparable),
      'the ASCII chunk and the line-by-line chunk give the same events',
    );
    const by = (s: string) => ascii.find((e) => e.message.includes(s))!;
    assert.equal(
      ascii.length,
      LINES.filter((l) => l.includes('keep') && !l.includes('drop')).length,
      'include and exclude applied, nothing else lost',
    );
    assert.equal(
      by('keep url').message,
      `${TS} h1 app: keep url https://bob:[REDACTED]@example.com/x`,
    );
    assert.match(by('Authorization').message, /Bearer \[REDACTED\]$/);
    assert.equal(by('keep key').message, `${TS} h1 app: keep key [REDACTED] here`);
    assert.match(by('PRIVATE KEY').message, /^keep -----BEGIN RSA PRIVATE KEY-----\[REDACTED\]$/);
    for (const s of ['keep url', 'Authorization', 'keep key', 'PRIVATE KEY', 'keep esc'])
      assert.ok(by(s).flags?.includes('redacted'), `${s}: flagged redacted`);
    for (const s of [
      'dangling password=',
      'the next line',
      'after the key line',
      'keep a plain line',
      'hunter2 and',
    ]) {
      assert.ok(!by(s).flags?.includes('redacted'), `${s}: not redacted`);
    }
    assert.equal(by('dangling password=').flags, undefined);
    assert.equal(by('"quoted"').message, `${TS} h1 app: keep "quoted" \\ back\tslash`);
    assert.deepEqual(by('keep esc').flags, ['escaped', 'redacted']);
    assert.equal(by('keep esc').message, `${TS} h1 app: keep esc \\x1b[1m and token=[REDACTED]`);
    assert.equal(by('keep 5424').fields.msgid, 'ID47');
    assert.deepEqual(by('unparsed line').flags, ['unparsed']);
    assert.equal(by('keep crlf').message, 'keep crlf');
    assert.deepEqual(by('keep a plain line').fields, { hostname: 'h1', program: 'sshd', pid: 1 });
    assert.equal(by('keep a plain line').time, '2026-11-24T09:05:01.123Z');
  });
});

describe('custom redaction patterns with a replacement that is not ASCII', () => {
  const w = setup([
    '[redact]',
    'builtin = false',
    'pattern[] = hunter[0-9]',
    'replacement = \u2588\u2588',
  ]);

  it('replaces every match on both paths, and nothing the built-ins would have', async () => {
    const { ascii, mixed } = await both(w.env());
    assert.deepEqual(ascii.map(comparable), mixed.map(comparable));
    const by = (s: string) => ascii.find((e) => e.message.includes(s))!;
    assert.equal(by('and \u2588').message, 'keep \u2588\u2588 and \u2588\u2588');
    assert.deepEqual(by('and \u2588').flags, ['redacted', 'unparsed']);
    assert.equal(
      by('keep url').message,
      `${TS} h1 app: keep url https://bob:\u2588\u2588@example.com/x`,
    );
    assert.equal(
      by('keep key').message,
      `${TS} h1 app: keep key AKIAABCDEFGHIJKLMNOP here`,
      'built-ins off',
    );
  });
});

// Audit records take the same two paths (#20): an ASCII chunk scanned for secrets in pieces, any
// other line by line. A control character a regex counts as white space (VT) sends its piece line
// by line: escaped, `pa\x0bss` is one word the URL pattern redacts, raw it is two.
const AUDIT = [
  `type=USER_AUTH msg=audit(1700000000.100:900): pid=2 uid=0 auid=1000 ses=1 msg='op=PAM:authentication acct="bob" exe="/usr/bin/curl" hostname=https://bob:hunter2@example.com/x addr=? terminal=pts/0 res=failed'\x1dUID="root" AUID="bob"`,
  `type=USER_CMD msg=audit(1700000000.200:901): pid=3 uid=0 auid=1000 ses=1 msg='cwd="/" cmd=6C73 password=hunter2 terminal=pts/0 res=success'\x1dUID="root" AUID="bob"`,
  `type=SYSCALL msg=audit(1700000000.300:902): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=1 ppid=1 pid=4 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=1 comm="curl" exe="/usr/bin/curl" key=(null)\x1dARCH=x86_64 SYSCALL=execve`,
  `type=EXECVE msg=audit(1700000000.300:902): argc=3 a0="curl" a1="-H" a2="Authorization: Bearer abcdef0123456789.xyz"`,
  `type=PROCTITLE msg=audit(1700000000.300:902): proctitle=6375726C`,
  `type=USER_CMD msg=audit(1700000000.400:903): pid=5 uid=0 auid=1000 ses=1 msg='cwd="/" cmd=6C73 res=success'\x1dUID="root"`,
];
const VT_LINE = `type=USER_CMD msg=audit(1700000000.500:904): pid=6 uid=0 auid=1000 ses=1 msg='cwd="/" hostname=https://bob:pa\x0bss@example.com/y res=success'`;

describe('audit records: built-in redaction, per chunk and per line alike', () => {
  let env: AgentEnv;
  let agent: AgentProcess;
  before(async () => {
    env = await setupAgentEnv({
      sources: (e) =>
        [
          '[source.aud]',
          'type = audit',
          `paths = ${e.logs}/audit/*.log`,
          'start_at = beginning',
          '',
        ].join('\n'),
    });
    env.sb.mkdir('logs/audit', 0o700);
    const write = (name: string, lines: string[]) =>
      writeFileSync(env.sb.path(`logs/audit/${name}`), lines.join('\n') + '\n', { mode: 0o600 });
    write('ascii.log', AUDIT);
    write('vt.log', [VT_LINE, ...AUDIT]);
    write('mixed.log', [`type=USER_CMD msg=audit(1699999999.000:1): msg='caf\u00e9'`, ...AUDIT]);
    agent = await AgentProcess.start(env);
  });
  after(async () => {
    await agent?.stop();
    await teardownAgentEnv(env);
  });

  it('redacts the same secrets from each file, whichever path its chunk took', async () => {
    const from = (name: string) =>
      env.receiver.events.filter((e) => (e.path as string).endsWith(`/${name}`));
    // 900, 901, 902 (three records), 903 in each; 904 first in vt.log, the café one in mixed.log
    await until(
      () =>
        from('ascii.log').length >= 4 &&
        from('vt.log').length >= 5 &&
        from('mixed.log').length >= 5,
      20_000,
      'every audit event',
    );
    const ascii = from('ascii.log');
    const vt = from('vt.log');
    const mixed = from('mixed.log');
    assert.equal(ascii.length, 4);
    const byStamp = (evs: Ev[]) =>
      new Map(evs.map((e) => [e.fields.stamp as string, { m: e.message, f: e.fields }]));
    const a = byStamp(ascii);
    for (const [name, other] of [
      ['vt.log', vt],
      ['mixed.log', mixed],
    ] as const) {
      const o = byStamp(other);
      for (const [stamp, ev] of a) assert.deepEqual(o.get(stamp), ev, `${name}: ${stamp}`);
    }
    const msg = (stamp: string) => a.get(stamp)!.m as string;
    assert.match(msg('1700000000.100:900'), /hostname=https:\/\/bob:\[REDACTED\]@example\.com\/x /);
    assert.match(msg('1700000000.200:901'), / password=\[REDACTED\] terminal=/);
    assert.match(msg('1700000000.300:902'), /a2="Authorization: Bearer \[REDACTED\]"/);
    assert.doesNotMatch(msg('1700000000.300:902'), /abcdef0123456789/);
    assert.match(msg('1700000000.100:900'), /\\x1dUID="root"/, 'the separator escaped, shipped');
    const v = vt.find((e) => e.fields?.stamp === '1700000000.500:904')!;
    assert.match(v.message as string, /hostname=https:\/\/bob:\[REDACTED\]@example\.com\/y /);
    for (const e of [...ascii, ...vt, ...mixed])
      assert.doesNotMatch(JSON.stringify(e), /hunter2|pa\\\\x0bss/);
  });
});
