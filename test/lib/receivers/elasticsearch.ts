// An Elasticsearch/OpenSearch `_bulk` endpoint written from the Bulk API reference, not from
// guard's client: NDJSON action/source pairs, the body must end with a newline, `create` of an
// existing _id is a per-item 409 version_conflict_engine_exception, the answer is 200 with
// "errors": true when any item failed, http.max_content_length answers 413, filter_path filters
// the answer. Faults: whole-request statuses (with Retry-After), per-item 429 (rejected execution)
// and 400 (document parsing) chosen by a predicate on the document.
import { ReceiverServer, json, type Reply, type Req } from './http-server';

export type ItemFault = 429 | 400 | null;

export class ElasticsearchReceiver {
  readonly server = new ReceiverServer((r) => this.handle(r));
  /** index → _id → source */
  readonly indices = new Map<string, Map<string, Record<string, unknown>>>();
  /** Statuses the next requests are answered with, in order, before any bulk is looked at. */
  readonly failNext: { status: number; retryAfter?: string }[] = [];
  /** http.max_content_length, in bytes of the (decompressed) body. */
  maxContentLength = 100 * 1024 * 1024;
  /** Per-item outcome forced for a document (null: index it). */
  itemFault: (doc: Record<string, unknown>, attempt: number) => ItemFault = () => null;
  /** Awaited before a request is looked at: a slow cluster (e.g. one request held until released). */
  hold: (r: Req) => Promise<void> = () => Promise.resolve();
  conflicts = 0;
  created = 0;
  rejected413 = 0;
  private readonly attempts = new Map<string, number>();

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

  /** Every document of every index, by _id. */
  docs(): Map<string, Record<string, unknown>> {
    const all = new Map<string, Record<string, unknown>>();
    for (const idx of this.indices.values()) for (const [id, d] of idx) all.set(id, d);
    return all;
  }

  private async handle(r: Req): Promise<Reply> {
    await this.hold(r);
    const m = /^(?:\/([^/_][^/]*))?\/_bulk$/.exec(r.url.pathname);
    if (r.method !== 'POST' || !m)
      return json(404, { error: { type: 'no_handler_found' }, status: 404 });
    const forced = this.failNext.shift();
    if (forced)
      return json(
        forced.status,
        { error: { type: 'forced', reason: `HTTP ${forced.status}` }, status: forced.status },
        forced.retryAfter ? { 'retry-after': forced.retryAfter } : {},
      );
    if (r.body.length > this.maxContentLength) {
      this.rejected413++;
      return { status: 413, body: '' };
    }
    const ct = String(r.headers['content-type'] ?? '');
    if (!/application\/(x-ndjson|json)/.test(ct))
      return json(406, { error: `Content-Type header [${ct}] is not supported`, status: 406 });
    if (r.body.length === 0 || r.body[r.body.length - 1] !== 0x0a)
      return badRequest('The bulk request must be terminated by a newline [\\n]');
    const lines = r.body.toString('utf8').split('\n');
    lines.pop();
    const items: Record<string, unknown>[] = [];
    let errors = false;
    for (let i = 0; i < lines.length; i += 2) {
      let action: Record<string, { _index?: string; _id?: string }>;
      try {
        action = JSON.parse(lines[i]!) as typeof action;
      } catch {
        return badRequest(`Malformed action/metadata line [${i + 1}]`);
      }
      const op = Object.keys(action)[0]!;
      const meta = action[op] ?? {};
      const index = meta._index ?? m[1];
      if (op !== 'create' && op !== 'index')
        return badRequest(`Malformed action/metadata line [${i + 1}], unsupported here: ${op}`);
      if (index === undefined) return badRequest('index is missing');
      if (i + 1 >= lines.length) return badRequest('source is missing');
      const id = meta._id ?? `auto-${Math.random().toString(36).slice(2)}`;
      let doc: Record<string, unknown>;
      const fail = (status: number, type: string, reason: string): void => {
        errors = true;
        items.push({
          [op]: { _index: index, _id: id, status, error: { type, reason, index } },
        });
      };
      try {
        doc = JSON.parse(lines[i + 1]!) as Record<string, unknown>;
      } catch (e) {
        fail(400, 'document_parsing_exception', String(e));
        continue;
      }
      const attempt = (this.attempts.get(id) ?? 0) + 1;
      this.attempts.set(id, attempt);
      const fault = this.itemFault(doc, attempt);
      if (fault === 429) {
        fail(
          429,
          'es_rejected_execution_exception',
          'rejected execution of coordinating operation [queue capacity reached]',
        );
        continue;
      }
      if (fault === 400) {
        fail(
          400,
          'document_parsing_exception',
          `failed to parse field [message] of document ${id}`,
        );
        continue;
      }
      let idx = this.indices.get(index);
      if (!idx) this.indices.set(index, (idx = new Map()));
      if (op === 'create' && idx.has(id)) {
        this.conflicts++;
        fail(
          409,
          'version_conflict_engine_exception',
          `[${id}]: version conflict, document already exists (current version [1])`,
        );
        continue;
      }
      idx.set(id, doc);
      this.created++;
      items.push({
        [op]: { _index: index, _id: id, _version: 1, result: 'created', status: 201, _seq_no: 0 },
      });
    }
    const full = { took: 1, errors, items };
    const filter = r.url.searchParams.get('filter_path');
    return json(200, filter ? filterPath(full, filter) : full);
  }
}

function badRequest(reason: string): Reply {
  return json(400, {
    error: {
      root_cause: [{ type: 'illegal_argument_exception', reason }],
      type: 'illegal_argument_exception',
      reason,
    },
    status: 400,
  });
}

/** The subset of filter_path guard and most clients use: dotted paths, `*` for any key. */
function filterPath(v: unknown, filter: string): unknown {
  const paths = filter.split(',').map((p) => p.split('.'));
  const pick = (x: unknown, ps: string[][]): unknown => {
    if (Array.isArray(x)) return x.map((e) => pick(e, ps)).filter((e) => e !== undefined);
    if (typeof x !== 'object' || x === null) return ps.some((p) => p.length === 0) ? x : undefined;
    if (ps.some((p) => p.length === 0)) return x;
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(x)) {
      const rest = ps.filter((p) => p[0] === k || p[0] === '*').map((p) => p.slice(1));
      if (rest.length === 0) continue;
      const got = pick(val, rest);
      if (got !== undefined) out[k] = got;
    }
    return Object.keys(out).length ? out : undefined;
  };
  return pick(v, paths) ?? {};
}
