// The client side of SASL PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, RFC 7677), as Kafka
// carries them in SaslAuthenticate requests. A SCRAM exchange is two round trips; the server's
// final message proves it knows the password too, and a wrong one ends the exchange.

import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

/** The mechanism's name in SaslHandshake. */
export function mechanismName(m: SaslMechanism): string {
  return m === 'plain' ? 'PLAIN' : m.toUpperCase();
}

/** One SASL exchange: `first()` is the client's first message, then `next()` per server message
 *  until it returns null (done). Throws on a server message that fails the exchange. */
export interface SaslExchange {
  first(): Buffer;
  next(server: Buffer): Buffer | null;
}

export function saslExchange(m: SaslMechanism, user: string, password: string): SaslExchange {
  if (m === 'plain')
    return {
      first: () => Buffer.from(`\0${user}\0${password}`, 'utf8'),
      next: () => null,
    };
  return new ScramClient(m === 'scram-sha-256' ? 'sha256' : 'sha512', user, password);
}

/** RFC 5802 saslname: '=' and ',' escaped. */
function saslName(s: string): string {
  return s.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/** SCRAM's attributes `a=v,b=v` (values may hold '='). */
export function scramAttributes(msg: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of msg.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

export function hmac(hash: string, key: Buffer, data: string | Buffer): Buffer {
  return createHmac(hash, key).update(data).digest();
}

export function sha(hash: string, data: Buffer): Buffer {
  return createHash(hash).update(data).digest();
}

class ScramClient implements SaslExchange {
  private readonly nonce = randomBytes(18).toString('base64');
  private firstBare = '';
  private serverSignature: Buffer | null = null;
  private step = 0;

  constructor(
    private readonly hash: 'sha256' | 'sha512',
    private readonly user: string,
    private readonly password: string,
  ) {}

  first(): Buffer {
    this.firstBare = `n=${saslName(this.user)},r=${this.nonce}`;
    return Buffer.from(`n,,${this.firstBare}`, 'utf8');
  }

  next(server: Buffer): Buffer | null {
    const msg = server.toString('utf8');
    const a = scramAttributes(msg);
    if (a.has('e')) throw new Error(`SCRAM: the server refused: ${a.get('e')}`);
    if (this.step++ === 0) return this.final(msg, a);
    const v = a.get('v');
    const got = v === undefined ? Buffer.alloc(0) : Buffer.from(v, 'base64');
    const want = this.serverSignature!;
    if (got.length !== want.length || !timingSafeEqual(got, want))
      throw new Error('SCRAM: the server did not prove that it knows the password');
    return null;
  }

  private final(serverFirst: string, a: Map<string, string>): Buffer {
    const nonce = a.get('r') ?? '';
    const salt = Buffer.from(a.get('s') ?? '', 'base64');
    const iterations = Number(a.get('i'));
    if (!nonce.startsWith(this.nonce) || nonce.length === this.nonce.length)
      throw new Error('SCRAM: the server nonce does not extend ours');
    if (!Number.isInteger(iterations) || iterations < 1 || iterations > 1_000_000)
      throw new Error(`SCRAM: bad iteration count ${a.get('i')}`);
    const keyLen = this.hash === 'sha256' ? 32 : 64;
    const salted = pbkdf2Sync(this.password, salt, iterations, keyLen, this.hash);
    const clientKey = hmac(this.hash, salted, 'Client Key');
    const storedKey = sha(this.hash, clientKey);
    const withoutProof = `c=biws,r=${nonce}`; // biws: base64 of the GS2 header "n,,"
    const auth = `${this.firstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(this.hash, storedKey, auth);
    const proof = Buffer.alloc(keyLen);
    for (let i = 0; i < keyLen; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    this.serverSignature = hmac(this.hash, hmac(this.hash, salted, 'Server Key'), auth);
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
  }
}
