#!/usr/bin/env node
// Runs the unit tests (packages/*/test) and the system tests (test/), all with node's own runner.
// System tests start the real helper as root and act as real users: without root they cannot run,
// and this says so and fails rather than reporting a green run that tested nothing.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const unitOnly = process.argv.includes('--unit');
const filter = process.argv.slice(2).filter((a) => !a.startsWith('--'));

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'build' || name === 'dist') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const unit = readdirSync(join(root, 'packages')).flatMap((p) => {
  try {
    return find(join(root, 'packages', p, 'test'));
  } catch {
    return [];
  }
});
const system = unitOnly ? [] : find(join(root, 'test'));
if (!unitOnly && process.getuid() !== 0) {
  console.error('\nSYSTEM TESTS NOT RUN: they start guard-helper as root and create test users.');
  console.error('Run `sudo npm test` (or `npm run test:unit` for the unit tests alone).\n');
  process.exit(1);
}
let files = [...unit, ...system].map((f) => relative(root, f)).sort();
if (filter.length) files = files.filter((f) => filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}

console.log(
  `running ${files.filter((f) => f.startsWith('packages/')).length} unit and ${files.filter((f) => f.startsWith('test/')).length} system test files as uid ${process.getuid()}${process.getuid() === 0 ? ' (root: system tests start the real helper as root and act as real test users)' : ''}`,
);
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', ...files],
  { cwd: root, stdio: 'inherit' },
);
process.exit(r.status ?? 1);
