// The line parsers by config name (`[source.NAME] parser = …`). The audit parser groups records
// into events and is not a per-line Parser; it lives elsewhere.

import type { Parser } from '../event';
import { parseJson } from './json';
import { parsePlain } from './plain';
import { parseSyslog } from './syslog';

const PARSERS: Readonly<Record<'syslog' | 'json' | 'plain', Parser>> = {
  syslog: parseSyslog,
  json: parseJson,
  plain: parsePlain,
};

export function getParser(name: 'syslog' | 'json' | 'plain'): Parser {
  const p = PARSERS[name];
  // Config validation only lets these names through; a wrong name here is a programming error.
  if (p === undefined) throw new Error(`unknown parser: ${String(name)}`);
  return p;
}
