/**
 * Filter Response Normalization with the Thresholded Linear Unit (Singh & Krishnan, CVPR 2020).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkFloatTensor, checkKnownKeys, checkParam, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { emptyResult } from '../../core/empty.js';

/** Options of {@link filterResponseNorm}. Channels last: x is [N, ...spatial, C]. */
export interface FilterResponseNormOptions {
  /** Fixed part of eps, added to nu2 inside the square root (default 1e-6, the paper's). */
  epsilon?: number;
  /** Learned part of eps, shape [1] or [C]: the effective eps is `epsilon + |epsilonL|`. */
  epsilonL?: tf.Tensor;
  /** Per-channel scale, shape [C]. */
  gamma?: tf.Tensor;
  /** Per-channel shift, shape [C]. */
  beta?: tf.Tensor;
  /** TLU threshold, shape [C]: when given, the output is `max(gamma * xhat + beta, tau)`. */
  tau?: tf.Tensor;
}

const WHERE = 'filterResponseNorm';

/**
 * FRN (+ TLU) on channels-last `x` [N, ...spatial, C], per sample n and channel c:
 *
 *   nu2 = mean_spatial(x^2)   (no mean subtraction; x^2 itself when there is no spatial axis)
 *   xhat = x / sqrt(nu2 + eps),   eps = epsilon + |epsilonL|   (epsilonL optional, learned)
 *   y = gamma * xhat + beta,      z = max(y, tau)               (TLU, when tau is given)
 *
 * Batch independent; identical in training and inference. Differentiable in x and every parameter (the
 * TLU gradient goes to y where y >= tau and to tau elsewhere). Written as a division by sqrt so the gradient
 * stays finite for large |x|.
 */
export function filterResponseNorm(x: tf.Tensor, options: FilterResponseNormOptions = {}): tf.Tensor {
  checkKnownKeys(WHERE, options, ['epsilon', 'epsilonL', 'gamma', 'beta', 'tau']);
  checkFloatTensor(WHERE, 'x', x, 2);
  const channels = x.shape[x.rank - 1];
  const epsilon = options.epsilon ?? 1e-6;
  checkPositive(WHERE, 'epsilon', epsilon);
  for (const name of ['gamma', 'beta', 'tau'] as const) checkParam(WHERE, name, options[name], [channels]);
  const epsL = options.epsilonL;
  if (epsL !== undefined) {
    checkFloatTensor(WHERE, 'epsilonL', epsL, 1);
    if (epsL.rank !== 1 || (epsL.shape[0] !== 1 && epsL.shape[0] !== channels)) {
      throw new NormkitError(WHERE, 'epsilonL', `a tensor of shape [1] or [${channels}]`, `shape [${epsL.shape.join(', ')}]`);
    }
  }

  if (x.size === 0) return emptyResult(x, [options.gamma, options.beta, options.tau]);
  return tf.tidy(() => {
    const spatial = [...Array(x.rank - 2).keys()].map((a) => a + 1);
    const sq = tf.square(x);
    const nu2 = spatial.length > 0 ? tf.mean(sq, spatial, true) : sq;
    const eps = epsL === undefined ? tf.scalar(epsilon) : tf.add(tf.abs(epsL), epsilon);
    let y = tf.div(x, tf.sqrt(tf.add(nu2, eps)));
    if (options.gamma) y = tf.mul(y, options.gamma);
    if (options.beta) y = tf.add(y, options.beta);
    // tfjs's Maximum gradient does not reduce broadcast inputs, so tau is broadcast explicitly.
    if (options.tau) y = tf.maximum(y, tf.broadcastTo(options.tau, x.shape));
    return y;
  });
}
