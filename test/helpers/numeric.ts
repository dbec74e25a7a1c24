/**
 * Test utilities: deterministic random data, float64 views, closeness assertions, finite differences and
 * tensor-leak checks. Independent of the code under test.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';

/** Deterministic uniform generator in [0, 1) (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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

/** A float32 tensor of standard normal values. */
export function randnTensor(shape: number[], seed: number, mean = 0, std = 1): tf.Tensor {
  return tf.tensor(randn(shape.reduce((a, b) => a * b, 1), seed, mean, std), shape, 'float32');
}

/** The values of a tensor as float64. */
export function f64(t: tf.Tensor): Float64Array {
  return Float64Array.from(t.dataSync() as Float32Array);
}

/**
 * Asserts |actual - expected| <= atol + rtol * |expected| elementwise, reporting the worst element.
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: { rtol?: number; atol?: number }, what = 'values'): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  const rtol = tol.rtol ?? 0;
  const atol = tol.atol ?? 0;
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(a) !== Number.isNaN(e)) {
      assert.fail(`${what}[${i}]: got ${a}, expected ${e}`);
    }
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (excess > worstExcess || !Number.isFinite(a) !== !Number.isFinite(e)) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    assert.fail(`${what}[${worst}]: got ${actual[worst]}, expected ${expected[worst]} (rtol ${rtol}, atol ${atol})`);
  }
}

/** Central finite-difference gradient of a scalar float64 function. */
export function finiteDifference(f: (x: Float64Array) => number, x: Float64Array, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  const xp = Float64Array.from(x);
  for (let i = 0; i < x.length; i++) {
    const orig = xp[i];
    xp[i] = orig + h;
    const fp = f(xp);
    xp[i] = orig - h;
    const fm = f(xp);
    xp[i] = orig;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** Runs `fn` and asserts the number of live tensors is unchanged afterwards (awaits async functions). */
export async function assertNoLeak(fn: () => unknown, what = 'call'): Promise<void> {
  const before = tf.memory().numTensors;
  const result = fn();
  if (result instanceof Promise) await result;
  const after = tf.memory().numTensors;
  assert.equal(after, before, `${what} leaked ${after - before} tensor(s)`);
}

/** Asserts that `fn` throws an error whose message mentions every one of `fragments`. */
export function assertThrowsMentioning(fn: () => unknown, fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    for (const f of fragments) assert.ok(msg.includes(f), `error message "${msg}" should mention "${f}"`);
    return true;
  });
}
