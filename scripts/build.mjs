#!/usr/bin/env node
// Builds everything the tests and the installer use:
//   1. the fdpass and journal addons (node-gyp, only when their C sources changed),
//   2. the request validators (ajv standalone, so no ajv at run time),
//   3. one bundle per program in dist/ (esbuild), the addon copied beside them.
// The helper bundle's metafile is what `npm run root-surface` reads.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function newest(dir) {
  return Math.max(
    ...readdirSync(dir)
      .filter((f) => /\.(c|h|gyp)$/.test(f))
      .map((f) => statSync(join(dir, f)).mtimeMs),
  );
}
// The native addons: fdpass (root surface) and journal (the agent's sd-journal reader).
for (const name of ['fdpass', 'journal']) {
  const pkg = join(root, 'packages', name);
  const addon = join(pkg, `build/Release/${name}.node`);
  if (
    !existsSync(addon) ||
    statSync(addon).mtimeMs < Math.max(newest(join(pkg, 'src')), newest(pkg))
  ) {
    execFileSync('npm', ['run', 'build', '--silent', '-w', `packages/${name}`], {
      cwd: root,
      stdio: 'inherit',
    });
  }
}

execFileSync(process.execPath, [join(root, 'packages/protocol/scripts/gen-validators.mjs')], {
  stdio: 'inherit',
});
execFileSync(process.execPath, [join(root, 'packages/agent/scripts/gen-config-validator.mjs')], {
  stdio: 'inherit',
});

const programs = {
  'guard-helper': 'packages/helper/src/main.ts',
  guardctl: 'packages/guardctl/src/main.ts',
  'guard-agent': 'packages/agent/src/main.ts',
};
const dist = join(root, 'dist');
mkdirSync(dist, { recursive: true });
for (const [name, entry] of Object.entries(programs)) {
  if (!existsSync(join(root, entry))) continue;
  const result = await build({
    entryPoints: [join(root, entry)],
    outfile: join(dist, `${name}.js`),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    banner: { js: '#!/usr/bin/env node' },
    loader: { '.node': 'copy' },
    assetNames: '[name]',
    metafile: true,
    logLevel: 'warning',
  });
  writeFileSync(join(dist, `${name}.meta.json`), JSON.stringify(result.metafile, null, 1));
}
