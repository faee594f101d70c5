import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AuditGrouper, recordEnding } from '../../../src/parsers/audit/group';
import type { AuditEvent } from '../../../src/parsers/audit/types';

const GS = '\\x1d';
const hex = (s: string): string => Buffer.from(s).toString('hex').toUpperCase();

/** Pushes lines as if they were consecutive in a file; returns every event emitted. */
function feed(g: AuditGrouper, lines: string[], start = 0): AuditEvent[] {
  const out: AuditEvent[] = [];
  let off = start;
  for (const l of lines) {
    const end = off + Buffer.byteLength(l) + 1;
    out.push(...g.push(l, off, end));
    off = end;
  }
  return out;
}

/** feed(), then the end of the input (flushAll): for tests about what an event holds. */
function feedAll(g: AuditGrouper, lines: string[], start = 0): AuditEvent[] {
  return [...feed(g, lines, start), ...g.flushAll()];
}

const T = 'msg=audit(1700000000.123:42)';
const LS = [
  `type=SYSCALL ${T}: arch=c000003e syscall=59 success=yes exit=0 a0=55 a1=56 a2=57 a3=0 items=2 ppid=100 pid=101 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="ls" exe="/usr/bin/ls" key="exec"${GS}ARCH=x86_64 SYSCALL=execve AUID="alice" UID="alice" GID="alice"`,
  `type=EXECVE ${T}: argc=3 a0="ls" a1="-l" a2=${hex('/tmp/a b')}`,
  `type=CWD ${T}: cwd="/home/alice"`,
  `type=PATH ${T}: item=0 name="/usr/bin/ls" inode=1001 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0${GS}OUID="root" OGID="root"`,
  `type=PATH ${T}: item=1 name="/lib64/ld-linux-x86-64.so.2" inode=1002 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0${GS}OUID="root" OGID="root"`,
  `type=PROCTITLE ${T}: proctitle=${hex('ls\0-l\0/tmp/a b')}`,
];

describe('AuditGrouper: complete events', () => {
  test('SYSCALL+EXECVE+CWD+PATH×2+PROCTITLE for ls -l "/tmp/a b": one event, summary filled', () => {
    const g = new AuditGrouper();
    const out = feedAll(g, LS, 1000);
    assert.equal(out.length, 1);
    const ev = out[0]!;
    const { records, ...summary } = ev;
    assert.equal(records.length, 6);
    assert.deepEqual(
      records.map((r) => r.type),
      ['SYSCALL', 'EXECVE', 'CWD', 'PATH', 'PATH', 'PROCTITLE'],
    );
    assert.equal(summary.offset, 1000);
    assert.equal(summary.end, 1000 + LS.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0));
    assert.deepEqual(
      { ...summary, offset: 0, end: 0 },
      {
        stamp: '1700000000.123:42',
        time: '2023-11-14T22:13:20.123Z',
        serial: 42,
        type: 'SYSCALL',
        offset: 0,
        end: 0,
        key: 'exec',
        syscall: 'execve',
        syscallNumber: 59,
        arch: 'x86_64',
        archRaw: 'c000003e',
        success: true,
        exit: 0,
        pid: 101,
        ppid: 100,
        auid: 1000,
        uid: 1000,
        ses: 3,
        auidName: 'alice',
        uidName: 'alice',
        tty: 'pts0',
        comm: 'ls',
        exe: '/usr/bin/ls',
        argv: ['ls', '-l', '/tmp/a b'],
        proctitle: ['ls', '-l', '/tmp/a b'],
        cwd: '/home/alice',
        paths: [
          { item: 0, name: '/usr/bin/ls', nametype: 'NORMAL', inode: 1001, mode: '0100755' },
          {
            item: 1,
            name: '/lib64/ld-linux-x86-64.so.2',
            nametype: 'NORMAL',
            inode: 1002,
            mode: '0100755',
          },
        ],
      },
    );
    assert.equal(g.openEvents, 0);
  });

  test('EOE ends an event without PROCTITLE; an EOE whose event is gone is an event of its own', () => {
    const g = new AuditGrouper();
    const a = feed(g, [LS[0]!, LS[2]!]);
    assert.equal(a.length, 0);
    const b = feed(g, [`type=EOE ${T}:`]);
    assert.equal(b.length, 1);
    assert.equal(b[0]!.records.length, 3);
    // never dropped: it is shipped, as the one record of its stamp that is left
    const c = feed(g, [`type=EOE ${T}:`]);
    assert.deepEqual(
      c.map((e) => [e.stamp, e.type, e.records.length]),
      [['1700000000.123:42', 'EOE', 1]],
    );
    assert.equal(g.openEvents, 0);
  });

  test('PROCTITLE closes its event at the next record of another stamp (auditd writes no EOE to disk)', () => {
    const g = new AuditGrouper();
    assert.deepEqual(feed(g, LS), []);
    const next = feed(g, ['type=SYSCALL msg=audit(1700000000.124:43): syscall=1 pid=1']);
    assert.deepEqual(
      next.map((e) => [e.serial, e.records.length]),
      [[42, 6]],
    );
    // a quiet log: the second flush that sees it ships it, whatever the timeout
    assert.deepEqual(feed(g, [`type=PROCTITLE msg=audit(1700000000.124:43): proctitle="x"`]), []);
    assert.deepEqual(g.flush(0, 60_000), []);
    assert.deepEqual(
      g.flush(1, 60_000).map((e) => [e.serial, e.records.length]),
      [[43, 2]],
    );
  });

  test('EOE after PROCTITLE joins its event (issue #18: read, never dropped); once seen, PROCTITLE waits for it', () => {
    const g = new AuditGrouper();
    const eoe = `type=EOE ${T}: `;
    const first = feed(g, [...LS, eoe]);
    assert.deepEqual(
      first.map((e) => [e.serial, e.records.map((r) => r.type).at(-1), e.records.length]),
      [[42, 'EOE', 7]],
    );
    // this input writes EOE: an event closed by PROCTITLE waits for its own, even past others
    const A = 'msg=audit(1700000001.000:50)';
    const B = 'msg=audit(1700000001.001:51)';
    const out = feed(g, [
      `type=SYSCALL ${A}: syscall=1 pid=1`,
      `type=PROCTITLE ${A}: proctitle="a"`,
      `type=SYSCALL ${B}: syscall=1 pid=2`,
      `type=EOE ${A}: `,
      `type=PROCTITLE ${B}: proctitle="b"`,
      `type=EOE ${B}: `,
    ]);
    assert.deepEqual(
      out.map((e) => [e.serial, e.records.map((r) => r.type).join(',')]),
      [
        [50, 'SYSCALL,PROCTITLE,EOE'],
        [51, 'SYSCALL,PROCTITLE,EOE'],
      ],
    );
  });

  test('ANOM_PROMISCUOUS with SYSCALL, SOCKADDR and EOE of its stamp is one event (issue #18)', () => {
    const S = 'msg=audit(1708689989.768:339749193)';
    const out = feed(new AuditGrouper(), [
      `type=ANOM_PROMISCUOUS ${S}: dev=veth5f40f62 prom=256 old_prom=0 auid=4294967295 uid=0 gid=0 ses=4294967295${GS}AUID="unset" UID="root" GID="root"`,
      `type=SYSCALL ${S}: arch=c000003e syscall=44 success=yes exit=40 a0=e a1=c002e50000 a2=28 a3=0 items=0 ppid=1 pid=13877 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="dockerd" exe="/usr/bin/dockerd" key=(null)${GS}ARCH=x86_64 SYSCALL=sendto AUID="unset" UID="root"`,
      `type=SOCKADDR ${S}: saddr=100000000000000000000000${GS}SADDR={ fam=netlink nlnk-fam=16 nlnk-pid=0 }`,
      `type=EOE ${S}: `,
    ]);
    assert.deepEqual(
      out.map((e) => [e.type, e.records.map((r) => r.type).join(',')]),
      [['ANOM_PROMISCUOUS', 'ANOM_PROMISCUOUS,SYSCALL,SOCKADDR,EOE']],
    );
    assert.equal(out[0]!.syscall, 'sendto');
    assert.equal(out[0]!.comm, 'dockerd');
  });

  test('LOGIN + SYSCALL + EOE is one event (where ausearch 3.0.9 makes two, on purpose)', () => {
    const S = 'msg=audit(1640027821.949:151316)';
    const out = feed(new AuditGrouper(), [
      `type=LOGIN ${S}: pid=72605 uid=0 subj=unconfined old-auid=4294967295 auid=0 tty=(none) old-ses=4294967295 ses=325 res=1`,
      `type=SYSCALL ${S}: arch=c00000b7 syscall=64 success=yes exit=1 a0=7 a1=ffffe505f9e0 a2=1 a3=ffff90795f10 items=0 ppid=519 pid=72605 auid=0 uid=0 gid=0 comm="cron" exe="/usr/sbin/cron" key=(null)`,
      `type=EOE ${S}: `,
    ]);
    assert.deepEqual(
      out.map((e) => [e.type, e.records.length]),
      [['LOGIN', 3]],
    );
  });

  test('kernel anomalies and integrity records (1700-1999) wait; KERNEL and 2100+ do not', () => {
    assert.equal(recordEnding('ANOM_ABEND'), 'more');
    assert.equal(recordEnding('ANOM_LINK'), 'more');
    assert.equal(recordEnding('INTEGRITY_RULE'), 'more');
    assert.equal(recordEnding('UNKNOWN[1799]'), 'more');
    assert.equal(recordEnding('UNKNOWN[1899]'), 'more');
    assert.equal(recordEnding('KERNEL'), 'last');
    assert.equal(recordEnding('UNKNOWN[2000]'), 'last');
    assert.equal(recordEnding('ANOM_LOGIN_FAILURES'), 'last');
    assert.equal(recordEnding('UNKNOWN[2100]'), 'last');
    assert.equal(recordEnding('VIRT_CONTROL'), 'last');
    // a standalone ANOM_ABEND (a core dump outside any audited call) ends as any kernel record
    // without its SYSCALL does: by log time, or by the flush timeout
    const g = new AuditGrouper();
    assert.deepEqual(
      feed(g, [
        'type=ANOM_ABEND msg=audit(1700000000.105:505): auid=1000 uid=1000 pid=1300 comm="crashy" sig=11 res=1',
      ]),
      [],
    );
    assert.deepEqual(
      feed(g, [
        "type=USER_CMD msg=audit(1700000002.200:506): pid=1 uid=0 msg='cmd=6C73 res=success'",
      ]).map((e) => e.type),
      ['ANOM_ABEND', 'USER_CMD'],
    );
  });

  test('USER_LOGIN, CRED_*, DAEMON_*, SERVICE_*, user-space ANOM_* are events of their own at once', () => {
    const g = new AuditGrouper();
    const out = feed(g, [
      `type=USER_LOGIN msg=audit(1700000000.101:501): pid=900 uid=0 auid=1000 ses=7 msg='op=login id=1000 exe="/usr/sbin/sshd" hostname=192.0.2.9 addr=192.0.2.9 terminal=/dev/pts/1 res=success'${GS}UID="root" AUID="alice" ID="alice"`,
      `type=CRED_ACQ msg=audit(1700000000.102:502): pid=900 uid=0 auid=1000 ses=7 msg='op=PAM:setcred grantors=pam_unix acct="alice" exe="/usr/sbin/sshd" hostname=? addr=? terminal=ssh res=success'`,
      'type=DAEMON_START msg=audit(1700000000.103:503): op=start ver=3.0.9 format=enriched kernel=6.1 auid=4294967295 pid=10 uid=0 ses=4294967295 res=success',
      'type=SERVICE_START msg=audit(1700000000.104:504): pid=1 uid=0 auid=4294967295 ses=4294967295 msg=\'unit=cron comm="systemd" exe="/usr/lib/systemd/systemd" hostname=? addr=? terminal=? res=success\'',
      'type=ANOM_LOGIN_FAILURES msg=audit(1700000000.105:505): pid=900 uid=0 auid=1000 ses=7 msg=\'op=max-failed-logins acct="alice" exe="/usr/sbin/sshd" res=success\'',
    ]);
    assert.deepEqual(
      out.map((e) => [e.type, e.records.length]),
      [
        ['USER_LOGIN', 1],
        ['CRED_ACQ', 1],
        ['DAEMON_START', 1],
        ['SERVICE_START', 1],
        ['ANOM_LOGIN_FAILURES', 1],
      ],
    );
    const login = out[0]!;
    assert.equal(login.uid, 0);
    assert.equal(login.auidName, 'alice');
    assert.equal(login.exe, '/usr/sbin/sshd');
    assert.deepEqual(login.msg, {
      op: 'login',
      id: '1000',
      exe: '/usr/sbin/sshd',
      hostname: '192.0.2.9',
      addr: '192.0.2.9',
      terminal: '/dev/pts/1',
      res: 'success',
    });
    assert.equal(login.key, undefined);
  });

  test('CONFIG_CHANGE, AVC and LOGIN wait for the SYSCALL of their stamp (kernel records)', () => {
    const g = new AuditGrouper();
    const out = feedAll(g, [
      `type=CONFIG_CHANGE msg=audit(1700000000.200:600): auid=0 ses=1 op=add_rule key=${hex('a\x01b')} list=4 res=1${GS}AUID="root"`,
      `type=SYSCALL msg=audit(1700000000.200:600): arch=c000003e syscall=44 success=yes exit=1068 items=0 ppid=1 pid=2 auid=0 uid=0 comm="auditctl" exe="/usr/sbin/auditctl" key=(null)`,
      `type=PROCTITLE msg=audit(1700000000.200:600): proctitle=${hex('auditctl\0-w\0/etc')}`,
      'type=AVC msg=audit(1700000000.300:601): avc:  denied  { read } for  pid=5 comm="cat" name="shadow" scontext=u:r:t:s0 tcontext=u:r:s:s0 tclass=file permissive=0',
      'type=SYSCALL msg=audit(1700000000.300:601): arch=c000003e syscall=257 success=no exit=-13 items=1 ppid=1 pid=5 auid=1000 uid=1000 comm="cat" exe="/usr/bin/cat" key="shadow"',
      'type=PROCTITLE msg=audit(1700000000.300:601): proctitle="cat"',
      'type=LOGIN msg=audit(1700000000.400:602): pid=900 uid=0 old-auid=4294967295 auid=1000 tty=(none) old-ses=4294967295 ses=7 res=1',
      'type=SYSCALL msg=audit(1700000000.400:602): arch=c000003e syscall=1 success=yes exit=4 items=0 ppid=1 pid=900 auid=1000 uid=0 comm="sshd" exe="/usr/sbin/sshd" key=(null)',
      'type=PROCTITLE msg=audit(1700000000.400:602): proctitle="sshd: alice"',
    ]);
    assert.deepEqual(
      out.map((e) => [e.stamp, e.type, e.records.length]),
      [
        ['1700000000.200:600', 'CONFIG_CHANGE', 3],
        ['1700000000.300:601', 'AVC', 3],
        ['1700000000.400:602', 'LOGIN', 3],
      ],
    );
    assert.equal(out[0]!.key, undefined); // the rule that fired had none; CONFIG_CHANGE's key is the changed rule's
    assert.deepEqual(out[0]!.records[0]!.fields.key, ['a', 'b']);
    assert.equal(out[1]!.exitName, 'EACCES');
    assert.equal(out[1]!.syscall, 'openat');
    assert.equal(out[1]!.key, 'shadow');
  });
});

describe('AuditGrouper: EXECVE continuations', () => {
  test('a1_len + a1[0], a1[1] (hex, split across two EXECVE records) join into one argument', () => {
    const long = 'é'.repeat(3) + 'x'.repeat(10);
    const h = hex(long);
    const cut = 5; // inside the two-byte é: joining bytes, not strings, keeps it whole
    const S = 'msg=audit(1700000000.500:700)';
    const out = feedAll(new AuditGrouper(), [
      `type=SYSCALL ${S}: arch=c000003e syscall=59 success=yes exit=0 items=0 ppid=1 pid=2 auid=0 uid=0 comm="true" exe="/bin/true" key=(null)`,
      `type=EXECVE ${S}: argc=3 a0="/bin/true" a1_len=${h.length} a1[0]=${h.slice(0, cut * 2)}`,
      `type=EXECVE ${S}: a1[1]=${h.slice(cut * 2)} a2="short"`,
      `type=PROCTITLE ${S}: proctitle=2F62696E2F74727565`,
    ]);
    assert.equal(out.length, 1);
    assert.deepEqual(out[0]!.argv, ['/bin/true', long, 'short']);
    assert.deepEqual(out[0]!.proctitle, ['/bin/true']);
  });
  test('quoted chunks are joined as text', () => {
    const S = 'msg=audit(1700000000.500:701)';
    const out = feedAll(new AuditGrouper(), [
      `type=EXECVE ${S}: argc=2 a0="echo" a1_len=8 a1[0]="CAFE" a1[1]="BABE"`,
      `type=PROCTITLE ${S}: proctitle="echo"`,
    ]);
    assert.deepEqual(out[0]!.argv, ['echo', 'CAFEBABE']);
  });
});

describe('AuditGrouper: interleaving, timeouts, bounds', () => {
  test('interleaved stamps are kept apart, records in arrival order', () => {
    const a = 'msg=audit(1700000000.600:800)';
    const b = 'msg=audit(1700000000.601:801)';
    const out = feedAll(
      new AuditGrouper(),
      [
        `type=SYSCALL ${a}: arch=c000003e syscall=59 success=yes exit=0 pid=1 uid=0 comm="a" exe="/a"`,
        `type=SYSCALL ${b}: arch=c000003e syscall=59 success=yes exit=0 pid=2 uid=0 comm="b" exe="/b"`,
        `type=EXECVE ${b}: argc=1 a0="b"`,
        `type=USER_CMD msg=audit(1700000000.602:802): pid=3 uid=1000 auid=1000 ses=1 msg='cwd="/" cmd=${hex('ls -l')} exe="/usr/bin/sudo" terminal=pts/0 res=success'`,
        `type=EXECVE ${a}: argc=1 a0="a"`,
        `type=CWD ${a}: cwd="/"`,
        `type=PROCTITLE ${b}: proctitle="b"`,
        `type=PROCTITLE ${a}: proctitle="a"`,
      ],
      0,
    );
    assert.deepEqual(
      out.map((e) => [e.serial, e.records.map((r) => r.type).join(',')]),
      [
        [802, 'USER_CMD'],
        [801, 'SYSCALL,EXECVE,PROCTITLE'],
        [800, 'SYSCALL,EXECVE,CWD,PROCTITLE'],
      ],
    );
    assert.equal((out[0]!.msg as Record<string, unknown>).cmd, 'ls -l');
    const a0 = out[2]!;
    assert.equal(a0.offset, 0);
    assert.ok(a0.end > out[1]!.end);
  });

  test('missing end record: flush(now, timeout) emits it once it stayed open long enough', () => {
    const g = new AuditGrouper();
    assert.deepEqual(feed(g, [LS[0]!, LS[1]!]), []);
    assert.equal(g.oldestOpenOffset(), 0);
    assert.deepEqual(g.flush(1000, 2000), []); // first sight
    assert.deepEqual(g.flush(2500, 2000), []);
    const out = g.flush(3000, 2000);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.records.length, 2);
    assert.deepEqual(out[0]!.argv, ['ls', '-l', '/tmp/a b']);
    assert.equal(g.oldestOpenOffset(), undefined);
  });

  test('log time: a record 2 s newer completes older open events (as ausearch does)', () => {
    const g = new AuditGrouper();
    assert.deepEqual(
      feed(g, [
        'type=SYSCALL msg=audit(1700000000.000:1): syscall=1 pid=1',
        'type=CWD msg=audit(1700000001.000:2): cwd="/"',
      ]),
      [],
    );
    const out = feed(g, ['type=CWD msg=audit(1700000002.000:3): cwd="/"']);
    assert.deepEqual(
      out.map((e) => e.serial),
      [1],
    );
    assert.deepEqual(
      g.flushAll().map((e) => e.serial),
      [2, 3],
    );
  });

  test('unknown type without SYSCALL: emitted at the next different stamp', () => {
    const g = new AuditGrouper();
    assert.equal(recordEnding('FANCY_NEW'), 'unsure');
    assert.equal(recordEnding('UNKNOWN[1340]'), 'more');
    assert.equal(recordEnding('UNKNOWN[2501]'), 'last');
    assert.deepEqual(
      feed(g, [
        'type=FANCY_NEW msg=audit(1700000000.000:1): a=1',
        'type=FANCY_NEW msg=audit(1700000000.000:1): a=2',
      ]),
      [],
    );
    const out = feed(g, ['type=FANCY_NEW msg=audit(1700000000.001:2): a=3']);
    assert.deepEqual(
      out.map((e) => [e.serial, e.records.length]),
      [[1, 2]],
    );
  });

  test('at most maxOpen open events: the oldest is emitted early, flagged evicted', () => {
    const g = new AuditGrouper({ maxOpen: 3 });
    const lines = [1, 2, 3, 4, 5].map(
      (n) => `type=SYSCALL msg=audit(1700000000.000:${n}): syscall=1 pid=${n}`,
    );
    const out = feed(g, lines);
    assert.deepEqual(
      out.map((e) => [e.serial, e.flags]),
      [
        [1, ['evicted']],
        [2, ['evicted']],
      ],
    );
    assert.equal(g.openEvents, 3);
  });

  test('at most maxRecords per event: a full event is shipped, the rest start the next, none dropped', () => {
    const g = new AuditGrouper({ maxRecords: 4 });
    const lines = Array.from(
      { length: 10 },
      (_, i) => `type=PATH ${T}: item=${i} name="/x${i}" nametype=NORMAL`,
    );
    const out = [...feed(g, lines), ...g.flushAll()];
    assert.deepEqual(
      out.map((e) => e.records.map((r) => r.fields.item)),
      [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
      ],
    );
    for (const e of out) {
      assert.deepEqual(e.flags, ['too_many_records']);
      assert.equal(e.stamp, '1700000000.123:42');
    }
    let off = 0;
    const ends = lines.map((l) => (off += l.length + 1));
    assert.deepEqual(
      out.map((e) => [e.offset, e.end]),
      [
        [0, ends[3]],
        [ends[3], ends[7]],
        [ends[7], ends[9]],
      ],
    );
  });

  test('bounded bytes: open events holding too much text are evicted', () => {
    const g = new AuditGrouper({ maxOpenBytes: 20000 });
    const big = (n: number): string =>
      `type=EXECVE msg=audit(1700000000.000:${n}): argc=1 a0="${'x'.repeat(8000)}"`;
    const out = feed(g, [big(1), big(2), big(3)]);
    assert.deepEqual(
      out.map((e) => [e.serial, e.flags]),
      [[1, ['evicted']]],
    );
  });

  test('a record over 8970 bytes is cut and the event flagged', () => {
    const g = new AuditGrouper();
    feed(g, [`type=EXECVE ${T}: argc=1 a0=${'41'.repeat(6000)}`]);
    const [e] = g.flushAll();
    assert.ok(e);
    assert.equal(e.records[0]!.raw.length, 8970);
    assert.deepEqual(e.flags, ['truncated']);
  });

  test('unparseable lines and a truncated last line', () => {
    const g = new AuditGrouper();
    const out = feed(g, ['garbage here', LS[0]!, 'type=PROCTITLE msg=audit(1700000000.12']);
    // a line cut inside its header is unparseable too: shipped raw, flagged
    assert.deepEqual(
      out.map((e) => [e.raw, e.flags, e.offset]),
      [
        ['garbage here', ['unparsed'], 0],
        ['type=PROCTITLE msg=audit(1700000000.12', ['unparsed'], 13 + LS[0]!.length + 1],
      ],
    );
    assert.equal(g.flushAll().length, 1);
    const g2 = new AuditGrouper();
    const tail = feedAll(g2, [LS[0]!, `type=PROCTITLE ${T}: proctitle=6C73002D`]);
    assert.equal(tail.length, 1);
    assert.deepEqual(tail[0]!.proctitle, ['ls', '-']);
  });

  test("a record shipped before its newline is flagged partial, its rest continuation (the reader's flags)", () => {
    const g = new AuditGrouper();
    const cutAt = 60;
    const out = [
      ...g.push(LS[0]!.slice(0, cutAt), 0, cutAt, ['partial']),
      ...g.push(LS[0]!.slice(cutAt), cutAt, LS[0]!.length + 1, ['continuation']),
      ...g.flushAll(),
    ];
    assert.deepEqual(
      out.map((e) => [e.type, e.flags]),
      [
        ['', ['unparsed', 'continuation']],
        ['SYSCALL', ['partial']],
      ],
    );
    assert.equal(out[0]!.raw, LS[0]!.slice(cutAt));
    assert.equal(out[1]!.records[0]!.raw, LS[0]!.slice(0, cutAt));
  });

  test('enrichment with and without the separator gives the same fields', () => {
    const withSep = feedAll(new AuditGrouper(), [LS[0]!, LS[5]!])[0]!;
    const raw = LS[0]!.slice(0, LS[0]!.indexOf(GS));
    const without = feedAll(new AuditGrouper(), [raw, LS[5]!])[0]!;
    assert.deepEqual(withSep.records[0]!.fields, without.records[0]!.fields);
    assert.equal(without.uidName, undefined);
    assert.equal(withSep.uidName, 'alice');
    assert.equal(without.syscall, 'execve');
  });
});
