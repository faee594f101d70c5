// How a sink proves who it is: one header, its value built from a secret that lives in a file
// (0640 root:guard), never in guard.conf. Read at start, on reload, and once after a 401/403.
//
//   bearer  Authorization: Bearer <file>          (generic, OTLP collectors, Elasticsearch tokens)
//   splunk  Authorization: Splunk <file>          (Splunk HEC)
//   apikey  Authorization: ApiKey <file>          (Elasticsearch API key, the "encoded" form)
//   basic   Authorization: Basic base64(<file>)   (the file holds user:password)
//   header  <auth_header>: <file>                 (Datadog DD-API-KEY, X-Scope-OrgID tokens, …)

import { readFileSync } from 'node:fs';
import type { AuthScheme } from '../../config/types';
import { describeError, SinkError } from '../sink-error';

export interface AuthConfig {
  scheme: AuthScheme;
  /** The secret's file (token_file); null with scheme 'none'. */
  file: string | null;
  /** The header's name with scheme 'header'. */
  header: string | null;
}

/** The secret in `path` (a few bytes, read when the sink starts, reloads, or is refused). */
export function readSecret(path: string): string {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SinkError(
      'GUARD_HTTP_TOKEN_UNREADABLE',
      `cannot read token_file ${path}: ${describeError(err)}`,
      { cause: err },
    );
  }
  const token = raw.trim();
  if (token === '') throw new SinkError('GUARD_HTTP_TOKEN_EMPTY', `token_file ${path} is empty`);
  // A token goes into a header: a line break in it would be header injection, not a token.
  if (/[\0-\x1f\x7f]/.test(token))
    throw new SinkError('GUARD_HTTP_TOKEN_INVALID', `token_file ${path} holds control characters`);
  return token;
}

/** The header an auth config sends, re-read on demand. */
export class AuthHeader {
  private secret: string | null;
  name: string | null;
  value: string | null = null;

  constructor(private readonly cfg: AuthConfig) {
    this.name =
      cfg.scheme === 'none' || cfg.file === null
        ? null
        : cfg.scheme === 'header'
          ? cfg.header!.toLowerCase()
          : 'authorization';
    this.secret = cfg.file === null || this.name === null ? null : readSecret(cfg.file);
    this.build();
  }

  private build(): void {
    const s = this.secret;
    if (s === null) {
      this.value = null;
      return;
    }
    switch (this.cfg.scheme) {
      case 'bearer':
        this.value = `Bearer ${s}`;
        break;
      case 'splunk':
        this.value = `Splunk ${s}`;
        break;
      case 'apikey':
        this.value = `ApiKey ${s}`;
        break;
      case 'basic':
        if (!s.includes(':'))
          throw new SinkError(
            'GUARD_HTTP_TOKEN_INVALID',
            `token_file ${this.cfg.file} must hold user:password for auth = basic`,
          );
        this.value = `Basic ${Buffer.from(s, 'utf8').toString('base64')}`;
        break;
      default:
        this.value = s;
    }
  }

  /** Re-reads the file; throws a coded SinkError (keeping the old secret) if it cannot. */
  reload(): void {
    if (this.cfg.file === null || this.name === null) return;
    const before = this.secret;
    this.secret = readSecret(this.cfg.file);
    try {
      this.build();
    } catch (err) {
      this.secret = before;
      this.build();
      throw err;
    }
  }

  /** After a 401/403: re-reads the file; true if the secret changed (worth one more try). */
  changed(): boolean {
    if (this.cfg.file === null || this.name === null) return false;
    const before = this.secret;
    this.reload();
    return this.secret !== before;
  }

  apply(headers: Record<string, string>): void {
    if (this.name !== null && this.value !== null) headers[this.name] = this.value;
  }
}
