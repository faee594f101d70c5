// The helper <-> client wire format (docs/protocol.md). Loaded by the root helper: keep it boring.
import * as validate from './generated/validate.js';

export const PROTOCOL_VERSION = 3;
export const MAX_REQUEST_BYTES = 4096;
export const MAX_REPLY_BYTES = 65536;

// The message types live in types.ts: declarations only, erased from the helper's bundle.
export type * from './types';
import type { Op, Request } from './types';

export type ParseResult =
  | { ok: true; request: Request }
  | { ok: false; code: 'bad_request' | 'unknown_op'; message: string };

const validators: Record<Op, validate.Validator> = validate.byOp;
// fatal: invalid UTF-8 is refused, not silently replaced by U+FFFD.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// A logrotate generation suffix (docs/protocol.md): .N (1-6 digits), -YYYYMMDD[HH][-N] or
// -YYYY-MM-DD, each optionally compressed. A compressor extension alone is not a generation.
export const generationSuffix =
  /(?:\.\d{1,6}|-\d{8}(?:\d{2})?(?:-\d{1,10})?|-\d{4}-\d{2}-\d{2})(?:\.(?:gz|xz|bz2|zst|lz4|lzma|Z))?$/;

/** Splits a rotated generation from its live file's name, or null; the base is never empty. */
export function splitGeneration(path: string): { base: string; suffix: string } | null {
  const m = generationSuffix.exec(path);
  return m && m.index > path.lastIndexOf('/') + 1
    ? { base: path.slice(0, m.index), suffix: m[0] }
    : null;
}

const badRequest = (message: string): ParseResult => ({ ok: false, code: 'bad_request', message });

/** Decodes and validates one request packet. Messages are short and safe to log. */
export function parseRequest(data: Buffer): ParseResult {
  if (data.length > MAX_REQUEST_BYTES)
    return badRequest(`request is over ${MAX_REQUEST_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(data));
  } catch {
    return badRequest('request is not valid UTF-8 JSON');
  }
  // an array, a string or null has no op either; the validator checks that the rest is an object
  const op: unknown = (value as { op?: unknown } | null)?.op;
  if (typeof op !== 'string') return badRequest('request is not a JSON object with a string "op"');
  if (!Object.prototype.hasOwnProperty.call(validators, op))
    return {
      ok: false,
      code: 'unknown_op',
      message: `unknown op ${JSON.stringify(op.slice(0, 32))}`,
    }; // short and quoted: no forged log line
  const check = validators[op as Op];
  if (!check(value)) {
    const e = check.errors?.[0]; // instancePath and message come from our schema, not the peer
    return badRequest(
      `${op} request ${e ? `${e.instancePath || '/'} ${e.message ?? e.keyword}` : 'invalid'}`,
    );
  }
  return { ok: true, request: value as Request };
}
