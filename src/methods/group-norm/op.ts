/**
 * Group Normalization (Wu & He, 2018) as a functional, differentiable op.
 */
import * as tf from '@tensorflow/tfjs-core';
import { applyAffine } from '../../core/affine.js';
import { fusedKernelAvailable } from '../../core/dispatch.js';
import { FUSED_KERNELS, channelsLayout, runFusedNorm } from '../../kernels/fused.js';
import { resolveChannelAxis, resolveGroups } from '../../core/channels.js';
import { CONVENTION_DEFAULTS } from '../../core/conventions.js';
import { checkFloatTensor, checkKnownKeys, checkParam, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { standardize } from '../../core/moments.js';
import { emptyResult } from '../../core/empty.js';

/** Options of {@link groupNorm}. */
export interface GroupNormOptions {
  /**
   * Number of groups G: contiguous blocks of C/G channels. Must divide the channel count C; -1 means one
   * group per channel (instance normalization, as Keras's `groups=-1`).
   */
  groups: number;
  /** The channel axis (default -1: channels last). Any axis but the batch axis 0. */
  axis?: number;
  /** Added to the variance inside the square root (default 1e-5, as PyTorch's functional group_norm). */
  epsilon?: number;
  /** Per-channel scale, shape [C]. */
  gamma?: tf.Tensor;
  /** Per-channel shift, shape [C]. */
  beta?: tf.Tensor;
}

const WHERE = 'groupNorm';

/**
 * Group normalization of `x` (`[N, ..., C]`, rank >= 2, channels on `axis`) with G groups of contiguous
 * channels. Per sample n and group g, over every non-batch axis and the group's C/G channels:
 *
 *   mu = mean(x),  var = mean((x - mu)^2) (biased),  y = gamma_c * (x - mu) / sqrt(var + eps) + beta_c.
 *
 * G = 1 is layer normalization over all non-batch axes; G = C is instance normalization. Shifted two-pass
 * moments keep large common offsets exact. Differentiable under `tf.grad`.
 */
export function groupNorm(x: tf.Tensor, options: GroupNormOptions): tf.Tensor {
  checkKnownKeys(WHERE, options, ['groups', 'axis', 'epsilon', 'gamma', 'beta']);
  checkFloatTensor(WHERE, 'x', x, 2);
  if (options === undefined || options === null || options.groups === undefined) {
    throw new NormkitError(WHERE, 'groups', 'given (the number of channel groups)', undefined);
  }
  const { axis, channels } = resolveChannelAxis(WHERE, options.axis ?? -1, x.shape);
  const groups = resolveGroups(WHERE, options.groups, channels);
  const epsilon = options.epsilon ?? CONVENTION_DEFAULTS.pytorch.epsilon;
  checkPositive(WHERE, 'epsilon', epsilon);
  checkParam(WHERE, 'gamma', options.gamma, [channels]);
  checkParam(WHERE, 'beta', options.beta, [channels]);
  if (x.size === 0) return emptyResult(x, [options.gamma, options.beta]);
  if (fusedKernelAvailable(FUSED_KERNELS.groupNorm) && axis === x.rank - 1) {
    return runFusedNorm(FUSED_KERNELS.groupNorm, x, channelsLayout(x.shape, 1, channels / groups), epsilon, options.gamma, options.beta);
  }
  return tf.tidy(() => groupNormComposite(x, axis, groups, epsilon, options.gamma, options.beta));
}

/**
 * The composite path: validated arguments, tfjs ops only. Views x as [N, P, G, (C/G) * Q], where P is the
 * product of the axes between the batch and the channel axis and Q of those after it (a group's channels
 * and everything after them are contiguous), and takes moments over axes 1 and 3.
 *
 * Staying at rank 4 matters: tfjs's rank-5 pad (the gradient of slice, used by the shifted moments) does not
 * compile on webgl and silently computes wrong values on webgpu (tfjs 4.22).
 */
export function groupNormComposite(x: tf.Tensor, axis: number, groups: number, epsilon: number, gamma?: tf.Tensor, beta?: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const channels = shape[axis];
  const before = shape.slice(1, axis).reduce((a, b) => a * b, 1);
  const after = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const grouped = [shape[0], before, groups, (channels / groups) * after];
  return applyAffine(tf.reshape(standardize(tf.reshape(x, grouped), [1, 3], epsilon).xhat, shape), [axis], gamma, beta);
}
