/**
 * Per-channel statistics over tokens with an optional padding mask, for batch-statistics methods on token
 * tensors (PowerNorm, Unified Normalization): channels last, every other axis indexes a token.
 */
import * as tf from '@tensorflow/tfjs-core';
import { NormkitError } from './errors.js';

/**
 * Throws unless `mask` is a bool or float32 tensor of exactly `shape` (the input's shape without its
 * channel axis). 1/true marks a real token, 0/false a padded one.
 */
export function checkTokenMask(where: string, mask: unknown, shape: readonly number[]): asserts mask is tf.Tensor {
  if (!(mask instanceof tf.Tensor) || (mask.dtype !== 'bool' && mask.dtype !== 'float32')) {
    throw new NormkitError(where, 'mask', 'a bool or float32 tensor', mask);
  }
  const ok = mask.rank === shape.length && mask.shape.every((d: number, i: number) => d === shape[i]);
  if (!ok) {
    throw new NormkitError(where, 'mask', `a tensor of shape [${shape.join(', ')}] (x's shape without the channel axis)`, `shape [${mask.shape.join(', ')}]`);
  }
}

/** The mask as a float32 [M, 1] column of 0/1 over the M tokens of `x` [..., C], or undefined. */
export function tokenMaskColumn(mask: tf.Tensor | undefined): tf.Tensor | undefined {
  return mask === undefined ? undefined : tf.reshape(tf.cast(mask, 'float32'), [-1, 1]);
}

/**
 * Quadratic mean per channel over the valid tokens: `q[c] = sum_t m_t x[t, c]^2 / max(sum_t m_t, 1)` for
 * `tokens` [M, C] and a [M, 1] 0/1 column `mask` (all tokens when absent). No mean is subtracted.
 */
export function maskedQuadraticMean(tokens: tf.Tensor, mask?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const sq = tf.square(tokens);
    if (mask === undefined) return tf.mean(sq, 0);
    return tf.div(tf.sum(tf.mul(sq, mask), 0), tf.maximum(tf.sum(mask), 1));
  });
}
