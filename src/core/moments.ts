/**
 * Numerically stable moments as a composite of tfjs ops (the fallback path and the reference for fused kernels).
 * One algorithm, shifted two-pass, served in three shapes: `stableMoments` (mean, variance), `centeredMoments`
 * (also x - mean) and `shiftedMoments` (the shift K and m = mean(x - K) kept apart).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Mean and biased variance over some axes, both with kept dimensions (they broadcast against x). */
export interface Moments {
  mean: tf.Tensor;
  variance: tf.Tensor;
}

/** The parts of the shifted two-pass moments over some axes, all with kept dimensions. */
export interface ShiftedMoments {
  /** K: the first element of each slice (the mean is K + meanOffset). */
  shift: tf.Tensor;
  /** m = mean(x - K). */
  meanOffset: tf.Tensor;
  /** Biased variance mean((x - K - m)^2). */
  variance: tf.Tensor;
  /** x - mean, computed as (x - K) - m. */
  centered: tf.Tensor;
}

/** `tf.slice(x, begin, size)` with a zero gradient; the slice runs inside the custom op, so no pad is taped. */
function sliceWithoutGradient(x: tf.Tensor, begin: number[], size: number[]): tf.Tensor {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor;
    return { value: tf.slice(input, begin, size), gradFunc: () => tf.zeros(input.shape) };
  });
  return op(x) as tf.Tensor;
}

/**
 * Shifted two-pass moments over `axes` (kept as size-1 dims), returning K and m = mean(x - K) instead of
 * their float32 sum:
 *
 *   K = x[first element of each slice],  d = x - K,  m = mean(d),  centered = d - m,  var = mean(centered^2).
 *
 * For methods that compare the batch mean with another statistic s near the same offset (a stored moving
 * mean, say): `(s - K) - m` is s - mean to full precision, where `s - (K + m)` would first round the mean to
 * the offset's ulp (1e-3 at 1e4). Call inside tf.tidy.
 */
export function shiftedMoments(x: tf.Tensor, axes: readonly number[]): ShiftedMoments {
  const begin = x.shape.map(() => 0);
  const size = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  // K is taken out of the gradient: the moments do not depend on it, and a slice's gradient is a pad, which
  // tfjs's WebGL backend cannot compile for rank 5 (GroupNorm's [N, H, W, G, C/G]).
  const shift = sliceWithoutGradient(x, begin, size);
  const d = tf.sub(x, shift);
  const meanOffset = tf.mean(d, axes as number[], true);
  const centered = tf.sub(d, meanOffset);
  const variance = tf.mean(tf.square(centered), axes as number[], true);
  return { shift, meanOffset, variance, centered };
}

/**
 * Shifted two-pass moments over `axes` (kept as size-1 dims): mean = K + m and var = mean((d - m)^2) with
 * K, d, m as in `shiftedMoments`.
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
    const { shift, meanOffset, variance, centered } = shiftedMoments(x, axes);
    return { mean: tf.add(shift, meanOffset), variance, centered };
  });
}
