/**
 * Local Response Normalization across channels (Krizhevsky, Sutskever & Hinton, NeurIPS 2012), channels last,
 * as a composite of tfjs ops (differentiable to any order).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkFloatTensor, checkInteger, checkKnownKeys, checkOneOf, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';

/**
 * How `alpha` enters the denominator: `'alexnet'` as the paper's formula (alpha times the sum of squares),
 * `'caffe'` as Caffe and PyTorch (alpha / size times the sum of squares).
 */
export type LRNConvention = 'alexnet' | 'caffe';
export const LRN_CONVENTIONS: readonly LRNConvention[] = ['alexnet', 'caffe'];

/** Options of {@link localResponseNorm}. Defaults depend on `convention`. */
export interface LocalResponseNormOptions {
  /**
   * Number of channels in the window n (default 5): channels c - floor(n/2) to c + floor((n-1)/2), centred
   * for odd n, one more channel below than above for even n (PyTorch's LocalResponseNorm window).
   */
  size?: number;
  /** Scale of the sum of squares (default 1e-4). */
  alpha?: number;
  /** Exponent (default 0.75). */
  beta?: number;
  /** Additive constant k (default 2 for 'alexnet', 1 for 'caffe'). */
  bias?: number;
  /** `'alexnet'` (default) or `'caffe'` (alpha divided by size; PyTorch's LocalResponseNorm too). */
  convention?: LRNConvention;
}

/** Resolved LRN parameters. */
export interface LRNParams {
  size: number;
  alpha: number;
  beta: number;
  bias: number;
  convention: LRNConvention;
}

/** Validates LRN options and fills in the convention's defaults (shared by the op and the layer). */
export function resolveLRNParams(where: string, options: LocalResponseNormOptions): LRNParams {
  const convention = options.convention ?? 'alexnet';
  checkOneOf(where, 'convention', convention, LRN_CONVENTIONS);
  const size = options.size ?? 5;
  checkInteger(where, 'size', size, 1);
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
 * Local response normalization over the last (channel) axis of `x` (any rank >= 1):
 *
 *   y_c = x_c / (k + a * sum_{j = max(0, c - floor(n/2))}^{min(C - 1, c + floor((n-1)/2))} x_j^2)^beta,
 *
 * a = alpha (`'alexnet'`: the paper's formula, k = 2, n = 5, alpha = 1e-4, beta = 0.75) or alpha / size
 * (`'caffe'`, also PyTorch's LocalResponseNorm; k = 1). For odd n the window is centred (r = (n - 1) / 2 on
 * each side); for even n it is PyTorch's (n/2 channels below c, n/2 - 1 above). A composite of tfjs ops
 * (squares, a ones convolution over the window, pow), differentiable to any order: tfjs's own LRN gradient
 * kernel has no gradient, so a gradient penalty through it would fail.
 *
 * @example
 * const y = nk.localResponseNorm(x, { size: 4, convention: 'caffe' });   // as torch.nn.LocalResponseNorm(4)
 */
export function localResponseNorm(x: tf.Tensor, options: LocalResponseNormOptions = {}): tf.Tensor {
  checkKnownKeys(WHERE, options, ['size', 'alpha', 'beta', 'bias', 'convention']);
  checkFloatTensor(WHERE, 'x', x, 1);
  const p = resolveLRNParams(WHERE, options);
  return tf.tidy(() => {
    const channels = x.shape[x.rank - 1];
    const alpha = p.convention === 'caffe' ? p.alpha / p.size : p.alpha;
    // A window reaching past the first and last channel sums the same channels as one that just reaches them,
    // so each side is clamped to C - 1 (windows of any size then cost no more than the channel count).
    const below = Math.min(Math.floor(p.size / 2), channels - 1);
    const above = Math.min(Math.floor((p.size - 1) / 2), channels - 1);
    return windowLRN(x, channels, below, above, p.bias, alpha, p.beta);
  });
}

/**
 * LRN with a window of `below` channels under c and `above` over it: the squares, zero-padded that way, summed
 * over below + above + 1 neighbours by a ones convolution. Call inside tf.tidy.
 */
function windowLRN(x: tf.Tensor, channels: number, below: number, above: number, k: number, a: number, beta: number): tf.Tensor {
  const squares = tf.reshape(tf.square(x), [-1, channels, 1]) as tf.Tensor3D;
  const padded = tf.pad(squares, [[0, 0], [below, above], [0, 0]]);
  const sums = tf.conv1d(padded, tf.ones([below + above + 1, 1, 1]) as tf.Tensor3D, 1, 'valid');
  return tf.div(x, tf.pow(tf.add(tf.mul(tf.reshape(sums, x.shape), a), k), beta));
}
