/**
 * Region Normalization (Yu et al., AAAI 2020): RN-B with a given binary region mask and RN-L with a region
 * learned from the features, as functional, differentiable ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkFloatTensor, checkInRange, checkKnownKeys, checkOneOf, checkParam, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { scaleByMaxAbs } from '../../core/scaled-norm.js';
import { stopGradient } from '../../core/stop-gradient.js';
import { sigmoid } from '../../core/second-order.js';

/** Where region statistics are pooled: over the batch (`'batch'`, the paper's code) or per sample (`'instance'`). */
export type RegionStatistics = 'batch' | 'instance';
export const REGION_STATISTICS: readonly RegionStatistics[] = ['batch', 'instance'];

/** Options of {@link regionNorm}. */
export interface RegionNormOptions {
  /** The BatchNorm epsilon of the reference code (default 1e-5); effectively scaled by P / S_R, see below. */
  epsilon?: number;
  /** `'batch'` (default, as the paper's code) or `'instance'` (per-sample region statistics). */
  statistics?: RegionStatistics;
  /** Scale offset of the region M = 1, shape [C]: the region is scaled by (1 + foregroundGamma). */
  foregroundGamma?: tf.Tensor;
  /** Shift, shape [C]; added everywhere, as in the reference code (see docs). */
  foregroundBeta?: tf.Tensor;
  /** Scale offset of the region M = 0, shape [C]. */
  backgroundGamma?: tf.Tensor;
  /** Shift, shape [C]; added everywhere, as in the reference code. */
  backgroundBeta?: tf.Tensor;
}

const WHERE_B = 'regionNorm';

/**
 * Basic Region Normalization (RN-B), channels last: `x` is `[N, ...spatial, C]`, `mask` is a binary float32
 * tensor `[N, ...spatial, 1]` (or `[..., C]`) marking the region R (M = 1) and its complement. A rank-4 mask
 * of another spatial size is resized to x's with nearest-neighbour interpolation (as RN-B does). Each region
 * r in {R, not R} is normalized separately, per channel, with statistics pooled over the batch and spatial
 * axes (`statistics: 'batch'`) or the spatial axes of each sample (`'instance'`), then the two are added:
 *
 *   S_r = sum(M_r) (1 if 0),  mu_r = sum(M_r x) / S_r,  var_r = sum(M_r (x - mu_r)^2) / S_r,
 *   rn = sum_r M_r (x - mu_r) / sqrt(var_r + eps P / S_r),        P = number of pooled positions,
 *   y  = rn M (1 + gamma_fg) + rn (1 - M)(1 + gamma_bg) + beta_fg + beta_bg.
 *
 * This is exactly what the reference code computes (fill outside pixels with mu_r, BatchNorm without affine,
 * rescale by sqrt(S_r / P)): its epsilon grows as the region shrinks. The mask is a constant (zero gradient).
 */
export function regionNorm(x: tf.Tensor, mask: tf.Tensor, options: RegionNormOptions = {}): tf.Tensor {
  checkKnownKeys(WHERE_B, options, ['epsilon', 'statistics', 'foregroundGamma', 'foregroundBeta', 'backgroundGamma', 'backgroundBeta']);
  checkFloatTensor(WHERE_B, 'x', x, 3);
  const epsilon = options.epsilon ?? 1e-5;
  const statistics = options.statistics ?? 'batch';
  checkPositive(WHERE_B, 'epsilon', epsilon);
  checkOneOf(WHERE_B, 'statistics', statistics, REGION_STATISTICS);
  const channels = x.shape[x.rank - 1];
  for (const name of ['foregroundGamma', 'foregroundBeta', 'backgroundGamma', 'backgroundBeta'] as const) {
    checkParam(WHERE_B, name, options[name], [channels]);
  }
  checkRegionMask(WHERE_B, x, mask);
  return tf.tidy(() => {
    const m = stopGradient(resizeMask(mask, x.shape));
    const rn = regionNormalize(x, m, epsilon, statistics);
    const fg = tf.mul(rn, m);
    const bg = tf.sub(rn, fg);
    let y = tf.add(options.foregroundGamma ? tf.mul(fg, tf.add(options.foregroundGamma, 1)) : fg, options.backgroundGamma ? tf.mul(bg, tf.add(options.backgroundGamma, 1)) : bg);
    if (options.foregroundBeta) y = tf.add(y, options.foregroundBeta);
    if (options.backgroundBeta) y = tf.add(y, options.backgroundBeta);
    return y;
  });
}

/** Options of {@link regionNormLearned}. Kernels are in tfjs layout `[k, k, in, out]`. */
export interface RegionNormLearnedOptions {
  /** Spatial attention kernel `[k, k, 2, 1]` over [mean_c x, max_c x] (no bias). Required. */
  attentionKernel: tf.Tensor;
  /** Kernel `[k, k, 1, 1]` mapping the attention map to the scale offset. Required. */
  gammaKernel: tf.Tensor;
  /** Bias `[1]` of the scale convolution (default 0). */
  gammaBias?: tf.Tensor;
  /** Kernel `[k, k, 1, 1]` mapping the attention map to the shift. Required. */
  betaKernel: tf.Tensor;
  /** Bias `[1]` of the shift convolution (default 0). */
  betaBias?: tf.Tensor;
  /** The region is where the attention map is >= threshold (default 0.8). */
  threshold?: number;
  /** As in {@link regionNorm} (default 1e-5). */
  epsilon?: number;
  /** As in {@link regionNorm} (default `'batch'`). */
  statistics?: RegionStatistics;
}

const WHERE_L = 'regionNormLearned';

/**
 * Learned Region Normalization (RN-L) of a channels-last `[N, H, W, C]` tensor: a spatial attention map
 *
 *   a = sigmoid(conv_k([mean_c x, max_c x], attentionKernel)),   M = 1[a >= threshold]  (no gradient),
 *
 * region normalization of x with M (see {@link regionNorm}, without its affine), then the spatially varying
 * affine `y = rn (1 + conv_k(a, gammaKernel) + gammaBias) + conv_k(a, betaKernel) + betaBias`, broadcast over
 * channels. Convolutions are stride 1 with 'same' zero padding (odd k), trainable on every backend. Gradients reach the three kernels
 * through a, not through the hard threshold.
 */
export function regionNormLearned(x: tf.Tensor, options: RegionNormLearnedOptions): tf.Tensor {
  if (options === undefined || options === null) throw new NormkitError(WHERE_L, 'options', 'an object with attentionKernel, gammaKernel and betaKernel', options);
  checkKnownKeys(WHERE_L, options, ['attentionKernel', 'gammaKernel', 'gammaBias', 'betaKernel', 'betaBias', 'threshold', 'epsilon', 'statistics']);
  checkFloatTensor(WHERE_L, 'x', x, 4);
  if (x.rank !== 4) throw new NormkitError(WHERE_L, 'x', 'a tensor of rank 4 [N, H, W, C]', `rank ${x.rank}`);
  checkFloatTensor(WHERE_L, 'attentionKernel', options.attentionKernel, 4);
  const k = options.attentionKernel.shape[0];
  if (k % 2 === 0) throw new NormkitError(WHERE_L, 'attentionKernel', 'an odd kernel size (3 or 7 in the paper)', `shape [${options.attentionKernel.shape.join(', ')}]`);
  checkParam(WHERE_L, 'attentionKernel', options.attentionKernel, [k, k, 2, 1]);
  for (const name of ['gammaKernel', 'betaKernel'] as const) {
    if (options[name] === undefined) throw new NormkitError(WHERE_L, name, `a tensor of shape [${k}, ${k}, 1, 1]`, undefined);
    checkParam(WHERE_L, name, options[name], [k, k, 1, 1]);
  }
  checkParam(WHERE_L, 'gammaBias', options.gammaBias, [1]);
  checkParam(WHERE_L, 'betaBias', options.betaBias, [1]);
  const threshold = options.threshold ?? 0.8;
  checkInRange(WHERE_L, 'threshold', threshold, 0, 1);
  const epsilon = options.epsilon ?? 1e-5;
  checkPositive(WHERE_L, 'epsilon', epsilon);
  const statistics = options.statistics ?? 'batch';
  checkOneOf(WHERE_L, 'statistics', statistics, REGION_STATISTICS);
  return tf.tidy(() => {
    const x4 = x as tf.Tensor4D;
    const pooled = tf.concat([tf.mean(x4, -1, true), tf.max(x4, -1, true)], -1) as tf.Tensor4D;
    const attention = sigmoid(tf.conv2d(pooled, options.attentionKernel as tf.Tensor4D, 1, 'same')) as tf.Tensor4D;
    // M = 1[a >= threshold] in float arithmetic, 1 - step(threshold - a): on tfjs 4.22's webgpu backend a
    // float mask cast from a boolean tensor sums to wrong values (its transpose shader fails to compile).
    const m = tf.sub(1, tf.step(tf.sub(threshold, attention)));
    const rn = regionNormalize(x, m, epsilon, statistics);
    let gamma: tf.Tensor = tf.conv2d(attention, options.gammaKernel as tf.Tensor4D, 1, 'same');
    let beta: tf.Tensor = tf.conv2d(attention, options.betaKernel as tf.Tensor4D, 1, 'same');
    if (options.gammaBias) gamma = tf.add(gamma, options.gammaBias);
    if (options.betaBias) beta = tf.add(beta, options.betaBias);
    return tf.add(tf.mul(rn, tf.add(gamma, 1)), beta);
  });
}

/** Throws unless `mask` fits `x` for {@link regionNorm} and holds only 0 and 1. */
export function checkRegionMask(where: string, x: tf.Tensor, mask: unknown): asserts mask is tf.Tensor {
  checkFloatTensor(where, 'mask', mask, x.rank);
  const channels = x.shape[x.rank - 1];
  const last = mask.shape[mask.rank - 1];
  const sameSpatial = mask.shape.slice(1, -1).every((d, i) => d === x.shape[i + 1]);
  const resizable = x.rank === 4 && mask.size > 0;
  if (mask.rank !== x.rank || mask.shape[0] !== x.shape[0] || (last !== 1 && last !== channels) || !(sameSpatial || resizable)) {
    const spatial = x.rank === 4 ? '[N, h, w, 1 or C] (resized to x\'s H, W)' : `[${x.shape.slice(0, -1).join(', ')}, 1 or ${channels}]`;
    throw new NormkitError(where, 'mask', `a tensor of shape ${spatial} for x of shape [${x.shape.join(', ')}]`, `shape [${mask.shape.join(', ')}]`);
  }
  // A soft mask would silently change the method (the algebra above needs M in {0, 1}).
  const values = mask.dataSync();
  for (let i = 0; i < values.length; i++) {
    if (values[i] !== 0 && values[i] !== 1) {
      throw new NormkitError(where, 'mask', 'a binary mask (only 0 and 1)', `the value ${values[i]} at flat index ${i}`);
    }
  }
}

/** Nearest-neighbour resize of a rank-4 mask to x's spatial size (PyTorch `interpolate(mode='nearest')`). */
function resizeMask(mask: tf.Tensor, shape: readonly number[]): tf.Tensor {
  if (mask.shape.slice(1, -1).every((d, i) => d === shape[i + 1])) return mask;
  return tf.image.resizeNearestNeighbor(mask as tf.Tensor4D, [shape[1], shape[2]], false, false);
}

/**
 * The region normalization without affine: sum over r in {M, 1 - M} of M_r (x - mu_r) / sqrt(var_r + eps P / S_r).
 * Moments are shifted by one sample of x per channel (as core/moments does) so a large common offset keeps
 * its digits in float32, and the shifted values are divided by their largest magnitude s per channel, so
 * squares neither overflow (inputs of 1e19 and more) nor underflow; eps P / S_r is divided by s^2 to match.
 * The result is the same function of x for any shift K and scale s, so both are constants to the gradient.
 */
/** Floor of the scaled variance plus epsilon term (the scaled values have max |.| = 1, so any spread is far above). */
const VARIANCE_FLOOR = 1e-30;

function regionNormalize(x: tf.Tensor, m: tf.Tensor, epsilon: number, statistics: RegionStatistics): tf.Tensor {
  const axes = x.shape.map((_, i) => i).filter((i) => i !== x.rank - 1 && (statistics === 'batch' || i !== 0));
  const pooled = axes.reduce((n, a) => n * x.shape[a], 1);
  const shift = stopGradient(tf.slice(x, x.shape.map(() => 0), x.shape.map((d, i) => (axes.includes(i) ? 1 : d))));
  const { scaled: d, scale } = scaleByMaxAbs(tf.sub(x, shift), axes, true);
  // eps P / S_r / s^2; s^2 overflows to Infinity only where the term is negligible (it then becomes 0).
  const epsilonScaled = tf.div(epsilon * pooled, tf.square(scale));
  const part = (region: tf.Tensor) => {
    const count = tf.sum(region, axes, true);
    const safeCount = tf.maximum(count, 1);
    const mean = tf.div(tf.sum(tf.mul(d, region), axes, true), safeCount);
    const centered = tf.sub(d, mean);
    const variance = tf.div(tf.sum(tf.mul(tf.square(centered), region), axes, true), safeCount);
    // The floor matters only where eps P / S_r / s^2 underflowed and the region has no spread (or no pixel):
    // its centered values are 0 there, and 0 * rsqrt(0) would be NaN.
    return tf.mul(tf.mul(centered, region), tf.rsqrt(tf.maximum(tf.add(variance, tf.div(epsilonScaled, safeCount)), VARIANCE_FLOOR)));
  };
  return tf.add(part(m), part(tf.sub(1, m)));
}
