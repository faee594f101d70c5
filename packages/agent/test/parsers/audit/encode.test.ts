import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { auditEventBody } from '../../../src/parsers/audit/encode';
import { AuditGrouper } from '../../../src/parsers/audit/group';
import type { AuditEvent } from '../../../src/parsers/audit/types';

const GS = '\\x1d';
const hex = (s: string): string => Buffer.from(s).toString('hex').toUpperCase();

/** Lines as consecutive in a file, then the end of the input: every event. */
function group(lines: string[]): AuditEvent[] {
  const g = new AuditGrouper();
  const out: AuditEvent[] = [];
  let off = 0;
  for (const l of lines) {
    const end = off + Buffer.byteLength(l) + 1;
    out.push(...g.push(l, off, end));
    off = end;
  }
  return [...out, ...g.flushAll()];
}

type Body = {
  time: string;
  offset: number;
  message: string;
  fields: Record<string, unknown> & { records?: unknown[] };
  flags?: string[];
};

/** Both encodings of each event, parsed back (the body is the members of one JSON object). */
function both(lines: string[], extra: string[] | null = null): { parsed: Body; text: Body }[] {
  return group(lines).map((ev) => {
    const p = auditEventBody(ev, extra, true);
    const t = auditEventBody(ev, extra, false);
    return { parsed: JSON.parse(`{${p}}`) as Body, text: JSON.parse(`{${t}}`) as Body };
  });
}

const T = 'msg=audit(1700000000.123:42)';
const U = 'msg=audit(1700000000.130:43)';
const SYSCALL = (t: string) =>
  `type=SYSCALL ${t}: arch=c000003e syscall=59 success=yes exit=0 a0=55 a1=56 a2=57 a3=0 items=1 ppid=100 pid=101 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="ls" exe="/usr/bin/ls" key="exec"${GS}ARCH=x86_64 SYSCALL=execve AUID="alice" UID="alice"`;

describe('auditEventBody: audit_records = parsed and text', () => {
  test('the same message and summary; text leaves only the records out', () => {
    const lines = [
      SYSCALL(T),
      `type=EXECVE ${T}: argc=3 a0="ls" a1="-l" a2=${hex('/tmp/a b')}`,
      `type=CWD ${T}: cwd="/home/alice"`,
      `type=PATH ${T}: item=0 name="/usr/bin/ls" inode=1001 dev=fe:00 mode=0100755 nametype=NORMAL${GS}OUID="root"`,
      `type=PROCTITLE ${T}: proctitle=${hex('ls\0-l\0/tmp/a b')}`,
    ];
    const [ev] = both(lines);
    assert.ok(ev);
    const { parsed, text } = ev;
    assert.equal(parsed.message, lines.join('\n'));
    assert.equal(text.message, parsed.message);
    assert.equal(text.time, '2023-11-14T22:13:20.123Z');
    assert.equal(text.offset, 0);
    const { records, ...summary } = parsed.fields;
    assert.deepEqual(text.fields, summary);
    assert.equal('records' in text.fields, false);
    assert.deepEqual(
      (records as { type: string }[]).map((r) => r.type),
      ['SYSCALL', 'EXECVE', 'CWD', 'PATH', 'PROCTITLE'],
    );
    assert.deepEqual(text.fields.argv, ['ls', '-l', '/tmp/a b']);
    assert.equal(text.fields.key, 'exec');
    assert.equal(text.fields.uidName, 'alice');
    assert.equal(parsed.flags, undefined);
    assert.equal(text.flags, undefined);
  });

  test('an EXECVE split over two records: argv joined in both', () => {
    const long = 'x'.repeat(40) + ' and "more"';
    const h = hex(long);
    const lines = [
      SYSCALL(T),
      `type=EXECVE ${T}: argc=2 a0="prog" a1_len=${long.length * 2} a1[0]=${h.slice(0, 40)}`,
      `type=EXECVE ${T}: a1[1]=${h.slice(40)}`,
      `type=PROCTITLE ${T}: proctitle=70726F67`,
    ];
    const [ev] = both(lines);
    assert.deepEqual(ev!.text.fields.argv, ['prog', long]);
    assert.deepEqual(ev!.parsed.fields.argv, ['prog', long]);
  });

  test('interleaved events stay apart in both', () => {
    const lines = [
      SYSCALL(T),
      SYSCALL(U),
      `type=CWD ${T}: cwd="/a"`,
      `type=CWD ${U}: cwd="/b"`,
      `type=PROCTITLE ${T}: proctitle=6C73`,
      `type=PROCTITLE ${U}: proctitle=6C73`,
    ];
    const evs = both(lines);
    assert.deepEqual(
      evs.map((e) => [e.text.fields.serial, e.text.fields.cwd, e.text.message.split('\n').length]),
      [
        [42, '/a', 3],
        [43, '/b', 3],
      ],
    );
  });

  test('a hex-decoded bidi override in the summary is flagged in both', () => {
    const lines = [
      SYSCALL(T),
      `type=EXECVE ${T}: argc=2 a0="cat" a1=${hex('invoice\u202egnp.exe')}`,
      `type=PROCTITLE ${T}: proctitle=636174`,
    ];
    const [ev] = both(lines);
    assert.deepEqual(ev!.parsed.flags, ['bidi']);
    assert.deepEqual(ev!.text.flags, ['bidi']);
    assert.equal(ev!.text.fields.argv?.toString(), 'cat,invoice\u202egnp.exe');
  });

  test('decoded text only a record holds: flagged where it is shipped, absent (hex only) from text', () => {
    // A TTY record's data (hex) is no summary field: text ships it as auditd wrote it, in hex.
    const lines = [SYSCALL(T), `type=TTY ${T}: data=${hex('pay \u202egnp.exe')}`];
    const [ev] = both(lines);
    assert.deepEqual(ev!.parsed.flags, ['bidi']);
    assert.equal(ev!.text.flags, undefined);
    const text = auditEventBody(group(lines)[0]!, null, false);
    assert.equal(text.includes('\u202e'), false);
    assert.ok(text.includes(hex('pay \u202egnp.exe')));
  });

  test('control characters arrive escaped, never raw, in message and fields', () => {
    const lines = [
      SYSCALL(T),
      `type=EXECVE ${T}: argc=2 a0="echo" a1=${hex('\x1b]0;owned\x07\x9b')}`,
      `type=PROCTITLE ${T}: proctitle=6563686F`,
    ];
    const [ev] = both(lines);
    for (const body of [ev!.parsed, ev!.text]) {
      assert.deepEqual(body.fields.argv, ['echo', '\\x1b]0;owned\\x07\\u009b']);
      assert.equal(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/.test(JSON.stringify(body)), false);
    }
  });

  test('missing fields, a malformed record, an unparsed line: flags and text kept in both', () => {
    const lines = [
      `type=SYSCALL ${T}: syscall=2 comm="a"b" key=(null)`,
      `type=PROCTITLE ${T}: proctitle=61`,
      'not an audit record at all',
    ];
    const evs = both(lines);
    const unparsed = evs.find((e) => e.text.flags?.includes('unparsed'))!;
    assert.equal(unparsed.text.message, 'not an audit record at all');
    assert.equal(unparsed.text.fields.serial, -1);
    assert.deepEqual(unparsed.parsed.fields.records, []);
    assert.equal(unparsed.text.fields.records, undefined);
    const bad = evs.find((e) => e.text.fields.serial === 42)!;
    assert.deepEqual(bad.text.flags, ['malformed']);
    assert.deepEqual(bad.parsed.flags, ['malformed']);
    assert.equal(bad.text.fields.syscallNumber, 2);
    assert.equal(bad.text.fields.comm, 'a');
    assert.equal(bad.text.fields.key, undefined, 'nothing read past the token auditd never writes');
    assert.equal(bad.text.fields.arch, undefined);
    assert.equal(bad.text.message, lines.slice(0, 2).join('\n'));
  });

  test("the file's flags are added once, after the event's own", () => {
    const lines = [`type=SYSCALL ${T}: syscall=2 comm="a"b"`, `type=PROCTITLE ${T}: proctitle=61`];
    const [ev] = both(lines, ['bidi', 'malformed']);
    assert.deepEqual(ev!.text.flags, ['malformed', 'bidi']);
  });
});
