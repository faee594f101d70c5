import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSyslog } from '../../src/parsers/syslog';

// RFC 3164 timestamps are the host's local time: expectations are computed in local time too,
// so these tests pass in any TZ.
function local(y: number, mo: number, d: number, h: number, mi: number, s: number): string {
  return new Date(y, mo - 1, d, h, mi, s).toISOString();
}

const NOW = new Date(2026, 10, 24, 12, 0, 0); // 24 Nov 2026, noon local

describe('parseSyslog: Debian 12 (rsyslog high-precision RFC 3339) auth.log lines', () => {
  const cases: Array<[string, string, Record<string, unknown>]> = [
    [
      '2026-11-24T09:05:01.123456+00:00 web1 sshd[1234]: Accepted password for alice from 192.0.2.10 port 51234 ssh2',
      '2026-11-24T09:05:01.123Z',
      { hostname: 'web1', program: 'sshd', pid: 1234 },
    ],
    [
      '2026-11-24T09:05:02.000001+00:00 web1 sshd[1240]: Failed password for invalid user admin from 203.0.113.7 port 40022 ssh2',
      '2026-11-24T09:05:02.000Z',
      { hostname: 'web1', program: 'sshd', pid: 1240 },
    ],
    [
      '2026-11-24T10:17:01.654321+01:00 web1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update',
      '2026-11-24T09:17:01.654Z',
      { hostname: 'web1', program: 'sudo' },
    ],
    [
      '2026-11-24T09:17:01.000200-05:30 web1 CRON[5678]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)',
      '2026-11-24T14:47:01.000Z',
      { hostname: 'web1', program: 'CRON', pid: 5678 },
    ],
    [
      '2026-11-24T09:05:01.5Z web1 systemd-logind[512]: New session 42 of user alice.',
      '2026-11-24T09:05:01.500Z',
      { hostname: 'web1', program: 'systemd-logind', pid: 512 },
    ],
    [
      '2026-11-24T09:05:01+00:00 web1 kernel: [12345.678901] audit: type=1400 audit(1700000000.123:42): apparmor="DENIED"',
      '2026-11-24T09:05:01.000Z',
      { hostname: 'web1', program: 'kernel' },
    ],
  ];
  for (const [line, time, fields] of cases) {
    test(line.slice(33, 70), () => {
      assert.deepEqual(parseSyslog(line, NOW), { time, fields });
    });
  }

  test('lines in one second share a cache entry but keep their own fraction', () => {
    const a = parseSyslog('2026-11-24T09:05:01.100000+00:00 h p: a', NOW);
    const b = parseSyslog('2026-11-24T09:59:59.999999+00:00 h p: b', NOW);
    const c = parseSyslog('2026-11-24T09:05:01.100000+02:00 h p: c', NOW);
    const d = parseSyslog('2026-12-31T23:59:59.999+00:00 h p: d', NOW);
    const e = parseSyslog('2024-02-29T00:00:00.000-01:00 h p: e', NOW);
    assert.equal(a.time, '2026-11-24T09:05:01.100Z');
    assert.equal(b.time, '2026-11-24T09:59:59.999Z');
    assert.equal(c.time, '2026-11-24T07:05:01.100Z');
    assert.equal(d.time, '2026-12-31T23:59:59.999Z');
    assert.equal(e.time, '2024-02-29T01:00:00.000Z');
  });

  test('digits past the millisecond are cut, never rounded up (not even 20 nines into the next second)', () => {
    assert.equal(
      parseSyslog('2026-11-24T09:05:01.99999999999999999999+00:00 h p: a', NOW).time,
      '2026-11-24T09:05:01.999Z',
    );
    assert.equal(
      parseSyslog('2026-11-24T23:59:59.9999999999999999Z h p: b', NOW).time,
      '2026-11-24T23:59:59.999Z',
    );
    assert.equal(
      parseSyslog('2026-11-24T09:05:01.0019+00:00 h p: c', NOW).time,
      '2026-11-24T09:05:01.001Z',
    );
    assert.equal(
      parseSyslog('2026-11-24T09:05:01.5Z h p: d', NOW).time,
      '2026-11-24T09:05:01.500Z',
    );
    assert.equal(
      parseSyslog('2026-11-24T09:05:01.05Z h p: e', NOW).time,
      '2026-11-24T09:05:01.050Z',
    );
  });

  test('agrees with Date for a spread of timestamps', () => {
    for (let i = 0; i < 2000; i++) {
      const ms = Date.UTC(2020, 0, 1) + ((i * 7_654_321_987) % (9 * 365 * 86400000));
      const iso = new Date(ms).toISOString();
      const line = `${iso.slice(0, 23)}456+00:00 h p: x`;
      assert.equal(parseSyslog(line, NOW).time, iso, line);
    }
  });
});

describe('parseSyslog: RFC 3164 (traditional format)', () => {
  test('sshd accepted password', () => {
    assert.deepEqual(
      parseSyslog(
        'Nov 24 09:05:01 web1 sshd[1234]: Accepted password for alice from 192.0.2.10 port 51234 ssh2',
        NOW,
      ),
      {
        time: local(2026, 11, 24, 9, 5, 1),
        fields: { hostname: 'web1', program: 'sshd', pid: 1234 },
      },
    );
  });

  test('a space-padded day ("Nov  4")', () => {
    const r = parseSyslog(
      'Nov  4 07:00:00 web1 CRON[99]: (root) CMD (run-parts /etc/cron.hourly)',
      NOW,
    );
    assert.equal(r.time, local(2026, 11, 4, 7, 0, 0));
    assert.deepEqual(r.fields, { hostname: 'web1', program: 'CRON', pid: 99 });
  });

  test('a tag without [pid]', () => {
    assert.deepEqual(
      parseSyslog('Nov 24 09:05:01 web1 kernel: usb 1-1: new high-speed USB device', NOW).fields,
      { hostname: 'web1', program: 'kernel' },
    );
  });

  test('a tag without a colon-message: prog[pid] alone, prog[pid] then text, prog: alone', () => {
    assert.deepEqual(parseSyslog('Nov 24 09:05:01 web1 myapp[77]', NOW).fields, {
      hostname: 'web1',
      program: 'myapp',
      pid: 77,
    });
    assert.deepEqual(parseSyslog('Nov 24 09:05:01 web1 myapp[77] started', NOW).fields, {
      hostname: 'web1',
      program: 'myapp',
      pid: 77,
    });
    assert.deepEqual(parseSyslog('Nov 24 09:05:01 web1 myapp:', NOW).fields, {
      hostname: 'web1',
      program: 'myapp',
    });
  });

  test('no tag at all: the rest is the message', () => {
    assert.deepEqual(parseSyslog('Nov 24 09:05:01 web1 -- MARK --', NOW).fields, {
      hostname: 'web1',
    });
    assert.deepEqual(parseSyslog('Nov 24 09:05:01 web1', NOW).fields, { hostname: 'web1' });
  });

  test('tags with / . - _ (postfix/smtpd, dbus-daemon)', () => {
    assert.deepEqual(
      parseSyslog('Nov 24 09:05:01 mx postfix/smtpd[321]: connect from unknown[198.51.100.4]', NOW)
        .fields,
      { hostname: 'mx', program: 'postfix/smtpd', pid: 321 },
    );
  });

  test('with a <PRI>: priority, facility, severity', () => {
    assert.deepEqual(parseSyslog('<38>Nov 24 09:05:01 web1 sshd[1]: x', NOW), {
      time: local(2026, 11, 24, 9, 5, 1),
      fields: {
        hostname: 'web1',
        program: 'sshd',
        pid: 1,
        priority: 38,
        facility: 'auth',
        severity: 'info',
      },
    });
    assert.deepEqual(parseSyslog('<0>2026-11-24T09:05:01Z h k: x', NOW).fields, {
      hostname: 'h',
      program: 'k',
      priority: 0,
      facility: 'kern',
      severity: 'emerg',
    });
    assert.equal(
      (parseSyslog('<191>Nov 24 09:05:01 h p: x', NOW).fields as Record<string, unknown>).facility,
      'local7',
    );
  });
});

describe('parseSyslog: year inference for RFC 3164', () => {
  test('Dec 31 read on Jan 1 is last year', () => {
    const jan1 = new Date(2027, 0, 1, 0, 0, 30);
    assert.equal(parseSyslog('Dec 31 23:59:59 h p: x', jan1).time, local(2026, 12, 31, 23, 59, 59));
    assert.equal(parseSyslog('Jan  1 00:00:10 h p: x', jan1).time, local(2027, 1, 1, 0, 0, 10));
  });

  test('a date slightly in the future (clock skew, late rotation) stays in this year', () => {
    assert.equal(parseSyslog('Nov 25 09:00:00 h p: x', NOW).time, local(2026, 11, 25, 9, 0, 0));
    assert.equal(parseSyslog('Dec 20 09:00:00 h p: x', NOW).time, local(2026, 12, 20, 9, 0, 0));
  });

  test('more than a month in the future is last year', () => {
    assert.equal(
      parseSyslog('Dec 31 09:00:00 h p: x', new Date(2026, 10, 1)).time,
      local(2025, 12, 31, 9, 0, 0),
    );
  });

  test('the same timestamp gives the right year when `now` changes (no stale cache)', () => {
    const line = 'Dec 31 23:59:59 h p: x';
    assert.equal(
      parseSyslog(line, new Date(2026, 11, 31, 23, 59, 59)).time,
      local(2026, 12, 31, 23, 59, 59),
    );
    assert.equal(parseSyslog(line, new Date(2027, 0, 2)).time, local(2026, 12, 31, 23, 59, 59));
    assert.equal(
      parseSyslog(line, new Date(2027, 11, 31, 23, 59, 59)).time,
      local(2027, 12, 31, 23, 59, 59),
    );
  });

  test('Feb 29 read in a year that has none belongs to the last leap year', () => {
    assert.equal(
      parseSyslog('Feb 29 10:00:00 h p: x', new Date(2029, 0, 5)).time,
      local(2028, 2, 29, 10, 0, 0),
    );
    assert.equal(
      parseSyslog('Feb 29 10:00:00 h p: x', new Date(2028, 2, 5)).time,
      local(2028, 2, 29, 10, 0, 0),
    );
  });
});

describe('parseSyslog: RFC 5424', () => {
  test('the RFC example with structured data and a BOM', () => {
    const line =
      '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 ' +
      '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] \uFEFFAn application event';
    assert.deepEqual(parseSyslog(line, NOW), {
      time: '2003-10-11T22:14:15.003Z',
      fields: {
        priority: 165,
        facility: 'local4',
        severity: 'notice',
        version: 1,
        hostname: 'mymachine.example.com',
        program: 'evntslog',
        msgid: 'ID47',
        structuredData: {
          'exampleSDID@32473': { iut: '3', eventSource: 'Application', eventID: '1011' },
          'examplePriority@32473': { class: 'high' },
        },
      },
    });
  });

  test('numeric procid is pid; escapes in SD values', () => {
    const r = parseSyslog(
      '<34>1 2026-11-24T09:05:01.123456+00:00 host app 4242 - [a@1 q="say \\"hi\\" \\\\ \\]"] m',
      NOW,
    );
    assert.equal(r.time, '2026-11-24T09:05:01.123Z');
    assert.deepEqual(r.fields, {
      priority: 34,
      facility: 'auth',
      severity: 'crit',
      version: 1,
      hostname: 'host',
      program: 'app',
      pid: 4242,
      structuredData: { 'a@1': { q: 'say "hi" \\ ]' } },
    });
  });

  test('every field nil, no message', () => {
    assert.deepEqual(parseSyslog('<14>1 - - - - - -', NOW), {
      fields: { priority: 14, facility: 'user', severity: 'info', version: 1 },
    });
  });

  test('a non-numeric procid is kept as procid', () => {
    assert.equal(
      (parseSyslog('<14>1 - h a worker-3 - - x', NOW).fields as Record<string, unknown>).procid,
      'worker-3',
    );
  });
});

describe('parseSyslog: malformed lines are flagged unparsed, never thrown', () => {
  const bad = [
    '',
    'hello world',
    'Nov 24 09:05:01', // nothing after the timestamp
    'Nov 24 09:05:01 ', // no hostname
    'Nov 32 09:05:01 h p: x',
    'Nov 24 24:00:00 h p: x',
    'Nov 24 09:5:01 h p: x',
    'Foo 24 09:05:01 h p: x',
    'N0v 24 09:05:01 h p: x',
    'Mar  7 1970 19:06:53 h p: x', // a year rsyslog would not take
    'Mar  7 2100 19:06:53 h p: x',
    'Feb 29 2027 10:00:00 h p: x', // no such day that year
    'Mar  7 19:06:53. h p: x', // an empty fraction
    '<13>  Mar  7 19:06:53 h p: x', // two spaces after the PRI
    'Nov24 09:05:01 h p: x',
    '2026-13-01T00:00:00Z h p: x',
    '2026-02-30T00:00:00Z h p: x',
    '2026-11-24 09:05:01 h p: x',
    '2026-11-24T09:05:01 h p: x', // no zone
    '2026-11-24T09:05:01.Z h p: x', // empty fraction
    '2026-11-24T09:05:01+0100 h p: x',
    '2026-11-24T09:05:01Zh p: x',
    '<>Nov 24 09:05:01 h p: x',
    '<192>Nov 24 09:05:01 h p: x',
    '<1234>Nov 24 09:05:01 h p: x',
    '<34',
    '<34>1',
    '<34>1 2026-11-24T09:05:01Z',
  ];
  for (const line of bad) {
    test(JSON.stringify(line), () => {
      assert.deepEqual(parseSyslog(line, NOW), { flags: ['unparsed'] });
    });
  }

  test('random garbage never throws', () => {
    let seed = 42;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    const alphabet = 'Nov 24 09:05:01 <34>1 T-+Z:.[]" =\\0123456789abcdhx';
    for (let i = 0; i < 5000; i++) {
      let s = '';
      const n = rnd() % 60;
      for (let k = 0; k < n; k++) s += alphabet[rnd() % alphabet.length];
      const r = parseSyslog(s, NOW);
      assert.ok(r.fields !== undefined || r.flags?.[0] === 'unparsed');
    }
  });

  test('flags arrays are not shared between results', () => {
    const a = parseSyslog('x', NOW);
    a.flags!.push('escaped');
    assert.deepEqual(parseSyslog('y', NOW), { flags: ['unparsed'] });
  });
});

// The vectors of issue #18: what rsyslog's parser tests feed it, and how rsyslog reads them.
describe('parseSyslog: RFC 3164 leniency as rsyslog has it (issue #18)', () => {
  test('a month in upper or lower case (AUG, aug)', () => {
    for (const m of ['AUG', 'aug', 'aUg']) {
      assert.deepEqual(parseSyslog(`<38>${m}  7 19:06:53 host prog: x`, NOW), {
        time: local(2026, 8, 7, 19, 6, 53),
        fields: {
          hostname: 'host',
          program: 'prog',
          priority: 38,
          facility: 'auth',
          severity: 'info',
        },
      });
    }
  });

  test('a year inside the timestamp (Mar 7 2008 19:06:53) is used as it is', () => {
    assert.deepEqual(parseSyslog('<167>Mar  7 2008 19:06:53 example tag: msgnum:1', NOW), {
      time: local(2008, 3, 7, 19, 6, 53),
      fields: {
        hostname: 'example',
        program: 'tag',
        priority: 167,
        facility: 'local4',
        severity: 'debug',
      },
    });
    assert.equal(
      parseSyslog('Feb 29 2028 10:00:00 h p: x', NOW).time,
      local(2028, 2, 29, 10, 0, 0),
    );
  });

  test('a colon after the time (19:06:53:)', () => {
    assert.deepEqual(parseSyslog('<167>Mar  7 19:06:53: example tag: msgnum:1', NOW).fields, {
      hostname: 'example',
      program: 'tag',
      priority: 167,
      facility: 'local4',
      severity: 'debug',
    });
    assert.equal(
      parseSyslog('Mar  7 2008 19:06:53: h p: x', NOW).time,
      local(2008, 3, 7, 19, 6, 53),
    );
  });

  test('a space after <PRI>', () => {
    const r = parseSyslog('<167> Mar  7 19:06:53 example tag: msgnum:1', NOW);
    assert.equal(r.time, local(2026, 3, 7, 19, 6, 53));
    assert.deepEqual(r.fields, {
      hostname: 'example',
      program: 'tag',
      priority: 167,
      facility: 'local4',
      severity: 'debug',
    });
  });

  test('a fraction of a second (Cisco)', () => {
    assert.equal(
      parseSyslog('Mar  7 19:06:53.123456 h p: x', NOW).time,
      new Date(2026, 2, 7, 19, 6, 53, 123).toISOString(),
    );
    assert.equal(
      parseSyslog('Mar  7 19:06:53.5: h p: x', NOW).time,
      new Date(2026, 2, 7, 19, 6, 53, 500).toISOString(),
    );
  });

  test('#001 is not a host name: it is the program (Snare MSWinEventLog)', () => {
    assert.deepEqual(
      parseSyslog('Oct 16 23:47:31 #001 MSWinEventLog 1 Security 11 Fri Oct 16 23:47:31 2009', NOW)
        .fields,
      { program: '#001' },
    );
  });

  test('a first word that cannot be a host name is the tag, as in rsyslog', () => {
    assert.deepEqual(parseSyslog('Oct 16 23:47:31 sshd[7]: no host', NOW).fields, {
      program: 'sshd',
      pid: 7,
    });
    assert.deepEqual(parseSyslog('Oct 16 23:47:31 kernel: no host', NOW).fields, {
      program: 'kernel',
    });
    assert.deepEqual(parseSyslog('Oct 16 23:47:31 web- x: host ends in a dash', NOW).fields, {
      program: 'web-',
    });
  });

  test('host names rsyslog takes, and IPv6 senders it writes in the host field', () => {
    for (const host of ['web1', 'db_2.example.com', '10.0.0.1', 'a', '2001:db8::1', '::1']) {
      assert.deepEqual(parseSyslog(`Oct 16 23:47:31 ${host} prog: x`, NOW).fields, {
        hostname: host,
        program: 'prog',
      });
    }
  });
});

describe('parseSyslog: RFC 5424 with malformed structured data keeps its header (issue #18)', () => {
  test('[x eventSource= "Application"]: the header fields stay, the event is flagged malformed_sd', () => {
    assert.deepEqual(
      parseSyslog(
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [x eventSource= "Application"] An application event',
        NOW,
      ),
      {
        time: '2003-10-11T22:14:15.003Z',
        fields: {
          priority: 165,
          facility: 'local4',
          severity: 'notice',
          version: 1,
          hostname: 'mymachine.example.com',
          program: 'evntslog',
          msgid: 'ID47',
        },
        flags: ['malformed_sd'],
      },
    );
  });

  for (const sd of [
    '[unterminated',
    '[id k="v"',
    '[id k=v]',
    'sd-not-bracketed',
    '[a@1 x="y"]z',
    '-x',
  ]) {
    test(`SD ${JSON.stringify(sd)}: header kept, flagged`, () => {
      const r = parseSyslog(`<34>1 2026-11-24T09:05:01Z h a p m ${sd} msg`, NOW);
      assert.equal(r.time, '2026-11-24T09:05:01.000Z');
      assert.deepEqual(r.flags, ['malformed_sd']);
      assert.deepEqual(r.fields, {
        priority: 34,
        facility: 'auth',
        severity: 'crit',
        version: 1,
        hostname: 'h',
        program: 'a',
        procid: 'p',
        msgid: 'm',
      });
    });
  }
});
