/**
 * Pieces shared by normkit's Adam-family optimizers (AdamP, Conda): the common hyperparameters with their
 * defaults and checks, and the exponential moving average of the moments.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkNonNegative, checkPositive, checkUnitInterval } from './options.js';

/** The hyperparameters every Adam-family optimizer has. */
export interface AdamHyperparameters {
  /** Step size (default 1e-3). */
  learningRate: number;
  /** Decay of the first moment (default 0.9). */
  beta1: number;
  /** Decay of the second moment (default 0.999). */
  beta2: number;
  /** Added to the root of the second moment (default 1e-8). */
  epsilon: number;
  /** Decoupled weight decay (default 0). */
  weightDecay: number;
}

/**
 * `options`' Adam hyperparameters with the usual defaults (learningRate 1e-3, beta1 0.9, beta2 0.999,
 * epsilon 1e-8, weightDecay 0), checked in that order (a NormkitError from `where` names the bad one).
 */
export function adamHyperparameters(where: string, options: Partial<AdamHyperparameters>): AdamHyperparameters {
  const h: AdamHyperparameters = {
    learningRate: options.learningRate ?? 1e-3,
    beta1: options.beta1 ?? 0.9,
    beta2: options.beta2 ?? 0.999,
    epsilon: options.epsilon ?? 1e-8,
    weightDecay: options.weightDecay ?? 0,
  };
  checkPositive(where, 'learningRate', h.learningRate);
  checkUnitInterval(where, 'beta1', h.beta1);
  checkUnitInterval(where, 'beta2', h.beta2);
  checkPositive(where, 'epsilon', h.epsilon);
  checkNonNegative(where, 'weightDecay', h.weightDecay);
  return h;
}

/** The exponential moving average `decay average + (1 - decay) value` (Adam's m and v updates). */
export function movingAverage(average: tf.Tensor, value: tf.Tensor, decay: number): tf.Tensor {
  return tf.add(tf.mul(average, decay), tf.mul(value, 1 - decay));
}
