// The syslog sink end to end: the real helper as root, the real agent as a test user, shipping to
// real receivers run by the test — rsyslogd (imtcp over TLS, imrelp plain and over TLS) and
// syslog-ng (syslog() over TLS) — each a private process on its own 127.0.0.1 port writing what it
// got to a file. Lines are counted by their sequence number: missing and duplicated, exactly.
import assert from 'node:assert/strict';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  writeFileSync,
} from 'node:fs';
import { after, before, describe, it, type TestContext } from 'node:test';
import {
  AgentProcess,
  agentConfig,
  readStatus,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';
import { sleep } from './lib/proc';
import {
  makeSyslogPki,
  Rsyslog,
  SyslogNg,
  type ReceiverKind,
  type SyslogPki,
} from './lib/syslog-receivers';

const syslogLine = (run: string, i: number) =>
  `2026-11-24T09:05:01.123456+00:00 testhost sshd[${1000 + (i % 50)}]: ${run} line ${i}`;

/** Appends lines [from, to) of `run` at about `perSecond`. */
async function writeLines(
  path: string,
  run: string,
  from: number,
  to: number,
  perSecond: number,
): Promise<void> {
  const burst = Math.max(1, Math.round(perSecond / 50));
  const t0 = Date.now();
  for (let i = from; i < to; i += burst) {
    const n = Math.min(burst, to - i);
    appendFileSync(
      path,
      Array.from({ length: n }, (_, k) => syslogLine(run, i + k)).join('\n') + '\n',
    );
    const wait = t0 + ((i + n - from) / perSecond) * 1000 - Date.now();
    if (wait > 0) await sleep(wait);
  }
}

interface Count {
  /** sequence numbers in arrival order */
  order: number[];
  missing: number[];
  duplicates: number;
}

function count(lines: string[], run: string, total: number): Count {
  const re = new RegExp(` ${run} line (\\d+)$`);
  const order: number[] = [];
  for (const l of lines) {
    const m = re.exec(l);
    if (m) order.push(Number(m[1]));
  }
  const seen = new Set(order);
  const missing: number[] = [];
  for (let i = 0; i < total; i++) if (!seen.has(i)) missing.push(i);
  return { order, missing, duplicates: order.length - seen.size };
}

/** Each line's first arrival comes after every line before it (what is sent again after a broken
 *  session or a restart comes later: duplicates, never a line ahead of one still missing). */
function assertFirstArrivalsInOrder(c: Count): void {
  const seen = new Set<number>();
  let expected = 0;
  for (const n of c.order) {
    if (seen.has(n)) continue;
    seen.add(n);
    assert.equal(n, expected, `line ${n} arrived first where line ${expected} was due`);
    expected++;
  }
}

describe('syslog sink (real rsyslog and syslog-ng receivers)', () => {
  let env: AgentEnv;
  let pki: SyslogPki;
  let agent: AgentProcess | null = null;
  let caseNo = 0;
  const receivers: { kill(): Promise<void> }[] = [];

  before(async () => {
    env = await setupAgentEnv();
    pki = makeSyslogPki(env.sb.mkdir('syslog-pki', 0o700));
    // what the agent user may read: the CAs and its client certificate (key 0640 root:agent)
    for (const [from, to] of [
      [pki.caCert, 'etc/syslog-ca.pem'],
      [pki.otherCa, 'etc/other-ca.pem'],
      [pki.clientCert, 'etc/client.pem'],
    ] as const)
      copyFileSync(from, env.sb.path(to));
    copyFileSync(pki.clientKey, env.sb.path('etc/client.key'));
    chownSync(env.sb.path('etc/client.key'), 0, env.agent.gid);
    chmodSync(env.sb.path('etc/client.key'), 0o640);
  });

  after(async () => {
    await agent?.stop('SIGKILL');
    for (const r of receivers) await r.kill();
    await teardownAgentEnv(env);
  });

  /** A receiver of its own in a fresh directory, started. */
  async function receiver(
    kind: ReceiverKind,
    opts: { ng?: boolean; mutual?: boolean; expired?: boolean } = {},
  ): Promise<Rsyslog | SyslogNg> {
    const dir = env.sb.path(`recv-${++caseNo}`);
    mkdirSync(dir, { mode: 0o700 });
    const R = opts.ng ? SyslogNg : Rsyslog;
    const r = new R({
      kind,
      dir,
      pki,
      mutual: opts.mutual ?? false,
      ...(opts.expired ? { cert: pki.expiredCert, key: pki.expiredKey } : {}),
    });
    receivers.push(r);
    await r.start();
    return r;
  }

  /** (Re)starts the agent with one source (a file of its own) shipping only to [sink.sys]. */
  async function startAgent(logName: string, sink: string[]): Promise<string> {
    await agent?.stop();
    const log = env.sb.path(`logs/${logName}.log`);
    writeFileSync(log, '', { mode: 0o600, flag: 'a' });
    const text = agentConfig(env, {
      sources: () =>
        [
          '[source.app]', // the helper's allow-list names it (logs/*.log)
          'type = file',
          `paths = ${log}`,
          'parser = syslog',
          'start_at = beginning',
          'sinks = sys',
          '',
          '[sink.sys]',
          'type = syslog',
          'retry_initial_ms = 100',
          'retry_max_ms = 1000',
          'timeout_ms = 5000',
          ...sink,
          '',
        ].join('\n'),
    });
    env.sb.writeConfig('etc/guard.conf', text, 0o640, { uid: 0, gid: env.agent.gid });
    agent = await AgentProcess.start(env);
    return log;
  }

  const tlsKeys = (mutual: boolean, ca = 'etc/syslog-ca.pem'): string[] => [
    `ca_file = ${env.sb.path(ca)}`,
    ...(mutual
      ? [
          `client_cert_file = ${env.sb.path('etc/client.pem')}`,
          `client_key_file = ${env.sb.path('etc/client.key')}`,
        ]
      : []),
  ];

  async function sinkStatus(): Promise<Record<string, any>> {
    return (await readStatus(env)).sinks.find((s: { name: string }) => s.name === 'sys');
  }

  /** Ships `total` lines of a run and checks they arrived once each, in order, with guard's fields. */
  async function inOrder(
    r: Rsyslog | SyslogNg,
    run: string,
    sink: string[],
    total: number,
  ): Promise<void> {
    const log = await startAgent(run, sink);
    await writeLines(log, run, 0, total, 20_000);
    await until(
      () => count(r.lines(), run, total).missing.length === 0,
      20_000,
      `${run} arrived`,
    ).catch((e: Error) => {
      throw new Error(
        `${e.message}; agent: ${agent?.dump()}; receiver: ${r.lines().slice(-3).join('\n')}`,
      );
    });
    const c = count(r.lines(), run, total);
    assert.equal(c.duplicates, 0);
    assert.deepEqual(
      c.order,
      Array.from({ length: total }, (_, i) => i),
    );
    const first = r.lines().find((l) => l.endsWith(` ${run} line 7`))!;
    // <PRI> of a line without one: user.notice = 13; the time from the line, in UTC; HOSTNAME,
    // APP-NAME and PROCID from the syslog line; MSGID the source; guard's fields in structured data
    assert.match(
      first,
      new RegExp(
        `^13 2026-11-24T09:05:01\\.123(000)?(Z|\\+00:00) testhost sshd 1007 app \\[guard@32473 id="[0-9a-f.]+:${7 * (syslogLine(run, 0).length + 1)}" offset="${7 * (syslogLine(run, 0).length + 1)}" source="app" path="${log}" host="[^"]+" parser="syslog"\\] ?2026-11-24T09:05:01.123456\\+00:00 testhost sshd\\[1007\\]: ${run} line 7$`,
      ),
    );
    // The receiver writes a line before its answer reaches the agent: wait for the status to
    // count the batch delivered rather than reading it the moment the lines are on disk.
    await until(
      async () => ((await sinkStatus())?.deliveredEvents ?? 0) >= total,
      10_000,
      `${run} counted delivered in the sink status`,
    );
    assert.equal((await sinkStatus()).lastError, null);
  }

  it('RELP over mutual TLS to rsyslog imrelp: every line once, in order, with its fields', async () => {
    const r = await receiver('relp-tls', { mutual: true });
    await inOrder(
      r,
      'relptls',
      [`address = 127.0.0.1:${r.port}`, 'protocol = relp', ...tlsKeys(true)],
      3000,
    );
  });

  it('RFC 5425 (octet counting over mutual TLS) to rsyslog imtcp/gtls: in order, with its fields', async () => {
    const r = await receiver('tls', { mutual: true });
    await inOrder(
      r,
      'rsystls',
      [`address = 127.0.0.1:${r.port}`, 'protocol = tcp', ...tlsKeys(true)],
      3000,
    );
  });

  it('RFC 5425 over mutual TLS to syslog-ng syslog(): in order, with its fields', async () => {
    const r = await receiver('tls', { ng: true, mutual: true });
    await inOrder(
      r,
      'ngtls',
      [`address = 127.0.0.1:${r.port}`, 'protocol = tcp', ...tlsKeys(true)],
      3000,
    );
  });

  it('RFC 3164 with LF framing over plain TCP to rsyslog (old receivers)', async () => {
    const r = await receiver('tcp');
    const log = await startAgent('bsd', [
      `address = 127.0.0.1:${r.port}`,
      'protocol = tcp',
      'tls = false',
      'format = rfc3164',
      'framing = lf',
    ]);
    await writeLines(log, 'bsd', 0, 500, 20_000);
    await until(() => count(r.lines(), 'bsd', 500).missing.length === 0, 20_000, 'bsd arrived');
    const c = count(r.lines(), 'bsd', 500);
    assert.equal(c.duplicates, 0);
    assert.match(
      r.lines().find((l) => l.endsWith(' bsd line 3'))!,
      /^13 \S+ testhost sshd 1003 - - .*bsd line 3$/,
    );
  });

  /** Nothing must arrive, and the sink's status must say why. */
  async function refused(
    t: TestContext,
    r: Rsyslog | SyslogNg,
    run: string,
    sink: string[],
    want: RegExp,
  ): Promise<void> {
    const log = await startAgent(run, sink);
    await writeLines(log, run, 0, 50, 10_000);
    await until(
      async () => want.test(String((await sinkStatus()).lastError)),
      15_000,
      `sink status matching ${want}`,
    );
    const st = await sinkStatus();
    t.diagnostic(`status: ${st.lastError}`);
    assert.equal(st.deliveredEvents, 0);
    assert.equal(st.retryingUntil === null || typeof st.retryingUntil === 'string', true);
    assert.equal(count(r.lines(), run, 50).order.length, 0, 'nothing reached the receiver');
  }

  it('a receiver whose certificate is from a CA not in ca_file is refused, with a clear status', async (t) => {
    const r = await receiver('tls');
    await refused(
      t,
      r,
      'wrongca',
      [`address = 127.0.0.1:${r.port}`, 'protocol = tcp', ...tlsKeys(false, 'etc/other-ca.pem')],
      /^UNABLE_TO_VERIFY_LEAF_SIGNATURE: .*not signed by a trusted CA/,
    );
  });

  it('a receiver with an expired certificate is refused, with a clear status (TLS and RELP over TLS)', async (t) => {
    const r = await receiver('tls', { expired: true });
    await refused(
      t,
      r,
      'expired',
      [`address = 127.0.0.1:${r.port}`, 'protocol = tcp', ...tlsKeys(false)],
      /^CERT_HAS_EXPIRED: .*certificate has expired/,
    );
    const r2 = await receiver('relp-tls', { expired: true });
    await refused(
      t,
      r2,
      'expiredrelp',
      [`address = 127.0.0.1:${r2.port}`, 'protocol = relp', ...tlsKeys(false)],
      /^CERT_HAS_EXPIRED: /,
    );
  });

  it('a receiver that requires a client certificate refuses an agent without one: nothing counted as delivered', async (t) => {
    // TLS 1.3 finishes the client's handshake before the receiver checks its certificate: a
    // plain-TLS batch written at once would be "delivered" into a connection about to be refused.
    const r = await receiver('tls', { mutual: true });
    await refused(
      t,
      r,
      'noclient',
      [`address = 127.0.0.1:${r.port}`, 'protocol = tcp', ...tlsKeys(false)],
      /^GUARD_SYSLOG_TLS_REFUSED: .*refused guard's client certificate/,
    );
  });

  /** `total` lines at `perSecond` (30,000 at 15,000/s; 1e9: all at once, a backlog sent three
   *  batches at a time); the receiver killed (-9) after 8,000 and restarted on its port 0.7 s
   *  later; returns once `done` holds of what arrived. */
  async function receiverKilled(
    kind: 'relp-tls' | 'tcp',
    run: string,
    done: (c: Count) => boolean,
    perSecond = 15_000,
    total = 30_000,
  ): Promise<{ c: Count; total: number; retries: number }> {
    const r = await receiver(kind, { mutual: true });
    const log = await startAgent(
      run,
      kind === 'tcp'
        ? [`address = 127.0.0.1:${r.port}`, 'protocol = tcp', 'tls = false']
        : [`address = 127.0.0.1:${r.port}`, 'protocol = relp', ...tlsKeys(true)],
    );
    const writing = writeLines(log, run, 0, total, perSecond);
    const arrived = (): Count => count(r.lines(), run, total);
    await until(() => arrived().order.length >= 8000, 20_000, '8000 lines before the kill');
    await r.kill();
    await sleep(700);
    await r.start(); // same port, same output file
    await writing;
    await until(() => done(arrived()), 30_000, 'the lines after the restart');
    return { c: arrived(), total, retries: (await sinkStatus()).retries as number };
  }

  it('RELP over mutual TLS: rsyslog killed (-9) mid-stream and restarted: 0 missing', async (t) => {
    const { c, total } = await receiverKilled(
      'relp-tls',
      'relpkill',
      (c) => c.missing.length === 0,
    );
    t.diagnostic(
      `RELP, receiver killed: ${c.missing.length} missing, ${c.duplicates} duplicates of ${total}`,
    );
    assert.equal(c.missing.length, 0);
    // rsyslog writes a message before it answers it: only answers lost with the process come again
    assert.ok(c.duplicates <= 1024, `${c.duplicates} duplicates: at most one RELP window`);
    assertFirstArrivalsInOrder(c);
  });

  it('RELP, a backlog (batches on the session together): rsyslog killed (-9) and restarted: 0 missing, in order', async (t) => {
    const { c, total, retries } = await receiverKilled(
      'relp-tls',
      'relpbacklog',
      (c) => c.missing.length === 0,
      1e9,
      200_000, // enough that the kill comes while the backlog is being sent
    );
    t.diagnostic(
      `RELP backlog, receiver killed: ${c.missing.length} missing, ${c.duplicates} duplicates of ${total}; sink retries ${retries}`,
    );
    assert.ok(retries >= 1, 'the agent noticed the broken session');
    assert.equal(c.missing.length, 0);
    // the window is the session's, shared by the batches on it
    assert.ok(c.duplicates <= 1024, `${c.duplicates} duplicates: at most one RELP window`);
    assertFirstArrivalsInOrder(c);
  });

  it('plain TCP: rsyslog killed (-9) mid-stream and restarted: what is lost is measured (no acknowledgement exists)', async (t) => {
    // the last line arriving means the agent reconnected and shipped everything after the gap
    const { c, total, retries } = await receiverKilled('tcp', 'tcpkill', (c) =>
      c.order.includes(29_999),
    );
    t.diagnostic(
      `plain TCP, receiver killed: ${c.missing.length} missing (${c.missing.length ? `${c.missing[0]}…${c.missing.at(-1)}` : 'none'}), ${c.duplicates} duplicates of ${total}; sink retries ${retries}`,
    );
    assert.ok(retries >= 1, 'the agent noticed the broken connection');
    // what can be lost is bounded by what was in flight: the batches written into the dead
    // connection before the agent saw it break (docs/sinks/syslog.md)
    assert.ok(c.missing.length < 8000, `${c.missing.length} missing`);
  });

  it('RELP: agent killed (-9) mid-batch and restarted: 0 missing, duplicates at most the three batches in flight', async (t) => {
    const r = await receiver('relp');
    const total = 40_000;
    const log = env.sb.path('logs/agentkill.log');
    writeFileSync(log, '', { mode: 0o600 });
    await writeLines(log, 'agentkill', 0, total, 1e9);
    await startAgent('agentkill', [
      `address = 127.0.0.1:${r.port}`,
      'protocol = relp',
      'tls = false',
      'batch_max_events = 1000',
    ]);
    await until(
      () => count(r.lines(), 'agentkill', total).order.length >= 10_000,
      20_000,
      '10000 lines before the kill',
    );
    await agent!.stop('SIGKILL');
    agent = null;
    await startAgent('agentkill', [
      `address = 127.0.0.1:${r.port}`,
      'protocol = relp',
      'tls = false',
      'batch_max_events = 1000',
    ]);
    await until(
      () => count(r.lines(), 'agentkill', total).missing.length === 0,
      30_000,
      'every line after the restart',
    );
    const c = count(r.lines(), 'agentkill', total);
    t.diagnostic(
      `RELP, agent killed: ${c.missing.length} missing, ${c.duplicates} duplicates of ${total}`,
    );
    assert.equal(c.missing.length, 0);
    // a batch goes on the session behind the one before it, before that one is answered: a
    // checkpoint moves past a batch only once it and all before it were answered (up to three
    // on the session: the one sent and the two prepared ahead)
    assert.ok(c.duplicates <= 3000, `${c.duplicates} duplicates: at most three batches`);
    assertFirstArrivalsInOrder(c);
  });
});
