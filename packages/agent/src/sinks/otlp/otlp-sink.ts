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
import { ByteWriter, varintSize } from '../core/byte-writer';
import { HttpCoreSink, statusVerdict, type HttpSinkOptions } from '../core/http-core';
import type { BatchLines } from '../core/lines';
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

/** Nanoseconds since the epoch of a millisecond time, as two 32-bit halves (exact in doubles). */
function nanos(ms: number): [number, number] {
  const h = Math.floor(ms / 1048576); // ms = h·2^20 + l
  const l = ms - h * 1048576;
  const b = h * 1e6; // ns = b·2^20 + l·1e6
  const lowPart = (b % 4096) * 1048576 + l * 1e6;
  const lo = lowPart % 4294967296;
  const hi = Math.floor(b / 4096) + Math.floor(lowPart / 4294967296);
  return [lo, hi];
}

function timeMs(ev: Event): number | null {
  if (typeof ev.time !== 'string') return null;
  const ms = Date.parse(ev.time);
  return Number.isNaN(ms) ? null : ms;
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
  private readonly proto = new Proto();
  private endpoint = '';
  private readonly resource: Attr[];
  private readonly records = new ByteWriter();

  constructor(
    private readonly cfg: OtlpSinkConfig,
    hostname: string,
  ) {
    this.contentType = cfg.encoding === 'json' ? 'application/json' : 'application/x-protobuf';
    this.resource = [
      ['service.name', cfg.serviceName],
      ['host.name', hostname],
    ];
  }

  path(url: URL): string {
    const p = url.pathname === '/' || url.pathname === '' ? '/v1/logs' : url.pathname;
    this.endpoint = `${url.origin}${p}`;
    return `${p}${url.search}`;
  }

  private events(lines: BatchLines, items: readonly number[] | null): Event[] {
    const n = items === null ? lines.count : items.length;
    const out: Event[] = new Array<Event>(n);
    for (let k = 0; k < n; k++) {
      const i = items === null ? k : items[k]!;
      try {
        out[k] = JSON.parse(lines.body.toString('utf8', lines.starts[i]!, lines.ends[i]!)) as Event;
      } catch {
        out[k] = { message: lines.body.toString('utf8', lines.starts[i]!, lines.ends[i]!) };
      }
    }
    return out;
  }

  encode(
    _batch: Batch,
    lines: () => BatchLines,
    items: readonly number[] | null,
    out: ByteWriter,
  ): Buffer {
    const events = this.events(lines(), items);
    return this.cfg.encoding === 'json' ? this.json(events) : this.protobuf(events, out);
  }

  private protobuf(events: Event[], out: ByteWriter): Buffer {
    const P = this.proto;
    // LogRecords first (the bulk of the bytes), then the envelopes around them with their sizes.
    const recs = this.records;
    recs.reset();
    for (const ev of events) {
      P.msg(recs, 2, (r) => {
        const ms = timeMs(ev);
        if (ms !== null) {
          const [lo, hi] = nanos(ms);
          P.tag(r, 1, 1);
          r.ensure(8);
          r.buf.writeUInt32LE(lo, r.pos);
          r.buf.writeUInt32LE(hi, r.pos + 4);
          r.pos += 8;
        }
        const sev = ev.fields?.severity;
        if (typeof sev === 'string') {
          const num = SEVERITY_NUMBER[sev];
          if (num !== undefined) {
            P.tag(r, 2, 0);
            r.varint(num);
          }
          P.str(r, 3, sev);
        }
        if (typeof ev.message === 'string') P.msg(r, 5, (b) => P.str(b, 1, ev.message as string));
        for (const [k, v] of attributes(ev)) P.keyValue(r, 6, k, v);
      });
    }
    const scope = new ByteWriter(64);
    P.msg(scope, 1, (s) => {
      P.str(s, 1, 'guard');
    });
    const resource = new ByteWriter(256);
    P.msg(resource, 1, (res) => {
      for (const [k, v] of this.resource) P.keyValue(res, 1, k, v);
    });
    const scopeLogsLen = scope.pos + recs.pos;
    const resourceLogsLen = resource.pos + 1 + varintSize(scopeLogsLen) + scopeLogsLen;
    P.tag(out, 1, 2); // ExportLogsServiceRequest.resource_logs
    out.varint(resourceLogsLen);
    out.bytes(resource.buf, 0, resource.pos); // ResourceLogs.resource
    P.tag(out, 2, 2); // ResourceLogs.scope_logs
    out.varint(scopeLogsLen);
    out.bytes(scope.buf, 0, scope.pos); // ScopeLogs.scope
    out.bytes(recs.buf, 0, recs.pos); // ScopeLogs.log_records
    return out.written();
  }

  private json(events: Event[]): Buffer {
    const kv = ([key, v]: Attr): object => ({ key, value: anyJson(v) });
    const logRecords = events.map((ev) => {
      const ms = timeMs(ev);
      const sev = ev.fields?.severity;
      return {
        ...(ms !== null ? { timeUnixNano: `${BigInt(ms) * 1000000n}` } : {}),
        ...(typeof sev === 'string'
          ? { severityNumber: SEVERITY_NUMBER[sev] ?? 0, severityText: sev }
          : {}),
        ...(typeof ev.message === 'string' ? { body: { stringValue: ev.message } } : {}),
        attributes: attributes(ev).map(kv),
      };
    });
    return Buffer.from(
      JSON.stringify({
        resourceLogs: [
          {
            resource: { attributes: this.resource.map(kv) },
            scopeLogs: [{ scope: { name: 'guard' }, logRecords }],
          },
        ],
      }),
    );
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
