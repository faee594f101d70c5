// The shape check of guard.conf: schema.json (compiled by ajv at build time), every error turned
// into one sentence that names the section and the key and says what was expected. What a schema cannot say (paths
// normalised, regexes compile, sinks exist, files readable) is checked in load.ts.
// Compiled at build time (scripts/gen-config-validator.mjs): no ajv and no schema compilation when
// the agent starts.
import { config as validate } from './generated/validate';
import schemaJson from './schema.json';

/** One thing wrong with the config; `section` as written in the file (`source.auth`), no brackets. */
export interface Problem {
  section?: string;
  key?: string;
  text: string;
}

/** `/etc/guard/guard.conf: [sink.siem] url: expected …` */
export function formatProblem(file: string, p: Problem): string {
  const where =
    p.section === undefined
      ? (p.key ?? '')
      : `[${p.section}]${p.key === undefined ? '' : ` ${p.key}`}`;
  return `${file}: ${where === '' ? '' : `${where}: `}${p.text}`;
}

interface Schema {
  $ref?: string;
  expected?: string;
  wholeNumber?: [number, number];
  enum?: unknown[];
  properties?: Record<string, Schema>;
  definitions?: Record<string, Schema>;
  [k: string]: unknown;
}
const schema = schemaJson as unknown as Schema;
const definitions = schema.definitions ?? {};

// A $ref'd schema, with what the referring schema says about itself (expected, default) on top.
function resolve(s: Schema | undefined): Schema | undefined {
  for (let depth = 0; s?.$ref !== undefined && depth < 8; depth++) {
    const { $ref, ...own } = s;
    s = { ...definitions[$ref.replace('#/definitions/', '')], ...own };
  }
  return s;
}

const quoted = (values: unknown[]): string => {
  const q = values.filter((v) => typeof v === 'string').map((v) => JSON.stringify(v));
  return q.length <= 1 ? (q[0] ?? 'nothing') : `${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}`;
};

/** What a key takes, in words: "a whole number from 1024 to 16777216", "\"http\" or \"file\"". */
export function expectedPhrase(s: Schema | undefined): string {
  s = resolve(s);
  if (s?.expected !== undefined) return s.expected;
  if (s?.wholeNumber !== undefined)
    return `a whole number from ${s.wholeNumber[0]} to ${s.wholeNumber[1]}`;
  if (s?.enum !== undefined) return quoted(s.enum);
  return 'a valid value';
}

/** The `type` of [sink.NAME] as written, if any. */
function sinkType(raw: Record<string, unknown>, name: string): unknown {
  return asObject(asObject(raw.sink)?.[name])?.type;
}

/** The properties a section may have; for a sink they depend on its type. */
export function sectionKeys(section: string, raw: Record<string, unknown>): Record<string, Schema> {
  const [kind, name] = splitSection(section);
  if (kind === 'sink' && name !== undefined) {
    const type = sinkType(raw, name);
    const def = type === 'http' ? 'httpSink' : type === 'file' ? 'fileSink' : 'sink';
    return definitions[def]?.properties ?? {};
  }
  return definitions[kind]?.properties ?? {};
}

export function keySchema(
  section: string,
  key: string,
  raw: Record<string, unknown>,
): Schema | undefined {
  return resolve(sectionKeys(section, raw)[key]);
}

function splitSection(section: string): [string, string | undefined] {
  const dot = section.indexOf('.');
  return dot < 0 ? [section, undefined] : [section.slice(0, dot), section.slice(dot + 1)];
}

export function asObject(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/** A value as it appears in a message: JSON, cut short. */
export function shown(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 120 ? `${s.slice(0, 117)}…` : s;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        prev[j]! + 1,
        row[j - 1]! + 1,
        prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** The closest of `known` to a mistyped `word`, if it is close enough to be what was meant. */
export function suggest(word: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3))
    ? best
    : undefined;
}

function unknownKey(section: string, key: string, raw: Record<string, unknown>): Problem {
  const known = Object.keys(sectionKeys(section, raw));
  const close = suggest(key, known);
  const hint =
    close !== undefined ? ` (did you mean "${close}"?)` : ` (known keys: ${known.join(', ')})`;
  const type = section.startsWith('sink.') ? sinkType(raw, section.slice(5)) : undefined;
  const forType = type === 'http' ? ' for an http sink' : type === 'file' ? ' for a file sink' : '';
  return { section, key, text: `unknown key${forType}${hint}` };
}

const TOP_SECTIONS = ['agent', 'helper', 'redact'];
const NAMED_SECTIONS = ['source', 'sink'];

function unknownTop(name: string, value: unknown): Problem[] {
  const obj = asObject(value);
  if (obj === undefined)
    return [
      { key: name, text: 'key outside any section (put it under the [section] it belongs to)' },
    ];
  if (isOnlyParent(obj)) {
    const kind = suggest(name, NAMED_SECTIONS);
    return Object.keys(obj).map((child) => ({
      section: `${name}.${child}`,
      text: `unknown section${kind !== undefined ? ` (did you mean "[${kind}.${child}]"?)` : ''}`,
    }));
  }
  const close = suggest(name, [...TOP_SECTIONS, ...NAMED_SECTIONS]);
  const hint =
    close === undefined
      ? ''
      : NAMED_SECTIONS.includes(close)
        ? ` (did you mean "[${close}.NAME]"?)`
        : ` (did you mean "[${close}]"?)`;
  return [{ section: name, text: `unknown section${hint}` }];
}

// [source.a.b] makes ini create a "source.a" holding nothing but "b".
const isOnlyParent = (v: unknown): boolean => {
  const children = Object.values(asObject(v) ?? {});
  return children.length > 0 && children.every((c) => asObject(c) !== undefined);
};

const unescapePointer = (s: string): string => s.replace(/~1/g, '/').replace(/~0/g, '~');

/** Every way `raw` (what ini.parse returned) departs from schema.json, one problem per key. */
export function schemaProblems(raw: Record<string, unknown>): Problem[] {
  if (validate(raw)) return [];
  const problems: Problem[] = [];
  const seen = new Set<string>();
  const add = (p: Problem): void => {
    const id = `${p.section ?? ''}\0${p.key ?? ''}\0${p.key === undefined ? p.text : ''}`;
    if (!seen.has(id)) {
      seen.add(id);
      problems.push(p);
    }
  };
  for (const e of validate.errors ?? []) {
    if (
      (e as { propertyName?: string }).propertyName !== undefined ||
      e.keyword === 'if' ||
      e.keyword === 'allOf'
    )
      continue;
    const path = e.instancePath.split('/').slice(1).map(unescapePointer);
    const params = e.params as Record<string, unknown>;
    if (path.length === 0) {
      if (e.keyword === 'additionalProperties')
        unknownTop(
          String(params.additionalProperty),
          raw[String(params.additionalProperty)],
        ).forEach(add);
      else if (e.keyword === 'required')
        add({
          section: 'agent',
          key: 'user',
          text: `required: expected ${expectedPhrase(keySchema('agent', 'user', raw))}`,
        });
      else add({ text: `not an INI file guard understands (${e.message ?? e.keyword})` });
      continue;
    }
    const [top, second] = path as [string, string | undefined];
    const named = NAMED_SECTIONS.includes(top);
    if (named && second === undefined) {
      if (e.keyword === 'propertyNames') {
        add({
          section: `${top}.${String(params.propertyName)}`,
          text: `a ${top} name must be 1 to 64 letters, digits, "_" or "-"`,
        });
      } else {
        add({ key: top, text: `expected [${top}.NAME] sections, got ${shown(raw[top])}` });
      }
      continue;
    }
    const section = named ? `${top}.${second}` : top;
    const rest = path.slice(named ? 2 : 1);
    const sectionValue = named ? asObject(raw[top])?.[second!] : raw[top];
    if (rest.length === 0) {
      if (e.keyword === 'additionalProperties') {
        const key = String(params.additionalProperty);
        if (asObject(asObject(sectionValue)?.[key]) !== undefined)
          add({ section: `${section}.${key}`, text: 'unknown section' });
        else add(unknownKey(section, key, raw));
      } else if (e.keyword === 'required' && named && isOnlyParent(sectionValue)) {
        // only there as the parent of a deeper [source.a.b], which is reported itself
      } else if (e.keyword === 'required') {
        const key = String(params.missingProperty);
        add({
          section,
          key,
          text: `required: expected ${expectedPhrase(keySchema(section, key, raw))}`,
        });
      } else if (e.keyword === 'type' && named) {
        add({
          section: top,
          key: second,
          text: `unknown key (a ${top} is a section of its own: [${top}.${second}])`,
        });
      } else if (e.keyword === 'type') {
        add({ key: top, text: `expected a [${top}] section, got ${shown(sectionValue)}` });
      }
      continue;
    }
    const key = rest[0]!;
    const value = asObject(sectionValue)?.[key];
    add({
      section,
      key,
      text: `expected ${expectedPhrase(keySchema(section, key, raw))}, got ${shown(value)}`,
    });
  }
  return problems;
}

/**
 * Where each section and key first appears (a line number, for putting problems in file order),
 * and the keys given twice in one section without `[]`: ini keeps the last value and silently
 * drops the rest, which would lose an exclude or a redaction pattern. Lines are read as ini reads them.
 */
export function scanLines(text: string): { line: Map<string, number>; repeated: Problem[] } {
  const line = new Map<string, number>();
  const repeated: Problem[] = [];
  const lists = new Set<string>(); // keys written as key[] = …: ini appends to them from then on
  let section = '';
  text.split(/\r\n|\r|\n/).forEach((l, i) => {
    if (/^\s*([;#]|$)/.test(l)) return;
    const header = /^\s*\[([^\]]*)\]\s*$/.exec(l);
    if (header) {
      section = header[1]!.trim();
      if (!line.has(`${section}\0`)) line.set(`${section}\0`, i + 1);
      return;
    }
    const eq = l.indexOf('=');
    const key = (eq < 0 ? l : l.slice(0, eq)).trim();
    if (key === '') return;
    const id = `${section}\0${key.replace(/\[\]$/, '')}`;
    line.set(`${section}\0[end]`, i + 1);
    if (key.endsWith('[]')) lists.add(id);
    else if (line.has(id) && !lists.has(id)) {
      repeated.push({
        section: section === '' ? undefined : section,
        key,
        text: `given more than once (only the last would count); for a list write ${key}[] = … on each line`,
      });
    }
    if (!line.has(id)) line.set(id, i + 1);
  });
  return { line, repeated };
}

/** Problems in the order of the lines they are about; those about no line (a missing key) after their section. */
export function inFileOrder(problems: Problem[], line: Map<string, number>): Problem[] {
  const at = (p: Problem): number => {
    const section = p.section ?? '';
    return (
      line.get(`${section}\0${p.key ?? ''}`) ??
      (line.get(`${section}\0[end]`) ?? line.get(`${section}\0`) ?? Infinity) + 0.5
    );
  };
  return problems
    .map((p, i) => ({ p, i, n: at(p) }))
    .sort((a, b) => a.n - b.n || a.i - b.i)
    .map(({ p }) => p);
}
