/**
 * Root Mean Square Layer Normalization (Zhang & Sennrich, 2019) and its partial variant pRMSNorm, as a
 * functional, differentiable op.
 */
import * as tf from '@tensorflow/tfjs-core';
import { applyAffine } from '../../core/affine.js';
import { areTrailing, normalizeAxes, paramShape } from '../../core/axes.js';
import { CONVENTION_DEFAULTS } from '../../core/conventions.js';
import { checkFloatTensor, checkKnownKeys, checkParam, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { fusedKernelAvailable } from '../../core/dispatch.js';
import { rmsStandardize } from '../../core/moments.js';
import { FUSED_KERNELS, rowsLayout, runFusedNorm } from '../../kernels/fused.js';
import { emptyResult } from '../../core/empty.js';

/** Options of {@link rmsNorm}. */
export interface RMSNormOptions {
  /** Normalized axes A (default -1, the last axis). Negative values count from the end. */
  axis?: number | number[];
  /** Added to mean(x^2) inside the square root (default 1e-6, as Keras 3's RMSNormalization). */
  epsilon?: number;
  /** Gain, of shape `[x.shape[a] for a in A]`. */
  gamma?: tf.Tensor;
  /**
   * pRMSNorm: a fraction p in (0, 1]; the mean square is estimated from the first `floor(p * d)` features of
   * the (single) normalized axis of length d, then all d features are divided by it. Default: all features.
   */
  partial?: number;
}

const WHERE = 'rmsNorm';

/**
 * RMS normalization over the axes A of `x` (no centering):
 *
 *   ms = mean_A(x^2),  y = gamma * x / sqrt(ms + eps)   (eps INSIDE the square root).
 *
 * With `partial = p`, `ms` is the mean of x^2 over the first `k = floor(p * d)` entries of the normalized
 * axis only (pRMSNorm). Differentiable under `tf.grad`.
 */
export function rmsNorm(x: tf.Tensor, options: RMSNormOptions = {}): tf.Tensor {
  checkKnownKeys(WHERE, options, ['axis', 'epsilon', 'gamma', 'partial']);
  checkFloatTensor(WHERE, 'x', x, 1);
  const axes = normalizeAxes(WHERE, options.axis ?? -1, x.rank);
  const epsilon = options.epsilon ?? CONVENTION_DEFAULTS.keras.rmsEpsilon;
  checkPositive(WHERE, 'epsilon', epsilon);
  checkParam(WHERE, 'gamma', options.gamma, paramShape(x.shape, axes));
  const statSize = partialStatSize(WHERE, options.partial, x.shape, axes);
  if (x.size === 0) return emptyResult(x, [options.gamma]);
  if (fusedKernelAvailable(FUSED_KERNELS.rmsNorm) && areTrailing(axes, x.rank) && (statSize === undefined || statSize === x.shape[axes[0]])) {
    return runFusedNorm(FUSED_KERNELS.rmsNorm, x, rowsLayout(x.shape, axes[0], false), epsilon, options.gamma);
  }
  return tf.tidy(() => rmsNormComposite(x, axes, epsilon, options.gamma, statSize));
}

/**
 * Validates `partial` and returns how many leading features of the single normalized axis feed the
 * statistics (`floor(p * d)`), or undefined when `partial` is not given (all features).
 */
export function partialStatSize(where: string, partial: unknown, shape: readonly number[], axes: readonly number[]): number | undefined {
  if (partial === undefined || partial === null) return undefined;
  if (typeof partial !== 'number' || !Number.isFinite(partial) || partial <= 0 || partial > 1) {
    throw new NormkitError(where, 'partial', 'a number in (0, 1]', partial);
  }
  if (axes.length !== 1) {
    throw new NormkitError(where, 'axis', 'a single axis when partial is given (pRMSNorm takes the first features of one axis)', axes);
  }
  const d = shape[axes[0]];
  const k = Math.floor(partial * d);
  if (k < 1) {
    throw new NormkitError(where, 'partial', `at least 1/${d} so that floor(partial * ${d}) >= 1 feature feeds the statistics`, partial);
  }
  return k;
}

/**
 * The composite path: validated arguments, tfjs ops only. `statSize` (pRMSNorm) limits the statistics to the
 * first `statSize` entries of the single axis in `axes`.
 */
export function rmsNormComposite(x: tf.Tensor, axes: number[], epsilon: number, gamma?: tf.Tensor, statSize?: number): tf.Tensor {
  let stats = x;
  if (statSize !== undefined && statSize < x.shape[axes[0]]) {
    const size = x.shape.map((d, i) => (i === axes[0] ? statSize : d));
    stats = tf.slice(x, x.shape.map(() => 0), size);
  }
  return applyAffine(rmsStandardize(x, axes, epsilon, stats), axes, gamma);
}
