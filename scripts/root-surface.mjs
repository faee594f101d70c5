#!/usr/bin/env node
// Prints every file of ours that the root helper process loads, with its non-blank line count, from
// the esbuild metafile of dist/guard-helper.js, plus the C sources of every addon it loads (each
// .node in the metafile, its sources read from its package's binding.gyp, with the local headers
// they include): an addon only the agent loads (fdpass-connect) is not counted, one the helper
// loads always is. Lines are
// counted on the code as the repository's formatters write it (prettier for TypeScript,
// clang-format for C, run here on the file's text whatever is on disk), so dense code earns nothing.
// Fails when TypeScript is over 750 lines or C over 500, or when the bundle pulls in any npm package
// but `ini`. Generated validators are listed and not counted (they are built from schema.json).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as prettier from 'prettier';

const root = new URL('..', import.meta.url).pathname;
const BUDGET = { ts: 750, c: 500 };
const ALLOWED_DEPS = new Set(['ini']);
const prettierOptions = await prettier.resolveConfig(join(root, 'package.json'));
const nonBlank = (text) => text.split('\n').filter((l) => l.trim() !== '').length;
const raw = (file) => nonBlank(readFileSync(join(root, file), 'utf8'));
async function formattedTs(file) {
  const text = readFileSync(join(root, file), 'utf8');
  return nonBlank(await prettier.format(text, { ...prettierOptions, filepath: join(root, file) }));
}
function formattedC(file) {
  const text = execFileSync('clang-format', [`--assume-filename=${file}`], {
    cwd: root,
    input: readFileSync(join(root, file)),
    encoding: 'utf8',
  });
  return nonBlank(text);
}

const meta = JSON.parse(readFileSync(join(root, 'dist/guard-helper.meta.json'), 'utf8'));
const rows = [];
const deps = new Set();
const addons = [];
const problems = [];
for (const input of Object.keys(meta.inputs).sort()) {
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
  if (dep) {
    deps.add(dep[1]);
    rows.push(['dep', input, raw(input)]);
    continue;
  }
  if (input.includes('/generated/')) rows.push(['generated', input, raw(input)]);
  else if (input.endsWith('.node')) addons.push(input);
  else rows.push(['ts', input, await formattedTs(input)]);
}
// packages/NAME/build/Release/TARGET.node -> the sources of TARGET in packages/NAME/binding.gyp
const cfiles = new Set();
const withHeaders = (file) => {
  if (cfiles.has(file)) return;
  cfiles.add(file);
  for (const m of readFileSync(join(root, file), 'utf8').matchAll(/^#include "([^"]+)"/gm))
    withHeaders(join(dirname(file), m[1]));
};
for (const addon of addons) {
  const m = /^(.*)\/build\/Release\/([^/]+)\.node$/.exec(addon);
  const gyp = m && JSON.parse(readFileSync(join(root, m[1], 'binding.gyp'), 'utf8'));
  const target = gyp?.targets.find((t) => t.target_name === m[2]);
  if (!target) problems.push(`cannot find the sources of ${addon}, which the helper loads`);
  for (const src of target?.sources ?? []) withHeaders(join(m[1], src));
}
if (cfiles.size === 0) problems.push('no C sources found for the helper: the count would be empty');
for (const f of [...cfiles].sort()) rows.push(['c', f, formattedC(f)]);

const total = (kind) => rows.filter((r) => r[0] === kind).reduce((n, r) => n + r[2], 0);
const width = Math.max(...rows.map((r) => r[1].length));
console.log(
  'Files the guard-helper process loads from this repository (non-blank lines, formatted):',
);
for (const [kind, file, n] of rows)
  console.log(`  ${kind.padEnd(9)} ${file.padEnd(width)} ${String(n).padStart(5)}`);
const ts = total('ts');
const c = total('c');
console.log(
  `\nTypeScript ${ts} / ${BUDGET.ts}, C ${c} / ${BUDGET.c}, generated ${total('generated')} (not counted), npm dependencies: ${[...deps].join(', ') || 'none'}`,
);
if (ts > BUDGET.ts) problems.push(`TypeScript over budget by ${ts - BUDGET.ts} lines`);
if (c > BUDGET.c) problems.push(`C over budget by ${c - BUDGET.c} lines`);
for (const d of deps)
  if (!ALLOWED_DEPS.has(d))
    problems.push(`runtime dependency ${d} is not allowed in the root helper`);
if (problems.length) {
  console.error(`\nroot surface check FAILED: ${problems.join('; ')}`);
  process.exit(1);
}
console.log('root surface check passed');
