/**
 * Seeded pseudo-random numbers for tests that draw many cases (fuzz runs): the same seed gives the
 * same cases, so a failing one can be replayed.
 */

/** mulberry32: small, fast, seeded; floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Deterministic integers in [0, n) from prng(seed). */
export function seededInts(seed: number): (n: number) => number {
  const next = prng(seed);
  return n => Math.floor(next() * n);
}
