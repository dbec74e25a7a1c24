/**
 * Compressed RMSNorm (Jiang et al., NeurIPS 2023): RMSNorm of a zero-mean d-vector stored as its first d-1
 * coordinates.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkFloatTensor, checkKnownKeys, checkParam, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { rmsNorm } from '../rms-norm/op.js';

/** Options of {@link crmsNorm}. */
export interface CRMSNormOptions {
  /** Added to the mean square inside the square root (default 1e-5, the paper's demo and PyTorch LayerNorm's). */
  epsilon?: number;
  /** Scale over the d-1 stored coordinates, shape [d-1]. */
  gamma?: tf.Tensor;
  /** Shift over the d-1 stored coordinates, shape [d-1]. */
  beta?: tf.Tensor;
}

const WHERE = 'crmsNorm';

/**
 * CRMSNorm over the last axis of `xc` [..., d-1], the compressed form of a zero-mean vector x [..., d] whose
 * dropped last coordinate is `-sum(xc)`:
 *
 *   y = xc / sqrt((sum(xc^2) + sum(xc)^2) / d + eps),  then  y * gamma + beta.
 *
 * This equals the first d-1 outputs of RMSNorm(x) with the same eps, and of LayerNorm(x) when x is zero
 * mean; it is computed exactly that way, as {@link rmsNorm} of the decompressed vector, so it shares
 * RMSNorm's kernels and gradient. Note the divisor is the ORIGINAL d = xc.shape[-1] + 1.
 */
export function crmsNorm(xc: tf.Tensor, options: CRMSNormOptions = {}): tf.Tensor {
  checkKnownKeys(WHERE, options, ['epsilon', 'gamma', 'beta']);
  checkFloatTensor(WHERE, 'xc', xc, 1);
  const kept = xc.shape[xc.rank - 1];
  if (kept < 1) throw new NormkitError(WHERE, 'xc', 'a last axis of length >= 1 (d - 1 stored coordinates)', `shape [${xc.shape.join(', ')}]`);
  const epsilon = options.epsilon ?? 1e-5;
  checkPositive(WHERE, 'epsilon', epsilon);
  checkParam(WHERE, 'gamma', options.gamma, [kept]);
  checkParam(WHERE, 'beta', options.beta, [kept]);
  return tf.tidy(() => {
    const full = rmsNorm(decompressZeroMean(xc), { epsilon });
    let y = tf.slice(full, xc.shape.map(() => 0), xc.shape);
    if (options.gamma) y = tf.mul(y, options.gamma);
    if (options.beta) y = tf.add(y, options.beta);
    return y;
  });
}

/**
 * The compressed form of a zero-mean vector along the last axis: its first d-1 coordinates,
 * `x[..., :d-1]`. Lossless only when `mean(x, -1) = 0` (see {@link decompressZeroMean}).
 */
export function compressZeroMean(x: tf.Tensor): tf.Tensor {
  checkFloatTensor('compressZeroMean', 'x', x, 1);
  const d = x.shape[x.rank - 1];
  if (d < 2) throw new NormkitError('compressZeroMean', 'x', 'a last axis of length >= 2', `shape [${x.shape.join(', ')}]`);
  return tf.slice(x, x.shape.map(() => 0), [...x.shape.slice(0, -1), d - 1]);
}

/** The zero-mean vector [..., d] stored by `xc` [..., d-1]: `concat(xc, -sum(xc, -1))`. Differentiable. */
export function decompressZeroMean(xc: tf.Tensor): tf.Tensor {
  checkFloatTensor('decompressZeroMean', 'xc', xc, 1);
  return tf.tidy(() => tf.concat([xc, tf.neg(tf.sum(xc, -1, true))], -1));
}
