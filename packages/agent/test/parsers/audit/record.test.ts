import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  MAX_RECORD_LENGTH,
  bytesToText,
  hexToList,
  parseRecord,
} from '../../../src/parsers/audit/record';
import { archName, errnoName, syscallName } from '../../../src/parsers/audit/translate';

const GS = '\\x1d'; // the separator as it reaches the parser (escape.ts escapes 0x1d)
const hex = (s: string): string => Buffer.from(s).toString('hex').toUpperCase();

describe('parseRecord: header', () => {
  test('type, stamp, ISO time, serial, node', () => {
    const r = parseRecord('node=web1 type=CWD msg=audit(1700000000.123:42): cwd="/root"');
    assert.ok(r);
    assert.equal(r.type, 'CWD');
    assert.equal(r.stamp, '1700000000.123:42');
    assert.equal(r.time, '2023-11-14T22:13:20.123Z');
    assert.equal(r.serial, 42);
    assert.equal(r.node, 'web1');
    assert.deepEqual(r.fields, { cwd: '/root' });
  });
  test('not a record → null', () => {
    for (const l of [
      '',
      'hello',
      'type=X',
      'type=SYSCALL msg=audit(170000.12:1): a=1',
      'type=SYSCALL msg=audit(1700000000.123:): x=1',
      'type=SYSCALL msg=audit(1700000000.123:4) x=1',
      'type=SYSCALL msg=audit(1700000000.1',
      'Nov 24 09:05:01 web1 kernel: audit: type=1400 audit(1700000000.123:42): x',
    ]) {
      assert.equal(parseRecord(l), null, l);
    }
  });
  test('unknown types parse like any other', () => {
    const r = parseRecord('type=UNKNOWN[1340] msg=audit(1700000000.123:42): op=x res=1');
    assert.equal(r?.type, 'UNKNOWN[1340]');
    assert.deepEqual(r?.fields, { op: 'x', res: '1' });
  });
});

describe('parseRecord: values', () => {
  test('SYSCALL: numbers typed, hex args stay strings, enrichment kept as names', () => {
    const r = parseRecord(
      `type=SYSCALL msg=audit(1700000000.123:42): arch=c000003e syscall=257 success=no exit=-13 a0=ffffff9c a1=7ffd a2=0 a3=0 items=1 ppid=10 pid=11 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="cat" exe="/usr/bin/cat" key="secrets"${GS}ARCH=x86_64 SYSCALL=openat AUID="alice" UID="alice"`,
    );
    assert.ok(r);
    assert.equal(r.fields.syscall, 257);
    assert.equal(r.fields.exit, -13);
    assert.equal(r.fields.a0, 'ffffff9c');
    assert.equal(r.fields.a2, '0');
    assert.equal(r.fields.key, 'secrets');
    assert.equal(r.fields.tty, 'pts0');
    assert.deepEqual(r.enriched, {
      ARCH: 'x86_64',
      SYSCALL: 'openat',
      AUID: 'alice',
      UID: 'alice',
    });
    assert.equal(r.flags, undefined);
  });
  test('the raw 0x1d separator works too, and no enrichment without it', () => {
    const a = parseRecord(
      'type=CONFIG_CHANGE msg=audit(1700000000.123:42): auid=0 op=add_rule key="k" list=4 res=1\x1dAUID="root"',
    );
    assert.deepEqual(a?.enriched, { AUID: 'root' });
    assert.equal(a?.fields.res, '1');
    const b = parseRecord(
      'type=CONFIG_CHANGE msg=audit(1700000000.123:42): auid=0 op=add_rule key="k" list=4 res=1',
    );
    assert.deepEqual(b?.enriched, {});
    assert.equal(b?.fields.res, '1');
  });
  test('enriched braces: SADDR={ … }', () => {
    const r = parseRecord(
      `type=SOCKADDR msg=audit(1700000000.123:42): saddr=100000000000000000000000${GS}SADDR={ saddr_fam=netlink nlnk-fam=16 nlnk-pid=0 }`,
    );
    assert.equal(r?.fields.saddr, '100000000000000000000000');
    assert.deepEqual(r?.enriched, { SADDR: 'saddr_fam=netlink nlnk-fam=16 nlnk-pid=0' });
  });
  test('hex-encoded untrusted strings decoded; quoted ones and (null) kept', () => {
    const r = parseRecord(
      `type=PATH msg=audit(1700000000.123:42): item=0 name=${hex('/tmp/a b')} inode=5 mode=0100644 nametype=NORMAL`,
    );
    assert.equal(r?.fields.name, '/tmp/a b');
    assert.equal(r?.fields.inode, 5);
    assert.equal(r?.fields.mode, '0100644');
    const q = parseRecord(
      'type=PATH msg=audit(1700000000.123:42): item=0 name="CAFE" nametype=NORMAL',
    );
    assert.equal(q?.fields.name, 'CAFE');
    const n = parseRecord(
      'type=PATH msg=audit(1700000000.123:42): item=0 name=(null) nametype=NORMAL',
    );
    assert.equal(n?.fields.name, '(null)');
    // a field auditd never encodes is not decoded even when it looks like hex
    const s = parseRecord('type=SYSCALL msg=audit(1700000000.123:42): a1=4142');
    assert.equal(s?.fields.a1, '4142');
  });
  test('control characters and invalid UTF-8 in decoded values come out escaped', () => {
    const r = parseRecord('type=CWD msg=audit(1700000000.123:42): cwd=2F1B5B33316D78FF');
    assert.equal(r?.fields.cwd, '/\\x1b[31mx\\xff');
  });
  test('proctitle: hex split at NUL; quoted → one element', () => {
    const r = parseRecord(
      'type=PROCTITLE msg=audit(1700000000.123:42): proctitle=6C73002D6C002F746D702F612062',
    );
    assert.deepEqual(r?.fields.proctitle, ['ls', '-l', '/tmp/a b']);
    const q = parseRecord('type=PROCTITLE msg=audit(1700000000.123:42): proctitle="bash"');
    assert.deepEqual(q?.fields.proctitle, ['bash']);
  });
  test('multi-key rule: keys joined by 0x01 → array; (null) kept in fields', () => {
    const r = parseRecord(
      `type=SYSCALL msg=audit(1700000000.123:42): key=${hex('watch\x01multi')}`,
    );
    assert.deepEqual(r?.fields.key, ['watch', 'multi']);
  });
  test('EXECVE: a0..aN decoded, aN_len numeric, chunks kept as logged', () => {
    const r = parseRecord(
      `type=EXECVE msg=audit(1700000000.123:42): argc=3 a0="ls" a1_len=8 a1[0]=4142 a1[1]=4344 a2=${hex('x y')}`,
    );
    assert.deepEqual(r?.fields, {
      argc: 3,
      a0: 'ls',
      a1_len: 8,
      'a1[0]': '4142',
      'a1[1]': '4344',
      a2: 'x y',
    });
  });
  test('AVC: SELinux words and AppArmor key=values', () => {
    const s = parseRecord(
      'type=AVC msg=audit(1700000000.123:42): avc:  denied  { read write } for  pid=5 comm="cat" name="shadow" scontext=u:r:t:s0 tclass=file permissive=0',
    );
    assert.equal(s?.fields.seresult, 'denied');
    assert.equal(s?.fields.seperms, 'read write');
    assert.equal(s?.fields.comm, 'cat');
    assert.equal(s?.fields.tclass, 'file');
    const a = parseRecord(
      'type=AVC msg=audit(1700000000.123:42): apparmor="DENIED" operation="open" profile="/usr/sbin/cupsd" name="/etc/shadow" pid=1200 comm="cupsd" requested_mask="r" denied_mask="r" fsuid=0 ouid=0',
    );
    assert.equal(a?.fields.apparmor, 'DENIED');
    assert.equal(a?.fields.name, '/etc/shadow');
  });
});

describe('parseRecord: nested msg and attacker-controlled values', () => {
  test("USER_LOGIN: msg='…' parsed into fields.msg, never merged up", () => {
    const r = parseRecord(
      `type=USER_LOGIN msg=audit(1700000000.123:42): pid=9 uid=0 auid=1000 ses=7 msg='op=login acct=${hex('bad guy')} exe="/usr/sbin/sshd" hostname=? addr=192.0.2.9 terminal=sshd res=failed'${GS}UID="root" AUID="alice"`,
    );
    assert.ok(r);
    assert.deepEqual(r.fields, {
      pid: 9,
      uid: 0,
      auid: 1000,
      ses: 7,
      msg: {
        op: 'login',
        acct: 'bad guy',
        exe: '/usr/sbin/sshd',
        hostname: '?',
        addr: '192.0.2.9',
        terminal: 'sshd',
        res: 'failed',
      },
    });
    assert.deepEqual(r.enriched, { UID: 'root', AUID: 'alice' });
  });
  test('an account name with a quote and fields inside the nested msg stays inside it', () => {
    const r = parseRecord(
      `type=USER_AUTH msg=audit(1700000000.123:42): pid=9 uid=1000 auid=1000 msg='op=PAM:authentication acct="x' uid=0 res='" exe="/usr/bin/su" res=failed'${GS}UID="alice"`,
    );
    assert.ok(r);
    assert.equal(r.fields.uid, 1000);
    assert.deepEqual(Object.keys(r.fields), ['pid', 'uid', 'auid', 'msg']);
    const msg = r.fields.msg as Record<string, unknown>;
    assert.equal(msg.acct, "x' uid=0 res='");
    assert.equal(msg.res, 'failed');
    assert.deepEqual(r.enriched, { UID: 'alice' });
  });
  test('comm `a" uid=0` hex-encoded (as auditd writes it): decoded, no uid field from it', () => {
    const r = parseRecord(
      `type=SYSCALL msg=audit(1700000000.123:42): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 auid=1000 uid=1000 comm=${hex('a" uid=0')} exe=${hex('/tmp/a" uid=0')} key=(null)`,
    );
    assert.ok(r);
    assert.equal(r.fields.comm, 'a" uid=0');
    assert.equal(r.fields.exe, '/tmp/a" uid=0');
    assert.equal(r.fields.uid, 1000);
    assert.equal(r.flags, undefined);
  });
  test('comm `a" uid=0` raw (hand-crafted): the quote ends at the next ", the rest is malformed, uid untouched', () => {
    const r = parseRecord(
      'type=SYSCALL msg=audit(1700000000.123:42): arch=c000003e syscall=59 ppid=1 pid=2 auid=1000 uid=1000 comm="a" uid=0" exe="/tmp/x" key=(null)',
    );
    assert.ok(r);
    assert.equal(r.fields.uid, 1000);
    assert.equal(r.fields.comm, 'a');
    assert.equal(r.fields.exe, undefined);
    assert.deepEqual(r.flags, ['malformed']);
  });
  test('a raw injection that precedes nothing: the duplicate keeps its first value and is flagged', () => {
    const r = parseRecord(
      'type=AVC msg=audit(1700000000.123:42): apparmor="DENIED" comm="x" fsuid=0 ouid=0" fsuid=1000 ouid=1000',
    );
    assert.ok(r);
    assert.ok(r.flags?.includes('malformed'));
    assert.equal(r.fields.fsuid, 0);
  });
  test('a literal \\x1d inside a quoted value is not the separator', () => {
    const r = parseRecord(
      `type=SYSCALL msg=audit(1700000000.123:42): uid=1000 comm="x${GS}UID=root" exe="/bin/x"${GS}UID="alice"`,
    );
    assert.equal(r?.fields.comm, `x${GS}UID=root`);
    assert.equal(r?.fields.exe, '/bin/x');
    assert.deepEqual(r?.enriched, { UID: 'alice' });
  });
  test('__proto__ is not a field', () => {
    const r = parseRecord('type=X msg=audit(1700000000.123:42): __proto__=1 a=2');
    assert.ok(r);
    assert.equal(Object.getPrototypeOf(r.fields), Object.prototype);
    assert.ok(r.flags?.includes('malformed'));
  });
});

describe('parseRecord: size and truncation', () => {
  test(`a record over ${MAX_RECORD_LENGTH} characters is cut and flagged`, () => {
    const line = `type=EXECVE msg=audit(1700000000.123:42): argc=1 a0="${'A'.repeat(10000)}"`;
    const r = parseRecord(line);
    assert.ok(r);
    assert.equal(r.raw.length, MAX_RECORD_LENGTH);
    assert.ok(r.flags?.includes('truncated'));
    assert.ok(r.flags?.includes('malformed')); // the quote is cut off
    assert.equal(r.fields.argc, 1);
  });
  test('a truncated last line keeps what it has, flagged malformed', () => {
    const r = parseRecord(
      'type=SYSCALL msg=audit(1700000000.123:42): arch=c000003e syscall=59 comm="ba',
    );
    assert.equal(r?.fields.syscall, 59);
    assert.equal(r?.fields.comm, 'ba');
    assert.deepEqual(r?.flags, ['malformed']);
    const m = parseRecord(
      'type=USER_CMD msg=audit(1700000000.123:42): pid=1 uid=0 msg=\'cwd="/" cmd=6C73 exe="/usr/bin/su',
    );
    assert.deepEqual(m?.flags, ['malformed']);
    assert.equal((m?.fields.msg as Record<string, unknown>).cmd, 'ls');
  });
});

describe('translations', () => {
  test('arch, syscall, errno', () => {
    assert.equal(archName('c000003e'), 'x86_64');
    assert.equal(archName('40000003'), 'i386');
    assert.equal(archName('c00000b7'), 'aarch64');
    assert.equal(archName('constructor'), undefined);
    assert.equal(syscallName('x86_64', 59), 'execve');
    assert.equal(syscallName('x86_64', 257), 'openat');
    assert.equal(syscallName('i386', 11), 'execve');
    assert.equal(syscallName('aarch64', 221), 'execve');
    assert.equal(syscallName('x86_64', 400), undefined); // a hole in the table
    assert.equal(syscallName('mips', 1), undefined);
    assert.equal(errnoName(-13), 'EACCES');
    assert.equal(errnoName(-2), 'ENOENT');
    assert.equal(errnoName(-9999), undefined);
  });
});

describe('hexToList', () => {
  test('a command line decoded at once equals one piece at a time, hostile bytes included', () => {
    // The reference: split the bytes at NUL, decode each piece as a line (escape.ts).
    const reference = (buf: Buffer): string[] => {
      const out: string[] = [];
      let start = 0;
      for (let i = 0; i <= buf.length; i++) {
        if (i === buf.length || buf[i] === 0) {
          if (i < buf.length || i > start) out.push(bytesToText(buf, start, i));
          start = i + 1;
        }
      }
      return out;
    };
    const pieces = [
      [0x00],
      [0x61],
      [0x20],
      [0x09],
      [0x0d],
      [0x1b],
      [0x1d],
      [0x7f],
      [0xc2, 0x9b],
      [0xe2, 0x80, 0xae],
      [0xc3, 0xa9],
      [0xff],
      [0xe2, 0x80],
      [0xef, 0xbf, 0xbd],
      [0x5c],
      [0x22],
    ];
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 48271) % 2147483647;
      return seed % n;
    };
    for (let i = 0; i < 5000; i++) {
      const bytes: number[] = [];
      for (let k = rnd(10); k >= 0; k--) bytes.push(...pieces[rnd(pieces.length)]!);
      const buf = Buffer.from(bytes);
      assert.deepEqual(hexToList(buf.toString('hex'), 0), reference(buf), JSON.stringify(bytes));
    }
    assert.deepEqual(hexToList('', 0), []);
    assert.deepEqual(hexToList('6C73002D6C00', 0), ['ls', '-l']);
    assert.deepEqual(hexToList('00006C73', 0), ['', '', 'ls']);
  });
});
