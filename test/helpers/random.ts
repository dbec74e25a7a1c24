/**
 * Deterministic random data for tests, with no Node or tfjs import so browser test pages can bundle it (the
 * uniform generator is the lab's own seeded one).
 */
import { seededRandom as rng } from '../../src/lab/rng.js';

export { rng };

/** `n` standard normal values (Box-Muller) scaled to `mean + std * z`, as a Float32Array. */
export function randn(n: number, seed: number, mean = 0, std = 1): Float32Array {
  const u = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const z = Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
    out[i] = mean + std * z;
  }
  return out;
}
