// JSON lines: one object per line becomes the event's fields; its own timestamp, when it has one
// that parses, becomes the event's time.

import type { Parsed, Parser } from '../event';
import { isoUtc } from './syslog';

/** Keys tried in order for the event time. */
const TIME_KEYS = ['time', 'timestamp', '@timestamp', 'ts'] as const;

// Epoch numbers are accepted only where seconds and milliseconds cannot be confused:
// 1e9–1e10 s is 2001-09-09 … 2286-11-20; 1e12–1e13 ms is the same span (pino writes `time` in ms,
// zap and many Go loggers `ts` in fractional seconds).
const SECONDS_MIN = 1e9,
  SECONDS_MAX = 1e10;
const MILLIS_MIN = 1e12,
  MILLIS_MAX = 1e13;

function timeOf(obj: Record<string, unknown>): string | undefined {
  for (const key of TIME_KEYS) {
    const v = obj[key];
    let ms: number;
    if (typeof v === 'string') {
      // Date.parse takes almost anything ("1" is 2001): ask for at least a full date.
      if (v.length < 8) continue;
      ms = Date.parse(v);
    } else if (typeof v === 'number') {
      if (v >= SECONDS_MIN && v < SECONDS_MAX) ms = Math.floor(v * 1000);
      else if (v >= MILLIS_MIN && v < MILLIS_MAX) ms = Math.floor(v);
      else continue;
    } else {
      continue;
    }
    if (Number.isFinite(ms)) return isoUtc(ms);
  }
  return undefined;
}

export const parseJson: Parser = (message) => {
  // Skip JSON.parse (and the cost of its exception) for lines that cannot be an object.
  let i = 0;
  while (i < message.length && (message.charCodeAt(i) === 0x20 || message.charCodeAt(i) === 0x09))
    i++;
  if (message.charCodeAt(i) !== 0x7b) return { flags: ['unparsed'] }; // '{'
  let obj: unknown;
  try {
    obj = JSON.parse(message);
  } catch {
    // Not JSON after all: shipped as plain text, flagged (never dropped).
    return { flags: ['unparsed'] };
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return { flags: ['unparsed'] };
  const fields = obj as Record<string, unknown>;
  const time = timeOf(fields);
  const out: Parsed = { fields };
  if (time !== undefined) out.time = time;
  return out;
};
