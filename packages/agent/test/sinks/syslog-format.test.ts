import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load';
import type { SyslogSinkConfig } from '../../src/config/types';
import {
  frameStream,
  paramValue,
  relpFrames,
  rfc3164,
  rfc5424,
  SyslogEncoder,
  timestamp,
  type FormatOptions,
} from '../../src/sinks/syslog/format';
import {
  nextTxnr,
  RelpReader,
  RelpWindow,
  RELP_MAX_TXNR,
  rspCode,
  rspCodeAt,
} from '../../src/sinks/syslog/relp';

const O: FormatOptions = { format: 'rfc5424', facility: 1, severity: 5, sdId: 'guard@32473' };

/** An event line in the pipeline's key order (pipeline.ts eventJson). */
function line(over: {
  id?: string;
  time?: string;
  offset?: number;
  message?: string;
  fields?: Record<string, unknown>;
  flags?: string[];
  tail?: Record<string, unknown>;
}): string {
  const ev: Record<string, unknown> = {
    id: over.id ?? '65024.16638017.de351fd6:120',
    time: over.time ?? '2026-11-24T09:05:01.123Z',
    offset: over.offset ?? 120,
    message: over.message ?? 'Nov 24 09:05:01 web-01 sshd[42]: Accepted publickey for deploy',
  };
  if (over.fields) ev.fields = over.fields;
  if (over.flags) ev.flags = over.flags;
  return JSON.stringify({
    ...ev,
    ...(over.tail ?? {
      source: 'auth',
      path: '/var/log/auth.log',
      host: 'web-01',
      tags: ['prod', 'eu'],
      parser: 'syslog',
    }),
  });
}

/** What the JSON.parse path makes of a line: the reference the in-place path must equal. */
const reference = (l: string, o = O): string => rfc5424(JSON.parse(l), o);

let lastInPlace = 0;
function encoded(lines: string[], o = O): string[] {
  const enc = new SyslogEncoder(o);
  const m = enc.encode(Buffer.from(lines.map((l) => `${l}\n`).join('')));
  lastInPlace = enc.inPlace;
  return Array.from(m.starts, (s, i) => m.buf.toString('utf8', s, m.ends[i]));
}

const SYSLOG_FIELDS = [
  undefined,
  { hostname: 'web-01' },
  { hostname: 'web-01', program: 'sshd' },
  { hostname: 'web-01', program: 'sshd', pid: 4242 },
  { hostname: 'web-01', pid: 7 },
  { hostname: 'db', program: 'CRON', pid: 1, priority: 86, facility: 'authpriv', severity: 'info' },
  { hostname: 'db', priority: 300, facility: 'x', severity: 'y' }, // not a priority: the default
  { hostname: '', program: 'sshd' }, // empty: '-' in the header
  { hostname: 'h'.repeat(256) }, // cut to 255
  { hostname: 'héte', program: 'a b' }, // not PRINTUSASCII: '_'
  { hostname: 'web', program: 'p'.repeat(60) },
  { priority: 13, facility: 'user', severity: 'notice', version: 1, msgid: 'ID47' }, // RFC 5424 lines
  { key: 'value', nested: { a: [1, 2] } }, // json parser
];

const MESSAGES = [
  'plain',
  '',
  'GET "/index.html" HTTP/1.1 200 \\ back ] bracket',
  'tab\there and a / slash',
  'über ✓ 😀 non-ASCII',
  'a \u0001 control character (the pipeline escapes these; JSON.parse path if one comes)',
  '\\x1b[31m escaped escape',
];

describe('RFC 5424 from event lines', () => {
  test('the in-place path writes exactly what the JSON.parse path writes', () => {
    const lines: string[] = [];
    for (const fields of SYSLOG_FIELDS)
      for (const message of MESSAGES) lines.push(line({ ...(fields ? { fields } : {}), message }));
    lines.push(line({ flags: ['truncated', 'escaped'] }));
    lines.push(
      line({ tail: { source: 'app', path: '/var/log/a"b].log', host: 'h', parser: 'plain' } }),
    );
    lines.push(line({ tail: { source: 'x'.repeat(40), path: '/p', host: 'h h', parser: 'json' } }));
    lines.push(line({ id: 'a]b:1' }));
    lines.push(line({ time: '2026-11-24T09:05:01.123456789+02:00' }));
    lines.push(line({ time: 'yesterday' }));
    lines.push(line({ offset: 0 }));
    lines.push(line({ offset: 2 ** 40 }));
    lines.push('{"not":"the usual shape"}');
    const got = encoded(lines);
    assert.equal(got.length, lines.length);
    got.forEach((g, i) => assert.equal(g, reference(lines[i]!), `line ${i}: ${lines[i]}`));
    // in place: the 7 field sets of the syslog parser's shape (from none to a priority, valid or
    // not) × the 6 messages without a control character, and 5 of the odd lines (two tails, the id
    // with ']', two offsets); the rest through JSON.parse
    assert.equal(lastInPlace, 7 * 6 + 5);
    // and with another facility, severity and SD-ID
    const o2: FormatOptions = { format: 'rfc5424', facility: 10, severity: 6, sdId: 'x@1.2' };
    encoded(lines, o2).forEach((g, i) => assert.equal(g, reference(lines[i]!, o2)));
  });

  test('a usual line, field by field', () => {
    const l = line({
      fields: { hostname: 'web-01', program: 'sshd', pid: 42 },
      message: 'say "hi"',
    });
    assert.equal(
      encoded([l])[0],
      '<13>1 2026-11-24T09:05:01.123Z web-01 sshd 42 auth [guard@32473 id="65024.16638017.de351fd6:120" offset="120" source="auth" path="/var/log/auth.log" host="web-01" parser="syslog" tags="prod,eu"] say "hi"',
    );
  });

  test('a line that is not JSON is shipped, flagged, not dropped', () => {
    assert.match(encoded(['{oops'])[0]!, /flags="unencodable"\] \{oops$/);
  });

  test('tails that change from line to line', () => {
    const lines = [0, 1, 2, 3].map((i) =>
      line({ tail: { source: `s${i % 2}`, path: `/l/${i}`, host: 'h', parser: 'plain' } }),
    );
    encoded(lines).forEach((g, i) => assert.equal(g, reference(lines[i]!)));
  });

  test('paramValue, timestamp', () => {
    assert.equal(paramValue('a"b\\c]d'), 'a\\"b\\\\c\\]d');
    assert.equal(timestamp('2026-11-24T09:05:01.123Z'), '2026-11-24T09:05:01.123Z');
    assert.equal(timestamp('2026-11-24T09:05:01+02:00'), '2026-11-24T09:05:01+02:00');
    assert.equal(timestamp('2026-11-24T09:05:01.1234567Z'), '2026-11-24T09:05:01.123456Z');
    assert.equal(timestamp('Nov 24'), '-');
  });

  test('RFC 3164', () => {
    const l = line({ fields: { hostname: 'web-01', program: 'sshd', pid: 42, priority: 38 } });
    assert.equal(
      rfc3164(JSON.parse(l), O),
      '<38>Nov 24 09:05:01 web-01 sshd[42]: Nov 24 09:05:01 web-01 sshd[42]: Accepted publickey for deploy',
    );
    const o: FormatOptions = { ...O, format: 'rfc3164' };
    assert.equal(encoded([l], o)[0], rfc3164(JSON.parse(l), o));
    assert.match(
      rfc3164({ time: '2026-01-05T00:00:00Z', message: 'm' }, O),
      /^<13>Jan {2}5 00:00:00 - guard: m$/,
    );
  });
});

describe('framing', () => {
  const lines = [line({ message: 'über' }), line({ message: 'b' })];
  const m = new SyslogEncoder(O).encode(Buffer.from(lines.map((l) => `${l}\n`).join('')));
  const texts = lines.map((l) => reference(l));

  test('octet counting counts UTF-8 bytes', () => {
    assert.equal(
      frameStream(m, 'octet_counting').toString('utf8'),
      texts.map((t) => `${Buffer.byteLength(t)} ${t}`).join(''),
    );
    assert.equal(frameStream(m, 'lf').toString('utf8'), texts.map((t) => `${t}\n`).join(''));
    assert.equal(frameStream(m, 'lf', 1, 1).length, 0);
  });

  test('RELP syslog frames', () => {
    assert.equal(
      relpFrames(m, [1, 0], [7, 8]).toString('utf8'),
      `7 syslog ${Buffer.byteLength(texts[1]!)} ${texts[1]}\n8 syslog ${Buffer.byteLength(texts[0]!)} ${texts[0]}\n`,
    );
  });
});

describe('RELP answers', () => {
  test('frames split anywhere across chunks', () => {
    const offers = '200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0\ncommands=syslog';
    const stream = Buffer.from(
      `1 rsp ${offers.length} ${offers}\n2 rsp 6 200 OK\n0 serverclose 0\n`,
    );
    for (let cut = 1; cut < stream.length; cut++) {
      const r = new RelpReader();
      const frames = [...r.push(stream.subarray(0, cut)), ...r.push(stream.subarray(cut))];
      assert.deepEqual(
        frames.map((f) => [f.txnr, f.command, rspCode(f.data)]),
        [
          [1, 'rsp', 200],
          [2, 'rsp', 200],
          [0, 'serverclose', -1],
        ],
        `cut at ${cut}`,
      );
    }
  });

  test('what is not RELP is an error, not a hang', () => {
    assert.throws(
      () => new RelpReader().push(Buffer.from('HTTP/1.1 400 Bad Request\r\n')),
      /does not speak RELP/,
    );
    assert.throws(() => new RelpReader().push(Buffer.from('1 rsp 3 200X')), /does not speak RELP/);
    assert.throws(() => new RelpReader().push(Buffer.from('x'.repeat(100))), /does not speak RELP/);
    assert.equal(rspCode('500 error'), 500);
  });

  test('TXNR wraps to 1', () => {
    assert.equal(nextTxnr(RELP_MAX_TXNR), 1);
    assert.equal(nextTxnr(5), 6);
  });

  test('read() hands each frame its bytes in place; rspCodeAt reads the code from them', () => {
    const stream = Buffer.from('7 rsp 6 200 OK\n8 rsp 13 500 full disk\n9 rsp 3 200\n');
    const seen: [number, string, number, string][] = [];
    const r = new RelpReader();
    // one byte at a time: every frame is cut somewhere
    for (let k = 0; k < stream.length; k++)
      r.read(stream.subarray(k, k + 1), (txnr, command, data, from, to) =>
        seen.push([txnr, command, rspCodeAt(data, from, to), data.toString('latin1', from, to)]),
      );
    assert.deepEqual(seen, [
      [7, 'rsp', 200, '200 OK'],
      [8, 'rsp', 500, '500 full disk'],
      [9, 'rsp', 200, '200'],
    ]);
    assert.equal(rspCodeAt(Buffer.from('x200 OK'), 1, 7), 200);
    assert.equal(rspCodeAt(Buffer.from('20'), 0, 2), -1);
    assert.equal(rspCodeAt(Buffer.from('2000'), 0, 4), -1);
  });

  test('the window: answers in any order, each once; TXNRs wrap; no answer to what was not sent', () => {
    const w = new RelpWindow<string>(8);
    assert.throws(() => new RelpWindow(6), /power of two/);
    w.txnr = RELP_MAX_TXNR - 3; // the next TXNRs wrap
    const txnrs = ['a', 'b', 'c', 'd', 'e', 'f'].map((x, i) => w.sent(x, i));
    assert.deepEqual(txnrs, [RELP_MAX_TXNR - 2, RELP_MAX_TXNR - 1, RELP_MAX_TXNR, 1, 2, 3]);
    assert.equal(w.inFlight, 6);
    assert.equal(w.unanswered, 6);
    // not sent: 0, 4, a TXNR before the oldest, one past the range
    for (const t of [0, 4, RELP_MAX_TXNR - 3, RELP_MAX_TXNR + 1])
      assert.equal(w.answer(t), false, String(t));
    // out of order: the third, then the fifth (across the wrap)
    assert.equal(w.answer(RELP_MAX_TXNR), true);
    assert.deepEqual([w.item, w.index], ['c', 2]);
    assert.equal(w.answer(2), true);
    assert.deepEqual([w.item, w.index], ['e', 4]);
    assert.equal(w.answer(2), false, 'answered twice');
    assert.equal(w.inFlight, 6, 'the oldest is unanswered: nothing moves');
    assert.equal(w.unanswered, 4);
    assert.equal(w.answer(RELP_MAX_TXNR - 2), true);
    assert.equal(w.answer(RELP_MAX_TXNR - 1), true);
    assert.equal(w.inFlight, 3, 'head moved past the answered ones, up to TXNR 1');
    assert.equal(w.answer(RELP_MAX_TXNR), false, 'behind the head now');
    // fill to the size, then it refuses more
    assert.equal(w.sent('g', 6), 4);
    for (let i = 0; i < 4; i++) w.sent('h', 7 + i);
    assert.equal(w.inFlight, 8);
    assert.throws(() => w.sent('x', 0), /window full/);
    for (const t of [1, 2 /* answered */, 3, 4, 5, 6, 7, 8])
      assert.equal(w.answer(t), t !== 2, String(t));
    assert.equal(w.inFlight, 0);
    assert.equal(w.unanswered, 0);
    // a session that died forgets its messages
    w.sent('y', 0);
    w.clear();
    assert.equal(w.answer(w.txnr), false);
    assert.equal(w.inFlight, 0);
  });
});

describe('[sink.NAME] type = syslog', () => {
  const dir = mkdtempSync(join(tmpdir(), 'guard-syslog-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const conf = (sink: string): string => {
    const p = join(dir, `c${++n}`);
    writeFileSync(
      p,
      `[agent]\nuser = guard\n[source.a]\npaths = /var/log/a.log\n[sink.s]\ntype = syslog\n${sink}\n`,
    );
    return p;
  };

  test('defaults', () => {
    const s = loadConfig(conf('address = logs.example.org:2514\nprotocol = relp'))
      .sinks[0] as SyslogSinkConfig;
    assert.deepEqual(
      {
        host: s.host,
        port: s.port,
        tls: s.tls,
        format: s.format,
        framing: s.framing,
        facility: s.facility,
        severity: s.severity,
        sdId: s.sdId,
        timeoutMs: s.timeoutMs,
      },
      {
        host: 'logs.example.org',
        port: 2514,
        tls: true,
        format: 'rfc5424',
        framing: 'octet_counting',
        facility: 'user',
        severity: 'notice',
        sdId: 'guard@32473',
        timeoutMs: 30000,
      },
    );
    const v6 = loadConfig(conf('address = [::1]:6514\nprotocol = tcp'))
      .sinks[0] as SyslogSinkConfig;
    assert.equal(v6.host, '::1');
  });

  test('what is refused, with the key named', () => {
    const bad = (text: string, re: RegExp): void => {
      try {
        loadConfig(conf(text));
        assert.fail('loaded');
      } catch (e) {
        assert.ok(e instanceof ConfigError);
        assert.ok(
          e.problems.some((p) => re.test(p)),
          e.problems.join('\n'),
        );
      }
    };
    bad('protocol = relp', /address/);
    bad('address = h:514', /protocol/);
    bad('address = h:99999\nprotocol = tcp', /address: expected host:port/);
    bad('address = h\nprotocol = tcp', /address/);
    bad('address = h:514\nprotocol = udp', /protocol/);
    bad('address = h:514\nprotocol = relp\nframing = lf', /framing: only used with protocol = tcp/);
    bad(
      'address = h:514\nprotocol = tcp\ntls = false\nserver_name = x',
      /server_name: only used with tls = true/,
    );
    bad('address = h:514\nprotocol = tcp\nsd_id = guard', /sd_id/);
    bad('address = h:514\nprotocol = tcp\nfacility = local9', /facility/);
    bad(
      `address = h:514\nprotocol = tcp\nclient_cert_file = ${conf('')}`,
      /client_key_file: required/,
    );
  });
});
