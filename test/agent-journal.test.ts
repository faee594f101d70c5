// The journal source end to end: a real systemd-journald (test/lib/journald.ts), the real helper as
// root, guard-agent as a test user who is not in systemd-journal and cannot open the journal files,
// and the HTTPS receiver. Entries are numbered; every count of missing and duplicate entries is exact.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import {
  AgentProcess,
  readStatus,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';
import type { ReceivedEvent } from './lib/https-receiver';
import { PrivateJournald } from './lib/journald';
import { killAll, run, sleep } from './lib/proc';

/** Numbers of the events `${tag} n=<k>`: missing and duplicate counts against [from, to). */
function tally(events: ReceivedEvent[], tag: string, from: number, to: number) {
  const seen = new Map<number, number>();
  const re = new RegExp(`^${tag} n=(\\d+)$`);
  for (const e of events) {
    const m = re.exec(e.message);
    if (m) seen.set(Number(m[1]), (seen.get(Number(m[1])) ?? 0) + 1);
  }
  let missing = 0;
  let duplicates = 0;
  for (let k = from; k < to; k++) {
    const n = seen.get(k) ?? 0;
    if (n === 0) missing++;
    else duplicates += n - 1;
  }
  return { missing, duplicates, seen: to - from - missing };
}

/** Every string in a JSON value, keys included. */
function strings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(strings);
  if (v !== null && typeof v === 'object')
    return Object.entries(v).flatMap(([k, x]) => [k, ...strings(x)]);
  return [];
}

function journalSource(extra: string[] = []) {
  return (env: AgentEnv): string =>
    [
      '[source.journal]',
      'type = journal',
      `paths = ${env.sb.dir}/journal/*/*.journal`,
      'start_at = beginning',
      ...extra,
      '',
    ].join('\n');
}

describe('journal source', { concurrency: false }, () => {
  let env: AgentEnv | undefined;
  let jd: PrivateJournald | undefined;
  let agent: AgentProcess | undefined;

  before(() => {
    assert.ok(
      PrivateJournald.available(),
      'systemd-journald and nsenter are needed (systemd package)',
    );
  });
  afterEach(async () => {
    await agent?.stop('SIGKILL');
    agent = undefined;
    await jd?.stop();
    jd = undefined;
    await teardownAgentEnv(env);
    env = undefined;
  });
  after(killAll);

  it('ships numbered entries in order, exactly once, with their fields, as a user who cannot open the files', async () => {
    env = await setupAgentEnv({
      sources: journalSource(['exclude_identifiers = noise', 'tags = jtag']),
    });
    jd = await PrivateJournald.start(env.sb);
    // The agent's user is not in systemd-journal, and cannot open a journal file itself.
    const groups = execFileSync('id', ['-Gn', env.agent.name], { encoding: 'utf8' }).split(/\s+/);
    assert.ok(!groups.includes('systemd-journal'), `groups: ${groups.join(' ')}`);
    const file = jd.files()[0]!;
    const self = await run('/bin/cat', [file], { user: env.agent });
    assert.notEqual(self.code, 0);
    assert.match(self.stderr, /Permission denied/);

    await jd.logger({
      MESSAGE: 'structured one',
      PRIORITY: '3',
      SYSLOG_IDENTIFIER: 'guardtest',
      TEST_REPEATED: 'first',
      TEST_SINGLE: 'only',
    });
    // the same name twice: an array
    await jd.native([
      [
        ['MESSAGE', 'repeated field'],
        ['SYSLOG_IDENTIFIER', 'guardtest'],
        ['TEST_REPEATED', 'a'],
        ['TEST_REPEATED', 'b'],
      ],
    ]);
    // redaction covers the message and every field
    await jd.logger({
      MESSAGE: 'connecting to https://alice:hunter2@db.example/x',
      SYSLOG_IDENTIFIER: 'guardtest',
      TEST_URL: 'https://bob:s3cret@db.example/y',
    });
    await jd.numbered('noise', 0, 50);
    await jd.numbered('seq', 0, 2000);
    agent = await AgentProcess.start(env);
    await until(
      () => tally(env!.receiver.events, 'seq', 0, 2000).seen === 2000,
      30_000,
      'all 2000 entries',
    );
    await sleep(500);
    const t = tally(env.receiver.events, 'seq', 0, 2000);
    assert.deepEqual(
      { missing: t.missing, duplicates: t.duplicates },
      { missing: 0, duplicates: 0 },
    );
    assert.equal(tally(env.receiver.events, 'noise', 0, 50).seen, 0, 'exclude_identifiers');

    // in order, with ids from the seqnum id and seqnum
    const seq = env.receiver.events.filter((e) => e.message.startsWith('seq n='));
    seq.forEach((e, k) => assert.equal(e.message, `seq n=${k}`));
    const ids = seq.map((e) => /^([0-9a-f]{32}):(\d+)$/.exec(e.id));
    assert.ok(ids.every((m) => m !== null));
    for (let k = 1; k < ids.length; k++)
      assert.ok(Number(ids[k]![2]) > Number(ids[k - 1]![2]), 'seqnums ascending');
    const e = seq[0]!;
    assert.equal(e.offset, Number(ids[0]![2]));
    assert.equal(e.parser, 'journal');
    assert.equal(e.source, 'journal');
    assert.equal(e.path, `journal:${jd.machineDir.split('/').pop()}`);
    assert.match(String(e.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const f = e.fields!;
    assert.equal(f.program, 'seq');
    assert.equal(f.transport, 'stdout');
    assert.equal(f.severity, 'info');
    assert.equal(typeof f.pid, 'number');
    assert.match(String(f.boot_id), /^[0-9a-f]{32}$/);
    assert.match(String(f.machine_id), /^[0-9a-f]{32}$/);
    assert.equal(typeof f.hostname, 'string');
    // _COMM is journald's own (from /proc): absent when systemd-cat exited before journald read
    // it, which happens on a loaded machine; whatever journald recorded is what is shipped
    const recorded = new Map((await jd.entries()).map((x) => [x.message, x.comm]));
    for (const x of seq) assert.equal(x.fields!._COMM, recorded.get(x.message), x.message);
    assert.ok('_UID' in f && '_GID' in f);

    const one = env.receiver.events.find((x) => x.message === 'structured one')!;
    assert.equal(one.fields!.severity, 'err');
    assert.equal(one.fields!.program, 'guardtest');
    assert.equal(one.fields!.TEST_SINGLE, 'only');
    assert.equal(one.fields!.transport, 'journal');
    const red = env.receiver.events.find((x) => x.message.startsWith('connecting to'))!;
    assert.equal(red.message, 'connecting to https://alice:[REDACTED]@db.example/x');
    assert.equal(red.fields!.TEST_URL, 'https://bob:[REDACTED]@db.example/y');
    assert.deepEqual(red.flags, ['redacted']);
    assert.deepEqual(e.tags, ['jtag']);
    const rep = env.receiver.events.find((x) => x.message === 'repeated field')!;
    assert.deepEqual(rep.fields!.TEST_REPEATED, ['a', 'b']);

    // status: the journal directory, its files, the cursor, no lag (once the last batch's answer
    // has been handled), no gap
    await until(
      async () => (await readStatus(env!)).sources[0].journals[0].lagEntries === 0,
      10_000,
      'no lag',
    );
    const st = await readStatus(env);
    const src = st.sources.find((s: { name: string }) => s.name === 'journal');
    assert.equal(src.type, 'journal');
    assert.equal(src.journals.length, 1);
    const j = src.journals[0];
    assert.deepEqual(j.files, jd.files());
    assert.match(j.cursor, /^s=[0-9a-f]{32};i=/);
    assert.equal(j.lagEntries, 0);
    assert.equal(j.gaps.count, 0);

    // guardctl probe, as the agent's user: the helper grants a journal file and says what it is
    const probe = await run(
      process.execPath,
      [env.sb.guardctlJs, 'probe', file, '--socket', env.sb.path('run/helper.sock')],
      { user: env.agent },
    );
    assert.equal(probe.code, 0, probe.stderr);
    assert.match(
      probe.stdout,
      /^granted: .*system\.journal .*; journal file, (online|offline), \d+ entries\)$/m,
    );
  });
  it('follows through 2 rotations, a vacuum of read files, a stop with writes and a rotation, and a restart: 0 missing, 0 duplicates', async () => {
    env = await setupAgentEnv({ sources: journalSource() });
    jd = await PrivateJournald.start(env.sb);
    agent = await AgentProcess.start(env);
    let n = 0;
    const write = async (k: number): Promise<void> => {
      await jd!.numbered('live', n, n + k);
      n += k;
    };
    const shipped = (): Promise<void> =>
      until(() => tally(env!.receiver.events, 'live', 0, n).seen === n, 30_000, `${n} entries`);
    await write(300);
    await shipped();
    await jd.rotate();
    await write(300);
    await shipped();
    await write(200);
    await jd.rotate(); // while the agent follows
    await write(300);
    await shipped();
    assert.equal(jd.files().length, 3, 'two archived files and the active one');
    await jd.vacuumFiles(1); // both archived files, already read
    assert.equal(jd.files().length, 1);
    await write(200);
    await shipped();
    assert.equal(await agent.stop(), 0);
    agent = undefined;
    await write(300); // while stopped: writes, a rotation, writes
    await jd.rotate();
    await write(300);
    agent = await AgentProcess.start(env);
    await shipped();
    await sleep(1500);
    const t = tally(env.receiver.events, 'live', 0, n);
    assert.deepEqual(
      { missing: t.missing, duplicates: t.duplicates },
      { missing: 0, duplicates: 0 },
    );
    assert.equal(n, 1900);
  });

  it('kill -9 three times during a sink outage while entries are written and the journal rotates: 0 missing, duplicates at most one batch per kill', async () => {
    env = await setupAgentEnv({ sources: journalSource() });
    jd = await PrivateJournald.start(env.sb);
    agent = await AgentProcess.start(env);
    let n = 0;
    for (let round = 0; round < 3; round++) {
      env.receiver.mode = { kind: 'ok' };
      const writing = jd.numbered('kill', n, n + 1500);
      await sleep(200 + round * 100);
      await agent.stop('SIGKILL'); // while shipping
      await writing;
      n += 1500;
      env.receiver.mode = { kind: 'status', code: 503 }; // the backend is down
      agent = await AgentProcess.start(env);
      await jd.numbered('kill', n, n + 500);
      n += 500;
      await jd.rotate();
      await sleep(500);
      await agent.stop('SIGKILL'); // during the outage
      agent = await AgentProcess.start(env);
    }
    env.receiver.mode = { kind: 'ok' };
    await until(() => tally(env!.receiver.events, 'kill', 0, n).seen === n, 60_000, `${n} entries`);
    await sleep(1500);
    const t = tally(env.receiver.events, 'kill', 0, n);
    console.log(`# kill -9 x3: ${n} entries, ${t.missing} missing, ${t.duplicates} duplicates`);
    assert.equal(t.missing, 0);
    assert.ok(t.duplicates <= 3 * 1000, `duplicates ${t.duplicates} > 3 batches of 1000`);
  });

  it('a vacuum of files not shipped yet: the gap is logged and shown with its exact size, and shipping goes on', async () => {
    env = await setupAgentEnv({ sources: journalSource() });
    jd = await PrivateJournald.start(env.sb);
    agent = await AgentProcess.start(env);
    await jd.numbered('gap', 0, 100);
    await until(
      () => tally(env!.receiver.events, 'gap', 0, 100).seen === 100,
      30_000,
      '100 entries',
    );
    await sleep(500);
    const saved = (await readStatus(env)).sources[0].journals[0].cursor as string;
    assert.equal(await agent.stop(), 0);
    agent = undefined;
    await jd.numbered('gap', 100, 300); // never shipped: vacuumed below
    await jd.rotate();
    await jd.numbered('gap', 300, 400);
    await jd.rotate();
    const before = await jd.entries();
    await jd.vacuumFiles(2); // the oldest archived file: the saved entry and 100…299
    const after = new Set((await jd.entries()).map((e) => e.cursor));
    const seqnum = (c: string): number => parseInt(/;i=([0-9a-f]+)/.exec(c)![1]!, 16);
    const lost = before.filter((e) => !after.has(e.cursor) && seqnum(e.cursor) > seqnum(saved));
    assert.ok(lost.length >= 200, `lost ${lost.length}`);
    assert.deepEqual(
      lost.filter((e) => e.message.startsWith('gap n=')).map((e) => e.message),
      Array.from({ length: 200 }, (_, k) => `gap n=${100 + k}`),
    );
    agent = await AgentProcess.start(env);
    await jd.numbered('gap', 400, 500);
    await until(
      () => tally(env!.receiver.events, 'gap', 300, 500).seen === 200,
      30_000,
      'the entries after the gap',
    ).catch((e: Error) => {
      throw new Error(`${e.message}; the agent said:\n${agent!.dump(30)}`);
    });
    const logged = await agent.waitFor((l) => /journal gap/.test(String(l.msg)));
    assert.equal(logged.entries, lost.length);
    assert.equal(logged.level, 40); // warn
    const j = (await readStatus(env)).sources[0].journals[0];
    // guardctl status: degraded, the gap and its size in the reasons and in the table
    const gs = await run(process.execPath, [
      env.sb.guardctlJs,
      'status',
      '--status-socket',
      env.statusSocket,
      '--helper-socket',
      env.sb.path('run/helper.sock'),
    ]);
    assert.equal(gs.code, 1, gs.stdout + gs.stderr);
    assert.match(
      gs.stdout,
      new RegExp(`${lost.length} entries removed by journald before they were shipped`),
    );
    assert.match(gs.stdout, /journal \[journal\]|journal\s+\[journal\]/);
    assert.equal(j.gaps.count, 1);
    assert.equal(j.gaps.entries, lost.length);
    assert.equal(j.gaps.last.entries, lost.length);
    const t = tally(env.receiver.events, 'gap', 0, 500);
    assert.deepEqual(
      { missing: t.missing, duplicates: t.duplicates },
      { missing: 200, duplicates: 0 },
    );
  });

  /** A journald as at boot (journal in /run until `journalctl --flush`), and the agent reading both. */
  async function volatileJournal(): Promise<{
    write: (k: number) => Promise<void>;
    shipped: () => Promise<void>;
    count: () => number;
  }> {
    env = await setupAgentEnv({
      sources: (e) =>
        [
          '[source.journal]',
          'type = journal',
          `paths = ${e.sb.dir}/journal/*/*.journal, ${e.sb.dir}/journal-run/*/*.journal`,
          'start_at = beginning',
          '',
        ].join('\n'),
    });
    jd = await PrivateJournald.start(env.sb, 'journal', 'journal-run');
    agent = await AgentProcess.start(env);
    let n = 0;
    return {
      write: async (k: number): Promise<void> => {
        await jd!.numbered('fl', n, n + k);
        n += k;
      },
      shipped: () =>
        until(() => tally(env!.receiver.events, 'fl', 0, n).seen === n, 30_000, `${n} entries`),
      count: () => n,
    };
  }

  /** After a flush: nothing missing or twice, no gap, one reader, only /var files held. */
  async function assertFlushed(n: number): Promise<void> {
    await sleep(1500);
    const t = tally(env!.receiver.events, 'fl', 0, n);
    assert.deepEqual(
      { missing: t.missing, duplicates: t.duplicates },
      { missing: 0, duplicates: 0 },
    );
    const j = (await readStatus(env!)).sources[0].journals;
    assert.equal(j.length, 1, 'one reader for /run and /var of the machine');
    assert.equal(j[0].gaps.count, 0, 'a flush is not a gap');
    assert.ok(
      j[0].files.every((f: string) => f.startsWith(`${env!.sb.dir}/journal/`)),
      `files held: ${j[0].files}`,
    );
  }

  // journald as at boot: its journal in /run (volatile) until `journalctl --flush` copies it to
  // /var/log/journal and removes it. The copies have a new seqnum id (not their cursors' s=); one
  // reader holds /run and /var of the machine, and a copy is known by its boot id, timestamps and
  // hash. systemd-cat's entries come many to one timestamp: the hard case for finding a copy.
  it("journald's flush of /run to /var while the agent reads: 0 missing, 0 duplicates, no gap", async () => {
    const j = await volatileJournal();
    await j.write(1000); // volatile, shipped
    const runtimeFiles = (): string[] =>
      readdirSync(jd!.runtimeDir, { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.journal'));
    assert.equal(runtimeFiles().length, 1, 'journald writes to /run');
    await j.shipped();
    await j.write(500); // volatile; the flush comes while the agent reads them
    await jd!.flush();
    assert.deepEqual(runtimeFiles(), [], 'the flush removed the /run journal');
    await j.write(500); // to /var
    await j.shipped();
    await assertFlushed(j.count());
  });

  it("journald's flush of /run to /var while the agent is stopped: 0 missing, 0 duplicates, no gap", async () => {
    const j = await volatileJournal();
    await j.write(1000); // volatile, shipped
    await j.shipped();
    assert.equal(await agent!.stop(), 0); // its cursor is in /run's sequence
    agent = undefined;
    await j.write(500); // volatile, while stopped
    await jd!.flush();
    await j.write(500);
    agent = await AgentProcess.start(env!);
    await j.shipped();
    await assertFlushed(j.count());
  });

  it('hostile entries: one event each, escaped or base64 with a flag, nothing forged', async () => {
    env = await setupAgentEnv({ sources: journalSource() });
    jd = await PrivateJournald.start(env.sb);
    const big = 'A'.repeat(1024 * 1024);
    const hostile: [string, string][][] = [
      [
        ['MESSAGE', 'bin\x00ary\x01\xff'],
        ['SYSLOG_IDENTIFIER', 'h1'],
      ],
      [
        ['MESSAGE', 'esc \x1b[31mred\x1b[0m bell\x07 cr\r del\x7f csi\xc2\x9b'],
        ['SYSLOG_IDENTIFIER', 'h2'],
      ],
      [
        ['MESSAGE', 'bad utf8 \xff\xfe \xc3( end'],
        ['SYSLOG_IDENTIFIER', 'h3'],
      ],
      [
        ['MESSAGE', big],
        ['SYSLOG_IDENTIFIER', 'h4'],
      ],
      [
        ['MESSAGE', 'forge","host":"evil","id":"x:1"}\n{"id":"forged'],
        ['SYSLOG_IDENTIFIER', 'h5'],
        ['ID', 'forged-id'],
        ['HOST', 'evil'],
        ['SOURCE', 'evil'],
        ['SEVERITY', 'emerg'],
        ['PROGRAM', 'evil'],
        ['FIELDS', '{"x":1}'],
      ],
      [
        ['MESSAGE', 'multi\nline\ttab'],
        ['SYSLOG_IDENTIFIER', 'h6'],
        ['BLOB', '\x00\x01\x02'],
      ],
      // Secrets the addon must mark for redaction (BIT_SECRET) through escapes, invalid UTF-8,
      // repeated fields, odd case: an escape's hex digit completes a word ("\x1a" + "ccess_key").
      [
        ['MESSAGE', '\x1access_key=topsecret1 \xff'],
        ['SYSLOG_IDENTIFIER', 'h7'],
        ['TEST_REPEATED', 'plain'],
        ['TEST_REPEATED', 'AUTHORIZATION: Bearer abcdefgh12345 \x01'],
        ['TEST_QUOTED', 'pAsSwOrD="hunter2" \\'],
      ],
    ];
    await jd.native(hostile);
    await jd.numbered('end', 0, 1);
    agent = await AgentProcess.start(env);
    await until(
      () => env!.receiver.events.some((e) => e.message === 'end n=0'),
      30_000,
      'the last entry',
    );
    await sleep(500);
    const by = (id: string): ReceivedEvent[] =>
      env!.receiver.events.filter((e) => e.fields?.program === id);
    for (const id of ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7']) assert.equal(by(id).length, 1, id);
    const keys = [
      'fields',
      'flags',
      'host',
      'id',
      'message',
      'offset',
      'parser',
      'path',
      'source',
      'tags',
      'time',
    ];
    for (const e of env.receiver.events) {
      for (const k of Object.keys(e)) assert.ok(keys.includes(k), `unexpected key ${k}`);
      assert.equal(e.source, 'journal');
      assert.match(e.id, /^[0-9a-f]{32}:\d+$/);
      // nothing a terminal would act on, in any string of the event (TAB and LF are text)
      for (const v of strings(e))
        assert.doesNotMatch(v, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    }
    const [h1] = by('h1');
    assert.deepEqual(h1!.flags, ['base64']);
    assert.equal(Buffer.from(h1!.message, 'base64').toString('latin1'), 'bin\x00ary\x01\xff');
    assert.deepEqual(h1!.fields!.base64, ['MESSAGE']);
    const [h2] = by('h2');
    assert.deepEqual(h2!.flags, ['escaped']);
    assert.equal(h2!.message, 'esc \\x1b[31mred\\x1b[0m bell\\x07 cr\\x0d del\\x7f csi\\u009b');
    const [h3] = by('h3');
    assert.deepEqual(h3!.flags, ['escaped']);
    assert.equal(h3!.message, 'bad utf8 \\xff\\xfe \\xc3( end');
    const [h4] = by('h4');
    assert.deepEqual(h4!.flags, ['truncated']);
    assert.equal(h4!.message, big.slice(0, 65536));
    const [h5] = by('h5');
    assert.equal(h5!.message, 'forge","host":"evil","id":"x:1"}\n{"id":"forged');
    assert.notEqual(h5!.host, 'evil');
    assert.notEqual(h5!.id, 'forged-id');
    assert.equal(h5!.fields!.ID, 'forged-id');
    assert.equal(h5!.fields!.HOST, 'evil');
    assert.equal(h5!.fields!.SEVERITY, 'emerg');
    assert.equal(h5!.fields!.PROGRAM, 'evil');
    assert.equal(h5!.fields!.program, 'h5');
    assert.equal(h5!.flags, undefined);
    const [h6] = by('h6');
    assert.equal(h6!.message, 'multi\nline\ttab');
    assert.deepEqual(h6!.flags, ['base64']);
    assert.equal(h6!.fields!.BLOB, Buffer.from([0, 1, 2]).toString('base64'));
    assert.deepEqual(h6!.fields!.base64, ['BLOB']);
    const [h7] = by('h7');
    assert.equal(h7!.message, '\\x1access_key=[REDACTED] \\xff');
    assert.deepEqual(h7!.fields!.TEST_REPEATED, [
      'plain',
      'AUTHORIZATION: Bearer [REDACTED] \\x01',
    ]);
    assert.equal(h7!.fields!.TEST_QUOTED, 'pAsSwOrD="[REDACTED]" \\');
    assert.deepEqual(h7!.flags, ['escaped', 'redacted']);
  });
});
