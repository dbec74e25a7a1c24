/**
 * Dynamic Tanh (Zhu, Chen, He, LeCun & Liu, CVPR 2025): an elementwise replacement of LayerNorm.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkFloatTensor, checkKnownKeys, checkParam, checkScalarParam } from '../../core/checks.js';
import { tanh } from '../../core/second-order.js';

/** Options of {@link dynamicTanh}. gamma and beta act on the last (channel) axis. */
export interface DynamicTanhOptions {
  /** The scalar alpha: a finite number or a float32 tensor of shape [] or [1] (default 0.5, the paper's init). */
  alpha?: number | tf.Tensor;
  /** Per-channel scale, shape [C]. */
  gamma?: tf.Tensor;
  /** Per-channel shift, shape [C]. */
  beta?: tf.Tensor;
}

const WHERE = 'dynamicTanh';

/**
 * DyT(x) = gamma * tanh(alpha * x) + beta, elementwise, with ONE scalar alpha and per-channel gamma, beta on
 * the last axis. No statistics: identical in training and inference. Differentiable in x, alpha, gamma and
 * beta (d/dx = gamma alpha (1 - tanh^2(alpha x)), d/dalpha = sum(gamma x (1 - tanh^2(alpha x)) dy)).
 */
export function dynamicTanh(x: tf.Tensor, options: DynamicTanhOptions = {}): tf.Tensor {
  checkKnownKeys(WHERE, options, ['alpha', 'gamma', 'beta']);
  checkFloatTensor(WHERE, 'x', x, 1);
  const channels = x.shape[x.rank - 1];
  const alpha = options.alpha ?? 0.5;
  checkScalarParam(WHERE, 'alpha', alpha);
  checkParam(WHERE, 'gamma', options.gamma, [channels]);
  checkParam(WHERE, 'beta', options.beta, [channels]);
  return tf.tidy(() => {
    const a = typeof alpha === 'number' ? tf.scalar(alpha) : tf.reshape(alpha, []);
    let y = tanh(tf.mul(x, a));
    if (options.gamma) y = tf.mul(y, options.gamma);
    if (options.beta) y = tf.add(y, options.beta);
    return y;
  });
}
