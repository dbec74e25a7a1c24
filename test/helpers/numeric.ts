/**
 * Test utilities: deterministic random data, float64 views, closeness assertions, finite differences and
 * tensor-leak checks. Independent of the code under test.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { findViolation } from './close.js';
import { randn } from './random.js';

export { rng, randn } from './random.js';

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
  const v = findViolation(actual, expected, tol);
  if (v) assert.fail(`${what}[${v.index}]: got ${v.actual}, expected ${v.expected} (rtol ${tol.rtol ?? 0}, atol ${tol.atol ?? 0})`);
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
