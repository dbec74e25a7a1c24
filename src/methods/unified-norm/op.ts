/**
 * Unified Normalization (Yang et al., ACM MM 2022) as a functional op with explicit state.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkBoolean, checkFloatTensor, checkInRange, checkInteger, checkKnownKeys, checkParam, checkPositive, checkRequiredInteger, checkScalarParam } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { checkTokenMask, maskedQuadraticMean, tokenMaskColumn } from '../../core/token-mask.js';
import { exp } from '../../core/second-order.js';

/** The state a backward pass of {@link unifiedNorm} produces (both [.., C]). */
export type UnifiedNormBackwardState = { emaGz: tf.Tensor; bufferGz: tf.Tensor };

/** Options of {@link unifiedNorm}. The channel axis is the last one. */
export interface UnifiedNormOptions {
  /** Training step (true) or inference (false, default). */
  training?: boolean;
  /**
   * 1-based training iteration (the reference code's counter after its increment). Required when training. A
   * scalar tensor keeps the whole step on the device (the layer's counter); the result's `outlier` is then a
   * bool scalar tensor instead of a boolean.
   */
  iteration?: number | tf.Tensor;
  /** Running second moment, shape [C] (default ones). */
  runningVar?: tf.Tensor;
  /** Running average of mean(g * z) used by the backward, shape [C] (default zeros). */
  emaGz?: tf.Tensor;
  /** Ring buffer of the last forward statistics x2, shape [Wf, C] (default zeros). */
  bufferX2?: tf.Tensor;
  /** Ring buffer of the last backward statistics gz, shape [Wb, C] (default zeros). */
  bufferGz?: tf.Tensor;
  /** Window W (both buffers) or [Wf, Wb] (default 4). */
  windowSize?: number | [number, number];
  /** Iterations before the windowed statistics are used (default 4000). */
  warmupIters?: number;
  /** Detect outlier batches after warm-up and normalize them with their own statistic (default false). */
  outlierFiltration?: boolean;
  /** Added to the second moment inside the square root (default 1e-5). */
  epsilon?: number;
  /** Weight of the OLD value in the running averages (default 0.9). */
  momentum?: number;
  /** Valid-token mask of shape x.shape[:-1] (bool, or float 0/1): padded positions are excluded from x2. */
  mask?: tf.Tensor;
  /** Scale, shape [C]. */
  gamma?: tf.Tensor;
  /** Shift, shape [C]. */
  beta?: tf.Tensor;
  /**
   * Called during the backward pass of a training step with the new ema_gz [C] and gz buffer [Wb, C]. The
   * tensors are only valid during the call, which runs inside the gradient's tidy scope: assign them to
   * variables (as the layer does) or keep clones.
   */
  onBackward?: (state: UnifiedNormBackwardState) => void;
}

/** Result of {@link unifiedNorm}. The caller owns the tensors. */
export type UnifiedNormResult = {
  y: tf.Tensor;
  /** Running second moment after this step (a copy at inference). */
  runningVar: tf.Tensor;
  /** x2 ring buffer after this step (a copy at inference). */
  bufferX2: tf.Tensor;
  /** Whether this training step was flagged as an outlier (always false at inference). */
  outlier: boolean;
};

/** Result of {@link unifiedNorm} given `iteration` as a tensor: the outlier flag stays on the device. */
export type UnifiedNormDeviceResult = Omit<UnifiedNormResult, 'outlier'> & {
  /** Bool scalar: whether this training step was flagged as an outlier (false at inference). */
  outlier: tf.Tensor;
};

const WHERE = 'unifiedNorm';
const KNOWN = ['training', 'iteration', 'runningVar', 'emaGz', 'bufferX2', 'bufferGz', 'windowSize', 'warmupIters', 'outlierFiltration', 'epsilon', 'momentum', 'mask', 'gamma', 'beta', 'onBackward'];

/**
 * Largest window accepted: the layer stores [W, C] buffers of past statistics (the paper uses windows of a few
 * steps), so a larger W would only allocate memory that cannot be filled meaningfully.
 */
export const MAX_UNIFIED_WINDOW = 10000;

/**
 * Resolves `windowSize` to [Wf, Wb], throwing a NormkitError for anything else than W or [Wf, Wb] of integers
 * in [1, {@link MAX_UNIFIED_WINDOW}].
 */
export function unifiedWindows(where: string, windowSize: unknown): [number, number] {
  const pair = typeof windowSize === 'number' ? [windowSize, windowSize] : windowSize;
  if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((w) => typeof w === 'number' && Number.isInteger(w) && w >= 1 && w <= MAX_UNIFIED_WINDOW)) {
    throw new NormkitError(where, 'windowSize', `an integer in [1, ${MAX_UNIFIED_WINDOW}] or a pair [forward, backward] of them`, windowSize);
  }
  return [pair[0], pair[1]];
}

/**
 * Unified Normalization over channels-last `x` [..., C]; every axis but the last indexes a token.
 *
 * Training step i (x2 = per-channel mean of x^2 over the valid tokens, buffers are rings indexed by i mod W):
 *   v = unbiased variance of sqrt(bufferX2) over all its entries (before inserting x2);  bufferX2[i mod Wf] = x2
 *   outlier (outlierFiltration, i >= warmupIters): any_c AM_c - GM_c > Wf * v, AM/GM the arithmetic/geometric
 *     means of the buffer; then bufferX2[i mod Wf] = runningVar. (Wf = 1 treats every step as an outlier.)
 *   var = x2 if i <= Wf or i < warmupIters or outlier, else GM(bufferX2) = exp(mean(log bufferX2))
 *   r = sqrt(var + eps) / sqrt(runningVar + eps), frozen to 1 if i <= max(1000, warmupIters) or outlier, else
 *     clamped to [1/5, 5]
 *   z = x / sqrt(var + eps),  y = gamma * z + beta,  runningVar <- m * runningVar + (1 - m) * var
 * Inference: y = gamma * x / sqrt(runningVar + eps) + beta (a per-channel affine map, exact autodiff).
 *
 * Training backward (custom gradient, as in the reference code), g = r * gamma * dy, means over ALL tokens:
 *   gz = mean(g * z);  bufferGz[i mod Wb] = (outlier ? emaGz : gz)
 *   mean_gz = gz if i <= Wb or i < warmupIters or outlier, else mean(bufferGz)
 *   emaGz <- m * emaGz + (1 - m) * mean_gz
 *   dL/dx = (g - (outlier ? mean_gz : emaGz_new) * z) / sqrt(var + eps)
 *   dL/dgamma = sum(dy * r * z),  dL/dbeta = sum(dy).
 * Every branch is chosen on the device (both sides computed, then selected with tf.where). With a numeric
 * `iteration` and outlier filtration past warm-up, the boolean `outlier` of the result is read back once; with
 * a tensor `iteration` nothing is read back.
 *
 * @example
 * const r = unifiedNorm(x, { training: true, iteration: 1 });  // r.y, r.runningVar, r.bufferX2, r.outlier
 */
export function unifiedNorm(x: tf.Tensor, options: UnifiedNormOptions & { iteration: tf.Tensor }): UnifiedNormDeviceResult;
export function unifiedNorm(x: tf.Tensor, options?: UnifiedNormOptions): UnifiedNormResult;
export function unifiedNorm(x: tf.Tensor, options: UnifiedNormOptions = {}): UnifiedNormResult | UnifiedNormDeviceResult {
  checkKnownKeys(WHERE, options, KNOWN);
  checkFloatTensor(WHERE, 'x', x, 2);
  const channels = x.shape[x.rank - 1];
  const training = options.training ?? false;
  checkBoolean(WHERE, 'training', training);
  if (training && options.iteration instanceof tf.Tensor) checkScalarParam(WHERE, 'iteration', options.iteration);
  else if (training) checkRequiredInteger(WHERE, 'iteration', options.iteration, 1, 'when training is true');
  const [wf, wb] = unifiedWindows(WHERE, options.windowSize ?? 4);
  const warmupIters = options.warmupIters ?? 4000;
  checkInteger(WHERE, 'warmupIters', warmupIters, 0);
  const outlierFiltration = options.outlierFiltration ?? false;
  checkBoolean(WHERE, 'outlierFiltration', outlierFiltration);
  const epsilon = options.epsilon ?? 1e-5;
  checkPositive(WHERE, 'epsilon', epsilon);
  const momentum = options.momentum ?? 0.9;
  checkInRange(WHERE, 'momentum', momentum, 0, 1);
  for (const name of ['runningVar', 'emaGz', 'gamma', 'beta'] as const) checkParam(WHERE, name, options[name], [channels]);
  checkParam(WHERE, 'bufferX2', options.bufferX2, [wf, channels]);
  checkParam(WHERE, 'bufferGz', options.bufferGz, [wb, channels]);
  if (options.mask !== undefined) checkTokenMask(WHERE, options.mask, x.shape.slice(0, -1));
  if (options.onBackward !== undefined && typeof options.onBackward !== 'function') {
    throw new NormkitError(WHERE, 'onBackward', 'a function', options.onBackward);
  }

  const deviceIteration = options.iteration instanceof tf.Tensor;
  const out = tf.tidy(() => {
    const runningVar = options.runningVar ?? tf.ones([channels]);
    const bufferX2 = options.bufferX2 ?? tf.zeros([wf, channels]);
    const gamma = options.gamma ?? tf.ones([channels]);
    const beta = options.beta ?? tf.zeros([channels]);
    if (!training) {
      const z = tf.div(x, tf.sqrt(tf.add(runningVar, epsilon)));
      return { y: tf.add(tf.mul(z, gamma), beta), runningVar: tf.clone(runningVar), bufferX2: tf.clone(bufferX2), outlier: tf.scalar(false, 'bool'), filtered: tf.scalar(false, 'bool') };
    }
    const i = tf.reshape(options.iteration as number | tf.Tensor, []);
    const emaGz = options.emaGz ?? tf.zeros([channels]);
    const bufferGz = options.bufferGz ?? tf.zeros([wb, channels]);
    const x2 = maskedQuadraticMean(tf.reshape(x, [-1, channels]), tokenMaskColumn(options.mask));
    const rowX2 = rowPick(wf, i);
    const rowGz = rowPick(wb, i);

    // Forward window: insert x2, then test for an outlier against the spread of the buffer before insertion.
    const recordedVar = unbiasedVariance(tf.sqrt(bufferX2));
    const inserted = replaceRow(bufferX2, rowX2, x2);
    // filtered: an outlier found by the test, whose slot then takes runningVar; Wf = 1 flags every step without it.
    let filtered: tf.Tensor = tf.scalar(false, 'bool');
    if (outlierFiltration) {
      const excess = tf.sub(tf.mean(inserted, 0), geometricMean(inserted));
      filtered = tf.logicalAnd(tf.greaterEqual(i, warmupIters), tf.any(tf.greater(excess, tf.mul(recordedVar, wf))));
    }
    const buffer = outlierFiltration ? tf.where(filtered, replaceRow(inserted, rowX2, runningVar), inserted) : inserted;
    const outlier = wf <= 1 ? tf.scalar(true, 'bool') : filtered;
    const useBatch = tf.logicalOr(tf.logicalOr(tf.lessEqual(i, wf), tf.less(i, warmupIters)), outlier);
    const variance = tf.where(useBatch, x2, geometricMean(buffer));
    const std = tf.sqrt(tf.add(variance, epsilon));
    const frozen = tf.logicalOr(tf.lessEqual(i, Math.max(1000, warmupIters)), outlier);
    const ratio = tf.where(frozen, tf.onesLike(variance), tf.clipByValue(tf.div(std, tf.sqrt(tf.add(runningVar, epsilon))), 1 / 5, 5));
    const useBatchGz = tf.logicalOr(tf.logicalOr(tf.lessEqual(i, wb), tf.less(i, warmupIters)), outlier);

    const forward = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [xIn, gammaIn, betaIn] = args as tf.Tensor[];
      const save = args[3] as tf.GradSaveFunc;
      const z = tf.div(xIn, std);
      // The backward's branch flags and ring slot are saved too: the tidy around this step frees them before it runs.
      save([z, std, gammaIn, ratio, emaGz, bufferGz, rowGz, outlier, useBatchGz]);
      return {
        value: tf.add(tf.mul(z, gammaIn), betaIn),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [zS, stdS, gammaS, rS, emaS, bufS, rowS, outlierS, useBatchGzS] = saved;
          const lead = [...Array(dy.rank - 1).keys()];
          const g = tf.mul(tf.mul(dy, gammaS), rS);
          const gz = tf.mean(tf.reshape(tf.mul(g, zS), [-1, channels]), 0);
          const nextBuf = replaceRow(bufS, rowS, tf.where(outlierS, emaS, gz));
          const meanGz = tf.where(useBatchGzS, gz, tf.mean(nextBuf, 0));
          const nextEma = tf.add(tf.mul(emaS, momentum), tf.mul(meanGz, 1 - momentum));
          if (options.onBackward) options.onBackward({ emaGz: nextEma, bufferGz: nextBuf });
          const dx = tf.div(tf.sub(g, tf.mul(tf.where(outlierS, meanGz, nextEma), zS)), stdS);
          return [dx, tf.sum(tf.mul(dy, tf.mul(rS, zS)), lead), tf.sum(dy, lead)];
        },
      };
    });
    const y = forward(x, gamma, beta);
    const nextRunning = tf.add(tf.mul(runningVar, momentum), tf.mul(variance, 1 - momentum));
    return { y, runningVar: nextRunning, bufferX2: buffer, outlier, filtered };
  });
  const { filtered, ...rest } = out;
  if (deviceIteration) {
    if (filtered !== rest.outlier) filtered.dispose();
    return rest;
  }
  // A numeric iteration asks for a boolean: read the flag only where the filtration test ran.
  const i = training ? (options.iteration as number) : 0;
  const flagged = training && outlierFiltration && i >= warmupIters && filtered.dataSync()[0] === 1;
  tf.dispose([filtered, rest.outlier]);
  return { ...rest, outlier: training && (wf <= 1 || flagged) };
}

/** One-hot column [W, 1] picking row `iteration mod W` of a ring buffer, computed on the device. */
function rowPick(w: number, iteration: tf.Tensor): tf.Tensor {
  // floor((i + 0.5) / W) stays exact where a GPU divides approximately (i / W may land just below an integer).
  const row = tf.sub(iteration, tf.mul(tf.floor(tf.div(tf.add(iteration, 0.5), w)), w));
  return tf.reshape(tf.cast(tf.equal(tf.range(0, w), row), 'float32'), [w, 1]);
}

/** `buffer` [W, C] with the row that the one-hot column `pick` [W, 1] marks replaced by `values` [C]. */
function replaceRow(buffer: tf.Tensor, pick: tf.Tensor, values: tf.Tensor): tf.Tensor {
  return tf.add(tf.mul(buffer, tf.sub(1, pick)), tf.mul(pick, tf.reshape(values, [1, -1])));
}

/** Per-column geometric mean of [W, C] as exp(mean(log .)); a zero entry gives 0, as in the reference. */
function geometricMean(buffer: tf.Tensor): tf.Tensor {
  return exp(tf.mean(tf.log(buffer), 0));
}

/** Unbiased variance of all entries (scalar); NaN for a single entry, as torch.var. */
function unbiasedVariance(t: tf.Tensor): tf.Tensor {
  const n = t.size;
  const centered = tf.sub(t, tf.mean(t));
  return tf.div(tf.sum(tf.square(centered)), n - 1);
}
