// The packages `npm run package` builds (dist/packages/), built here first when they are missing or
// older than what they are made of; and installer/layout.sh as its shell sees it.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './sandbox';

export const packagesDir = join(repoRoot, 'dist/packages');
export const version = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'))
  .version as string;
export const deb = join(packagesDir, `guard_${version}_amd64.deb`);
export const rpm = join(packagesDir, `guard-${version}.x86_64.rpm`);
export const tgz = join(packagesDir, `guard-${version}-linux-x64.tar.gz`);

/** installer/layout.sh's GUARD_* variables. */
export const layout: Record<string, string> = Object.fromEntries(
  execFileSync(
    'bash',
    [
      '-c',
      '. "$1"; for v in ${!GUARD_@}; do printf "%s=%s\\0" "$v" "${!v}"; done',
      'layout',
      join(repoRoot, 'installer/layout.sh'),
    ],
    { encoding: 'utf8' },
  )
    .split('\0')
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);

/** Runs scripts/package.mjs unless the three packages are newer than every input. */
export function ensurePackages(): void {
  const inputs = [
    'dist/guard-agent.js',
    'dist/guard-helper.js',
    'dist/guardctl.js',
    'scripts/package.mjs',
    'installer/layout.sh',
    'installer/package/maint.sh',
    'installer/package/runtime.json',
  ].map((f) => statSync(join(repoRoot, f)).mtimeMs);
  const fresh = [deb, rpm, tgz].every(
    (f) => existsSync(f) && statSync(f).mtimeMs > Math.max(...inputs),
  );
  if (!fresh)
    execFileSync(process.execPath, [join(repoRoot, 'scripts/package.mjs')], {
      stdio: ['ignore', 'ignore', 'inherit'],
      timeout: 15 * 60_000,
    });
}
