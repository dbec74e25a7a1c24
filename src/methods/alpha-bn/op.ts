/**
 * alpha-BN (You, Li & Zhao, 2021, arXiv 2110.04065): test-time batch statistics calibration. A BatchNorm
 * layer of a source-trained network normalizes a test batch with a mix of its stored (source) statistics and
 * the statistics of the test batch itself.
 */
import * as tf from '@tensorflow/tfjs-core';
import { applyAffine } from '../../core/affine.js';
import { broadcastShape, complementAxes, sizeOver } from '../../core/axes.js';
import { checkFloatTensor, checkInRange, checkKnownKeys, checkOneOf, checkParam, checkPositive, checkRequiredParam } from '../../core/checks.js';
import { resolveChannelAxis } from '../../core/channels.js';
import { CONVENTION_DEFAULTS } from '../../core/conventions.js';
import { NormkitError } from '../../core/errors.js';
import { shiftedMoments } from '../../core/moments.js';

/**
 * How the variances mix: `'linear'` as the paper (alpha var_s + (1 - alpha) var_t) or `'mixture'`, the variance
 * of the two-component mixture, which adds alpha (1 - alpha) (mu_s - mu_t)^2.
 */
export type VarianceMixing = 'linear' | 'mixture';
export const VARIANCE_MIXINGS: readonly VarianceMixing[] = ['linear', 'mixture'];

/** Options of {@link alphaBatchNorm}. */
export interface AlphaBatchNormOptions {
  /** Weight alpha of the SOURCE (stored) statistics in [0, 1]; 1 - alpha goes to the test batch. Required. */
  sourceWeight: number;
  /** Source mean (the BatchNorm layer's moving mean), shape [C]. */
  movingMean: tf.Tensor;
  /** Source variance (the BatchNorm layer's moving variance), shape [C]. */
  movingVariance: tf.Tensor;
  /** Scale and shift of the BatchNorm layer, shape [C]. */
  gamma?: tf.Tensor;
  beta?: tf.Tensor;
  /** The BatchNorm layer's epsilon (default 1e-3, Keras's). */
  epsilon?: number;
  /** The channel axis (default -1). Test statistics are taken over every other axis. */
  axis?: number;
  /** `'linear'` (default, the paper) or `'mixture'`. */
  varianceMixing?: VarianceMixing;
}

const WHERE = 'alphaBatchNorm';

/**
 * Test-time batch normalization with calibrated statistics. With mu_t, var_t the mean and BIASED variance of
 * the test batch over every axis but the channel axis, mu_s, var_s the stored statistics and a = sourceWeight:
 *
 *   mu  = a mu_s + (1 - a) mu_t
 *   var = a var_s + (1 - a) var_t              ('linear', the paper's formulation)
 *       [+ a (1 - a) (mu_s - mu_t)^2          ('mixture': variance of the mixture of the two distributions)]
 *   y   = gamma (x - mu) / sqrt(var + eps) + beta
 *
 * a = 1 is the source model (inference BatchNorm), a = 0 test-time normalization with batch statistics only.
 * When the batch holds a single value per channel its statistics are degenerate, and the source statistics
 * are used alone (a = 1), as the method's notes advise. Gradients flow through mu_t and var_t (as in a
 * training-mode BatchNorm), which test-time optimization on top of alpha-BN needs. The stored statistics are
 * neither modified nor differentiated through.
 */
export function alphaBatchNorm(x: tf.Tensor, options: AlphaBatchNormOptions): tf.Tensor {
  if (options === undefined || options === null || typeof options !== 'object') {
    throw new NormkitError(WHERE, 'options', 'an object with sourceWeight, movingMean and movingVariance', options);
  }
  checkKnownKeys(WHERE, options, ['sourceWeight', 'movingMean', 'movingVariance', 'gamma', 'beta', 'epsilon', 'axis', 'varianceMixing']);
  checkFloatTensor(WHERE, 'x', x, 2);
  checkInRange(WHERE, 'sourceWeight', options.sourceWeight, 0, 1);
  const { axis: channelAxis, channels } = resolveChannelAxis(WHERE, options.axis ?? -1, x.shape, { batchAxis: true });
  const epsilon = options.epsilon ?? CONVENTION_DEFAULTS.keras.epsilon;
  checkPositive(WHERE, 'epsilon', epsilon);
  const mixing = options.varianceMixing ?? 'linear';
  checkOneOf(WHERE, 'varianceMixing', mixing, VARIANCE_MIXINGS);
  const pShape = [channels];
  for (const name of ['movingMean', 'movingVariance'] as const) checkRequiredParam(WHERE, name, options[name], pShape);
  checkParam(WHERE, 'gamma', options.gamma, pShape);
  checkParam(WHERE, 'beta', options.beta, pShape);
  const reduceAxes = complementAxes([channelAxis], x.rank);
  const a = sizeOver(x.shape, reduceAxes) < 2 ? 1 : options.sourceWeight;
  return tf.tidy(() => {
    const bShape = broadcastShape(x.shape, [channelAxis]);
    const muS = tf.reshape(options.movingMean, bShape);
    const varS = tf.reshape(options.movingVariance, bShape);
    const { shift: k, meanOffset, variance: varT, centered } = shiftedMoments(x, reduceAxes);
    // mu_s - mu_t as (mu_s - K) - m and x - mu as (x - mu_t) - a (mu_s - mu_t): no value is rounded to the
    // ulp of a large common offset before the differences are taken.
    const sourceOffset = tf.sub(tf.sub(muS, k), meanOffset);
    let variance = tf.add(tf.mul(varS, a), tf.mul(varT, 1 - a));
    if (mixing === 'mixture') variance = tf.add(variance, tf.mul(tf.square(sourceOffset), a * (1 - a)));
    const y = tf.mul(tf.sub(centered, tf.mul(sourceOffset, a)), tf.rsqrt(tf.add(variance, epsilon)));
    return applyAffine(y, [channelAxis], options.gamma, options.beta);
  });
}
