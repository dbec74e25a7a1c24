/**
 * Checks of a differentiable op shared by method tests: its tf.grad against finite differences of its own
 * float32 forward, its forward and gradient against a float64 reference the caller computes, and leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { assertClose, assertNoLeak, f64, finiteDifference } from './numeric.js';

/**
 * Asserts that the gradient of `L(x) = sum(op(x) * dy)` from tf.grad equals central finite differences of L
 * with step `h`, at x = `xv` and dy = `dyv` (both of `shape`), within `tol`. `op` runs inside tf.tidy.
 */
export function assertGradMatchesFiniteDifferences(
  op: (x: tf.Tensor) => tf.Tensor,
  shape: number[],
  xv: ArrayLike<number>,
  dyv: ArrayLike<number>,
  { h = 1e-2, tol = { atol: 5e-3, rtol: 5e-2 } }: { h?: number; tol?: { atol?: number; rtol?: number } } = {},
): void {
  const loss = (v: Float64Array) => tf.tidy(() => tf.sum(tf.mul(op(tf.tensor(Float32Array.from(v), shape)), tf.tensor(dyv, shape))).dataSync()[0]);
  const fd = finiteDifference(loss, Float64Array.from(xv), h);
  const dxT = tf.tidy(() => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(op(x), tf.tensor(dyv, shape))))(tf.tensor(xv, shape)));
  const dx = f64(dxT);
  dxT.dispose();
  assertClose(dx, fd, tol, 'dx vs finite differences');
}

/** Tolerances of one comparison (see assertClose). */
type Tolerance = { atol?: number; rtol?: number };

/**
 * Asserts that `op(x)` equals `expected.y` and that the gradient of `sum(op(x) * dy)` from tf.grad equals
 * `expected.dx`, at x = `xv` and dy = `dyv` (both of `shape`). The expected values are the caller's float64
 * reference (never derived from the op).
 */
export function assertForwardAndGradient(
  op: (x: tf.Tensor) => tf.Tensor,
  shape: number[],
  xv: ArrayLike<number>,
  dyv: ArrayLike<number>,
  expected: { y: ArrayLike<number>; dx: ArrayLike<number> },
  tol: { y: Tolerance; dx: Tolerance },
): void {
  tf.tidy(() => {
    assertClose(f64(op(tf.tensor(xv, shape))), expected.y, tol.y, 'y');
    const dx = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(op(x), tf.tensor(dyv, shape))))(tf.tensor(xv, shape));
    assertClose(f64(dx), expected.dx, tol.dx, 'dx');
  });
}

/**
 * Asserts that an op with a scale parameter leaves tf.memory().numTensors unchanged, in its forward
 * `op(x, gamma)` and in the gradient of `sum(op(x, gamma))` with respect to both.
 */
export async function assertOpNoLeak(op: (x: tf.Tensor, gamma: tf.Tensor) => tf.Tensor, x: tf.Tensor, gamma: tf.Tensor): Promise<void> {
  await assertNoLeak(() => op(x, gamma).dispose(), 'forward');
  await assertNoLeak(() => tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(op(a, b)))([x, gamma])), 'gradient');
}
