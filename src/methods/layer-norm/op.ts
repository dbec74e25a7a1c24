/**
 * Layer Normalization (Ba, Kiros & Hinton, 2016) as a functional, differentiable op.
 */
import * as tf from '@tensorflow/tfjs-core';
import { applyAffine } from '../../core/affine.js';
import { areTrailing, normalizeAxes, paramShape } from '../../core/axes.js';
import { CONVENTION_DEFAULTS } from '../../core/conventions.js';
import { checkFloatTensor, checkKnownKeys, checkParam, checkPositive } from '../../core/checks.js';
import { standardize } from '../../core/moments.js';
import { fusedKernelAvailable } from '../../core/dispatch.js';
import { FUSED_KERNELS, rowsLayout, runFusedNorm } from '../../kernels/fused.js';
import { emptyResult } from '../../core/empty.js';

/** Options of {@link layerNorm}. */
export interface LayerNormOptions {
  /** Normalized axes A (default -1, the last axis). Negative values count from the end. */
  axis?: number | number[];
  /** Added to the variance inside the square root (default 1e-5, as PyTorch's functional layer_norm). */
  epsilon?: number;
  /** Scale, of shape `[x.shape[a] for a in A]`. */
  gamma?: tf.Tensor;
  /** Shift, of shape `[x.shape[a] for a in A]`. */
  beta?: tf.Tensor;
}

const WHERE = 'layerNorm';

/**
 * Layer normalization over the axes A of `x`:
 *
 *   mu = mean_A(x),  var = mean_A((x - mu)^2) (biased),  y = gamma * (x - mu) / sqrt(var + eps) + beta.
 *
 * Statistics are computed per slice (everything outside A indexes the slice), with a shifted two-pass
 * variance so a large common offset loses no precision. Differentiable under `tf.grad`.
 */
export function layerNorm(x: tf.Tensor, options: LayerNormOptions = {}): tf.Tensor {
  checkKnownKeys(WHERE, options, ['axis', 'epsilon', 'gamma', 'beta']);
  checkFloatTensor(WHERE, 'x', x, 1);
  const axes = normalizeAxes(WHERE, options.axis ?? -1, x.rank);
  const epsilon = options.epsilon ?? CONVENTION_DEFAULTS.pytorch.epsilon;
  checkPositive(WHERE, 'epsilon', epsilon);
  const pShape = paramShape(x.shape, axes);
  checkParam(WHERE, 'gamma', options.gamma, pShape);
  checkParam(WHERE, 'beta', options.beta, pShape);
  if (x.size === 0) return emptyResult(x, [options.gamma, options.beta]);
  if (fusedKernelAvailable(FUSED_KERNELS.layerNorm) && areTrailing(axes, x.rank)) {
    return runFusedNorm(FUSED_KERNELS.layerNorm, x, rowsLayout(x.shape, axes[0], true), epsilon, options.gamma, options.beta);
  }
  return tf.tidy(() => layerNormComposite(x, axes, epsilon, options.gamma, options.beta));
}

/** The composite path: validated arguments, tfjs ops only. */
export function layerNormComposite(x: tf.Tensor, axes: number[], epsilon: number, gamma?: tf.Tensor, beta?: tf.Tensor): tf.Tensor {
  return applyAffine(standardize(x, axes, epsilon).xhat, axes, gamma, beta);
}
