// guard as an operator installs it, inside a container booted with a real init (container.ts): the
// checkout copied in, install.sh run there, and a numbered line writer on a root-only log whose
// lines are counted in the default file sink by sequence number.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import type { Container } from './container';
import { repoRoot } from './sandbox';

export const SEQ_LOG = '/var/log/guard-seq.log';
export const SINK = '/var/lib/guard/out/events.ndjson';
export const SEQ_SOURCE = [
  '',
  '; added by the test: a root-only log (0600) written with numbered lines',
  '[source.seq]',
  'type = file',
  `paths = ${SEQ_LOG}`,
  'parser = plain',
  'start_at = beginning',
  '',
].join('\n');

/** The files of a checkout (tracked and untracked but not ignored), plus dist/ when asked. */
function checkoutFiles(dir: string, withDist: boolean): string[] {
  const out = execFileSync(
    'git',
    ['-C', dir, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  const files = [...new Set(out.split('\0').filter(Boolean))].filter((f) =>
    existsSync(join(dir, f)),
  );
  if (withDist && existsSync(join(dir, 'dist'))) files.push('dist');
  return files;
}

/**
 * Copies the checkout at `from` (default: this one) to `dest` inside the container, mtimes kept (so
 * install.sh finds dist/ up to date when it is copied, and builds when it is not).
 */
export function copyCheckout(
  ct: Container,
  dest: string,
  opts: { from?: string; withDist?: boolean } = {},
): void {
  const from = opts.from ?? repoRoot;
  const files = checkoutFiles(from, opts.withDist ?? true);
  execFileSync('mkdir', ['-p', ct.path(dest)]);
  execFileSync(
    'sh',
    ['-c', 'tar -C "$1" --null -T - -cf - | tar -C "$2" -xf -', 'sh', from, ct.path(dest)],
    { input: files.join('\0'), maxBuffer: 64 << 20 },
  );
}

/**
 * A built copy of an earlier commit (default HEAD~1, or $GUARD_UPGRADE_FROM): `git archive` of it,
 * this checkout's node_modules copied beside it, `npm run build`. Returns its directory (delete it
 * with rmSync when done) and the commit.
 */
export function buildEarlierCommit(): { dir: string; commit: string } {
  const rev = process.env.GUARD_UPGRADE_FROM || 'HEAD~1';
  let commit: string;
  try {
    commit = execFileSync('git', ['-C', repoRoot, 'rev-parse', '--verify', `${rev}^{commit}`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch {
    throw new Error(
      `the upgrade test needs the commit ${rev} (a shallow clone has none: fetch with --depth 2 or more, or set GUARD_UPGRADE_FROM)`,
    );
  }
  const dir = mkdtempSync('/var/tmp/guard-old-');
  try {
    execFileSync('sh', [
      '-c',
      `git -C "$1" archive "$2" | tar -C "$3" -xf -`,
      'sh',
      repoRoot,
      commit,
      dir,
    ]);
    execFileSync('git', ['init', '-q', dir]); // copyCheckout lists files with git
    cpSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'), {
      recursive: true,
      verbatimSymlinks: true,
    });
    execFileSync('npm', ['run', '--silent', 'build'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 5 * 60_000,
    });
    return { dir, commit };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

const WRITER = `#!/bin/sh
# numbered lines into ${SEQ_LOG}, continuing after the last number in it
f=${SEQ_LOG}
n=$(tail -n 1 "$f" 2>/dev/null | sed -n 's/^guard-seq \\([0-9]*\\).*/\\1/p')
n=\${n:-0}
while :; do n=$((n + 1)); echo "guard-seq $n" >>"$f"; sleep 0.05; done
`;

/** Starts the line writer (again, after a reboot), detached from nsenter; its pid in /run. */
export async function startWriter(ct: Container): Promise<void> {
  ct.writeFile('/usr/local/sbin/guard-seq-writer', WRITER, 0o755);
  await ct.sh(
    `[ -e ${SEQ_LOG} ] || install -m 0600 -o root -g root /dev/null ${SEQ_LOG}; ` +
      `setsid -f sh -c 'echo $$ >/run/guard-seq.pid; exec /usr/local/sbin/guard-seq-writer' </dev/null >/dev/null 2>&1`,
  );
}

export async function stopWriter(ct: Container): Promise<void> {
  await ct.exec('kill "$(cat /run/guard-seq.pid)" 2>/dev/null; rm -f /run/guard-seq.pid');
}

export interface SeqCount {
  written: number;
  missing: number[];
  /** lines that arrived more than once, counted once per extra copy */
  duplicates: number;
  /** the duplicated numbers as ranges ("12-40, 77"), for the diagnosis */
  duplicatedRanges: string;
}

function ranges(ns: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ns.length;) {
    let j = i;
    while (j + 1 < ns.length && ns[j + 1] === ns[j]! + 1) j++;
    out.push(i === j ? `${ns[i]}` : `${ns[i]}-${ns[j]}`);
    i = j + 1;
  }
  return out.join(', ');
}

/** The numbers written to the log against the numbers in the sink (all its rotated files). */
export function countSeq(ct: Container): SeqCount {
  const written = ct
    .readFile(SEQ_LOG)
    .split('\n')
    .map((l) => /^guard-seq (\d+)$/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
  const seen = new Map<number, number>();
  const dir = ct.path('/var/lib/guard/out');
  const files = existsSync(dir)
    ? execFileSync('ls', [dir], { encoding: 'utf8' }).split('\n').filter(Boolean)
    : [];
  for (const f of files) {
    const text = execFileSync('cat', [join(dir, f)], { encoding: 'utf8', maxBuffer: 1 << 30 });
    for (const m of text.matchAll(/guard-seq (\d+)/g)) {
      const n = Number(m[1]);
      seen.set(n, (seen.get(n) ?? 0) + 1);
    }
  }
  let duplicates = 0;
  for (const c of seen.values()) duplicates += c - 1;
  const dup = [...seen].filter(([, c]) => c > 1).map(([n]) => n);
  return {
    written: written.length,
    missing: written.filter((n) => !seen.has(n)),
    duplicates,
    duplicatedRanges: ranges(dup.sort((a, b) => a - b)),
  };
}

/** The highest number written so far. */
export function lastWritten(ct: Container): number {
  const m = /guard-seq (\d+)\s*$/.exec(ct.readFile(SEQ_LOG));
  return m ? Number(m[1]) : 0;
}
