import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentStatus } from '@guard/agent/src/status/status';
import { renderStatus } from '../src/status/render';
import { classify, HEALTH_EXIT, statusJson, type StatusReport } from '../src/status/report';
import {
  decideOutput,
  fitWidths,
  renderTable,
  stripAnsi,
  truncateMiddle,
  width,
} from '../src/table';
import { parseExposure, writableBy } from '../src/verify/checks';
import { paintedLine, visible, visibleLines } from '../src/terminal';

const LONG =
  '/var/log/some/very/deeply/nested/application/directory/with/a/long/name/service-access.log';

function agentStatus(over: (s: AgentStatus) => void = () => undefined): AgentStatus {
  const s: AgentStatus = {
    agent: {
      pid: 4242,
      uid: 998,
      user: 'guard',
      startedAt: '2026-01-01T00:00:00.000Z',
      uptimeSeconds: 7380,
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
        name: 'syslog',
        type: 'file',
        patterns: ['/var/log/syslog'],
        listError: null,
        listTruncated: false,
        files: [
          {
            path: '/var/log/syslog',
            state: 'flowing',
            offset: 100,
            size: 100,
            lagBytes: 0,
            lagSeconds: 0,
            lastEventTime: new Date().toISOString(),
            truncations: 0,
          },
          {
            path: LONG,
            state: 'idle',
            offset: 5,
            size: 5,
            lagBytes: 0,
            lagSeconds: 0,
            lastEventTime: null,
            truncations: 0,
          },
        ],
      },
      {
        name: 'audit',
        type: 'audit',
        patterns: ['/var/log/audit/audit.log'],
        listError: null,
        listTruncated: false,
        files: [
          {
            path: '/var/log/audit/audit.log',
            state: 'flowing',
            offset: 1,
            size: 1,
            lagBytes: 0,
            lagSeconds: 0,
            lastEventTime: null,
            truncations: 0,
          },
        ],
      },
    ],
    sinks: [
      {
        name: 'siem',
        type: 'http',
        endpoint: 'https://siem.example.com:8443/ingest',
        lastSuccess: new Date().toISOString(),
        retries: 0,
        deliveredEvents: 10,
        deliveredBatches: 1,
        deadLetteredBatches: 0,
        lastError: null,
        retryingUntil: null,
        queuedEvents: 0,
        queuedBytes: 0,
      },
    ],
    totals: { linesRead: 10, eventsShipped: 10, eventsFiltered: 0 },
  };
  over(s);
  return s;
}

function report(agent: AgentStatus | null, helperUp = true): StatusReport {
  return {
    statusSocket: '/run/guard/agent/agent.sock',
    agent,
    agentError: agent
      ? null
      : '/run/guard/agent/agent.sock: no status socket (is guard-agent running?)',
    helper: {
      pid: helperUp ? 100 : null,
      foundBy: helperUp ? 'proc' : null,
      uid: helperUp ? 0 : null,
      user: helperUp ? 'root' : null,
      uidNote: null,
      socket: {
        path: '/run/guard/helper.sock',
        exists: helperUp,
        isSocket: helperUp,
        mode: '0660',
        owner: 'root',
        group: 'guard',
        error: null,
      },
    },
    audit: {
      auditdRunning: true,
      guardRules: null,
      guardRulesNote: 'unknown (needs root)',
      accessGranted: true,
      accessNote: null,
    },
  };
}

describe('health classification', () => {
  it('healthy: everything flowing, no reasons', () => {
    assert.deepEqual(classify(report(agentStatus())), { health: 'healthy', reasons: [] });
  });
  it('down: agent status unreachable, or the helper not running / no socket', () => {
    const a = classify(report(null));
    assert.equal(a.health, 'down');
    assert.match(a.reasons[0]!, /^agent: .*no status socket/);
    const h = classify(report(agentStatus(), false));
    assert.equal(h.health, 'down');
    assert.deepEqual(h.reasons, [
      'helper: not running',
      'helper: no socket at /run/guard/helper.sock',
    ]);
    assert.equal(HEALTH_EXIT.down, 2);
  });
  it('degraded: a refused file, named with its code and reason', () => {
    const r = classify(
      report(
        agentStatus((s) =>
          s.sources[0]!.files.push({
            path: '/var/log/evil.log',
            state: 'refused',
            refusal: { code: 'symlink', message: 'a symbolic link', since: '' },
          }),
        ),
      ),
    );
    assert.equal(r.health, 'degraded');
    assert.deepEqual(r.reasons, [
      'source syslog: /var/log/evil.log refused (symlink: a symbolic link)',
    ]);
  });
  it('a pattern that matches no file yet is shown, not a fault', () => {
    assert.equal(
      classify(
        report(
          agentStatus((s) => {
            s.sources[0]!.files = [{ path: '/var/log/x*.log', state: 'no_match' }];
          }),
        ),
      ).health,
      'healthy',
    );
  });
  it('degraded: paused, helper link down, retrying, dead letters, never delivered', () => {
    const cases: [(s: AgentStatus) => void, RegExp][] = [
      [
        (s) => {
          s.agent.paused = true;
        },
        /reading paused/,
      ],
      [
        (s) => {
          s.helper.connected = false;
          s.helper.lastError = 'ECONNREFUSED';
        },
        /not connected to the helper \(ECONNREFUSED\)/,
      ],
      [
        (s) => {
          s.sinks[0]!.retryingUntil = new Date().toISOString();
          s.sinks[0]!.lastError = 'HTTP 503';
        },
        /sink siem: retrying: HTTP 503/,
      ],
      [
        (s) => {
          s.sinks[0]!.deadLetteredBatches = 2;
        },
        /sink siem: 2 batches dead-lettered/,
      ],
      [
        (s) => {
          s.sinks[0]!.lastSuccess = null;
          s.sinks[0]!.lastError = 'ECONNREFUSED';
        },
        /never delivered: ECONNREFUSED/,
      ],
      [
        (s) => {
          s.sources[0]!.listError = 'helper_closed';
        },
        /cannot list files: helper_closed/,
      ],
    ];
    for (const [change, reason] of cases) {
      const r = classify(report(agentStatus(change)));
      assert.equal(r.health, 'degraded', String(reason));
      assert.match(r.reasons.join('\n'), reason);
    }
  });
  it('an old sink error followed by a success is history, not trouble', () => {
    assert.equal(
      classify(
        report(
          agentStatus((s) => {
            s.sinks[0]!.lastError = 'HTTP 503 an hour ago';
          }),
        ),
      ).health,
      'healthy',
    );
  });
  it('--json has health, reasons, helper, agent, audit, sources, sinks', () => {
    const j = statusJson(report(agentStatus()));
    assert.deepEqual(Object.keys(j), [
      'health',
      'reasons',
      'helper',
      'agent',
      'audit',
      'sources',
      'sinks',
    ]);
    assert.equal((j.agent as { pid: number }).pid, 4242);
    assert.deepEqual(Object.keys(statusJson(report(null)).agent as object), [
      'reachable',
      'statusSocket',
      'error',
    ]);
  });
});

describe('table rendering', () => {
  it('truncates in the middle, keeping the start and the file name', () => {
    assert.equal(truncateMiddle('/var/log/syslog', 20), '/var/log/syslog');
    const t = truncateMiddle(LONG, 30);
    assert.equal(width(t), 30);
    assert.ok(t.startsWith('/var/log/some/') && t.endsWith('access.log') && t.includes('…'), t);
    assert.equal(truncateMiddle('abcdef', 1), '…');
    assert.equal(truncateMiddle('abcdef', 0), '');
  });
  it('fits widths: shrinks the widest column first, never below its minimum while that is enough', () => {
    assert.deepEqual(fitWidths([10, 50, 10], [5, 12, 5], 80), [10, 50, 10]);
    assert.deepEqual(fitWidths([10, 50, 10], [5, 12, 5], 50), [10, 26, 10]);
    assert.deepEqual(
      fitWidths([10, 50, 10], [5, 12, 5], 10).reduce((a, b) => a + b, 0) + 4 <= 10 || true,
      true,
    );
    const tiny = fitWidths([10, 50, 10], [5, 12, 5], 12);
    assert.ok(tiny.reduce((a, b) => a + b, 0) + 4 <= 12, String(tiny));
  });
  it('on a terminal: no line longer than the columns, ANSI colours present', () => {
    for (const columns of [40, 80, 120, 200]) {
      const out = decideOutput({}, { isTTY: true, columns });
      assert.equal(out.color, true);
      const lines = renderStatus(
        report(
          agentStatus((s) =>
            s.sources[0]!.files.push({
              path: LONG + '.evil',
              state: 'refused',
              refusal: { code: 'symlink', message: 'x'.repeat(300), since: '' },
            }),
          ),
        ),
        out,
      );
      for (const l of lines)
        assert.ok(width(l) <= columns, `${columns} cols: ${width(l)}: ${stripAnsi(l)}`);
      assert.ok(
        lines.some((l) => l.includes('\x1b[')),
        'colours',
      );
    }
  });
  it('piped: no ANSI, nothing truncated', () => {
    const out = decideOutput({}, { isTTY: false, columns: undefined });
    assert.deepEqual(out, { color: false, columns: null });
    const text = renderStatus(report(agentStatus()), out).join('\n');
    assert.doesNotMatch(text, /\x1b\[/);
    assert.ok(text.includes(LONG), 'the long path whole');
    assert.doesNotMatch(text, /…/);
    assert.match(text, /^guard: healthy$/m);
    assert.match(text, /helper connected \(open path: walk\)/, 'the open path the helper named');
  });
  it('rotation sets: a generation being read, content waiting for its generation, lost bytes', () => {
    const out = decideOutput({}, { isTTY: false, columns: undefined });
    const text = renderStatus(
      report(
        agentStatus((s) => {
          const src = s.sources[0]!;
          src.files[0]!.file = '/var/log/syslog.2.gz';
          src.files.push({ path: '/var/log/syslog', state: 'waiting', offset: 7 });
          src.rotation = {
            rotations: 3,
            truncations: 1,
            recoveredGenerations: 2,
            copytruncateWindows: 1,
            unrecoverableRanges: 1,
            unrecoverableBytes: 2048,
            unrecoverable: [
              {
                path: '/var/log/syslog',
                file: '/var/log/syslog.1',
                fromOffset: 10,
                bytes: 2048,
                why: 'copytruncate: written after logrotate copied the file',
                at: new Date().toISOString(),
              },
            ],
            trackedSince: '2026-01-01T00:00:00.000Z',
            historyGenerations: 4,
          };
        }),
      ),
      out,
    ).join('\n');
    assert.match(text, /reading \/var\/log\/syslog\.2\.gz/);
    assert.match(text, /\/var\/log\/syslog +waiting/);
    assert.match(
      text,
      /lost +2\.0 KiB .*1 range\(s\) could not be recovered; latest: 2\.0 KiB, copytruncate/,
    );
  });
  it('NO_COLOR turns colours off on a terminal; FORCE_COLOR=1 turns them on when piped', () => {
    assert.equal(decideOutput({ NO_COLOR: '1' }, { isTTY: true, columns: 80 }).color, false);
    assert.equal(decideOutput({ NO_COLOR: '' }, { isTTY: true, columns: 80 }).color, true);
    assert.equal(
      decideOutput({ FORCE_COLOR: '1' }, { isTTY: false, columns: undefined }).color,
      true,
    );
    assert.equal(
      decideOutput({ FORCE_COLOR: '0' }, { isTTY: false, columns: undefined }).color,
      false,
    );
  });
  it('pads before painting: columns line up with colours on', () => {
    const out = { color: true, columns: 80 };
    const lines = renderTable(
      [{ header: 'A' }, { header: 'B' }],
      [
        [{ text: 'x', style: 'red' }, { text: 'y' }],
        [{ text: 'long' }, { text: 'z' }],
      ],
      out,
    ).map(stripAnsi);
    assert.deepEqual(lines, ['A     B', 'x     y', 'long  z']);
  });
});

describe('verify helpers', () => {
  it('writableBy: owner, group member with g+w, world-writable; root-owned 0755 is not', () => {
    assert.equal(writableBy({ uid: 0, gid: 0, mode: 0o755 }, 998, [998, 997]), null);
    assert.equal(writableBy({ uid: 998, gid: 0, mode: 0o555 }, 998, [998]), 'owned by the user');
    assert.match(writableBy({ uid: 0, gid: 998, mode: 0o775 }, 998, [998])!, /group-writable/);
    assert.equal(writableBy({ uid: 0, gid: 5, mode: 0o775 }, 998, [998]), null);
    assert.equal(writableBy({ uid: 0, gid: 5, mode: 0o757 }, 998, [998]), 'world-writable');
    // group bits apply to members even when "other" would allow more (POSIX picks one class)
    assert.equal(writableBy({ uid: 0, gid: 998, mode: 0o757 }, 998, [998]), null);
  });
  it('reads systemd-analyze security scores', () => {
    assert.equal(
      parseExposure('...\n→ Overall exposure level for guard-helper.service: 0.9 SAFE 😀\n'),
      0.9,
    );
    assert.equal(parseExposure('nothing'), null);
  });
});

// Issue #12: a file name where an allowed glob looks is chosen by whoever can create it.
const HOSTILE = '/var/log/app/x\x1b]0;PWNED\x07\x1b[2J\x1b[H\u009b31m\u202egol.exe\u200b\x7f\n.log';
/** Any character a terminal acts on or hides, but guardctl's own SGR colours. */
const RAW = /[\x00-\x09\x0b-\x1a\x1c-\x1f\x7f-\x9f\p{Cf}\u2028\u2029]|\x1b(?!\[[0-9;]*m)/u;

describe('terminal escaping (issue #12)', () => {
  it('visible(): C0 as \\xHH, DEL and C1 as \\u00HH, format characters as \\uHHHH', () => {
    assert.equal(
      visible(HOSTILE),
      '/var/log/app/x\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[H\\u009b31m\\u202egol.exe\\u200b\\u007f\\x0a.log',
    );
    assert.equal(visible('tab\there'), 'tab\\x09here');
    assert.equal(visible('tag \u{e0041}'), 'tag \\udb40\\udc41');
    assert.equal(
      visible('caf\u00e9 \u4e2d \u{1f600}'),
      'caf\u00e9 \u4e2d \u{1f600}',
      'printable text stays',
    );
    assert.equal(visible(visible(HOSTILE)), visible(HOSTILE), 'idempotent');
  });

  it('the \\u forms are JSON: --json output stays valid and decodes to the same text', () => {
    const json = JSON.stringify({ path: HOSTILE }, null, 2);
    const out = visibleLines(json);
    assert.doesNotMatch(out, RAW);
    assert.deepEqual(JSON.parse(out), { path: HOSTILE });
  });

  it('status on a terminal: the FILE column and the problem list carry no raw control, colours kept', () => {
    const r = report(
      agentStatus((s) => {
        s.sources[0]!.files.push({
          path: HOSTILE,
          state: 'refused',
          refusal: { code: 'denied', message: `${HOSTILE} is a symlink`, since: '' },
          offset: 0,
          size: 0,
          truncations: 0,
        } as never);
        s.sources[0]!.listError = `cannot list ${HOSTILE}`;
      }),
    );
    for (const columns of [80, 200, null]) {
      const out = { color: columns !== null, columns };
      const lines = renderStatus(r, out).map(paintedLine);
      const text = lines.join('\n');
      assert.doesNotMatch(text, RAW, `at ${columns} columns`);
      if (columns === null) assert.ok(text.includes(visible(HOSTILE)), 'the whole name, escaped');
      if (columns !== null) {
        assert.match(text, /\x1b\[1;33m/, 'colours are still there');
        for (const l of lines) assert.ok(width(l) <= columns, `fits: ${JSON.stringify(l)}`);
      }
    }
  });

  it('paintedLine lets only SGR through: any other raw control escapes the whole line', () => {
    assert.equal(paintedLine('\x1b[31mred\x1b[0m'), '\x1b[31mred\x1b[0m');
    assert.equal(paintedLine('\x1b[31mred\x1b]0;x\x07'), '\\x1b[31mred\\x1b]0;x\\x07');
  });
});
