/**
 * Instance Normalization (Ulyanov, Vedaldi & Lempitsky, 2016) as a functional, differentiable op.
 */
import * as tf from '@tensorflow/tfjs-core';
import { applyAffine } from '../../core/affine.js';
import { fusedKernelAvailable } from '../../core/dispatch.js';
import { FUSED_KERNELS, channelsLayout, runFusedNorm } from '../../kernels/fused.js';
import { sizeOver } from '../../core/axes.js';
import { resolveChannelAxis } from '../../core/channels.js';
import { CONVENTION_DEFAULTS } from '../../core/conventions.js';
import { checkFloatTensor, checkKnownKeys, checkParam, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { standardize } from '../../core/moments.js';
import { emptyResult } from '../../core/empty.js';

/** Options of {@link instanceNorm}. */
export interface InstanceNormOptions {
  /** The channel axis (default -1: channels last). Any axis but the batch axis 0. */
  axis?: number;
  /** Added to the variance inside the square root (default 1e-5, as PyTorch's functional instance_norm). */
  epsilon?: number;
  /** Per-channel scale, shape [C]. */
  gamma?: tf.Tensor;
  /** Per-channel shift, shape [C]. */
  beta?: tf.Tensor;
}

const WHERE = 'instanceNorm';

/**
 * The spatial axes of an input with batch axis 0 and channel axis `channelAxis`: every other axis. Throws
 * when there is none or their total size is 1: instance statistics of a single element are its own value
 * with zero variance, so the output would be beta whatever the input (PyTorch refuses this case too).
 */
export function spatialAxes(where: string, shape: readonly number[], channelAxis: number): number[] {
  const axes: number[] = [];
  for (let i = 1; i < shape.length; i++) if (i !== channelAxis) axes.push(i);
  if (axes.length === 0) {
    throw new NormkitError(where, 'x', 'a tensor [N, ..., C] of rank >= 3 (at least one spatial axis)', `shape [${shape.join(', ')}]`);
  }
  if (sizeOver(shape, axes) === 1) {
    throw new NormkitError(
      where,
      'x',
      'a tensor with more than one spatial element per channel (with one, the output is beta whatever the input)',
      `shape [${shape.join(', ')}]`,
    );
  }
  return axes;
}

/**
 * Instance normalization of `x` (`[N, ..., C]`, channels on `axis`): per sample n and channel c, over the
 * spatial axes (all others):
 *
 *   mu = mean(x),  var = mean((x - mu)^2) (biased),  y = gamma_c * (x - mu) / sqrt(var + eps) + beta_c.
 *
 * Requires more than one spatial element. Shifted two-pass moments keep large common offsets exact.
 * Differentiable under `tf.grad`.
 */
export function instanceNorm(x: tf.Tensor, options: InstanceNormOptions = {}): tf.Tensor {
  checkKnownKeys(WHERE, options, ['axis', 'epsilon', 'gamma', 'beta']);
  checkFloatTensor(WHERE, 'x', x, 3);
  const { axis, channels } = resolveChannelAxis(WHERE, options.axis ?? -1, x.shape);
  const reduceAxes = spatialAxes(WHERE, x.shape, axis);
  const epsilon = options.epsilon ?? CONVENTION_DEFAULTS.pytorch.epsilon;
  checkPositive(WHERE, 'epsilon', epsilon);
  checkParam(WHERE, 'gamma', options.gamma, [channels]);
  checkParam(WHERE, 'beta', options.beta, [channels]);
  if (x.size === 0) return emptyResult(x, [options.gamma, options.beta]);
  if (fusedKernelAvailable(FUSED_KERNELS.instanceNorm) && axis === x.rank - 1) {
    return runFusedNorm(FUSED_KERNELS.instanceNorm, x, channelsLayout(x.shape, 1, 1), epsilon, options.gamma, options.beta);
  }
  return tf.tidy(() => instanceNormComposite(x, axis, reduceAxes, epsilon, options.gamma, options.beta));
}

/** The composite path: validated arguments, tfjs ops only; `spatial` are the reduced axes. */
export function instanceNormComposite(x: tf.Tensor, axis: number, spatial: number[], epsilon: number, gamma?: tf.Tensor, beta?: tf.Tensor): tf.Tensor {
  return applyAffine(standardize(x, spatial, epsilon).xhat, [axis], gamma, beta);
}
