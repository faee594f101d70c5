// renderMetrics on status documents made by hand: what a journal source leaves out, what a label
// value becomes, and that every sample line has a family (HELP and TYPE first). The real agent,
// real parsers and node_exporter are test/agent-metrics.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { labelValue, renderMetrics } from '../../src/status/metrics';
import type { AgentStatus } from '../../src/status/status';

const totals = { linesRead: 5, bytesRead: 0, eventsShipped: 4, eventsFiltered: 1 };

function status(): AgentStatus {
  return {
    agent: {
      pid: 1,
      uid: 100,
      user: 'guard',
      startedAt: '2026-12-05T10:00:00.000Z',
      uptimeSeconds: 1,
      config: '/etc/guard/guard.conf',
      paused: false,
      queuedBytes: 0,
    },
    helper: {
      socket: '/run/guard/helper.sock',
      connected: true,
      lastError: null,
      openPath: 'walk',
    },
    sources: [
      {
        name: 'journal',
        type: 'journal',
        patterns: ['/var/log/journal/*/*.journal'],
        listError: null,
        listTruncated: false,
        files: [],
        journals: [],
        totals,
      },
    ],
    sinks: [],
    totals: { linesRead: 5, eventsShipped: 4, eventsFiltered: 1 },
  };
}

describe('renderMetrics', () => {
  test('a journal source: lines and events, no bytes read, no byte lag; families with no sample left out', () => {
    const text = renderMetrics(status(), { openFds: 9, maxFds: 1024, residentBytes: 1 });
    assert.match(text, /^guard_source_lines_read_total\{source="journal",type="journal"\} 5$/m);
    assert.match(
      text,
      /^guard_source_events_filtered_total\{source="journal",type="journal"\} 1$/m,
    );
    assert.doesNotMatch(text, /guard_source_bytes_read_total/);
    assert.doesNotMatch(text, /guard_source_lag_bytes/);
    assert.doesNotMatch(text, /guard_sink_/, 'no sink: no sink family, not even HELP');
    assert.match(text, /^guard_agent_start_time_seconds 1796464800$/m);
    assert.match(text, /^guard_problems 0$/m);
    // every sample follows its own HELP and TYPE
    let family = '';
    for (const line of text.trimEnd().split('\n')) {
      const help = /^# HELP (\S+) /.exec(line);
      if (help) family = help[1]!;
      else if (!line.startsWith('# TYPE ')) assert.ok(line.startsWith(family), line);
    }
  });

  test('label values: made visible, then backslash and quote escaped; nothing else touched', () => {
    assert.equal(labelValue('a"b\\c'), 'a\\"b\\\\c');
    assert.equal(labelValue('x\ny\x1b'), 'x\\\\x0ay\\\\x1b');
    assert.equal(labelValue('\u202egol'), '\\\\u202egol');
    assert.equal(labelValue('ünïcode/日本'), 'ünïcode/日本');
  });

  test('a kafka sink: brokers answering, the last acknowledged offset per topic and partition', () => {
    const s = status();
    const sink = {
      name: 'bus',
      type: 'kafka',
      endpoint: 'kafka://b1:9092,b2:9092',
      lastSuccess: null,
      retries: 2,
      deliveredEvents: 10,
      deliveredBatches: 1,
      deadLetteredBatches: 0,
      lastError: null,
      retryingUntil: null,
      queuedEvents: 0,
      queuedBytes: 0,
    };
    s.sinks = [
      {
        ...sink,
        brokersConnected: ['b1:9092', 'b2:9092'],
        lastAckedOffsets: { 'guard.auth/0': '41', 'guard.auth/11': '9007199254740993' },
      },
      { ...sink, name: 'siem', type: 'http', endpoint: 'https://siem/' },
    ];
    const text = renderMetrics(s, { openFds: 9, maxFds: 1024, residentBytes: 1 });
    assert.match(text, /^guard_sink_kafka_brokers_connected\{sink="bus"\} 2$/m);
    assert.match(
      text,
      /^guard_sink_kafka_acked_offset\{sink="bus",topic="guard.auth",partition="0"\} 41$/m,
    );
    // a float64, as every Prometheus sample: past 2^53 the nearest one
    assert.match(
      text,
      /^guard_sink_kafka_acked_offset\{sink="bus",topic="guard.auth",partition="11"\} 9007199254740992$/m,
    );
    assert.doesNotMatch(
      text,
      /guard_sink_kafka_\w+\{sink="siem"/,
      'an http sink has no kafka family',
    );
    assert.match(text, /^guard_sink_retries_total\{sink="bus",type="kafka"\} 2$/m);
  });

  test('not connected, paused: problems counted as guardctl would give them', () => {
    const s = status();
    s.helper.connected = false;
    s.agent.paused = true;
    assert.match(
      renderMetrics(s, { openFds: null, maxFds: null, residentBytes: 1 }),
      /^guard_problems 2$/m,
    );
  });
});
