/**
 * Seeded randomness for the lab: every shuffle, batch order and corruption draws from here, so a run is
 * reproduced exactly by its seed.
 */

/** A deterministic uniform generator in [0, 1) (mulberry32): 32-bit state, full period 2^32. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal sampler (Box-Muller) over {@link seededRandom}. */
export function seededNormal(seed: number): () => number {
  const u = seededRandom(seed);
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

/** Fisher-Yates shuffle of `0..n-1` with a seeded generator. */
export function seededPermutation(n: number, seed: number): Int32Array {
  const u = seededRandom(seed);
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(u() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** Derives a well-mixed child seed from a parent seed and a salt (different parts of a run get different streams). */
export function deriveSeed(seed: number, salt: number | string): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  const s = String(salt);
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
  }
  h = Math.imul(h ^ (h >>> 16), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
