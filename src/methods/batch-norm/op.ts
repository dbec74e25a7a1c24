/**
 * Batch Normalization (Ioffe & Szegedy, 2015) as a functional, differentiable op with explicit state: the
 * moving statistics go in as tensors and their updated values come out as tensors; nothing is mutated.
 */
import * as tf from '@tensorflow/tfjs-core';
import { applyAffine } from '../../core/affine.js';
import { fusedKernelAvailable } from '../../core/dispatch.js';
import { FUSED_KERNELS, channelsLayout, runFusedNormWithMoments } from '../../kernels/fused.js';
import { broadcastShape, complementAxes, sizeOver } from '../../core/axes.js';
import { checkBoolean, checkFloatTensor, checkInRange, checkKnownKeys, checkNonNegative, checkParam, checkRequiredParam } from '../../core/checks.js';
import { resolveChannelAxis } from '../../core/channels.js';
import { CONVENTION_DEFAULTS, conventionDefaults, type Convention } from '../../core/conventions.js';
import { NormkitError } from '../../core/errors.js';
import { standardize } from '../../core/moments.js';

/** Options of {@link batchNorm}. */
export interface BatchNormOptions {
  /** true: normalize with the batch statistics and update the moving ones; false: use the moving ones. */
  training: boolean;
  /** Moving (running) mean, shape `[C]`. */
  movingMean: tf.Tensor;
  /** Moving (running) variance, shape `[C]`. */
  movingVariance: tf.Tensor;
  /** See {@link Convention}: 0.99 (Keras, weight of the old value) or 0.1 (PyTorch, weight of the new value). */
  momentum?: number;
  /** Added to the variance inside the square root: 1e-3 (Keras) or 1e-5 (PyTorch). */
  epsilon?: number;
  /** Scale, shape `[C]`. */
  gamma?: tf.Tensor;
  /** Shift, shape `[C]`. */
  beta?: tf.Tensor;
  /** The channel axis (default -1, channels last). Statistics are taken over every other axis. */
  axis?: number;
  /** `'keras'` (default) or `'pytorch'`: the moving-statistics rule and the defaults of momentum and epsilon. */
  convention?: Convention;
}

/** What {@link batchNorm} returns. Every tensor is new and owned by the caller, who disposes it. */
export interface BatchNormResult {
  /** The normalized output, same shape as x. */
  y: tf.Tensor;
  /** The moving mean after this call (a copy of the input's in inference). */
  movingMean: tf.Tensor;
  /** The moving variance after this call (a copy of the input's in inference). */
  movingVariance: tf.Tensor;
}

const WHERE = 'batchNorm';
const KNOWN = ['training', 'movingMean', 'movingVariance', 'momentum', 'epsilon', 'gamma', 'beta', 'axis', 'convention'];

/** Validated arguments of the composite path (and of a fused kernel). */
export interface BatchNormArgs {
  /** Non-negative channel axis. */
  channelAxis: number;
  training: boolean;
  movingMean: tf.Tensor;
  movingVariance: tf.Tensor;
  momentum: number;
  epsilon: number;
  convention: Convention;
  gamma?: tf.Tensor;
  beta?: tf.Tensor;
}

/**
 * Batch normalization of `x` (any rank >= 2) per channel, the channel axis being `axis` (default -1):
 *
 * Training: with mu_B, var_B the mean and BIASED variance over every axis but the channel axis (n values
 * per channel),
 *   y = gamma * (x - mu_B) / sqrt(var_B + eps) + beta
 * and the moving statistics are updated
 *   Keras   (momentum m = weight of the old value, default 0.99): moving <- m*moving + (1-m)*batch, batch var biased;
 *   PyTorch (momentum m = weight of the new value, default 0.1):  running <- (1-m)*running + m*batch, batch var
 *           UNBIASED (var_B * n/(n-1)).
 * Gradients flow through mu_B and var_B.
 *
 * Inference: y = gamma * (x - movingMean) / sqrt(movingVariance + eps) + beta, moving statistics unchanged;
 * the gradient with respect to x is gamma * dy / sqrt(movingVariance + eps).
 *
 * Ownership: the inputs are never disposed or mutated; every tensor of the result is new (in inference the
 * moving statistics are cheap copies sharing storage) and the caller disposes all three.
 *
 * Throws a NormkitError before any work for a non-float32 or rank < 2 input, a bad axis, momentum outside
 * [0, 1], epsilon <= 0, wrong-shaped moving statistics / gamma / beta, and a training batch with a single
 * value per channel (its variance would be 0 and, in PyTorch's convention, its unbiased variance undefined).
 */
export function batchNorm(x: tf.Tensor, options: BatchNormOptions): BatchNormResult {
  const args = validateBatchNorm(WHERE, x, options);
  // Fused kernel in training with channels last where the backend has it; the composite is its reference.
  const [y, movingMean, movingVariance] = tf.tidy(() => {
    if (args.training && args.channelAxis === x.rank - 1 && fusedKernelAvailable(FUSED_KERNELS.batchNorm)) {
      const f = runFusedNormWithMoments(FUSED_KERNELS.batchNorm, x, channelsLayout(x.shape, 0, 1), args.epsilon, args.gamma, args.beta);
      const moving = updateMovingStatistics(args.movingMean, args.movingVariance, f.mean, f.variance, valuesPerChannel(x.shape, args.channelAxis), args.momentum, args.convention);
      return [f.y, moving.movingMean, moving.movingVariance];
    }
    const r = batchNormComposite(x, args);
    return [r.y, r.movingMean, r.movingVariance];
  });
  return { y, movingMean, movingVariance };
}

/** Checks every argument of {@link batchNorm} and resolves defaults; throws a NormkitError on the first bad one. */
export function validateBatchNorm(where: string, x: unknown, options: BatchNormOptions): BatchNormArgs {
  if (options === undefined || options === null || typeof options !== 'object') {
    throw new NormkitError(where, 'options', 'an object with training, movingMean and movingVariance', options);
  }
  checkKnownKeys(where, options, KNOWN);
  checkFloatTensor(where, 'x', x, 2);
  checkBoolean(where, 'training', options.training);
  const defaults = conventionDefaults(where, options.convention);
  const convention = defaults.convention;
  const { axis: channelAxis, channels } = resolveChannelAxis(where, options.axis ?? -1, x.shape, { batchAxis: true });
  const momentum = options.momentum ?? defaults.momentum;
  checkInRange(where, 'momentum', momentum, 0, 1);
  const epsilon = options.epsilon ?? defaults.epsilon;
  // 0 is accepted as tfjs and Keras do (saved Keras models carry it); a channel of zero variance then gives NaN.
  checkNonNegative(where, 'epsilon', epsilon);
  const pShape = [channels];
  for (const name of ['movingMean', 'movingVariance'] as const) checkRequiredParam(where, name, options[name], pShape);
  checkParam(where, 'gamma', options.gamma, pShape);
  checkParam(where, 'beta', options.beta, pShape);
  if (options.training) checkBatchHasSpread(where, x.shape, channelAxis);
  return {
    channelAxis,
    training: options.training,
    movingMean: options.movingMean,
    movingVariance: options.movingVariance,
    momentum,
    epsilon,
    convention,
    gamma: options.gamma,
    beta: options.beta,
  };
}

/** Number of values per channel (the size of every axis but the channel axis). */
export function valuesPerChannel(shape: readonly number[], channelAxis: number): number {
  return sizeOver(shape, complementAxes([channelAxis], shape.length));
}

/** Throws when a training batch has one value per channel (PyTorch: "Expected more than 1 value per channel"). */
export function checkBatchHasSpread(where: string, shape: readonly number[], channelAxis: number): void {
  if (valuesPerChannel(shape, channelAxis) < 2) {
    throw new NormkitError(
      where,
      'x',
      'more than one value per channel in training (a batch of one with no other axis has zero variance; use a larger batch, inference mode, or the layer option onSmallBatch)',
      `shape [${shape.join(', ')}] with channel axis ${channelAxis}`,
    );
  }
}

/** The composite path: validated arguments, tfjs ops only. Call inside tf.tidy. */
export function batchNormComposite(x: tf.Tensor, args: BatchNormArgs): BatchNormResult {
  const { channelAxis, epsilon, gamma, beta } = args;
  if (!args.training) {
    const y = normalizeWithStatistics(x, channelAxis, args.movingMean, args.movingVariance, epsilon, gamma, beta);
    return { y, movingMean: tf.clone(args.movingMean), movingVariance: tf.clone(args.movingVariance) };
  }
  const { y, batchMean, batchVariance, count } = batchNormTraining(x, channelAxis, epsilon, gamma, beta);
  const moving = updateMovingStatistics(args.movingMean, args.movingVariance, batchMean, batchVariance, count, args.momentum, args.convention);
  return { y, ...moving };
}

/**
 * Training-mode normalization with the batch's own statistics (shifted two-pass moments):
 * y = gamma * (x - mu_B) / sqrt(var_B + eps) + beta. Returns y, mu_B and the BIASED var_B (shape `[C]`) and
 * the number of values per channel. Call inside tf.tidy.
 */
export function batchNormTraining(
  x: tf.Tensor,
  channelAxis: number,
  epsilon: number,
  gamma?: tf.Tensor,
  beta?: tf.Tensor,
): { y: tf.Tensor; batchMean: tf.Tensor; batchVariance: tf.Tensor; count: number } {
  const reduceAxes = complementAxes([channelAxis], x.rank);
  const { mean, variance, xhat } = standardize(x, reduceAxes, epsilon);
  let y = xhat;
  y = applyAffine(y, [channelAxis], gamma, beta);
  const c = [x.shape[channelAxis]];
  return { y, batchMean: tf.reshape(mean, c), batchVariance: tf.reshape(variance, c), count: sizeOver(x.shape, reduceAxes) };
}

/**
 * y = gamma * (x - mean) / sqrt(variance + eps) + beta with given per-channel statistics (shape `[C]`), as
 * in inference. Call inside tf.tidy.
 */
export function normalizeWithStatistics(
  x: tf.Tensor,
  channelAxis: number,
  mean: tf.Tensor,
  variance: tf.Tensor,
  epsilon: number,
  gamma?: tf.Tensor,
  beta?: tf.Tensor,
): tf.Tensor {
  const bShape = broadcastShape(x.shape, [channelAxis]);
  const y = tf.mul(tf.sub(x, tf.reshape(mean, bShape)), tf.reshape(tf.rsqrt(tf.add(variance, epsilon)), bShape));
  return applyAffine(y, [channelAxis], gamma, beta);
}

/**
 * One moving-average step of the moving statistics from a batch's mean and BIASED variance over `count`
 * values per channel:
 *   Keras:   moving <- moving + (1 - momentum) * (batch - moving)   (= momentum*moving + (1-momentum)*batch)
 *   PyTorch: running <- running + momentum * (batch' - running)      with batch' var = var * count/(count-1)
 * Written as a correction to the old value so a large common offset keeps its digits. `count` may be a scalar
 * tensor (a pooled count kept on the device). Call inside tf.tidy.
 */
export function updateMovingStatistics(
  movingMean: tf.Tensor,
  movingVariance: tf.Tensor,
  batchMean: tf.Tensor,
  batchVariance: tf.Tensor,
  count: number | tf.Tensor,
  momentum: number,
  convention: Convention,
): { movingMean: tf.Tensor; movingVariance: tf.Tensor } {
  const rule = CONVENTION_DEFAULTS[convention];
  const newWeight = rule.momentumWeighs === 'new' ? momentum : 1 - momentum;
  let variance = batchVariance;
  if (rule.unbiasedMovingVariance) {
    if (typeof count === 'number') {
      if (count > 1) variance = tf.mul(batchVariance, count / (count - 1));
    } else {
      // count / (count - 1) with the same "count > 1" guard, on the device; the guarded-off branch may be inf.
      variance = tf.where(tf.greater(count, 1), tf.mul(batchVariance, tf.div(count, tf.sub(count, 1))), batchVariance);
    }
  }
  const step = (moving: tf.Tensor, batch: tf.Tensor) => tf.add(moving, tf.mul(tf.sub(batch, moving), newWeight));
  return { movingMean: step(movingMean, batchMean), movingVariance: step(movingVariance, variance) };
}
