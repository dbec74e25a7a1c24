/**
 * Euclidean norms that neither overflow nor underflow in float32: the vector is divided by its largest
 * magnitude first (as LAPACK's nrm2 does), so kernels of magnitude 1e-20 or 1e15 keep their digits.
 */
import * as tf from '@tensorflow/tfjs-core';
import { stopGradient } from './stop-gradient.js';

/**
 * Smallest scale used (slices below it are scaled as if their largest magnitude were 1e-18). Its square must
 * stay a normal float32 (>= 1.2e-38): the gradient of x / scale divides by scale^2.
 */
const TINY = 1e-18;

/**
 * `{scaled, scale}` with `scale = max(max|x| over axes, 1e-18)` (kept dims) and `scaled = x / scale`, whose
 * largest magnitude is 1 on every slice (0 on all-zero slices). `||x|| = scale * ||scaled||`. With
 * `constantScale`, the scale carries no gradient: for callers whose result does not depend on it (a ratio of
 * homogeneous terms), which spares the gradient the rounding residue of the max.
 */
export function scaleByMaxAbs(x: tf.Tensor, axes: number[], constantScale = false): { scaled: tf.Tensor; scale: tf.Tensor } {
  return tf.tidy(() => {
    const found = tf.maximum(tf.max(tf.abs(x), axes, true), TINY);
    const scale = constantScale ? stopGradient(found) : found;
    return { scaled: tf.div(x, scale), scale };
  });
}

/** `||x||` over `axes` (kept dims), computed as `scale * sqrt(sum(scaled^2))` (see {@link scaleByMaxAbs}). */
export function scaledL2Norm(x: tf.Tensor, axes: number[]): tf.Tensor {
  return tf.tidy(() => {
    const { scaled, scale } = scaleByMaxAbs(x, axes);
    return tf.mul(scale, tf.sqrt(tf.sum(tf.square(scaled), axes, true)));
  });
}
