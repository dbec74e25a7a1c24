/**
 * Batch-Channel Normalization (Qiao, Wang, Liu, Shen & Yuille, 2019) as a functional op with explicit state:
 * a BatchNorm stage (or its micro-batch "estimate" variant) followed by a group-normalization stage with a
 * per-group affine.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CONVENTION_DEFAULTS } from '../../core/conventions.js';
import { checkBoolean, checkFloatTensor, checkInRange, checkKnownKeys, checkParam, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { stopGradient } from '../../core/stop-gradient.js';
import { batchNorm, checkBatchHasSpread } from '../batch-norm/op.js';
import { resolveGroups } from '../../core/channels.js';
import { groupNorm } from '../group-norm/op.js';

/** Options of {@link batchChannelNorm}. Channels last: x is [N, ..., C]. */
export interface BatchChannelNormOptions {
  /** Training step (batch statistics, or updated estimates in estimate mode) or inference (default false). */
  training?: boolean;
  /** Running mean of the batch stage, shape [C] (default zeros). */
  movingMean?: tf.Tensor;
  /** Running variance of the batch stage, shape [C] (default ones). */
  movingVariance?: tf.Tensor;
  /** Channel groups G of the channel stage (default 32); must divide C. */
  groups?: number;
  /** Batch stage: PyTorch momentum, the weight of the NEW batch value (default 0.1). Unused in estimate mode. */
  momentum?: number;
  /** Batch stage eps inside the square root (default 1e-5; EstBN's is fixed at 1e-5 in the reference). */
  epsilon?: number;
  /** Channel stage eps inside the square root (default 1e-5). */
  channelEpsilon?: number;
  /** Micro-batch mode (EstBN): normalize with running estimates in training too (default false). */
  estimate?: boolean;
  /** EstBN moving speed s in [0, 1], the weight of the new value; required when estimate is true. */
  estimateSpeed?: number;
  /** Batch stage per-channel scale, shape [C]. */
  gamma?: tf.Tensor;
  /** Batch stage per-channel shift, shape [C]. */
  beta?: tf.Tensor;
  /** Channel stage per-GROUP scale, shape [G]. */
  groupGamma?: tf.Tensor;
  /** Channel stage per-GROUP shift, shape [G]. */
  groupBeta?: tf.Tensor;
}

/** Result of {@link batchChannelNorm}; the caller owns every tensor. */
export type BatchChannelNormResult = { y: tf.Tensor; movingMean: tf.Tensor; movingVariance: tf.Tensor };

const WHERE = 'batchChannelNorm';
const KNOWN = ['training', 'movingMean', 'movingVariance', 'groups', 'momentum', 'epsilon', 'channelEpsilon', 'estimate', 'estimateSpeed', 'gamma', 'beta', 'groupGamma', 'groupBeta'];

/**
 * BCN(x) = ChannelNorm(BatchNorm(x)) on channels-last x [N, ..., C]:
 *
 * 1. Batch stage, per channel c over every axis but C (PyTorch BatchNorm):
 *    training: `u = gamma_c (x - mu_B) / sqrt(var_B + eps) + beta_c`, running stats
 *    `m <- (1 - p) m + p mu_B`, `v <- (1 - p) v + p var_B n/(n-1)` (p = momentum); inference: the running ones.
 *    Estimate mode (EstBN), training: first `m' = (1 - s) m + s mean(x)`, `v' = (1 - s) v + s mean((x - m)^2)`
 *    (around the OLD mean, no gradient through them), then `u = gamma_c (x - m') / sqrt(v' + eps) + beta_c`;
 *    inference uses m, v.
 * 2. Channel stage, per sample n and group g of C/G contiguous channels, over every non-batch axis:
 *    `z = (u - mean) / sqrt(var + channelEps)` (biased variance, always from the current sample), then a
 *    per-GROUP affine `y = groupGamma_g z + groupBeta_g`.
 *
 * The batch stage is normkit's {@link batchNorm} (PyTorch convention), the channel stage its
 * {@link groupNorm} with the group affine expanded to channels; gradients are ordinary autodiff.
 */
export function batchChannelNorm(x: tf.Tensor, options: BatchChannelNormOptions = {}): BatchChannelNormResult {
  checkKnownKeys(WHERE, options, KNOWN);
  checkFloatTensor(WHERE, 'x', x, 2);
  const channels = x.shape[x.rank - 1];
  const training = options.training ?? false;
  checkBoolean(WHERE, 'training', training);
  const groups = resolveGroups(WHERE, options.groups ?? 32, channels);
  const momentum = options.momentum ?? CONVENTION_DEFAULTS.pytorch.momentum;
  checkInRange(WHERE, 'momentum', momentum, 0, 1);
  const epsilon = options.epsilon ?? CONVENTION_DEFAULTS.pytorch.epsilon;
  checkPositive(WHERE, 'epsilon', epsilon);
  const channelEpsilon = options.channelEpsilon ?? 1e-5;
  checkPositive(WHERE, 'channelEpsilon', channelEpsilon);
  const estimate = options.estimate ?? false;
  checkBoolean(WHERE, 'estimate', estimate);
  if (estimate) {
    if (options.estimateSpeed === undefined) {
      throw new NormkitError(WHERE, 'estimateSpeed', 'a number in [0, 1] when estimate is true (0 freezes the estimates)', undefined);
    }
    checkInRange(WHERE, 'estimateSpeed', options.estimateSpeed, 0, 1);
  }
  for (const name of ['movingMean', 'movingVariance', 'gamma', 'beta'] as const) checkParam(WHERE, name, options[name], [channels]);
  checkParam(WHERE, 'groupGamma', options.groupGamma, [groups]);
  checkParam(WHERE, 'groupBeta', options.groupBeta, [groups]);
  if (training && !estimate) checkBatchHasSpread(WHERE, x.shape, x.rank - 1);

  return tf.tidy(() => {
    const movingMean = options.movingMean ?? tf.zeros([channels]);
    const movingVariance = options.movingVariance ?? tf.ones([channels]);
    const affine = { gamma: options.gamma, beta: options.beta };
    let stage: { y: tf.Tensor; movingMean: tf.Tensor; movingVariance: tf.Tensor };
    if (estimate && training) {
      const s = options.estimateSpeed as number;
      const lead = [...Array(x.rank - 1).keys()];
      // The estimates are statistics of x but constants to the gradient, as under torch.no_grad().
      const xConst = stopGradient(x);
      const mean = tf.mean(xConst, lead);
      const varAroundOld = tf.mean(tf.square(tf.sub(xConst, movingMean)), lead);
      const m = tf.add(tf.mul(movingMean, 1 - s), tf.mul(mean, s));
      const v = tf.add(tf.mul(movingVariance, 1 - s), tf.mul(varAroundOld, s));
      const { y } = batchNorm(x, { training: false, movingMean: m, movingVariance: v, epsilon, convention: 'pytorch', ...affine });
      stage = { y, movingMean: m, movingVariance: v };
    } else {
      stage = batchNorm(x, { training, movingMean, movingVariance, momentum, epsilon, convention: 'pytorch', ...affine });
    }
    const perChannel = (g: tf.Tensor) => tf.reshape(tf.tile(tf.reshape(g, [groups, 1]), [1, channels / groups]), [channels]);
    const y = groupNorm(stage.y, {
      groups, epsilon: channelEpsilon,
      ...(options.groupGamma ? { gamma: perChannel(options.groupGamma) } : {}),
      ...(options.groupBeta ? { beta: perChannel(options.groupBeta) } : {}),
    });
    return { y, movingMean: stage.movingMean, movingVariance: stage.movingVariance };
  });
}
