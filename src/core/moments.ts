/**
 * Numerically stable moments as a composite of tfjs ops (the fallback path and the reference for fused kernels).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Mean and biased variance over some axes, both with kept dimensions (they broadcast against x). */
export interface Moments {
  mean: tf.Tensor;
  variance: tf.Tensor;
}

/**
 * Shifted two-pass moments over `axes` (kept as size-1 dims):
 *
 *   K = x[first element of each slice],  d = x - K,  m = mean(d),  var = mean((d - m)^2),  mean = K + m.
 *
 * Subtracting a sample of the slice first makes `d` small when the slice sits on a large common offset
 * (mean 1e4, std 1e-2), so float32 sums lose no digits; the second pass never forms E[x^2] - E[x]^2.
 * Mathematically K cancels, so gradients through this function equal those of the textbook formula.
 */
export function stableMoments(x: tf.Tensor, axes: readonly number[]): Moments {
  return tf.tidy(() => {
    const { mean, variance } = centeredMoments(x, axes);
    return { mean, variance };
  });
}

/**
 * Shifted two-pass moments where the result is also needed centered: returns `xc = x - mean` computed as
 * `d - m`, which keeps the digits the shift saved (x - mean directly would round mean to x's ulp first).
 */
export function centeredMoments(x: tf.Tensor, axes: readonly number[]): Moments & { centered: tf.Tensor } {
  return tf.tidy(() => {
    const begin = x.shape.map(() => 0);
    const size = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const shift = tf.slice(x, begin, size);
    const d = tf.sub(x, shift);
    const m = tf.mean(d, axes as number[], true);
    const centered = tf.sub(d, m);
    const variance = tf.mean(tf.square(centered), axes as number[], true);
    return { mean: tf.add(shift, m), variance, centered };
  });
}
