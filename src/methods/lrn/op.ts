/**
 * Local Response Normalization across channels (Krizhevsky, Sutskever & Hinton, NeurIPS 2012), channels last,
 * over tfjs's `tf.localResponseNormalization` kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkFloatTensor, checkInteger, checkKnownKeys, checkOneOf, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';

/**
 * How `alpha` enters the denominator: `'alexnet'` as the paper's formula (alpha times the sum of squares),
 * `'caffe'` as Caffe and PyTorch (alpha / size times the sum of squares).
 */
export type LrnConvention = 'alexnet' | 'caffe';
export const LRN_CONVENTIONS: readonly LrnConvention[] = ['alexnet', 'caffe'];

/** Options of {@link localResponseNorm}. Defaults depend on `convention`. */
export interface LocalResponseNormOptions {
  /** Number of channels in the window n, odd (default 5). */
  size?: number;
  /** Scale of the sum of squares (default 1e-4). */
  alpha?: number;
  /** Exponent (default 0.75). */
  beta?: number;
  /** Additive constant k (default 2 for 'alexnet', 1 for 'caffe'). */
  bias?: number;
  /** `'alexnet'` (default) or `'caffe'` (alpha divided by size; PyTorch's LocalResponseNorm too). */
  convention?: LrnConvention;
}

/** Resolved LRN parameters. */
export interface LrnParams {
  size: number;
  alpha: number;
  beta: number;
  bias: number;
  convention: LrnConvention;
}

/** Validates LRN options and fills in the convention's defaults (shared by the op and the layer). */
export function resolveLrnParams(where: string, options: LocalResponseNormOptions): LrnParams {
  const convention = options.convention ?? 'alexnet';
  checkOneOf(where, 'convention', convention, LRN_CONVENTIONS);
  const size = options.size ?? 5;
  checkInteger(where, 'size', size, 1);
  if (size % 2 === 0) throw new NormkitError(where, 'size', 'an odd integer (the window is centred on each channel)', size);
  const alpha = options.alpha ?? 1e-4;
  const beta = options.beta ?? 0.75;
  const bias = options.bias ?? (convention === 'alexnet' ? 2 : 1);
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha < 0) throw new NormkitError(where, 'alpha', 'a finite number >= 0', alpha);
  if (typeof beta !== 'number' || !Number.isFinite(beta)) throw new NormkitError(where, 'beta', 'a finite number', beta);
  checkPositive(where, 'bias', bias);
  return { size, alpha, beta, bias, convention };
}

const WHERE = 'localResponseNorm';

/**
 * Local response normalization over the last (channel) axis of `x` (any rank >= 1), with r = (size - 1) / 2:
 *
 *   y_c = x_c / (k + a * sum_{j = max(0, c - r)}^{min(C - 1, c + r)} x_j^2)^beta,
 *
 * a = alpha (`'alexnet'`: the paper's formula, k = 2, n = 5, alpha = 1e-4, beta = 0.75) or alpha / size
 * (`'caffe'`, also PyTorch's LocalResponseNorm; k = 1). Differentiable (tfjs's LRN gradient kernel).
 */
export function localResponseNorm(x: tf.Tensor, options: LocalResponseNormOptions = {}): tf.Tensor {
  checkKnownKeys(WHERE, options, ['size', 'alpha', 'beta', 'bias', 'convention']);
  checkFloatTensor(WHERE, 'x', x, 1);
  const p = resolveLrnParams(WHERE, options);
  return tf.tidy(() => {
    const channels = x.shape[x.rank - 1];
    // tfjs's kernel takes [B, H, W, C]; LRN only mixes channels, so any leading axes fold into one.
    const x4 = tf.reshape(x, [1, 1, -1, channels]) as tf.Tensor4D;
    const alpha = p.convention === 'caffe' ? p.alpha / p.size : p.alpha;
    return tf.reshape(tf.localResponseNormalization(x4, (p.size - 1) / 2, p.bias, alpha, p.beta), x.shape);
  });
}
