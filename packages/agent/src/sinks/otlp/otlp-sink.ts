// OpenTelemetry OTLP/HTTP logs: POST <url> (a base URL gets /v1/logs), an
// ExportLogsServiceRequest as binary protobuf (default) or OTLP JSON. One ResourceLogs per request
// (service.name, host.name), one ScopeLogs ("guard"), one LogRecord per event:
//   time_unix_nano   the event's time          body        the message (string)
//   severity_number  from the syslog severity  attributes  log.record.uid = guard's event id,
//   severity_text    the syslog severity name               log.file.path, guard.source, guard.parser,
//                                                         guard.tags, guard.flags, and the parser's
//                                                         fields under their own names
//
// What an answer means (opentelemetry-proto docs/specification.md, "OTLP/HTTP Response"):
//   200                            → delivered; with partial_success.rejected_log_records > 0 the
//                                    spec forbids a retry and does not say which records were
//                                    rejected: the request's events are dead-lettered with the count
//                                    and the message, and counted as delivered-with-rejections
//   429, 502, 503, 504             → the request again, Retry-After honoured (the spec's list)
//   500                            → also retried: guard's deviation from the spec (a collector's
//                                    500 is mostly a failing exporter behind it; security events
//                                    are worth a duplicate more than a dead letter)
//   413                            → split in halves (never the same request again, as the spec says)
//   400 and every other status     → not retried: dead-lettered

import { hostname as osHostname } from 'node:os';
import type { OtlpSinkConfig } from '../../config/types';
import type { Batch } from '../../event';
import { ByteWriter, digitsValue, Lit, TailKey, varintSize } from '../core/byte-writer';
import { HttpCoreSink, statusVerdict, type HttpSinkOptions } from '../core/http-core';
import { IsoTimeReader, type BatchLines } from '../core/lines';
import { EventScan } from '../core/event-scan';
import type { Answer, RequestContext, Verdict, WireFormat } from '../core/wire-format';

const retryable = (s: number): boolean =>
  s === 429 || s === 502 || s === 503 || s === 504 || s === 500;

/** Syslog severity → OTel SeverityNumber (guard's mapping; see docs/sinks/otlp.md). */
export const SEVERITY_NUMBER: Record<string, number> = {
  emerg: 24, // FATAL4
  alert: 23, // FATAL3
  crit: 21, // FATAL
  err: 17, // ERROR
  warning: 13, // WARN
  notice: 10, // INFO2
  info: 9, // INFO
  debug: 5, // DEBUG
};

/** SEVERITY_NUMBER of a name, 0 for any other string ("constructor" included: an own key only). */
function severityNumberOf(name: string): number {
  return Object.hasOwn(SEVERITY_NUMBER, name) ? SEVERITY_NUMBER[name]! : 0;
}

const SEVERITY_NAMES = Object.entries(SEVERITY_NUMBER).map(
  ([name, num]) => [Buffer.from(name, 'latin1'), num] as const,
);

/** SEVERITY_NUMBER of the severity name body[vs, ve), 0 for none, without making a string. */
function severityAt(body: Buffer, vs: number, ve: number): number {
  for (const [name, num] of SEVERITY_NAMES) {
    if (name.length !== ve - vs || name[0] !== body[vs]) continue;
    let k = 1;
    while (k < name.length && name[k] === body[vs + k]) k++;
    if (k === name.length) return num;
  }
  return 0;
}

interface Event {
  id?: unknown;
  time?: unknown;
  message?: unknown;
  source?: unknown;
  path?: unknown;
  parser?: unknown;
  fields?: Record<string, unknown>;
  flags?: unknown;
  tags?: unknown;
}

type Attr = [string, unknown];

/** The attributes of one event, in a fixed order. */
function attributes(ev: Event): Attr[] {
  const out: Attr[] = [];
  if (typeof ev.id === 'string') out.push(['log.record.uid', ev.id]);
  if (typeof ev.path === 'string') out.push(['log.file.path', ev.path]);
  if (typeof ev.source === 'string') out.push(['guard.source', ev.source]);
  if (typeof ev.parser === 'string') out.push(['guard.parser', ev.parser]);
  if (Array.isArray(ev.tags)) out.push(['guard.tags', ev.tags]);
  if (Array.isArray(ev.flags)) out.push(['guard.flags', ev.flags]);
  if (ev.fields && typeof ev.fields === 'object')
    for (const k of Object.keys(ev.fields)) out.push([k, ev.fields[k]]);
  return out;
}

/** The last time putNanos() wrote, and its halves (lines of a second share their time). */
let nanosMs = NaN;
let nanosLo = 0;
let nanosHi = 0;

/** Nanoseconds since the epoch of a millisecond time as a little-endian fixed64 (its two 32-bit
 *  halves computed exactly in doubles; no array made). */
function putNanos(r: ByteWriter, ms: number): void {
  if (ms !== nanosMs) {
    const h = Math.floor(ms / 1048576); // ms = h·2^20 + l
    const l = ms - h * 1048576;
    const b = h * 1e6; // ns = b·2^20 + l·1e6
    const lowPart = (b % 4096) * 1048576 + l * 1e6;
    nanosLo = lowPart % 4294967296;
    nanosHi = Math.floor(b / 4096) + Math.floor(lowPart / 4294967296);
    nanosMs = ms;
  }
  r.ensure(8);
  r.buf.writeUInt32LE(nanosLo, r.pos);
  r.buf.writeUInt32LE(nanosHi, r.pos + 4);
  r.pos += 8;
}

function timeMs(ev: Event): number | null {
  if (typeof ev.time !== 'string') return null;
  return otlpTime(Date.parse(ev.time));
}

/** The last ms a time_unix_nano (fixed64, ns since 1970) can hold: in 2554. */
const MAX_NANOS_MS = Math.floor((2 ** 64 - 1) / 1e6);

/**
 * A time OTLP can carry, or null: a time before 1970 or after 2554 (a line may say so) has no
 * time_unix_nano, and the record goes without one (0: unknown) instead of failing its batch.
 */
function otlpTime(ms: number | null): number | null {
  return ms !== null && ms >= 0 && ms <= MAX_NANOS_MS ? ms : null;
}

// ---- protobuf (opentelemetry-proto v1: logs.proto, common.proto, resource.proto) -----------------

/** Writes protobuf messages; a nested message is written to a scratch writer, then framed. */
class Proto {
  private readonly scratch: ByteWriter[] = [];

  tag(w: ByteWriter, field: number, wire: number): void {
    w.varint((field << 3) | wire);
  }

  str(w: ByteWriter, field: number, s: string): void {
    this.tag(w, field, 2);
    const n = Buffer.byteLength(s);
    w.varint(n);
    w.ensure(n);
    w.pos += w.buf.write(s, w.pos, 'utf8');
  }

  /** A nested message `field` whose content `fill` writes. */
  msg(w: ByteWriter, field: number, fill: (inner: ByteWriter) => void): void {
    const inner = this.scratch.pop() ?? new ByteWriter(1024);
    inner.reset();
    fill(inner);
    this.tag(w, field, 2);
    w.varint(inner.pos);
    w.bytes(inner.buf, 0, inner.pos);
    this.scratch.push(inner);
  }

  /** AnyValue of a JSON value. */
  any(w: ByteWriter, v: unknown): void {
    if (typeof v === 'string') this.str(w, 1, v);
    else if (typeof v === 'boolean') {
      this.tag(w, 2, 0);
      w.varint(v ? 1 : 0);
    } else if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) {
      this.tag(w, 3, 0);
      w.varint(v);
    } else if (typeof v === 'number' && Number.isFinite(v)) {
      this.tag(w, 4, 1);
      w.ensure(8);
      w.buf.writeDoubleLE(v, w.pos);
      w.pos += 8;
    } else if (Array.isArray(v)) {
      this.msg(w, 5, (arr) => {
        for (const x of v) this.msg(arr, 1, (inner) => this.any(inner, x));
      });
    } else if (v !== null && v !== undefined) this.str(w, 1, JSON.stringify(v));
  }

  keyValue(w: ByteWriter, field: number, key: string, v: unknown): void {
    this.msg(w, field, (kv) => {
      this.str(kv, 1, key);
      this.msg(kv, 2, (inner) => this.any(inner, v));
    });
  }
}

export class OtlpFormat implements WireFormat {
  readonly type = 'otlp';
  readonly contentType: string;
  readonly readsAnswer = 64 * 1024;
  readonly readsLines = true;
  readonly overlaps = true;
  private readonly proto = new Proto();
  private endpoint = '';
  private readonly resource: Attr[];

  constructor(
    private readonly cfg: OtlpSinkConfig,
    hostname: string,
  ) {
    this.contentType = cfg.encoding === 'json' ? 'application/json' : 'application/x-protobuf';
    this.resource = [
      ['service.name', cfg.serviceName],
      ['host.name', hostname],
    ];
    this.pbResource = OtlpFormat.envelope((P, w) =>
      P.msg(w, 1, (r) => {
        for (const [key, v] of this.resource) P.keyValue(r, 1, key, v);
      }),
    );
    this.pbScope = OtlpFormat.envelope((P, w) => P.msg(w, 1, (sc) => P.str(sc, 1, 'guard')));
  }

  path(url: URL): string {
    const p = url.pathname === '/' || url.pathname === '' ? '/v1/logs' : url.pathname;
    this.endpoint = `${url.origin}${p}`;
    return `${p}${url.search}`;
  }

  private parse(lines: BatchLines, i: number): Event {
    const text = lines.body.toString('utf8', lines.starts[i]!, lines.ends[i]!);
    try {
      return JSON.parse(text) as Event;
    } catch {
      return { message: text };
    }
  }

  encode(
    _batch: Batch,
    lines: () => BatchLines,
    items: readonly number[] | null,
    out: ByteWriter,
  ): Buffer {
    return this.cfg.encoding === 'json'
      ? this.json(lines(), items, out)
      : this.protobuf(lines(), items, out);
  }

  private readonly times = new IsoTimeReader();

  private timeOf(body: Buffer, ts: number, te: number): number | null {
    return otlpTime(this.times.ms(body, ts, te));
  }

  // ---- the attributes the same for every event of a file: encoded once per file ------------------

  private readonly tailKey = new TailKey();
  private tailPb = new Lit(Buffer.alloc(0));
  private tailJson = new Lit(Buffer.alloc(0));

  /** The encoded attributes of `,"source":…}` (source, path, parser, tags). */
  private tail(body: Buffer, s: number, e: number): void {
    if (this.tailKey.matches(body, s, e)) return;
    // the key last, once the rest is built: a tail that fails to parse is not cached as done
    const ev = JSON.parse(`{${body.toString('utf8', s + 1, e)}`) as Event;
    const attrs = attributes(ev).filter(([k]) => k !== 'guard.flags');
    const w = new ByteWriter(512);
    for (const [k, v] of attrs) this.proto.keyValue(w, 6, k, v);
    this.tailPb = new Lit(Buffer.from(w.written()));
    this.tailJson = new Lit(
      Buffer.from(
        `"}}${attrs.map(([key, v]) => `,${JSON.stringify({ key, value: anyJson(v) })}`).join('')}`,
      ),
    );
    this.tailKey.set(body, s, e);
  }

  // ---- protobuf ---------------------------------------------------------------------------------

  /** `resource` (ResourceLogs field 1) and `scope` (ScopeLogs field 1): the same in every request. */
  private readonly pbResource: Buffer;
  private readonly pbScope: Buffer;

  private static envelope(fill: (P: Proto, w: ByteWriter) => void): Buffer {
    const w = new ByteWriter(256);
    fill(new Proto(), w);
    return Buffer.from(w.written());
  }

  /**
   * The request written once, in place: the LogRecords straight into `out` after room for the
   * envelope (ExportLogsServiceRequest → ResourceLogs → ScopeLogs), whose sizes are known only then;
   * the envelope is written last, just before the first record, and the body starts there.
   */
  private protobuf(lines: BatchLines, items: readonly number[] | null, out: ByteWriter): Buffer {
    const res = this.pbResource;
    const scope = this.pbScope;
    const room = 1 + 5 + res.length + 1 + 5 + scope.length;
    out.ensure(room);
    out.pos += room;
    const recStart = out.pos;
    const { body, starts, ends } = lines;
    const scan = this.scan;
    const n = items === null ? lines.count : items.length;
    for (let k = 0; k < n; k++) {
      const i = items === null ? k : items[k]!;
      if (scan.scan(body, starts[i]!, ends[i]!)) this.pbFramedRecord(out, body, scan);
      else this.pbEvent(out, this.parse(lines, i));
    }
    const scopeLogsLen = scope.length + (out.pos - recStart);
    const resourceLogsLen = res.length + 1 + varintSize(scopeLogsLen) + scopeLogsLen;
    const headLen =
      1 + varintSize(resourceLogsLen) + res.length + 1 + varintSize(scopeLogsLen) + scope.length;
    const start = recStart - headLen;
    const end = out.pos;
    out.pos = start;
    out.byte(0x0a); // ExportLogsServiceRequest.resource_logs
    out.varint(resourceLogsLen);
    out.bytes(res); // ResourceLogs.resource
    out.byte(0x12); // ResourceLogs.scope_logs
    out.varint(scopeLogsLen);
    out.bytes(scope); // ScopeLogs.scope, then the ScopeLogs.log_records written above
    out.pos = end;
    return out.buf.subarray(start, end);
  }

  /** ScopeLogs.log_records += one LogRecord, written in place: its size's varint is given two
   *  bytes ahead (a record of 128 bytes to 16 KiB, nearly all), closed up or widened after. */
  private pbFramedRecord(w: ByteWriter, body: Buffer, sc: EventScan): void {
    w.ensure(3);
    w.buf[w.pos++] = 0x12;
    const lenAt = w.pos;
    w.pos += 2;
    const recStart = w.pos;
    this.pbRecord(w, body, sc);
    const len = w.pos - recStart;
    const buf = w.buf;
    if (len < 0x80) {
      buf.copyWithin(lenAt + 1, recStart, w.pos);
      buf[lenAt] = len;
      w.pos--;
    } else if (len < 0x4000) {
      buf[lenAt] = (len & 0x7f) | 0x80;
      buf[lenAt + 1] = len >>> 7;
    } else {
      const extra = varintSize(len) - 2;
      w.ensure(extra);
      w.buf.copyWithin(recStart + extra, recStart, w.pos);
      const end = w.pos + extra;
      w.pos = lenAt;
      w.varint(len);
      w.pos = end;
    }
  }

  private readonly scan = new EventScan();

  /** One LogRecord's fields from a scanned line, bytes copied where the JSON already has them. */
  private pbRecord(r: ByteWriter, body: Buffer, sc: EventScan): void {
    // Every write below fits in this (a record is smaller than twice its line plus the tail's
    // attributes), so the writes after it do not grow the buffer one by one.
    r.ensure(2 * (sc.tailE - sc.idS) + this.tailPb.length + 256);
    const ms = this.timeOf(body, sc.timeS, sc.timeE);
    if (ms !== null) {
      r.byte(0x09); // time_unix_nano, fixed64
      putNanos(r, ms);
    }
    const f = sc.f;
    if (sc.severity >= 0 && f[sc.severity + 4] === 1) {
      const vs = f[sc.severity + 2]!;
      const ve = f[sc.severity + 3]!;
      const num = severityAt(body, vs, ve);
      if (num !== 0) {
        r.byte(0x10); // severity_number
        r.varint(num);
      }
      r.byte(0x1a); // severity_text
      r.varint(ve - vs);
      r.bytes(body, vs, ve);
    } else if (sc.severity >= 0) {
      // a severity with escapes (not a syslog name): its text, as the JSON.parse path writes it
      const text = JSON.parse(
        body.toString('utf8', f[sc.severity + 2]! - 1, f[sc.severity + 3]! + 1),
      ) as string;
      const num = severityNumberOf(text);
      if (num !== 0) {
        r.byte(0x10);
        r.varint(num);
      }
      this.proto.str(r, 3, text);
    }
    // body: AnyValue { string_value }
    if (sc.msgEscaped) {
      const text = JSON.parse(body.toString('utf8', sc.msgS - 1, sc.msgE + 1)) as string;
      this.proto.msg(r, 5, (b) => this.proto.str(b, 1, text));
    } else {
      const len = sc.msgE - sc.msgS;
      r.byte(0x2a);
      r.varint(1 + varintSize(len) + len);
      r.byte(0x0a);
      r.varint(len);
      r.bytes(body, sc.msgS, sc.msgE);
    }
    this.pbStringAttr(r, UID_KEY, 0, UID_KEY.length, body, sc.idS, sc.idE);
    this.tail(body, sc.tailS, sc.tailE);
    r.lit(this.tailPb);
    if (sc.flagsS >= 0) {
      const flags = JSON.parse(body.toString('latin1', sc.flagsS, sc.flagsE)) as unknown;
      this.proto.keyValue(r, 6, 'guard.flags', flags);
    }
    for (let k = 0; k < sc.fieldCount; k++) {
      const o = k * 5;
      const kind = f[o + 4]!;
      const ks = f[o]!;
      const ke = f[o + 1]!;
      if (kind === 1) {
        this.pbStringAttr(r, body, ks, ke, body, f[o + 2]!, f[o + 3]!);
      } else if (kind === 0) {
        this.pbIntAttr(r, body, ks, ke, f[o + 2]!, f[o + 3]!);
      } else {
        // a string with escapes: its UTF-8 decoded, then the escapes (latin1 would split a
        // multi-byte character into several)
        const key = body.toString('utf8', ks, ke);
        const text = JSON.parse(body.toString('utf8', f[o + 2]! - 1, f[o + 3]! + 1)) as string;
        this.proto.keyValue(r, 6, key, text);
      }
    }
  }

  /** attributes += KeyValue { key, AnyValue { string_value = body[vs, ve) } } */
  private pbStringAttr(
    r: ByteWriter,
    key: Buffer,
    ks: number,
    ke: number,
    body: Buffer,
    vs: number,
    ve: number,
  ): void {
    const kLen = ke - ks;
    const vLen = ve - vs;
    const anyLen = 1 + varintSize(vLen) + vLen;
    r.byte(0x32);
    r.varint(1 + varintSize(kLen) + kLen + 1 + varintSize(anyLen) + anyLen);
    r.byte(0x0a);
    r.varint(kLen);
    r.bytes(key, ks, ke);
    r.byte(0x12);
    r.varint(anyLen);
    r.byte(0x0a);
    r.varint(vLen);
    r.bytes(body, vs, ve);
  }

  /** attributes += KeyValue { key, AnyValue { int_value = the digits body[vs, ve) } } */
  private pbIntAttr(
    r: ByteWriter,
    body: Buffer,
    ks: number,
    ke: number,
    vs: number,
    ve: number,
  ): void {
    const v = digitsValue(body, vs, ve);
    const kLen = ke - ks;
    const anyLen = 1 + varintSize(v);
    r.byte(0x32);
    r.varint(1 + varintSize(kLen) + kLen + 1 + varintSize(anyLen) + anyLen);
    r.byte(0x0a);
    r.varint(kLen);
    r.bytes(body, ks, ke);
    r.byte(0x12);
    r.varint(anyLen);
    r.byte(0x18);
    r.varint(v);
  }

  /** One LogRecord from a parsed event (lines of another shape). */
  private pbEvent(recs: ByteWriter, ev: Event): void {
    const P = this.proto;
    P.msg(recs, 2, (r) => {
      const ms = timeMs(ev);
      if (ms !== null) {
        P.tag(r, 1, 1);
        putNanos(r, ms);
      }
      const sev = ev.fields?.severity;
      if (typeof sev === 'string') {
        const num = severityNumberOf(sev);
        if (num !== 0) {
          P.tag(r, 2, 0);
          r.varint(num);
        }
        P.str(r, 3, sev);
      }
      if (typeof ev.message === 'string') P.msg(r, 5, (b) => P.str(b, 1, ev.message as string));
      for (const [k, v] of attributes(ev)) P.keyValue(r, 6, k, v);
    });
  }

  // ---- OTLP JSON --------------------------------------------------------------------------------

  private json(lines: BatchLines, items: readonly number[] | null, w: ByteWriter): Buffer {
    const kv = ([key, v]: Attr): object => ({ key, value: anyJson(v) });
    w.text(
      `{"resourceLogs":[{"resource":{"attributes":${JSON.stringify(this.resource.map(kv))}},"scopeLogs":[{"scope":{"name":"guard"},"logRecords":[`,
    );
    const { body, starts, ends } = lines;
    const sc = this.scan;
    const n = items === null ? lines.count : items.length;
    for (let k = 0; k < n; k++) {
      const i = items === null ? k : items[k]!;
      if (k > 0) w.byte(0x2c);
      if (sc.scan(body, starts[i]!, ends[i]!)) this.jsonRecord(w, body, sc);
      else w.text(JSON.stringify(jsonEvent(this.parse(lines, i))));
    }
    w.text(']}]}]}');
    return w.written();
  }

  /** One OTLP JSON LogRecord from a scanned line: its JSON strings copied as they are. */
  private jsonRecord(w: ByteWriter, body: Buffer, sc: EventScan): void {
    const ms = this.timeOf(body, sc.timeS, sc.timeE);
    w.byte(0x7b);
    if (ms !== null) {
      w.lit(J_TIME);
      w.decimal(ms);
      w.lit(J_TIME_END);
    }
    const f = sc.f;
    if (sc.severity >= 0) {
      const vs = f[sc.severity + 2]!;
      const ve = f[sc.severity + 3]!;
      w.lit(J_SEV_NUM);
      const num =
        f[sc.severity + 4] === 1
          ? severityAt(body, vs, ve)
          : severityNumberOf(JSON.parse(body.toString('utf8', vs - 1, ve + 1)) as string);
      w.decimal(num);
      w.lit(J_SEV_TEXT);
      w.bytes(body, vs, ve); // JSON string contents: escapes and all
      w.byte(0x22);
      w.byte(0x2c);
    }
    w.lit(J_BODY);
    w.bytes(body, sc.msgS, sc.msgE);
    w.lit(J_UID);
    w.bytes(body, sc.idS, sc.idE);
    this.tail(body, sc.tailS, sc.tailE);
    w.lit(this.tailJson); // `"}}` closing the uid's value, then the tail's attributes
    if (sc.flagsS >= 0) {
      const flags = JSON.parse(body.toString('latin1', sc.flagsS, sc.flagsE)) as unknown;
      w.text(`,${JSON.stringify({ key: 'guard.flags', value: anyJson(flags) })}`);
    }
    for (let k = 0; k < sc.fieldCount; k++) {
      const o = k * 5;
      w.lit(J_KEY);
      w.bytes(body, f[o]!, f[o + 1]!);
      w.lit(f[o + 4] === 0 ? J_INT : J_STR);
      w.bytes(body, f[o + 2]!, f[o + 3]!);
      w.lit(J_VALUE_END);
    }
    w.lit(J_RECORD_END);
  }

  classify(a: Answer, ctx: RequestContext): Verdict {
    if (a.status !== 200) return statusVerdict(a, this.endpoint, retryable);
    const partial = partialSuccess(a);
    if (partial === null || partial.rejected === 0) return { kind: 'delivered' };
    // The spec forbids a retry and does not say which records were rejected.
    const reason = `the receiver rejected ${partial.rejected} of the ${ctx.count} log records of this request without saying which (OTLP partial_success): ${partial.message}`;
    return {
      kind: 'partial',
      retry: [],
      refused: Array.from({ length: ctx.count }, (_, pos) => ({ pos, status: 200, reason })),
      retryCode: null,
    };
  }
}

/** An event as an OTLP JSON LogRecord object (lines the scan does not take). */
function jsonEvent(ev: Event): object {
  const ms = timeMs(ev);
  const sev = ev.fields?.severity;
  return {
    ...(ms !== null ? { timeUnixNano: `${ms}000000` } : {}),
    ...(typeof sev === 'string'
      ? { severityNumber: severityNumberOf(sev), severityText: sev }
      : {}),
    ...(typeof ev.message === 'string' ? { body: { stringValue: ev.message } } : {}),
    attributes: attributes(ev).map(([key, v]) => ({ key, value: anyJson(v) })),
  };
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const UID_KEY = b('log.record.uid');
const J_TIME = Lit.of('"timeUnixNano":"');
const J_TIME_END = Lit.of('000000",');
const J_SEV_NUM = Lit.of('"severityNumber":');
const J_SEV_TEXT = Lit.of(',"severityText":"');
const J_BODY = Lit.of('"body":{"stringValue":"');
const J_UID = Lit.of('"},"attributes":[{"key":"log.record.uid","value":{"stringValue":"');
const J_VALUE_END = Lit.of('"}}');
const J_RECORD_END = Lit.of(']}');
const J_KEY = Lit.of(',{"key":"');
const J_STR = Lit.of('","value":{"stringValue":"');
const J_INT = Lit.of('","value":{"intValue":"');

function anyJson(v: unknown): object {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number' && Number.isSafeInteger(v)) return { intValue: String(v) };
  if (typeof v === 'number' && Number.isFinite(v)) return { doubleValue: v };
  if (Array.isArray(v)) return { arrayValue: { values: v.map(anyJson) } };
  return { stringValue: JSON.stringify(v) };
}

/** ExportLogsServiceResponse.partial_success, from protobuf or JSON; null when absent. */
export function partialSuccess(a: Answer): { rejected: number; message: string } | null {
  const type = String(a.headers['content-type'] ?? '');
  if (a.body.length === 0) return null;
  if (type.includes('json')) {
    try {
      const r = JSON.parse(a.body.toString('utf8')) as {
        partialSuccess?: { rejectedLogRecords?: unknown; errorMessage?: unknown };
      };
      const p = r.partialSuccess;
      if (!p) return null;
      return {
        rejected: Number(p.rejectedLogRecords ?? 0) || 0,
        message: String(p.errorMessage ?? ''),
      };
    } catch {
      return null;
    }
  }
  // protobuf: field 1 (partial_success) { 1: int64 rejected_log_records, 2: string error_message }
  const b = a.body;
  const read = (pos: number): [number, number] => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const x = b[pos++];
      if (x === undefined) return [v, -1];
      v += (x & 0x7f) * mul;
      mul *= 128;
      if (x < 0x80) return [v, pos];
    }
  };
  let pos = 0;
  while (pos >= 0 && pos < b.length) {
    const [key, p1] = read(pos);
    if (p1 < 0) return null;
    const wire = key & 7;
    if (wire !== 2) return null;
    const [len, p2] = read(p1);
    if (p2 < 0) return null;
    if (key >>> 3 === 1) {
      let rejected = 0;
      let message = '';
      let q = p2;
      const end = p2 + len;
      while (q < end && q >= 0) {
        const [k, q1] = read(q);
        if (q1 < 0) break;
        if ((k & 7) === 0) {
          const [v, q2] = read(q1);
          if (k >>> 3 === 1) rejected = v;
          q = q2;
        } else if ((k & 7) === 2) {
          const [l, q2] = read(q1);
          if (k >>> 3 === 2) message = b.toString('utf8', q2, q2 + l);
          q = q2 + l;
        } else break;
      }
      return { rejected, message };
    }
    pos = p2 + len;
  }
  return null;
}

export class OtlpSink extends HttpCoreSink {
  constructor(cfg: OtlpSinkConfig, opts: HttpSinkOptions) {
    super(cfg, new OtlpFormat(cfg, opts.hostname ?? osHostname()), opts);
  }
}
