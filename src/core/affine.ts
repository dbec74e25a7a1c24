/**
 * The learned affine every normalization ends with, as one composite of tfjs ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { broadcastShape } from './axes.js';

/**
 * `y * gamma + beta`, with `gamma` and `beta` (each optional) of the shape of y's `axes`
 * (`paramShape(y.shape, axes)`) reshaped to size-1 dims elsewhere so they broadcast against `y`.
 */
export function applyAffine(y: tf.Tensor, axes: readonly number[], gamma?: tf.Tensor, beta?: tf.Tensor): tf.Tensor {
  const bShape = broadcastShape(y.shape, axes);
  let out = y;
  if (gamma) out = tf.mul(out, tf.reshape(gamma, bShape));
  if (beta) out = tf.add(out, tf.reshape(beta, bShape));
  return out;
}
