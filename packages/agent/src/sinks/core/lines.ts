// A batch's events as items: the NDJSON lines of Batch.body, found once when a sink needs them one
// by one (a wire format other than NDJSON, a 413 to split, items to dead-letter). The NDJSON http
// path never splits a body: it sends Batch.body as it is.
//
// The pipeline writes every event line as `{"id":"<id>","time":"<iso>",…` (pipeline.ts eventJson and
// the EventEncoder): eventHead() reads those two fields in place, without JSON.parse, and falls
// back to JSON.parse for a line that does not start that way.

const NL = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const ID_PREFIX = Buffer.from('{"id":"', 'latin1');
const TIME_PREFIX = Buffer.from(',"time":"', 'latin1');

/** The lines of one batch body: item i is body[starts[i], ends[i]) without its '\n'. */
export class BatchLines {
  private constructor(
    readonly body: Buffer,
    readonly starts: Int32Array,
    readonly ends: Int32Array,
  ) {}

  static of(body: Buffer): BatchLines {
    let n = 0;
    for (let p = body.indexOf(NL); p >= 0; p = body.indexOf(NL, p + 1)) n++;
    if (body.length > 0 && body[body.length - 1] !== NL) n++;
    const starts = new Int32Array(n);
    const ends = new Int32Array(n);
    let k = 0;
    for (let s = 0; s < body.length;) {
      let e = body.indexOf(NL, s);
      if (e < 0) e = body.length;
      if (e > s) {
        starts[k] = s;
        ends[k] = e;
        k++;
      }
      s = e + 1;
    }
    return new BatchLines(body, starts.subarray(0, k), ends.subarray(0, k));
  }

  get count(): number {
    return this.starts.length;
  }

  line(i: number): Buffer {
    return this.body.subarray(this.starts[i]!, this.ends[i]!);
  }

  /** The items' lines as NDJSON (each ending in '\n'), in the order given. */
  ndjson(items: readonly number[]): Buffer {
    let size = 0;
    for (const i of items) size += this.ends[i]! - this.starts[i]! + 1;
    const out = Buffer.allocUnsafe(size);
    let o = 0;
    for (const i of items) {
      o += this.body.copy(out, o, this.starts[i]!, this.ends[i]!);
      out[o++] = NL;
    }
    return out;
  }
}

/** Where an event's id and time are in its line: [idStart, idEnd) and [timeStart, timeEnd) of
 *  `body`, JSON string contents without quotes (escapes kept as written). */
export interface EventHead {
  idStart: number;
  idEnd: number;
  timeStart: number;
  timeEnd: number;
  /** Set when the line did not start as the pipeline writes it: the values parsed. */
  parsed?: { id: string; time: string };
}

function startsWith(body: Buffer, at: number, prefix: Buffer): boolean {
  if (at + prefix.length > body.length) return false;
  for (let k = 0; k < prefix.length; k++) if (body[at + k] !== prefix[k]) return false;
  return true;
}

/** The end of the JSON string whose contents start at `p` (the index of its closing quote), or -1. */
export function stringEnd(body: Buffer, p: number, limit: number): number {
  for (let q = body.indexOf(QUOTE, p); q >= 0 && q < limit; q = body.indexOf(QUOTE, q + 1)) {
    let slashes = 0;
    while (body[q - 1 - slashes] === BACKSLASH) slashes++;
    if ((slashes & 1) === 0) return q;
  }
  return -1;
}

const EMPTY_HEAD: EventHead = { idStart: 0, idEnd: 0, timeStart: 0, timeEnd: 0 };

/** The id and time of the event in body[start, end). */
export function eventHead(body: Buffer, start: number, end: number): EventHead {
  if (startsWith(body, start, ID_PREFIX)) {
    const idStart = start + ID_PREFIX.length;
    const idEnd = stringEnd(body, idStart, end);
    if (idEnd > 0 && startsWith(body, idEnd + 1, TIME_PREFIX)) {
      const timeStart = idEnd + 1 + TIME_PREFIX.length;
      const timeEnd = stringEnd(body, timeStart, end);
      if (timeEnd > 0) return { idStart, idEnd, timeStart, timeEnd };
    }
  }
  let ev: { id?: unknown; time?: unknown } = {};
  try {
    ev = JSON.parse(body.toString('utf8', start, end)) as typeof ev;
  } catch {
    // not JSON: no id and no time (the receiver gets the line as it is and may refuse it)
  }
  return {
    ...EMPTY_HEAD,
    parsed: {
      id: typeof ev.id === 'string' ? ev.id : '',
      time: typeof ev.time === 'string' ? ev.time : '',
    },
  };
}

/** The event's id as a string (for reasons and logs, not the hot path). */
export function eventId(body: Buffer, start: number, end: number): string {
  const h = eventHead(body, start, end);
  return h.parsed ? h.parsed.id : body.toString('utf8', h.idStart, h.idEnd);
}

/** Milliseconds since the epoch of ISO times as guard writes them (`YYYY-MM-DDTHH:MM:SS.mmmZ`),
 *  read in place with Date.parse once per distinct second; other forms through Date.parse. */
export class IsoTimeReader {
  private key = Buffer.alloc(19);
  private secondMs = NaN;

  /** The time in body[ts, te) in ms, or null. */
  ms(body: Buffer, ts: number, te: number): number | null {
    if (te - ts !== 24 || body[ts + 19] !== 0x2e || body[te - 1] !== 0x5a) {
      const ms = Date.parse(body.toString('latin1', ts, te));
      return Number.isNaN(ms) ? null : ms;
    }
    const key = this.key;
    let same = true;
    for (let k = 0; k < 19; k++)
      if (body[ts + k] !== key[k]) {
        same = false;
        break;
      }
    if (!same) {
      body.copy(key, 0, ts, ts + 19);
      this.secondMs = Date.parse(`${key.toString('latin1')}Z`);
    }
    if (Number.isNaN(this.secondMs)) return null;
    return (
      this.secondMs + (body[ts + 20]! - 48) * 100 + (body[ts + 21]! - 48) * 10 + body[ts + 22]! - 48
    );
  }
}
