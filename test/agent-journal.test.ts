// The journal source end to end: a real systemd-journald (test/lib/journald.ts), the real helper as
// root, guard-agent as a test user who is not in systemd-journal and cannot open the journal files,
// and the HTTPS receiver. Entries are numbered; every count of missing and duplicate entries is exact.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
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
  return { missing, duplicates, seen: seen.size };
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
      sources: journalSource(['exclude_identifiers = noise']),
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
    assert.match(String(e.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const f = e.fields!;
    assert.equal(f.program, 'seq');
    assert.equal(f.transport, 'stdout');
    assert.equal(f.severity, 'info');
    assert.equal(typeof f.pid, 'number');
    assert.match(String(f.boot_id), /^[0-9a-f]{32}$/);
    assert.match(String(f.machine_id), /^[0-9a-f]{32}$/);
    assert.equal(typeof f.hostname, 'string');
    assert.equal(typeof f._COMM, 'string');
    assert.ok('_UID' in f && '_GID' in f);

    const one = env.receiver.events.find((x) => x.message === 'structured one')!;
    assert.equal(one.fields!.severity, 'err');
    assert.equal(one.fields!.program, 'guardtest');
    assert.equal(one.fields!.TEST_SINGLE, 'only');
    assert.equal(one.fields!.transport, 'journal');
    const rep = env.receiver.events.find((x) => x.message === 'repeated field')!;
    assert.deepEqual(rep.fields!.TEST_REPEATED, ['a', 'b']);

    // status: the journal directory, its files, the cursor, no lag, no gap
    const st = await readStatus(env);
    const src = st.sources.find((s: { name: string }) => s.name === 'journal');
    assert.equal(src.type, 'journal');
    assert.equal(src.journals.length, 1);
    const j = src.journals[0];
    assert.deepEqual(j.files, jd.files());
    assert.match(j.cursor, /^s=[0-9a-f]{32};i=/);
    assert.equal(j.lagEntries, 0);
    assert.equal(j.gaps.count, 0);
  });
});
