// Fleet metrics end to end: the real helper (root) and the real agent (a test user) shipping a
// root-only log over HTTPS, with [metrics] writing the textfile and serving 127.0.0.1:0. What the
// agent says is read by real Prometheus parsers — python3-prometheus-client's, promtool's linter
// and node_exporter's textfile collector — and the values are checked against what happened:
// lines written and received, a sink outage (retries, queue), a refused hostile file name.
import assert from 'node:assert/strict';
import {
  appendFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  AgentProcess,
  setupAgentEnv,
  teardownAgentEnv,
  until,
  type AgentEnv,
} from './lib/agent-env';
import {
  NodeExporter,
  parseExposition,
  prometheusToolsMissing,
  promtoolCheck,
  sample,
  samples,
  type PromFamily,
} from './lib/prometheus';

const missing = prometheusToolsMissing();
if (missing) throw new Error(missing);

/** A name anyone who can create a file in the log directory could choose: a newline that would
 *  end the sample and start a forged one, quotes and a backslash that would end the label, an OSC
 *  that retitles a terminal, and a right-to-left override. */
const HOSTILE = 'x\n"} 1\nguard_up{a="b"} 0\\ \x1b]0;pwned\x07 \u202egol.log';
/** How the metrics must show it: visible (guardctl's escapes), then as the parser returns it. */
const HOSTILE_SHOWN = 'x\\x0a"} 1\\x0aguard_up{a="b"} 0\\ \\x1b]0;pwned\\x07 \\u202egol.log';

describe('Prometheus metrics (real helper, real agent, real parsers)', { timeout: 120_000 }, () => {
  let env: AgentEnv;
  let agent: AgentProcess;
  let exporter: NodeExporter | undefined;
  let textfile = '';
  let url = '';
  let written = 0;
  let bytes = 0;
  const log = () => env.sb.path('logs/app.log');
  const line = (i: number) => `2026-11-24T09:05:01.123456+00:00 host app[7]: metrics seq ${i}`;
  const write = (n: number): void => {
    let text = '';
    for (let k = 0; k < n; k++) text += `${line(++written)}\n`;
    appendFileSync(log(), text);
    bytes += Buffer.byteLength(text);
  };
  const scrape = async (): Promise<{ text: string; families: PromFamily[] }> => {
    const text = await (await fetch(url)).text();
    return { text, families: await parseExposition(text) };
  };
  /** Waits until the endpoint's metrics satisfy cond; returns them. */
  const scrapeUntil = async (
    cond: (f: PromFamily[]) => boolean,
    what: string,
  ): Promise<PromFamily[]> => {
    let last: PromFamily[] = [];
    await until(
      async () => {
        last = (await scrape()).families;
        return cond(last);
      },
      20_000,
      what,
    );
    return last;
  };
  const seqs = () =>
    env.receiver.events
      .map((e) => /metrics seq (\d+)$/.exec(e.message)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number);

  before(async () => {
    env = await setupAgentEnv({
      sources: (e) => {
        const dir = e.sb.mkdir('metrics', 0o755, { uid: e.agent.uid, gid: e.agent.gid });
        textfile = `${dir}/guard.prom`;
        return [
          '[source.app]',
          'type = file',
          `paths = ${e.logs}/*.log`,
          'parser = syslog',
          'start_at = beginning',
          '',
          '[metrics]',
          `textfile = ${textfile}`,
          'listen = 0',
          'interval_ms = 1000',
          '',
        ].join('\n');
      },
    });
    appendFileSync(log(), '', { mode: 0o600 });
    agent = await AgentProcess.start(env);
    const listening = await agent.waitFor((l) => l.msg === 'metrics endpoint listening');
    assert.equal(listening.address, '127.0.0.1', 'a port alone binds loopback');
    url = String(listening.url);
  });
  after(async () => {
    await exporter?.stop();
    await agent?.stop();
    await teardownAgentEnv(env);
  });

  it('N lines through helper and agent: read, shipped and delivered say N, on the endpoint and in the textfile', async () => {
    write(500);
    await until(() => seqs().length >= 500, 20_000, '500 lines at the receiver');
    const f = await scrapeUntil(
      (m) => sample(m, 'guard_sink_events_delivered_total', { sink: 'siem' }) === 500,
      'the delivered counter at 500',
    );
    const src = { source: 'app', type: 'file' };
    assert.equal(sample(f, 'guard_source_lines_read_total', src), 500);
    assert.equal(sample(f, 'guard_source_bytes_read_total', src), bytes);
    assert.equal(sample(f, 'guard_source_events_total', src), 500);
    assert.equal(sample(f, 'guard_source_events_filtered_total', src), 0);
    assert.equal(
      sample(f, 'guard_sink_events_delivered_total', { sink: 'siem', type: 'http' }),
      500,
    );
    assert.ok(sample(f, 'guard_sink_bytes_delivered_total', { sink: 'siem' }) > bytes);
    assert.equal(sample(f, 'guard_sink_retries_total', { sink: 'siem' }), 0);
    assert.equal(sample(f, 'guard_sink_queue_bytes', { sink: 'siem' }), 0);
    assert.equal(sample(f, 'guard_source_files', { ...src, state: 'refused' }), 0);
    assert.equal(sample(f, 'guard_up'), 1);
    assert.equal(sample(f, 'guard_problems'), 0);
    assert.equal(sample(f, 'guard_helper_connected'), 1);
    assert.ok(sample(f, 'guard_agent_open_fds') > 3);
    const last = sample(f, 'guard_sink_last_success_timestamp_seconds', { sink: 'siem' });
    assert.ok(Math.abs(last - Date.now() / 1000) < 30, `last success ${last}`);
    const info = samples(f, 'guard_build_info');
    assert.equal(info.length, 1);
    assert.equal(info[0]!.labels.node_version, process.versions.node);
    const types = Object.fromEntries(f.map((x) => [x.name, x.type]));
    assert.equal(types.guard_source_lines_read, 'counter');
    assert.equal(types.guard_sink_queue_bytes, 'gauge');

    // the textfile: same values once rewritten, 0644, nothing left beside it but itself
    await until(
      async () => {
        const t = await parseExposition(readFileSync(textfile, 'utf8'));
        return sample(t, 'guard_sink_events_delivered_total', { sink: 'siem' }) === 500;
      },
      10_000,
      'the textfile rewritten with 500 delivered',
    );
    assert.equal(statSync(textfile).mode & 0o777, 0o644);
    assert.deepEqual(readdirSync(env.sb.path('metrics')), ['guard.prom']);

    const lint = await promtoolCheck(readFileSync(textfile, 'utf8'));
    assert.equal(lint.code, 0, `promtool check metrics:\n${lint.out}`);
    assert.equal(lint.out.trim(), '', `promtool check metrics:\n${lint.out}`);

    // node_exporter reading its own directory, which links to the agent's file (docs/operations.md)
    const collectorDir = env.sb.mkdir('textfile-collector', 0o755);
    symlinkSync(textfile, `${collectorDir}/guard.prom`);
    exporter = await NodeExporter.start(collectorDir);
    const scraped = await parseExposition(await exporter.scrape());
    assert.equal(sample(scraped, 'node_textfile_scrape_error'), 0);
    assert.equal(sample(scraped, 'guard_source_lines_read_total', src), 500);

    // only GET /metrics
    assert.equal((await fetch(url, { method: 'POST', body: 'x' })).status, 405);
    assert.equal((await fetch(url.replace(/\/metrics$/, '/'))).status, 404);
    assert.equal((await fetch(`${url}x`)).status, 404);
  });

  it('a sink outage shows retries, queued bytes and a problem; afterwards every line delivered once', async () => {
    await env.receiver.down();
    write(200);
    const f = await scrapeUntil(
      (m) =>
        sample(m, 'guard_sink_retries_total', { sink: 'siem' }) >= 2 &&
        sample(m, 'guard_sink_queue_bytes', { sink: 'siem' }) > 0,
      'retries and queued bytes while the receiver is down',
    );
    assert.equal(sample(f, 'guard_sink_retrying', { sink: 'siem' }), 1);
    assert.ok(sample(f, 'guard_problems') >= 1);
    assert.ok(
      sample(f, 'guard_agent_queue_bytes') >= sample(f, 'guard_sink_queue_bytes', { sink: 'siem' }),
    );
    assert.equal(sample(f, 'guard_source_lines_read_total', { source: 'app' }), 700);
    assert.equal(sample(f, 'guard_sink_events_delivered_total', { sink: 'siem' }), 500);
    const lagged = sample(f, 'guard_source_lag_bytes', { source: 'app' });
    assert.ok(lagged > 0, `lag ${lagged}`);

    await env.receiver.up();
    const g = await scrapeUntil(
      (m) => sample(m, 'guard_sink_events_delivered_total', { sink: 'siem' }) === 700,
      '700 delivered after the outage',
    );
    assert.equal(sample(g, 'guard_sink_queue_bytes', { sink: 'siem' }), 0);
    assert.equal(sample(g, 'guard_sink_retrying', { sink: 'siem' }), 0);
    assert.equal(sample(g, 'guard_source_lag_bytes', { source: 'app' }), 0);
    const got = seqs();
    const want = Array.from({ length: written }, (_, k) => k + 1);
    assert.deepEqual(
      want.filter((n) => !got.includes(n)),
      [],
      'missing',
    );
    assert.equal(got.length, new Set(got).size, 'duplicates');
  });

  it('refused files, one with a hostile name: helper refusals, escaped so the format holds and no control character is emitted', async () => {
    symlinkSync('/etc/passwd', `${env.logs}/${HOSTILE}`); // bad_path: the helper takes no control characters
    symlinkSync('/etc/passwd', `${env.logs}/link.log`); // symlink
    const f = await scrapeUntil(
      (m) => samples(m, 'guard_file_refused').length === 2,
      'both refused files in the metrics',
    );
    const refused = (name: string) =>
      samples(f, 'guard_file_refused').find((x) => x.labels.path === `${env.logs}/${name}`);
    const hostile = refused(HOSTILE_SHOWN);
    assert.ok(hostile, JSON.stringify(samples(f, 'guard_file_refused')));
    assert.equal(hostile.labels.code, 'bad_path');
    assert.equal(hostile.value, 1);
    assert.equal(refused('link.log')?.labels.code, 'symlink');
    assert.ok(sample(f, 'guard_helper_refusals_total', { op: 'open', code: 'symlink' }) >= 1);
    assert.ok(sample(f, 'guard_helper_refusals_total', { op: 'open', code: 'bad_path' }) >= 1);
    assert.equal(sample(f, 'guard_source_files', { source: 'app', state: 'refused' }), 2);
    assert.ok(sample(f, 'guard_problems') >= 1);
    assert.equal(samples(f, 'guard_up').length, 1, 'a forged guard_up sample');
    assert.equal(sample(f, 'guard_up'), 1);

    const { text } = await scrape();
    assert.doesNotMatch(text, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/, 'a raw control character');
    const lint = await promtoolCheck(text);
    assert.equal(lint.code, 0, lint.out);
    // The textfile is written every interval_ms: the one on disk may predate the second refusal.
    let scraped: PromFamily[] = [];
    await until(
      async () => {
        scraped = await parseExposition(await exporter!.scrape());
        return samples(scraped, 'guard_file_refused').length === 2;
      },
      10_000,
      'both refusals in the textfile, through node_exporter',
    );
    assert.equal(sample(scraped, 'node_textfile_scrape_error'), 0);
    assert.ok(
      samples(scraped, 'guard_file_refused').some((x) => x.labels.path === hostile.labels.path),
    );
  });

  it('a stopping agent leaves guard_up 0 in the textfile', async () => {
    assert.equal(await agent.stop(), 0);
    const t = await parseExposition(readFileSync(textfile, 'utf8'));
    assert.equal(sample(t, 'guard_up'), 0);
    assert.equal(sample(t, 'guard_sink_events_delivered_total', { sink: 'siem' }), 700);
    assert.ok(!existsSync(`${textfile}.${agent.pid}.tmp`));
  });
});
