// An OTLP/HTTP logs receiver written from opentelemetry-proto's docs/specification.md, decoding
// with the official generated protobuf code (@opentelemetry/otlp-transformer 0.52.1's protobufjs
// build of opentelemetry-proto): POST /v1/logs, application/x-protobuf or application/json
// (else 415), gzip, 413 above the body limit, 200 with an ExportLogsServiceResponse in the
// request's encoding (partial_success when records are rejected), and the retryable
// 429/502/503/504 with Retry-After; 400 with a google.rpc.Status for a body that does not decode.
import { ReceiverServer, type Reply, type Req } from './http-server';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js') as {
  opentelemetry: { proto: { collector: { logs: { v1: Record<string, ProtoType> } } } };
};
interface ProtoType {
  decode(b: Uint8Array): unknown;
  encode(m: unknown): { finish(): Uint8Array };
  fromObject(o: unknown): unknown;
  toObject(m: unknown, o?: object): Record<string, unknown>;
  verify(o: unknown): string | null;
}
const LOGS = root.opentelemetry.proto.collector.logs.v1;
export const ExportLogsServiceRequest = LOGS.ExportLogsServiceRequest!;
const ExportLogsServiceResponse = LOGS.ExportLogsServiceResponse!;

export interface LogRecordSeen {
  timeUnixNano: string;
  severityNumber: number;
  severityText: string;
  body: string;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  scope: string;
}

function anyValue(v: Record<string, unknown> | undefined): unknown {
  if (!v) return undefined;
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('boolValue' in v) return v.boolValue;
  if ('arrayValue' in v)
    return ((v.arrayValue as { values?: Record<string, unknown>[] }).values ?? []).map(anyValue);
  return undefined;
}
function attrs(list: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of (list as { key: string; value: Record<string, unknown> }[]) ?? [])
    out[kv.key] = anyValue(kv.value);
  return out;
}

export class OtlpReceiver {
  readonly server = new ReceiverServer((r) => this.handle(r));
  readonly records: LogRecordSeen[] = [];
  readonly failNext: { status: number; retryAfter?: string }[] = [];
  /** The spec's SHOULD: 20 MiB after decompression. */
  maxBody = 20 * 1024 * 1024;
  /** Records this says are rejected are left out and counted in partial_success. */
  reject: (r: LogRecordSeen) => boolean = () => false;
  readonly contentTypes: string[] = [];

  async start(): Promise<this> {
    await this.server.start();
    return this;
  }
  stop(): Promise<void> {
    return this.server.stop();
  }
  get url(): string {
    return this.server.url;
  }

  counts(): { distinct: number; duplicates: number } {
    const ids = this.records.map((r) => r.attributes['log.record.uid']);
    const distinct = new Set(ids).size;
    return { distinct, duplicates: ids.length - distinct };
  }

  private handle(r: Req): Reply {
    if (r.method !== 'POST' || r.url.pathname !== '/v1/logs') return { status: 404 };
    const type = String(r.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    const isJson = type === 'application/json';
    if (!isJson && type !== 'application/x-protobuf') return { status: 415 };
    this.contentTypes.push(type);
    const forced = this.failNext.shift();
    if (forced)
      return this.status(forced.status, `forced ${forced.status}`, isJson, forced.retryAfter);
    if (r.body.length > this.maxBody) return this.status(413, 'request too large', isJson);
    let msg: Record<string, unknown>;
    try {
      const decoded = isJson
        ? ExportLogsServiceRequest.fromObject(JSON.parse(r.body.toString('utf8')))
        : ExportLogsServiceRequest.decode(r.body);
      msg = ExportLogsServiceRequest.toObject(decoded, { longs: String, defaults: false });
    } catch (e) {
      return this.status(400, `cannot decode: ${(e as Error).message}`, isJson);
    }
    let rejected = 0;
    for (const rl of (msg.resourceLogs as Record<string, unknown>[]) ?? []) {
      const resource = attrs((rl.resource as { attributes?: unknown })?.attributes);
      for (const sl of (rl.scopeLogs as Record<string, unknown>[]) ?? []) {
        const scope = String((sl.scope as { name?: string })?.name ?? '');
        for (const lr of (sl.logRecords as Record<string, unknown>[]) ?? []) {
          const seen: LogRecordSeen = {
            timeUnixNano: String(lr.timeUnixNano ?? '0'),
            severityNumber: Number(lr.severityNumber ?? 0),
            severityText: String(lr.severityText ?? ''),
            body: String(anyValue(lr.body as Record<string, unknown>) ?? ''),
            attributes: attrs(lr.attributes),
            resource,
            scope,
          };
          if (this.reject(seen)) rejected++;
          else this.records.push(seen);
        }
      }
    }
    const resp =
      rejected > 0
        ? {
            partialSuccess: {
              rejectedLogRecords: rejected,
              errorMessage: `${rejected} rejected by policy`,
            },
          }
        : {};
    if (isJson)
      return {
        status: 200,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(
          rejected > 0
            ? {
                partialSuccess: {
                  rejectedLogRecords: String(rejected),
                  errorMessage: `${rejected} rejected by policy`,
                },
              }
            : {},
        ),
      };
    return {
      status: 200,
      headers: { 'content-type': 'application/x-protobuf' },
      body: ExportLogsServiceResponse.encode(resp).finish(),
    };
  }

  /** A failure status with a google.rpc.Status body in the request's encoding. */
  private status(code: number, message: string, isJson: boolean, retryAfter?: string): Reply {
    const headers: Record<string, string> = retryAfter ? { 'retry-after': retryAfter } : {};
    if (isJson)
      return {
        status: code,
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ code: 3, message }),
      };
    // google.rpc.Status { int32 code = 1; string message = 2; }
    const m = Buffer.from(message);
    const body = Buffer.concat([Buffer.from([0x08, 3, 0x12, m.length]), m.subarray(0, 127)]);
    return {
      status: code,
      headers: { ...headers, 'content-type': 'application/x-protobuf' },
      body,
    };
  }
}
