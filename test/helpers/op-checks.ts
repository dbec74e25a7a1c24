/**
 * Checks of a differentiable op shared by method tests. Independent of the code under test: they compare the
 * op's tf.grad with finite differences of its own float32 forward.
 */
import * as tf from '@tensorflow/tfjs-core';
import { assertClose, f64, finiteDifference } from './numeric.js';

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
