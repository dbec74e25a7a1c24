/**
 * EvoNorm-B0 and EvoNorm-S0 (Liu, Brock, Simonyan & Le, NeurIPS 2020): normalization-activation layers found
 * by evolution. Functional ops; B0 carries its moving variance as explicit state.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CONVENTION_DEFAULTS } from '../../core/conventions.js';
import { checkBoolean, checkFloatTensor, checkInRange, checkKnownKeys, checkParam, checkPositive } from '../../core/checks.js';
import { centeredMoments } from '../../core/moments.js';
import { stopGradient } from '../../core/stop-gradient.js';
import { resolveGroups } from '../../core/channels.js';
import { sigmoid } from '../../core/second-order.js';
import { emptyResult } from '../../core/empty.js';

/** Options of {@link evoNormB0}. Channels last: x is [N, ...spatial, C] with at least one spatial axis. */
export interface EvoNormB0Options {
  /** Batch statistics and a moving-variance update (true) or the moving variance (false, default). */
  training?: boolean;
  /** Moving variance, shape [C] (default ones). */
  movingVariance?: tf.Tensor;
  /** Weight of the NEW batch variance in the moving average (PyTorch convention, default 0.1). */
  momentum?: number;
  /** Added inside both square roots (default 1e-3). */
  epsilon?: number;
  /** Per-channel scale, shape [C]. */
  gamma?: tf.Tensor;
  /** Per-channel shift, shape [C]. */
  beta?: tf.Tensor;
  /** Per-channel v of the instance branch, shape [C] (default ones). */
  v?: tf.Tensor;
}

/** Result of {@link evoNormB0}; the caller owns both tensors. */
export type EvoNormB0Result = { y: tf.Tensor; movingVariance: tf.Tensor };

/** Options of {@link evoNormS0}. Channels last: x is [N, ...spatial, C] with at least one spatial axis. */
export interface EvoNormS0Options {
  /** Channel groups G (default 32); must divide C. */
  groups?: number;
  /** Added to the group variance inside the square root (default 1e-5). */
  epsilon?: number;
  /** Per-channel scale, shape [C]. */
  gamma?: tf.Tensor;
  /** Per-channel shift, shape [C]. */
  beta?: tf.Tensor;
  /** Per-channel v of the sigmoid gate, shape [C] (default ones). */
  v?: tf.Tensor;
}

/**
 * EvoNorm-B0 on channels-last `x` [N, ...spatial, C]:
 *
 *   y = x / max(sqrt(s2_batch + eps), v * x + sqrt(s2_inst + eps)) * gamma + beta   (max elementwise)
 *
 * with s2_batch the biased variance over every axis but C (training; gradients flow through it) or the
 * moving variance (inference), and s2_inst the biased variance over the spatial axes per (n, c), always
 * from the current sample. Training also returns the moving variance updated PyTorch style:
 * `mv <- (1 - m) mv + m * s2_batch * n/(n-1)` (n values per channel, no gradient).
 * Nothing is centred; the max is the nonlinearity (its gradient goes to the larger branch).
 */
export function evoNormB0(x: tf.Tensor, options: EvoNormB0Options = {}): EvoNormB0Result {
  const where = 'evoNormB0';
  checkKnownKeys(where, options, ['training', 'movingVariance', 'momentum', 'epsilon', 'gamma', 'beta', 'v']);
  checkFloatTensor(where, 'x', x, 3);
  const channels = x.shape[x.rank - 1];
  const training = options.training ?? false;
  checkBoolean(where, 'training', training);
  const momentum = options.momentum ?? CONVENTION_DEFAULTS.pytorch.momentum;
  checkInRange(where, 'momentum', momentum, 0, 1);
  const epsilon = options.epsilon ?? 1e-3;
  checkPositive(where, 'epsilon', epsilon);
  for (const name of ['movingVariance', 'gamma', 'beta', 'v'] as const) checkParam(where, name, options[name], [channels]);

  if (x.size === 0) {
    // No data: the moving variance stays as it was.
    return tf.tidy(() => ({ y: emptyResult(x, [options.gamma, options.beta, options.v]), movingVariance: tf.clone(options.movingVariance ?? tf.ones([channels])) }));
  }
  return tf.tidy(() => {
    const movingVariance = options.movingVariance ?? tf.ones([channels]);
    const v = options.v ?? tf.ones([channels]);
    const lead = [...Array(x.rank - 1).keys()];
    const spatial = lead.slice(1);
    let batchVariance = movingVariance;
    let nextMoving = tf.clone(movingVariance);
    if (training) {
      batchVariance = tf.reshape(centeredMoments(x, lead).variance, [channels]);
      const n = x.size / channels;
      const unbiased = tf.mul(stopGradient(batchVariance), n / (n - 1));
      nextMoving = tf.add(tf.mul(movingVariance, 1 - momentum), tf.mul(unbiased, momentum));
    }
    // tfjs's Maximum gradient does not reduce broadcast inputs, so the [C] branch is broadcast explicitly.
    const left = tf.broadcastTo(tf.sqrt(tf.add(batchVariance, epsilon)), x.shape);
    const right = tf.add(tf.mul(x, v), tf.sqrt(tf.add(centeredMoments(x, spatial).variance, epsilon)));
    let y = tf.div(x, tf.maximum(left, right));
    if (options.gamma) y = tf.mul(y, options.gamma);
    if (options.beta) y = tf.add(y, options.beta);
    return { y, movingVariance: nextMoving };
  });
}

/**
 * EvoNorm-S0 on channels-last `x` [N, ...spatial, C]:
 *
 *   y = x * sigmoid(v * x) / sqrt(s2_group + eps) * gamma + beta
 *
 * with s2_group the biased variance of the (un-gated) x over the spatial axes and the C/G contiguous channels
 * of each group, per sample. Batch independent; identical in training and inference. Differentiable.
 */
export function evoNormS0(x: tf.Tensor, options: EvoNormS0Options = {}): tf.Tensor {
  const where = 'evoNormS0';
  checkKnownKeys(where, options, ['groups', 'epsilon', 'gamma', 'beta', 'v']);
  checkFloatTensor(where, 'x', x, 3);
  const channels = x.shape[x.rank - 1];
  const groups = resolveGroups(where, options.groups ?? 32, channels);
  const epsilon = options.epsilon ?? 1e-5;
  checkPositive(where, 'epsilon', epsilon);
  for (const name of ['gamma', 'beta', 'v'] as const) checkParam(where, name, options[name], [channels]);

  if (x.size === 0) return emptyResult(x, [options.gamma, options.beta, options.v]);
  return tf.tidy(() => {
    const v = options.v ?? tf.ones([channels]);
    // [N, spatial, G, C/G]: rank 4 at most whatever x's rank (tfjs's rank-5 kernels are unreliable on webgl/webgpu).
    const spatial = x.shape.slice(1, -1).reduce((a, b) => a * b, 1);
    const grouped = tf.reshape(x, [x.shape[0], spatial, groups, channels / groups]);
    const groupStd = tf.sqrt(tf.add(centeredMoments(grouped, [1, 3]).variance, epsilon));
    const gated = tf.mul(x, sigmoid(tf.mul(x, v)));
    const gatedGrouped = tf.reshape(gated, grouped.shape);
    let y = tf.reshape(tf.div(gatedGrouped, groupStd), x.shape);
    if (options.gamma) y = tf.mul(y, options.gamma);
    if (options.beta) y = tf.add(y, options.beta);
    return y;
  });
}
