// A Grafana Loki push endpoint written from Loki's push API docs and its ingester's behaviour, not
// from guard's client: POST /loki/api/v1/push with JSON (gzip allowed); a stream needs labels;
// timestamps are nanosecond epoch *strings* (a number is a 400); 204 when every entry was taken.
// Per stream, an entry older than the stream's newest by more than the ordering window (1 h:
// max_chunk_age / 2) is "too far behind", one older than reject_old_samples_max_age "too old", one
// longer than max_line_size refused: those are ignored, the rest ACCEPTED, and the answer is 400
// (429 for a stream rate limit) listing at most max_returned_errors (10) ignored entries by
// timestamp (Go's time.Time.String()), then "user '<tenant>', total ignored: N out of M for
// stream: {…}"; with several streams failing, only the last one's message comes back (the
// ingester returns its last error). An entry with the same timestamp and line as one the stream
// has is a duplicate: dropped silently. Also: 429 for the tenant's ingestion rate, 260 while
// ingestion is blocked (block_ingestion_status_code), 413 above the body limit.
import { ReceiverServer, type Reply, type Req } from './http-server';

interface Stored {
  ts: bigint;
  line: string;
}

export class LokiReceiver {
  readonly server = new ReceiverServer((r) => this.handle(r));
  /** stream labels (sorted, Prometheus form) → entries */
  readonly streams = new Map<string, Stored[]>();
  private readonly newest = new Map<string, bigint>();
  private readonly seen = new Map<string, Set<string>>();
  readonly failNext: { status: number; retryAfter?: string }[] = [];
  orderingWindowNs = 3600n * 1_000_000_000n;
  rejectOldSamplesMaxAgeNs: bigint | null = null;
  maxLineSize = 256 * 1024;
  maxReturnedErrors = 10;
  maxBody = 64 * 1024 * 1024;
  /** Entries a stream rate limit refuses (429), by line. */
  rateLimited: (line: string) => boolean = () => false;
  duplicatesDropped = 0;

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

  /** Every stored line, all streams. */
  lines(): string[] {
    return [...this.streams.values()].flatMap((s) => s.map((e) => e.line));
  }

  private handle(r: Req): Reply {
    if (r.method !== 'POST' || r.url.pathname !== '/loki/api/v1/push') return { status: 404 };
    const forced = this.failNext.shift();
    if (forced)
      return {
        status: forced.status,
        headers: forced.retryAfter ? { 'retry-after': forced.retryAfter } : {},
        body: forced.status === 429 ? 'Ingestion rate limit exceeded' : `forced ${forced.status}`,
      };
    if (r.body.length > this.maxBody) return { status: 413, body: 'request too large' };
    if (!String(r.headers['content-type'] ?? '').startsWith('application/json'))
      return { status: 400, body: 'unsupported content type (this receiver takes JSON only)' };
    let req: { streams?: { stream?: Record<string, unknown>; values?: unknown[] }[] };
    try {
      req = JSON.parse(r.body.toString('utf8')) as typeof req;
    } catch (e) {
      return { status: 400, body: `loghttp.PushRequest: ${(e as Error).message}` };
    }
    if (!Array.isArray(req.streams)) return { status: 400, body: 'no streams' };
    const tenant = String(r.headers['x-scope-orgid'] ?? 'fake');
    let lastError: Reply | null = null;
    for (const st of req.streams) {
      const labels = Object.entries(st.stream ?? {});
      if (labels.length === 0)
        return { status: 400, body: 'error at least one label pair is required per stream' };
      const name = `{${labels
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => `${k}=${JSON.stringify(String(v))}`)
        .join(', ')}}`;
      const failed: { ts: bigint; reason: string; rate: boolean }[] = [];
      const values = Array.isArray(st.values) ? st.values : [];
      for (const v of values) {
        if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'string')
          return {
            status: 400,
            body: 'loghttp.PushRequest.Streams: ReadString: expects " or n, but found a number',
          };
        const ts = BigInt(v[0]);
        const line = v[1];
        const reason = this.validate(name, ts, line);
        if (reason) {
          failed.push({ ts, reason, rate: false });
          continue;
        }
        if (this.rateLimited(line)) {
          failed.push({
            ts,
            reason: `Per stream rate limit exceeded (limit: 3MB/sec) while attempting to ingest for stream '${name}'`,
            rate: true,
          });
          continue;
        }
        this.store(name, ts, line);
      }
      if (failed.length > 0) {
        const listed = failed.slice(0, this.maxReturnedErrors);
        const text =
          listed
            .map((f) => `entry with timestamp ${goTime(f.ts)} ignored, reason: '${f.reason}',\n`)
            .join('') +
          `user '${tenant}', total ignored: ${failed.length} out of ${values.length} for stream: ${name}`;
        lastError = { status: failed[failed.length - 1]!.rate ? 429 : 400, body: text };
      }
    }
    return lastError ?? { status: 204 };
  }

  private validate(name: string, ts: bigint, line: string): string | null {
    if (Buffer.byteLength(line) > this.maxLineSize)
      return `Max entry size '${this.maxLineSize}' bytes exceeded for stream '${name}' while adding an entry with length '${Buffer.byteLength(line)}' bytes`;
    const now = BigInt(Date.now()) * 1_000_000n;
    if (this.rejectOldSamplesMaxAgeNs !== null && ts < now - this.rejectOldSamplesMaxAgeNs)
      return `entry for stream '${name}' has timestamp too old: ${rfc3339(ts)}, oldest acceptable timestamp is: ${rfc3339(now - this.rejectOldSamplesMaxAgeNs)}`;
    const newest = this.newest.get(name);
    if (newest !== undefined && ts < newest - this.orderingWindowNs)
      return `entry too far behind, entry timestamp is: ${rfc3339(ts)}, oldest acceptable timestamp is: ${rfc3339(newest - this.orderingWindowNs)}`;
    return null;
  }

  private store(name: string, ts: bigint, line: string): void {
    let seen = this.seen.get(name);
    if (!seen) this.seen.set(name, (seen = new Set()));
    const key = `${ts} ${line}`;
    if (seen.has(key)) {
      this.duplicatesDropped++;
      return;
    }
    seen.add(key);
    let s = this.streams.get(name);
    if (!s) this.streams.set(name, (s = []));
    s.push({ ts, line });
    if ((this.newest.get(name) ?? -1n) < ts) this.newest.set(name, ts);
  }
}

/** Go's time.Time.String() in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`. */
function goTime(ns: bigint): string {
  const secs = ns / 1_000_000_000n;
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  const d = new Date(Number(secs) * 1000).toISOString();
  return `${d.slice(0, 10)} ${d.slice(11, 19)}${frac ? `.${frac}` : ''} +0000 UTC`;
}

function rfc3339(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString().replace(/\.\d+Z$/, 'Z');
}
