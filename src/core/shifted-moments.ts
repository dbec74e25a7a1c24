/**
 * Shifted moments that keep the shift separate from the mean, for methods that compare a batch mean with
 * another statistic on the same large offset (a stored moving mean, say).
 */
import * as tf from '@tensorflow/tfjs-core';

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

/**
 * As `centeredMoments` (core/moments.ts) but returns K and m = mean(x - K) instead of their float32 sum: with
 * a value s near the same offset, `(s - K) - m` is s - mean to full precision, where `s - (K + m)` would first
 * round the mean to the offset's ulp (1e-3 at 1e4). Call inside tf.tidy.
 */
export function shiftedMoments(x: tf.Tensor, axes: readonly number[]): ShiftedMoments {
  const begin = x.shape.map(() => 0);
  const size = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const shift = tf.slice(x, begin, size);
  const d = tf.sub(x, shift);
  const meanOffset = tf.mean(d, axes as number[], true);
  const centered = tf.sub(d, meanOffset);
  const variance = tf.mean(tf.square(centered), axes as number[], true);
  return { shift, meanOffset, variance, centered };
}
