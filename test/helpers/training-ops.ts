/**
 * Ops as the kernel checks call them, shared by the Node tests and the browser page (no Node-only imports).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/index.js';

/** BatchNorm in training mode from zero/one moving statistics; returns y, disposing everything else it made. */
export function trainingBatchNorm(x: tf.Tensor, gamma?: tf.Tensor, beta?: tf.Tensor): tf.Tensor {
  const c = x.shape[x.shape.length - 1];
  const movingMean = tf.zeros([c]);
  const movingVariance = tf.ones([c]);
  const r = nk.batchNorm(x, { training: true, movingMean, movingVariance, epsilon: 1e-5, gamma, beta });
  tf.dispose([movingMean, movingVariance, r.movingMean, r.movingVariance]);
  return r.y;
}
