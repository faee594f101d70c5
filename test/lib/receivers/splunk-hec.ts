// A Splunk HTTP Event Collector written from Splunk's HEC and indexer-acknowledgement docs, not
// from guard's client: `Authorization: Splunk <token>`; /services/collector/event takes
// concatenated JSON event objects, each needing a non-empty "event"; a malformed one stops the
// request with 400 code 6 "Invalid data format" and its invalid-event-number (those before it are
// indexed: the case that makes a client duplicate); with indexer acknowledgement on the token a
// channel (X-Splunk-Request-Channel or ?channel=) is required (400 code 10), each request on a
// channel gets the next ackId from 0, /services/collector/ack answers false until the events are
// indexed, then true; a restart forgets unindexed events, channels and acks (an unknown ackId
// answers false); 503 code 9 "Server is busy"; 413 above max_content_length.
import { randomUUID } from 'node:crypto';
import { ReceiverServer, json, type Reply, type Req } from './http-server';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Channel {
  nextAckId: number;
  /** ackId → events waiting to be indexed (null once indexed) */
  pending: Map<number, { events: Record<string, unknown>[]; polls: number } | null>;
}

export class SplunkHecReceiver {
  readonly server = new ReceiverServer((r) => this.handle(r));
  readonly token = randomUUID();
  /** Indexer acknowledgement on the token. */
  acks = true;
  /** Polls of an ackId answered false before its events are indexed and it answers true. */
  ackAfterPolls = 1;
  /** Indexed events, in order. */
  readonly indexed: Record<string, unknown>[] = [];
  readonly failNext: { status: number; code: number; text: string; retryAfter?: string }[] = [];
  maxContentLength = 800 * 1024 * 1024;
  /** An event this says is malformed gets code 6 with its number. */
  invalid: (ev: Record<string, unknown>) => boolean = () => false;
  private channels = new Map<string, Channel>();
  ackQueries = 0;

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

  /** Splunk restarts: unindexed events and every channel's acks are gone. */
  async restart(): Promise<void> {
    await this.server.stop();
    this.channels = new Map();
    await this.server.start();
  }

  /** Distinct guard ids indexed, and how many events were indexed more than once. */
  counts(): { distinct: number; duplicates: number } {
    const ids = this.indexed.map((e) => (e.fields as Record<string, unknown>)?.guard_id);
    const distinct = new Set(ids).size;
    return { distinct, duplicates: ids.length - distinct };
  }

  private auth(r: Req): Reply | null {
    const h = r.headers.authorization;
    if (!h) return json(401, { text: 'Token is required', code: 2 });
    const m = /^Splunk (.+)$/.exec(h);
    if (!m) return json(401, { text: 'Invalid authorization', code: 3 });
    if (m[1] !== this.token) return json(403, { text: 'Invalid token', code: 4 });
    return null;
  }

  private channelOf(r: Req): string | undefined {
    const h = r.headers['x-splunk-request-channel'];
    return (Array.isArray(h) ? h[0] : h) ?? r.url.searchParams.get('channel') ?? undefined;
  }

  private handle(r: Req): Reply {
    if (r.method !== 'POST') return json(404, { text: 'Not found', code: 404 });
    const denied = this.auth(r);
    if (denied) return denied;
    if (r.url.pathname === '/services/collector/ack') return this.ack(r);
    if (r.url.pathname !== '/services/collector/event' && r.url.pathname !== '/services/collector')
      return json(404, { text: 'The requested URL was not found on this server.', code: 404 });
    const forced = this.failNext.shift();
    if (forced)
      return json(
        forced.status,
        { text: forced.text, code: forced.code },
        forced.retryAfter ? { 'retry-after': forced.retryAfter } : {},
      );
    if (r.body.length > this.maxContentLength)
      return json(413, { text: 'Content too large', code: 27 });
    const channel = this.channelOf(r);
    if (this.acks) {
      if (channel === undefined) return json(400, { text: 'Data channel is missing', code: 10 });
      if (!GUID.test(channel)) return json(400, { text: 'Invalid data channel', code: 11 });
    }
    const events: Record<string, unknown>[] = [];
    const texts = splitObjects(r.body.toString('utf8'));
    if (texts.length === 0) return json(400, { text: 'No data', code: 5 });
    for (let n = 0; n < texts.length; n++) {
      let ev: Record<string, unknown>;
      try {
        ev = JSON.parse(texts[n]!) as Record<string, unknown>;
      } catch {
        return this.invalidAt(events, n);
      }
      if (!('event' in ev)) {
        this.indexed.push(...events);
        return json(400, { text: 'Event field is required', code: 12, 'invalid-event-number': n });
      }
      if (ev.event === '' || ev.event === null)
        return json(400, {
          text: 'Event field cannot be blank',
          code: 13,
          'invalid-event-number': n,
        });
      if (this.invalid(ev)) return this.invalidAt(events, n);
      events.push(ev);
    }
    const ackId = this.keep(events, channel);
    return json(
      200,
      ackId === null ? { text: 'Success', code: 0 } : { text: 'Success', code: 0, ackId },
    );
  }

  /** Events before a malformed one went into the pipeline and are indexed; the 400 carries no
   *  ackId for them, so the client cannot know. */
  private invalidAt(events: Record<string, unknown>[], n: number): Reply {
    this.indexed.push(...events);
    return json(400, { text: 'Invalid data format', code: 6, 'invalid-event-number': n });
  }

  private keep(events: Record<string, unknown>[], channel: string | undefined): number | null {
    if (!this.acks || channel === undefined) {
      this.indexed.push(...events);
      return null;
    }
    let ch = this.channels.get(channel);
    if (!ch) this.channels.set(channel, (ch = { nextAckId: 0, pending: new Map() }));
    const id = ch.nextAckId++;
    ch.pending.set(id, { events, polls: 0 });
    return id;
  }

  private ack(r: Req): Reply {
    if (!this.acks) return json(400, { text: 'ACK is disabled', code: 14 });
    const channel = this.channelOf(r);
    if (channel === undefined) return json(400, { text: 'Data channel is missing', code: 10 });
    let q: { acks?: unknown };
    try {
      q = JSON.parse(r.body.toString('utf8')) as typeof q;
    } catch {
      return json(400, { text: 'Invalid data format', code: 6 });
    }
    if (!Array.isArray(q.acks)) return json(400, { text: 'Invalid data format', code: 6 });
    this.ackQueries++;
    const ch = this.channels.get(channel);
    const out: Record<string, boolean> = {};
    for (const id of q.acks as number[]) {
      const p = ch?.pending.get(id);
      if (p === undefined)
        out[id] = false; // unknown (or forgotten by a restart)
      else if (p === null) out[id] = true;
      else if (++p.polls > this.ackAfterPolls) {
        this.indexed.push(...p.events);
        ch!.pending.set(id, null);
        out[id] = true;
      } else out[id] = false;
    }
    return json(200, { acks: out });
  }
}

/** Concatenated JSON objects (any whitespace between) → each object's text. */
function splitObjects(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = -1;
  let inStr = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (inStr) {
      if (c === '\\') i++;
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') inStr = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}') {
      if (--depth === 0) out.push(s.slice(start, i + 1));
    } else if (depth === 0 && !/\s/.test(c!)) out.push(s.slice(i)); // junk: one malformed "event"
  }
  return out;
}
