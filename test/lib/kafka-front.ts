// A Kafka front for tests: a listener that does what a broker's TLS + SASL listener does and
// forwards the rest to librdkafka's mock cluster (which speaks plaintext only and has neither
// SaslHandshake nor SaslAuthenticate). Written from the Kafka protocol specification:
// - TLS (optionally requiring a client certificate) terminated here;
// - ApiVersions forwarded, with SaslHandshake v0-1 and SaslAuthenticate v0-1 added to the answer;
// - SaslHandshake v1 and SaslAuthenticate v0-1 answered here: PLAIN (RFC 4616) and
//   SCRAM-SHA-256/512 (RFC 5802, RFC 7677; the server's side: salted password, proof checked,
//   server signature sent). Wrong credentials: SASL_AUTHENTICATION_FAILED (58) with Kafka's
//   message, then the connection is closed, as a broker does. Any other request before
//   authentication closes the connection;
// - Metadata answers rewritten to name this front instead of the mock's plaintext listener, so a
//   client produces through it;
// - the broker's duplicate check for idempotent producers (KIP-98), which the mock (librdkafka
//   2.0.2) does only for transactional ones: per producer id and partition the last five appended
//   batches' sequence ranges and offsets; a Produce whose every batch repeats one of them is
//   answered here with the first append's offset (NONE, as Kafka does), a gap in the sequence
//   with OUT_OF_ORDER_SEQUENCE_NUMBER; other requests go on to the cluster;
// - a fault: dropProduceAck() forwards the next Produce request, lets the cluster append it, and
//   cuts the client's connection instead of passing the acknowledgement on.
// One mock broker behind it (MockKafka.start(1)).
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import {
  connect as netConnect,
  createServer as netServer,
  type Server,
  type Socket,
} from 'node:net';
import { createServer as tlsServer, type TlsOptions } from 'node:tls';

export interface FrontOptions {
  upstream: string; // host:port of the mock broker
  tls?: TlsOptions; // absent: plaintext
  sasl?: { users: Record<string, string>; mechanisms?: string[] };
}

const SCRAM_ITERATIONS = 4096;

/** The fields of a SCRAM message (`a=v,b=v`). */
function fields(msg: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const p of msg.split(',')) if (p[1] === '=') m.set(p[0]!, p.slice(2));
  return m;
}

function frame(correlationId: number, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeInt32BE(4 + body.length, 0);
  head.writeInt32BE(correlationId, 4);
  return Buffer.concat([head, body]);
}

function str(s: string | null): Buffer {
  if (s === null) return Buffer.from([0xff, 0xff]);
  const b = Buffer.from(s);
  const h = Buffer.alloc(2);
  h.writeInt16BE(b.length);
  return Buffer.concat([h, b]);
}

function int16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(v);
  return b;
}

function int32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
}

/** Reads size-prefixed frames from a stream of chunks. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  push(d: Buffer, each: (f: Buffer) => void): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    while (this.buf.length >= 4) {
      const n = this.buf.readInt32BE(0);
      if (this.buf.length < 4 + n) return;
      const f = this.buf.subarray(4, 4 + n);
      this.buf = this.buf.subarray(4 + n);
      each(f);
    }
  }
}

/** One partition's record batch in a Produce request, as the duplicate check reads it. */
interface SeqBatch {
  key: string; // producerId/topic/partition
  topic: string;
  partition: number;
  first: number;
  last: number;
}

interface Slot {
  seqs?: SeqBatch[];
  api: number;
  version: number;
  correlationId: number;
  answer: Buffer | null; // the frame to send, once known
  upstream: boolean;
  drop: boolean;
}

export class KafkaFront {
  port = 0;
  /** SASL outcomes, in order: `ok PLAIN alice`, `refused SCRAM-SHA-256 alice`. */
  readonly auths: string[] = [];
  /** Produce acknowledgements withheld (dropProduceAck). */
  dropped = 0;
  private dropNext = 0;
  /** Resends answered from the duplicate check (never reached the cluster). */
  deduplicated = 0;
  private readonly appended = new Map<string, { first: number; last: number; offset: bigint }[]>();
  private server!: Server;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly opts: FrontOptions) {}

  static async start(opts: FrontOptions): Promise<KafkaFront> {
    const f = new KafkaFront(opts);
    f.server = opts.tls ? tlsServer(opts.tls, (s) => f.serve(s)) : netServer((s) => f.serve(s));
    f.server.on('tlsClientError', () => undefined); // a refused handshake: the client sees it
    await new Promise<void>((r) => f.server.listen(0, '127.0.0.1', r));
    f.port = (f.server.address() as { port: number }).port;
    return f;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The next `n` Produce requests reach the cluster, but their answers do not reach the client:
   *  its connection is cut instead (an acknowledgement lost after the append). */
  dropProduceAck(n = 1): void {
    this.dropNext += n;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }

  private serve(client: Socket): void {
    this.sockets.add(client);
    const [host, port] = this.opts.upstream.split(':') as [string, string];
    const up = netConnect(Number(port), host);
    const slots: Slot[] = [];
    let authed = this.opts.sasl === undefined;
    let mechanism: string | null = null;
    let scram: {
      user: string;
      nonce: string;
      first: string;
      serverFirst: string;
      salted: Buffer;
    } | null = null;
    const end = (): void => {
      client.destroy();
      up.destroy();
    };
    client.on('close', () => {
      this.sockets.delete(client);
      up.destroy();
    });
    client.on('error', end);
    up.on('error', end);
    up.on('close', () => client.destroy());

    const flush = (): void => {
      while (slots.length > 0 && slots[0]!.answer !== null) {
        const s = slots.shift()!;
        if (s.drop) {
          this.dropped++;
          end();
          return;
        }
        client.write(s.answer!);
      }
    };
    const local = (slot: Slot, body: Buffer, thenClose = false): void => {
      slot.answer = frame(slot.correlationId, body);
      flush();
      if (thenClose) client.end();
    };

    const upReader = new FrameReader();
    up.on('data', (d: Buffer) =>
      upReader.push(d, (f) => {
        const slot = slots.find((s) => s.upstream && s.answer === null);
        if (slot === undefined) return end();
        let body = f.subarray(4);
        if (slot.api === 18 && slot.version <= 2 && this.opts.sasl) body = this.withSasl(body);
        if (slot.api === 3) body = this.rewriteMetadata(slot.version, body);
        if (slot.seqs) this.remember(slot.seqs, body);
        slot.answer = frame(slot.correlationId, body);
        flush();
      }),
    );

    const reader = new FrameReader();
    client.on('data', (d: Buffer) =>
      reader.push(d, (f) => {
        const api = f.readInt16BE(0);
        const version = f.readInt16BE(2);
        const correlationId = f.readInt32BE(4);
        const cidLen = f.readInt16BE(8);
        const body = f.subarray(10 + Math.max(cidLen, 0));
        const slot: Slot = {
          api,
          version,
          correlationId,
          answer: null,
          upstream: false,
          drop: false,
        };
        slots.push(slot);
        if (api === 17 && this.opts.sasl) {
          const n = body.readInt16BE(0);
          const want = body.toString('utf8', 2, 2 + n);
          const offered = this.opts.sasl.mechanisms ?? ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];
          const ok = offered.includes(want) && !authed;
          if (ok) mechanism = want;
          const list = Buffer.concat([int32(offered.length), ...offered.map((m) => str(m))]);
          return local(slot, Buffer.concat([int16(ok ? 0 : 33), list]), !ok);
        }
        if (api === 36 && this.opts.sasl && mechanism !== null && !authed) {
          const n = body.readInt32BE(0);
          const token = body.subarray(4, 4 + n);
          const reply = (error: number, message: string | null, out: Buffer): void => {
            const parts = [int16(error), str(message), int32(out.length), out];
            if (version >= 1) parts.push(Buffer.alloc(8)); // session_lifetime_ms 0
            local(slot, Buffer.concat(parts), error !== 0);
          };
          const users = this.opts.sasl.users;
          if (mechanism === 'PLAIN') {
            const [, user = '', pass = ''] = token.toString('utf8').split('\0');
            if (users[user] !== undefined && users[user] === pass) {
              authed = true;
              this.auths.push(`ok PLAIN ${user}`);
              return reply(0, null, Buffer.alloc(0));
            }
            this.auths.push(`refused PLAIN ${user}`);
            return reply(
              58,
              'Authentication failed: Invalid username or password',
              Buffer.alloc(0),
            );
          }
          const hash = mechanism === 'SCRAM-SHA-256' ? 'sha256' : 'sha512';
          const msg = token.toString('utf8');
          if (scram === null) {
            const first = msg.slice(msg.indexOf(',', msg.indexOf(',') + 1) + 1); // after "n,,"
            const a = fields(first);
            const user = (a.get('n') ?? '').replace(/=2C/g, ',').replace(/=3D/g, '=');
            const salt = randomBytes(16);
            const nonce = `${a.get('r') ?? ''}${randomBytes(12).toString('base64')}`;
            const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=${SCRAM_ITERATIONS}`;
            // An unknown user gets a salt too (as Kafka does), and fails at the proof.
            const salted = pbkdf2Sync(
              users[user] ?? randomBytes(16).toString('hex'),
              salt,
              SCRAM_ITERATIONS,
              hash === 'sha256' ? 32 : 64,
              hash,
            );
            scram = { user, nonce, first, serverFirst, salted };
            return reply(0, null, Buffer.from(serverFirst));
          }
          const a = fields(msg);
          const withoutProof = msg.slice(0, msg.lastIndexOf(',p='));
          const auth = `${scram.first},${scram.serverFirst},${withoutProof}`;
          const hmac = (k: Buffer, d: string) => createHmac(hash, k).update(d).digest();
          const storedKey = createHash(hash).update(hmac(scram.salted, 'Client Key')).digest();
          const sig = hmac(storedKey, auth);
          const proof = Buffer.from(a.get('p') ?? '', 'base64');
          const clientKey = Buffer.from(proof.map((b, i) => b ^ (sig[i] ?? 0)));
          const good =
            a.get('r') === scram.nonce &&
            proof.length === sig.length &&
            createHash(hash).update(clientKey).digest().equals(storedKey);
          if (!good) {
            this.auths.push(`refused ${mechanism} ${scram.user}`);
            return reply(
              58,
              `Authentication failed during authentication due to invalid credentials with SASL mechanism ${mechanism}`,
              Buffer.alloc(0),
            );
          }
          authed = true;
          this.auths.push(`ok ${mechanism} ${scram.user}`);
          const serverSig = hmac(hmac(scram.salted, 'Server Key'), auth).toString('base64');
          return reply(0, null, Buffer.from(`v=${serverSig}`));
        }
        if (!authed && api !== 18) return end(); // a broker closes an unauthenticated request
        if (api === 0 && (version === 3 || version === 4)) {
          const seqs = this.sequences(body);
          const answer = seqs.length > 0 ? this.duplicateCheck(seqs) : null;
          if (answer !== null) return local(slot, answer);
          if (seqs.length > 0) slot.seqs = seqs;
        }
        slot.upstream = true;
        if (api === 0 && this.dropNext > 0) {
          this.dropNext--;
          slot.drop = true;
        }
        const head = Buffer.alloc(4);
        head.writeInt32BE(f.length);
        up.write(Buffer.concat([head, f]));
      }),
    );
  }

  /** The idempotent batches of a Produce v3/v4 request (none when not idempotent). */
  private sequences(body: Buffer): SeqBatch[] {
    const out: SeqBatch[] = [];
    let o = 0;
    const tid = body.readInt16BE(o);
    o += 2 + Math.max(tid, 0) + 2 + 4; // transactional_id, acks, timeout
    const topics = body.readInt32BE(o);
    o += 4;
    for (let t = 0; t < topics; t++) {
      const n = body.readInt16BE(o);
      const topic = body.toString('utf8', o + 2, o + 2 + n);
      o += 2 + n;
      const parts = body.readInt32BE(o);
      o += 4;
      for (let p = 0; p < parts; p++) {
        const partition = body.readInt32BE(o);
        const size = body.readInt32BE(o + 4);
        const b = body.subarray(o + 8, o + 8 + size);
        o += 8 + size;
        const pid = b.readBigInt64BE(43);
        if (pid < 0n) continue;
        const first = b.readInt32BE(53);
        const last = first + b.readInt32BE(23); // + lastOffsetDelta
        out.push({ key: `${pid}/${topic}/${partition}`, topic, partition, first, last });
      }
    }
    return out;
  }

  /** A local answer when every batch repeats an appended one or skips ahead; null: forward. */
  private duplicateCheck(seqs: SeqBatch[]): Buffer | null {
    const answers: { s: SeqBatch; error: number; offset: bigint }[] = [];
    for (const s of seqs) {
      const seen = this.appended.get(s.key) ?? [];
      const dup = seen.find((x) => x.first === s.first && x.last === s.last);
      const next = seen.length === 0 ? 0 : seen[seen.length - 1]!.last + 1;
      if (dup) answers.push({ s, error: 0, offset: dup.offset });
      else if (s.first !== next) answers.push({ s, error: 45, offset: -1n });
    }
    if (answers.length === 0) return null;
    if (answers.length !== seqs.length)
      throw new Error(
        'kafka front: a Produce mixing resent and new batches (not needed by the tests)',
      );
    this.deduplicated += answers.filter((a) => a.error === 0).length;
    const parts: Buffer[] = [int32(answers.length)];
    for (const a of answers) {
      const off = Buffer.alloc(16);
      off.writeBigInt64BE(a.offset, 0);
      off.writeBigInt64BE(-1n, 8); // log_append_time
      parts.push(str(a.s.topic), int32(1), int32(a.s.partition), int16(a.error), off);
    }
    parts.push(int32(0)); // throttle_time_ms
    return Buffer.concat(parts);
  }

  /** The cluster's Produce v3/v4 answer: the appended batches' offsets, the last five kept. */
  private remember(seqs: SeqBatch[], body: Buffer): void {
    let o = 0;
    const topics = body.readInt32BE(o);
    o += 4;
    for (let t = 0; t < topics; t++) {
      const n = body.readInt16BE(o);
      const topic = body.toString('utf8', o + 2, o + 2 + n);
      o += 2 + n;
      const parts = body.readInt32BE(o);
      o += 4;
      for (let p = 0; p < parts; p++) {
        const partition = body.readInt32BE(o);
        const error = body.readInt16BE(o + 4);
        const offset = body.readBigInt64BE(o + 6);
        o += 22;
        const s = seqs.find((x) => x.topic === topic && x.partition === partition);
        if (s === undefined || error !== 0) continue;
        const seen = this.appended.get(s.key) ?? [];
        seen.push({ first: s.first, last: s.last, offset });
        this.appended.set(s.key, seen.slice(-5));
      }
    }
  }

  /** ApiVersions v0-2 answer with SaslHandshake (17) and SaslAuthenticate (36) v0-1 added. */
  private withSasl(body: Buffer): Buffer {
    const error = body.readInt16BE(0);
    if (error !== 0) return body;
    const n = body.readInt32BE(2);
    const entries = body.subarray(6, 6 + n * 6);
    const rest = body.subarray(6 + n * 6);
    const add = Buffer.alloc(12);
    add.writeInt16BE(17, 0);
    add.writeInt16BE(0, 2);
    add.writeInt16BE(1, 4);
    add.writeInt16BE(36, 6);
    add.writeInt16BE(0, 8);
    add.writeInt16BE(1, 10);
    return Buffer.concat([int16(0), int32(n + 2), entries, add, rest]);
  }

  /** Metadata v0-v4: every broker's host and port replaced by this front's. */
  private rewriteMetadata(version: number, body: Buffer): Buffer {
    let o = version >= 3 ? 4 : 0;
    const head = body.subarray(0, o);
    const n = body.readInt32BE(o);
    o += 4;
    const brokers: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const node = body.readInt32BE(o);
      o += 4;
      o += 2 + body.readInt16BE(o); // host
      o += 4; // port
      let rack: Buffer = Buffer.alloc(0);
      if (version >= 1) {
        const r = body.readInt16BE(o);
        rack = body.subarray(o, o + 2 + Math.max(r, 0));
        o += 2 + Math.max(r, 0);
      }
      brokers.push(int32(node), str('127.0.0.1'), int32(this.port), rack);
    }
    return Buffer.concat([head, int32(n), ...brokers, body.subarray(o)]);
  }
}
