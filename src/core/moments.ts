/**
 * Numerically stable moments as a composite of tfjs ops (the fallback path, which runs on every backend, and
 * the reference for fused kernels). One algorithm, shifted and scaled two-pass with blocked sums:
 *
 * - shift: K, the first element of each slice, treated as a constant (no gradient). Subtracting it makes
 *   d = x - K small when the slice sits on a large common offset (mean 1e4, std 1e-2), so no digits are lost.
 *   As a constant it cancels in every output, so it must not carry a gradient: otherwise the first element
 *   of each slice collects the rounding residue of the whole slice's gradient.
 * - scale: s, a power of two >= 1 above max|d| per slice, also a constant. Working on d / s keeps
 *   squares and sums of magnitudes up to 1e38 finite and keeps tfjs's rsqrt gradient, which forms
 *   (var + eps)^-1.5, away from float32 underflow (magnitudes 1e15 and up). A power of two divides exactly.
 * - blocked sums: means over more than {@link BLOCK} elements are summed in blocks, then the block sums (a
 *   few levels), because some backends (tfjs-wasm) accumulate in float32: the error of 1e5 elements drops
 *   from ~1e-4 to float32 rounding.
 *
 * Served in four shapes: `scaledMoments` (all parts, for methods that need them), `standardize` (the
 * normalized slices, what most methods need), `shiftedMoments` (K and m kept apart), `centeredMoments` /
 * `stableMoments` (plain mean and variance).
 */
import * as tf from '@tensorflow/tfjs-core';
import { constantOf } from './stop-gradient.js';

/** Mean and biased variance over some axes, both with kept dimensions (they broadcast against x). */
export interface Moments {
  mean: tf.Tensor;
  variance: tf.Tensor;
}

/** The parts of the shifted two-pass moments over some axes, all with kept dimensions. */
export interface ShiftedMoments {
  /** K: the first element of each slice (the mean is K + meanOffset); carries no gradient. */
  shift: tf.Tensor;
  /** m = mean(x - K). */
  meanOffset: tf.Tensor;
  /** Biased variance mean((x - K - m)^2). */
  variance: tf.Tensor;
  /** x - mean, computed as (x - K) - m. */
  centered: tf.Tensor;
}

/** The shifted and scaled parts: everything relative to K and in units of s (kept dimensions). */
export interface ScaledMoments {
  /** K: the first element of each slice; carries no gradient. */
  shift: tf.Tensor;
  /** s: a power of two > max|x - K| and >= 1 per slice; carries no gradient. */
  scale: tf.Tensor;
  /** mean((x - K) / s). */
  meanOffset: tf.Tensor;
  /** ((x - K) / s) - meanOffset, i.e. (x - mean) / s. */
  centered: tf.Tensor;
  /** mean(centered^2) = var / s^2. */
  variance: tf.Tensor;
}

/** Means over more elements than this are summed in blocks of this size. */
const BLOCK = 64;

/**
 * Sum over `axes` with kept dimensions, in blocks of {@link BLOCK} (and block sums in blocks, and so on)
 * when the slice is long, so a float32 accumulator loses at most a few ulps. An empty slice gives 0.
 */
export function blockedSum(t: tf.Tensor, axes: readonly number[]): tf.Tensor {
  const n = axes.reduce((p, a) => p * t.shape[a], 1);
  if (n <= BLOCK || t.size === 0) return tf.sum(t, axes as number[], true);
  return tf.tidy(() => {
    const keptShape = t.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const others = t.shape.map((_, i) => i).filter((i) => !axes.includes(i));
    const perm = [...others, ...[...axes].sort((a, b) => a - b)];
    const trailing = perm.every((p, i) => p === i);
    const outer = t.size / n;
    let u = tf.reshape(trailing ? t : tf.transpose(t, perm), [outer, n]);
    for (let len = n; len > BLOCK; len = Math.ceil(len / BLOCK)) {
      const blocks = Math.ceil(len / BLOCK);
      if (blocks * BLOCK !== len) u = tf.pad(u, [[0, 0], [0, blocks * BLOCK - len]]);
      u = tf.sum(tf.reshape(u, [outer, blocks, BLOCK]), 2);
    }
    return tf.reshape(tf.sum(u, 1), keptShape);
  });
}

/** Mean over `axes` with kept dimensions, summed as in {@link blockedSum}. An empty slice gives NaN. */
export function blockedMean(t: tf.Tensor, axes: readonly number[]): tf.Tensor {
  const n = axes.reduce((p, a) => p * t.shape[a], 1);
  if (n <= BLOCK || t.size === 0) return tf.mean(t, axes as number[], true);
  return tf.tidy(() => tf.div(blockedSum(t, axes), n));
}

/**
 * `t` (one value per slice, kept dims) broadcast to `shape` for an elementwise op with a slice of more than
 * {@link BLOCK} elements, with a blocked sum as its gradient: tfjs's broadcasting ops reduce their gradients
 * with plain sums, which lose digits on long slices where accumulation is float32. Short slices broadcast
 * as usual.
 */
function spread(t: tf.Tensor, shape: readonly number[], axes: readonly number[]): tf.Tensor {
  if (axes.reduce((p, a) => p * shape[a], 1) <= BLOCK) return t;
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const v = args[0] as tf.Tensor;
    return { value: tf.broadcastTo(v, shape as number[]), gradFunc: (dy: tf.Tensor) => blockedSum(dy, axes) };
  });
  return f(t);
}

/**
 * A power of two > max|t| and >= 1 over `axes` (kept dims), without gradient. Division by it is exact.
 * The exponent is capped at 127 (the largest float32 power of two) so non-finite slices stay non-finite.
 */
export function powerOfTwoScale(t: tf.Tensor, axes: readonly number[]): tf.Tensor {
  return constantOf(t, (u) => {
    const maxAbs = tf.max(tf.abs(u), axes as number[], true);
    // floor + 1 rather than ceil: s >= max|t| even where log2 rounds an exact power of two down.
    const exponent = tf.clipByValue(tf.add(tf.floor(tf.div(tf.log(maxAbs), Math.LN2)), 1), 0, 127);
    return tf.pow(tf.scalar(2), exponent);
  });
}

/**
 * Shifted, scaled two-pass moments over `axes` (kept as size-1 dims):
 *
 *   K = x[first element of each slice] (constant),  s = 2^(floor(log2 max|x - K|) + 1) >= 1 (constant),
 *   u = (x - K) / s,  m = mean(u),  centered = u - m,  var = mean(centered^2),
 *
 * so the plain mean is K + s m and the plain variance s^2 var. Sums are blocked ({@link blockedMean}).
 * An empty slice (a reduced axis of size 0) gives NaN statistics and an empty `centered`. Call inside
 * tf.tidy.
 */
export function scaledMoments(x: tf.Tensor, axes: readonly number[]): ScaledMoments {
  const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  if (x.size === 0) {
    // No element: empty statistics (NaN where a slice exists but is empty), and no reduction, which would
    // trap in tfjs-wasm.
    const nan = tf.fill(keptShape, NaN);
    return { shift: tf.zeros(keptShape), scale: tf.ones(keptShape), meanOffset: nan, centered: tf.reshape(x, x.shape), variance: tf.clone(nan) };
  }
  const shift = constantOf(x, (t) => tf.slice(t, t.shape.map(() => 0), keptShape));
  const d = tf.sub(x, shift);
  const scale = powerOfTwoScale(d, axes);
  const u = tf.div(d, scale);
  const meanOffset = blockedMean(u, axes);
  const centered = tf.sub(u, spread(meanOffset, x.shape, axes));
  const variance = blockedMean(tf.square(centered), axes);
  return { shift, scale, meanOffset, centered, variance };
}

/**
 * The standardized slices `(x - mean) / sqrt(var + eps)` over `axes`, with the plain mean and biased
 * variance (kept dims), computed from {@link scaledMoments} as `centered * rsqrt(var_s + (eps / s) / s)`:
 * exact for offsets, long slices and magnitudes from 1e-20 to 1e38, with finite gradients. Call inside
 * tf.tidy.
 *
 * @example
 * const y = tf.tidy(() => standardize(x, [x.rank - 1], 1e-5).xhat); // LayerNorm without gamma and beta
 */
export function standardize(x: tf.Tensor, axes: readonly number[], epsilon: number): Moments & { xhat: tf.Tensor } {
  const { shift, scale, meanOffset, centered, variance } = scaledMoments(x, axes);
  const xhat = tf.mul(centered, spread(tf.rsqrt(tf.add(variance, tf.div(tf.div(epsilon, scale), scale))), x.shape, axes));
  return { xhat, mean: tf.add(shift, tf.mul(meanOffset, scale)), variance: tf.mul(tf.mul(variance, scale), scale) };
}

/** {@link standardize}'s xhat with rstd = 1 / sqrt(var + eps) (kept dims), for explicit backward formulas. */
export function standardizeWithRstd(x: tf.Tensor, axes: readonly number[], epsilon: number): { xhat: tf.Tensor; rstd: tf.Tensor } {
  const { scale, centered, variance } = scaledMoments(x, axes);
  const scaledRstd = tf.rsqrt(tf.add(variance, tf.div(tf.div(epsilon, scale), scale)));
  return { xhat: tf.mul(centered, spread(scaledRstd, x.shape, axes)), rstd: tf.div(scaledRstd, scale) };
}

/**
 * The RMS-normalized slices `x / sqrt(mean(stats^2) + eps)` over `axes` (`stats` defaults to `x`; pRMSNorm
 * passes the leading part of it), computed in units of a power-of-two scale of max|stats| so that squares
 * neither overflow nor make the rsqrt gradient underflow. Call inside tf.tidy.
 */
export function rmsStandardize(x: tf.Tensor, axes: readonly number[], epsilon: number, stats: tf.Tensor = x): tf.Tensor {
  return rmsStandardizeWithRstd(x, axes, epsilon, stats).xhat;
}

/** {@link rmsStandardize} with rstd = 1 / sqrt(mean(stats^2) + eps) (kept dims). */
export function rmsStandardizeWithRstd(x: tf.Tensor, axes: readonly number[], epsilon: number, stats: tf.Tensor = x): { xhat: tf.Tensor; rstd: tf.Tensor } {
  if (stats.size === 0) {
    const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    return { xhat: tf.mul(x, NaN), rstd: tf.fill(keptShape, NaN) };
  }
  const scale = powerOfTwoScale(stats, axes);
  const meanSquare = blockedMean(tf.square(tf.div(stats, scale)), axes);
  const scaledRstd = tf.rsqrt(tf.add(meanSquare, tf.div(tf.div(epsilon, scale), scale)));
  return { xhat: tf.mul(tf.div(x, scale), spread(scaledRstd, x.shape, axes)), rstd: tf.div(scaledRstd, scale) };
}

/**
 * Shifted two-pass moments over `axes` (kept as size-1 dims), returning K and m = mean(x - K) instead of
 * their float32 sum (see {@link scaledMoments}).
 *
 * For methods that compare the batch mean with another statistic s near the same offset (a stored moving
 * mean, say): `(s - K) - m` is s - mean to full precision, where `s - (K + m)` would first round the mean to
 * the offset's ulp (1e-3 at 1e4). Call inside tf.tidy.
 */
export function shiftedMoments(x: tf.Tensor, axes: readonly number[]): ShiftedMoments {
  const { shift, scale, meanOffset, centered, variance } = scaledMoments(x, axes);
  return {
    shift,
    meanOffset: tf.mul(meanOffset, scale),
    variance: tf.mul(tf.mul(variance, scale), scale),
    centered: tf.mul(centered, scale),
  };
}

/**
 * Shifted two-pass moments over `axes` (kept as size-1 dims): mean = K + m and var = mean((d - m)^2) with
 * K, d, m as in `shiftedMoments`. Mathematically K and s cancel, so gradients through this function equal
 * those of the textbook formula.
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
