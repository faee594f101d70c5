// How long the fuzz tests run. Under `npm test` (CI): fixed seeds and a bounded number of runs, so
// a failure reproduces and the whole set stays well under a minute. `npm run fuzz` multiplies the
// runs (GUARD_FUZZ_SCALE, 50 there) and takes a fresh seed, printed so a failure can be replayed
// with GUARD_FUZZ_SEED=N. An input a fuzzer found is kept as a regression test next to the
// property that found it.
import type { Parameters } from 'fast-check';

export const SCALE = Math.max(1, Number(process.env.GUARD_FUZZ_SCALE ?? '1') || 1);

const given = process.env.GUARD_FUZZ_SEED;
const fresh = (Date.now() ^ (process.pid << 16)) | 0;

/** fast-check parameters: `runs` runs in CI (times SCALE on demand), the fixed seed unless asked. */
export function fuzz<T>(fixedSeed: number, runs: number): Parameters<T> {
  const seed = given !== undefined ? Number(given) : SCALE > 1 ? fresh : fixedSeed;
  if (SCALE > 1 || given !== undefined) console.log(`fuzz seed ${seed} (GUARD_FUZZ_SEED=${seed})`);
  return { seed, numRuns: runs * SCALE, endOnFailure: true };
}
