/**
 * PowerNorm (Shen, Yao, Gholami, Mahoney & Keutzer, ICML 2020) as a functional op with explicit state.
 */
import * as tf from '@tensorflow/tfjs-core';
import { resolveGroups } from '../../core/channels.js';
import { checkBoolean, checkFloatTensor, checkInRange, checkInteger, checkKnownKeys, checkParam, checkPositive, checkRequiredInteger, checkScalarParam } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { checkTokenMask, maskedQuadraticMean, tokenMaskColumn } from '../../core/token-mask.js';

/** Options of {@link powerNorm}. The channel axis is the last one. */
export interface PowerNormOptions {
  /** Training step (true) or inference (false, default). */
  training?: boolean;
  /**
   * 1-based training iteration (the reference code's counter after its increment). Required when training.
   * A scalar tensor keeps a counter that lives on the device (as the layer's) there: the warm-up test then
   * runs as tensor ops, and nothing is read back.
   */
  iteration?: number | tf.Tensor;
  /** Running quadratic mean, shape [C] (default ones, the reference code's initial value). */
  runningPhi?: tf.Tensor;
  /** Running average of mean(g_tilde * z) used by the approximate backward, shape [C] (default zeros). */
  emaGz?: tf.Tensor;
  /** Training iterations that normalize with the batch statistic (default 10000, the reference class default). */
  warmupIters?: number;
  /** Weight of the OLD value in the running_phi update (default 0.9). */
  alphaForward?: number;
  /** Backward smoothing weight a_bkw (default 0.9). */
  alphaBackward?: number;
  /** Added to the quadratic mean inside the square root (default 1e-5). */
  epsilon?: number;
  /** Channel groups of the parameter-free pre-scaling (default 1; the reference passes the number of heads). */
  groups?: number;
  /** Valid-token mask of shape x.shape[:-1] (bool, or float 0/1): padded positions (0/false) are excluded from psi2. */
  mask?: tf.Tensor;
  /** Scale, shape [C]. */
  gamma?: tf.Tensor;
  /** Shift, shape [C]. */
  beta?: tf.Tensor;
  /**
   * Called during the backward pass of a training step with the new ema_gz ([C]). The tensor is only valid
   * during the call, which runs inside the gradient's tidy scope: assign it to a tf.Variable (as the layer
   * does) or keep a clone (`tf.keep(tf.clone(t))`).
   */
  onEmaGz?: (emaGz: tf.Tensor) => void;
}

/** Result of {@link powerNorm}: the output and the new running quadratic mean (the caller owns both). */
export type PowerNormResult = {
  y: tf.Tensor;
  runningPhi: tf.Tensor;
};

const WHERE = 'powerNorm';
/** Epsilon of the group pre-scaling, fixed in the reference code (GroupScaling1D). */
export const POWER_GROUP_EPSILON = 1e-5;

/**
 * PowerNorm over channels-last `x` [..., C]; every axis but the last indexes a token.
 *
 * 1. Group scaling (parameter free, per token): split C into G groups, `xs = x / sqrt(mean_group(x^2) + 1e-5)`.
 * 2. Batch quadratic mean per channel over the valid tokens: `psi2[c] = mean_tokens(xs[..., c]^2)`.
 * 3. Training, iteration i <= warmupIters: `z = xs / sqrt(psi2 + eps)`; after warm-up
 *    `z = xs / sqrt(runningPhi + eps)`. Inference: always the running value.
 * 4. `y = gamma * z + beta`.
 *
 * Training also returns the updated running statistic: if i < warmupIters,
 * `phi <- phi * (i - 1) / i + psi2 / i` (cumulative average), then always `phi <- aF * phi + (1 - aF) * psi2`.
 *
 * The training backward is PowerNorm's approximate backward (a custom gradient, not autodiff): with
 * `g = gamma * dy`,
 *   `g_tilde = g - (1 - aB) * emaGz * z`,  `dL/dxs = g_tilde / sqrt(psi2 + eps)`,
 *   `emaGz_new = emaGz + mean_all_tokens(g_tilde * z)` (padding included, as in the reference code),
 *   `dL/dgamma = sum(dy * z)`, `dL/dbeta = sum(dy)`; nothing flows into runningPhi. The group scaling is
 * differentiated exactly. Inference is differentiated exactly.
 */
export function powerNorm(x: tf.Tensor, options: PowerNormOptions = {}): PowerNormResult {
  checkKnownKeys(WHERE, options, ['training', 'iteration', 'runningPhi', 'emaGz', 'warmupIters', 'alphaForward', 'alphaBackward', 'epsilon', 'groups', 'mask', 'gamma', 'beta', 'onEmaGz']);
  checkFloatTensor(WHERE, 'x', x, 2);
  const channels = x.shape[x.rank - 1];
  const training = options.training ?? false;
  checkBoolean(WHERE, 'training', training);
  if (training) {
    if (options.iteration instanceof tf.Tensor) checkScalarParam(WHERE, 'iteration', options.iteration);
    else checkRequiredInteger(WHERE, 'iteration', options.iteration, 1, 'when training is true');
  }
  const warmupIters = options.warmupIters ?? 10000;
  checkInteger(WHERE, 'warmupIters', warmupIters, 0);
  const alphaForward = options.alphaForward ?? 0.9;
  const alphaBackward = options.alphaBackward ?? 0.9;
  checkInRange(WHERE, 'alphaForward', alphaForward, 0, 1);
  checkInRange(WHERE, 'alphaBackward', alphaBackward, 0, 1);
  const epsilon = options.epsilon ?? 1e-5;
  checkPositive(WHERE, 'epsilon', epsilon);
  const groups = options.groups ?? 1;
  checkInteger(WHERE, 'groups', groups, 1);
  resolveGroups(WHERE, groups, channels);
  for (const name of ['runningPhi', 'emaGz', 'gamma', 'beta'] as const) checkParam(WHERE, name, options[name], [channels]);
  if (options.mask !== undefined) checkTokenMask(WHERE, options.mask, x.shape.slice(0, -1));
  if (options.onEmaGz !== undefined && typeof options.onEmaGz !== 'function') {
    throw new NormkitError(WHERE, 'onEmaGz', 'a function', options.onEmaGz);
  }

  return tf.tidy(() => {
    const runningPhi = options.runningPhi ?? tf.ones([channels]);
    const gamma = options.gamma ?? tf.ones([channels]);
    const beta = options.beta ?? tf.zeros([channels]);
    const xs = groupScale(x, groups);
    if (!training) {
      const z = tf.mul(xs, tf.rsqrt(tf.add(runningPhi, epsilon)));
      return { y: tf.add(tf.mul(z, gamma), beta), runningPhi: tf.clone(runningPhi) };
    }
    // One path for a number and a tensor counter: the warm-up tests are tf.where selections.
    const iteration = tf.reshape(options.iteration as number | tf.Tensor, []);
    const emaGz = options.emaGz ?? tf.zeros([channels]);
    const tokens = tf.reshape(xs, [-1, channels]);
    const mask = tokenMaskColumn(options.mask);
    const psi2 = maskedQuadraticMean(tokens, mask);
    const useBatch = tf.lessEqual(iteration, warmupIters);
    const forward = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [xIn, gammaIn, betaIn] = args as tf.Tensor[];
      const save = args[3] as tf.GradSaveFunc;
      const psi2In = maskedQuadraticMean(tf.reshape(xIn, [-1, channels]), mask);
      const z = tf.mul(xIn, tf.rsqrt(tf.add(tf.where(useBatch, psi2In, runningPhi), epsilon)));
      save([z, psi2In, gammaIn, emaGz]);
      return {
        value: tf.add(tf.mul(z, gammaIn), betaIn),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [zS, psi2S, gammaS, emaS] = saved;
          const g = tf.mul(dy, gammaS);
          const gTilde = tf.sub(g, tf.mul(tf.mul(emaS, 1 - alphaBackward), zS));
          if (options.onEmaGz) {
            const all = tf.reshape(tf.mul(gTilde, zS), [-1, channels]);
            const next = tf.add(emaS, tf.mean(all, 0));
            options.onEmaGz(next);
            next.dispose();
          }
          const dx = tf.mul(gTilde, tf.rsqrt(tf.add(psi2S, epsilon)));
          const lead = [...Array(dy.rank - 1).keys()];
          return [dx, tf.sum(tf.mul(dy, zS), lead), tf.sum(dy, lead)];
        },
      };
    });
    const y = forward(xs, gamma, beta);
    const cumulative = tf.add(tf.mul(runningPhi, tf.div(tf.sub(iteration, 1), iteration)), tf.div(psi2, iteration));
    let phi = tf.where(tf.less(iteration, warmupIters), cumulative, runningPhi);
    phi = tf.add(tf.mul(phi, alphaForward), tf.mul(psi2, 1 - alphaForward));
    return { y, runningPhi: phi };
  });
}

/**
 * Per-token group RMS scaling of [..., C]: `x / sqrt(mean_group(x^2) + 1e-5)`, differentiable. Written as a
 * division by sqrt (not a product with rsqrt) because rsqrt's gradient forms ms^1.5, which overflows float32
 * once |x| > ~1e12, while this form's gradient stays finite.
 */
function groupScale(x: tf.Tensor, groups: number): tf.Tensor {
  const channels = x.shape[x.rank - 1];
  // [rows, G, C/G]: rank 3 whatever x's rank (tfjs's rank-5 kernels are unreliable on webgl/webgpu).
  const grouped = tf.reshape(x, [x.size / channels, groups, channels / groups]);
  const ms = tf.mean(tf.square(grouped), -1, true);
  return tf.reshape(tf.div(grouped, tf.sqrt(tf.add(ms, POWER_GROUP_EPSILON))), x.shape);
}
