/**
 * Online Normalization (Chiley et al., NeurIPS 2019) as a functional op with explicit state.
 *
 * The forward streams per-sample statistics through the batch (each sample is normalized with the statistics
 * of the samples BEFORE it); the backward is the paper's "unbiased gradient normalization", which keeps its
 * own running control streams u and v. Both are implemented exactly as the recursions of the paper's
 * reference code, one sample at a time over small [C] tensors.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkFloatTensor, checkInRange, checkKnownKeys, checkOneOf, checkParam, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { stableMoments } from '../../core/moments.js';

/** Error-compensation mechanism applied after the affine transform. */
export type OnlineNormEcm = 'clamp' | 'layer-scaling' | 'none';

/** Streaming state of Online Normalization, one value per channel (shape [C]). */
export interface OnlineNormState {
  /** Forward mean stream mu (initial value 0). */
  mu: tf.Tensor;
  /** Forward variance stream sigma^2 (initial value 1). */
  sigma2: tf.Tensor;
}

/** Control streams of the backward pass, one value per channel (shape [C], initial value 0). */
export interface OnlineNormControl {
  /** Stream removing the gradient component along the constant. */
  u: tf.Tensor;
  /** Stream removing the gradient component along the normalized output y. */
  v: tf.Tensor;
}

/** Options of {@link onlineNorm}. */
export interface OnlineNormOptions {
  /** Forward streams before this batch (default mu = 0, sigma2 = 1). Not modified; the new ones are returned. */
  state?: Partial<OnlineNormState>;
  /** Backward control streams before this batch (default u = v = 0). */
  control?: Partial<OnlineNormControl>;
  /**
   * Called once per backward pass with the control streams after this batch. The tensors belong to the
   * gradient computation and are disposed with it: `assign` them to variables or `tf.keep` them.
   */
  onControl?: (control: OnlineNormControl) => void;
  /** Training (streaming forward, ON backward; default true) or inference (fixed streams, plain gradient). */
  training?: boolean;
  /** Decay of the forward streams, the weight of the old value (default 0.999). */
  alphaFwd?: number;
  /** Decay of the backward control streams (default 0.99). */
  alphaBkw?: number;
  /** Added to sigma^2 inside the square root (default 1e-5). */
  epsilon?: number;
  /** Per-channel scale, shape [C]. */
  gamma?: tf.Tensor;
  /** Per-channel shift, shape [C]. */
  beta?: tf.Tensor;
  /** Error compensation: `'clamp'` (default, clip to +-clampValue), `'layer-scaling'` or `'none'`. */
  ecm?: OnlineNormEcm;
  /** Clip bound of activation clamping (default 5). */
  clampValue?: number;
  /** Epsilon of layer scaling (default 1e-5). */
  lsEpsilon?: number;
}

/** Output of {@link onlineNorm}: the normalized tensor and the forward streams after this batch. */
export interface OnlineNormResult {
  y: tf.Tensor;
  state: OnlineNormState;
}

const WHERE = 'onlineNorm';
const KEYS = ['state', 'control', 'onControl', 'training', 'alphaFwd', 'alphaBkw', 'epsilon', 'gamma', 'beta', 'ecm', 'clampValue', 'lsEpsilon'];
export const ONLINE_NORM_ECMS: readonly OnlineNormEcm[] = ['clamp', 'layer-scaling', 'none'];

/**
 * Online Normalization of `x`, channels last: `[N, C]` (each value is its own sample statistic) or
 * `[N, ...spatial, C]` (per-sample statistics over the spatial axes). Samples are processed in batch order t:
 *
 *   m_t, s2_t = mean and biased variance of sample t over the spatial axes (m_t = x_t, s2_t = 0 for [N, C])
 *   y_t = (x_t - mu_{t-1}) / sqrt(sigma2_{t-1} + eps)
 *   sigma2_t = a sigma2_{t-1} + (1-a) s2_t + a (1-a) (m_t - mu_{t-1})^2,   mu_t = mu_{t-1} + (1-a)(m_t - mu_{t-1})
 *
 * with a = alphaFwd; then `z = gamma y + beta` and the ECM: `clip(z, -clampValue, clampValue)` or
 * `z / sqrt(mean_{non-batch axes}(z^2) + lsEpsilon)`.
 *
 * Gradient (training): with dy = dL/dy (after the affine and ECM backward), b = alphaBkw, per sample t:
 *
 *   g = dy_t - (1-b) v y_t;  v <- v + mean_S(g y_t);  g <- g / sqrt(sigma2_{t-1} + eps);
 *   dx_t = g - (1-b) u;  u <- u + mean_S(dx_t)
 *
 * (S: spatial axes). This is the paper's gradient normalization, not the exact derivative of the forward;
 * the new u, v go to `onControl`. Inference (`training: false`): `y = (x - mu)/sqrt(sigma2 + eps)` with the
 * given streams, exact gradient, streams returned unchanged (as new tensors).
 */
export function onlineNorm(x: tf.Tensor, options: OnlineNormOptions = {}): OnlineNormResult {
  checkKnownKeys(WHERE, options, KEYS);
  checkFloatTensor(WHERE, 'x', x, 2);
  const channels = x.shape[x.rank - 1];
  if (x.shape[0] === 0) throw new NormkitError(WHERE, 'x', 'a batch of at least one sample', `shape [${x.shape.join(', ')}]`);
  const alphaFwd = options.alphaFwd ?? 0.999;
  const alphaBkw = options.alphaBkw ?? 0.99;
  const epsilon = options.epsilon ?? 1e-5;
  const ecm = options.ecm ?? 'clamp';
  const clampValue = options.clampValue ?? 5;
  const lsEpsilon = options.lsEpsilon ?? 1e-5;
  const training = options.training ?? true;
  checkInRange(WHERE, 'alphaFwd', alphaFwd, 0, 1);
  checkInRange(WHERE, 'alphaBkw', alphaBkw, 0, 1);
  checkPositive(WHERE, 'epsilon', epsilon);
  checkOneOf(WHERE, 'ecm', ecm, ONLINE_NORM_ECMS);
  checkPositive(WHERE, 'clampValue', clampValue);
  checkPositive(WHERE, 'lsEpsilon', lsEpsilon);
  if (typeof training !== 'boolean') throw new NormkitError(WHERE, 'training', 'a boolean', training);
  const state = options.state ?? {};
  const control = options.control ?? {};
  checkKnownKeys(WHERE, state, ['mu', 'sigma2']);
  checkKnownKeys(WHERE, control, ['u', 'v']);
  checkParam(WHERE, 'state.mu', state.mu, [channels]);
  checkParam(WHERE, 'state.sigma2', state.sigma2, [channels]);
  checkParam(WHERE, 'control.u', control.u, [channels]);
  checkParam(WHERE, 'control.v', control.v, [channels]);
  checkParam(WHERE, 'gamma', options.gamma, [channels]);
  checkParam(WHERE, 'beta', options.beta, [channels]);
  if (options.onControl !== undefined && typeof options.onControl !== 'function') {
    throw new NormkitError(WHERE, 'onControl', 'a function', options.onControl);
  }
  const result = tf.tidy(() => {
    const mu = state.mu ?? tf.zeros([channels]);
    const sigma2 = state.sigma2 ?? tf.ones([channels]);
    let y: tf.Tensor;
    let next: tf.Tensor[];
    if (training) {
      const stream = streamStatistics(x, mu, sigma2, alphaFwd, epsilon);
      const u = control.u ?? tf.zeros([channels]);
      const v = control.v ?? tf.zeros([channels]);
      y = normalizeWithControl(x, stream.center, stream.scale, u, v, alphaBkw, options.onControl);
      next = [stream.mu, stream.sigma2];
    } else {
      y = tf.div(tf.sub(x, mu), tf.sqrt(tf.add(sigma2, epsilon)));
      next = [tf.clone(mu), tf.clone(sigma2)];
    }
    if (options.gamma) y = tf.mul(y, options.gamma);
    if (options.beta) y = tf.add(y, options.beta);
    y = applyEcm(y, ecm, clampValue, lsEpsilon);
    return [y, ...next];
  });
  return { y: result[0], state: { mu: result[1], sigma2: result[2] } };
}

/**
 * The forward streams over the batch: per-sample centers mu_{t-1} and scales sqrt(sigma2_{t-1} + eps),
 * shape [N, C], and the streams after the last sample. No gradient flows through them (the ON backward
 * replaces that path with the control streams).
 */
function streamStatistics(x: tf.Tensor, mu0: tf.Tensor, sigma20: tf.Tensor, alpha: number, epsilon: number) {
  const n = x.shape[0];
  const channels = x.shape[x.rank - 1];
  const flat = tf.reshape(x, [n, -1, channels]);
  // Per-sample moments over the spatial positions; for [N, C] input there is one position, so s2 = 0.
  const { mean, variance } = stableMoments(flat, [1]);
  const means = tf.unstack(tf.reshape(mean, [n, channels]));
  const variances = tf.unstack(tf.reshape(variance, [n, channels]));
  const centers: tf.Tensor[] = [];
  const scales: tf.Tensor[] = [];
  let mu = mu0;
  let sigma2 = sigma20;
  for (let t = 0; t < n; t++) {
    centers.push(mu);
    scales.push(tf.sqrt(tf.add(sigma2, epsilon)));
    const delta = tf.sub(means[t], mu);
    sigma2 = tf.add(tf.add(tf.mul(sigma2, alpha), tf.mul(variances[t], 1 - alpha)), tf.mul(tf.square(delta), alpha * (1 - alpha)));
    mu = tf.add(mu, tf.mul(delta, 1 - alpha));
  }
  return { center: tf.stack(centers), scale: tf.stack(scales), mu: tf.clone(mu), sigma2: tf.clone(sigma2) };
}

/** `(x - center_t) / scale_t` per sample, with the ON control-stream gradient. */
function normalizeWithControl(
  x: tf.Tensor,
  center: tf.Tensor,
  scale: tf.Tensor,
  u0: tf.Tensor,
  v0: tf.Tensor,
  alphaBkw: number,
  onControl: ((control: OnlineNormControl) => void) | undefined,
): tf.Tensor {
  const n = x.shape[0];
  const channels = x.shape[x.rank - 1];
  const bShape = [n, ...x.shape.slice(1, -1).map(() => 1), channels];
  const centerB = tf.reshape(center, bShape);
  const scaleB = tf.reshape(scale, bShape);
  const forward = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const y = tf.div(tf.sub(input, centerB), scaleB);
    // Everything the backward reads is saved: the engine keeps saved tensors alive until the gradient runs,
    // long after this op's tidy has released its intermediates.
    save([y, scale, u0, v0]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const ys = tf.unstack(tf.reshape(saved[0], [n, -1, channels]));
        const dys = tf.unstack(tf.reshape(dy, [n, -1, channels]));
        const scales = tf.unstack(saved[1]);
        let u = saved[2];
        let v = saved[3];
        const dxs: tf.Tensor[] = [];
        for (let t = 0; t < n; t++) {
          let g = tf.sub(dys[t], tf.mul(tf.mul(v, 1 - alphaBkw), ys[t]));
          v = tf.add(v, tf.mean(tf.mul(g, ys[t]), 0));
          g = tf.div(g, scales[t]);
          const dxt = tf.sub(g, tf.mul(u, 1 - alphaBkw));
          u = tf.add(u, tf.mean(dxt, 0));
          dxs.push(dxt);
        }
        if (onControl) onControl({ u, v });
        return tf.reshape(tf.stack(dxs), x.shape);
      },
    };
  });
  return forward(x);
}

/** Error compensation after the affine: activation clamping or layer scaling (plain autodiff gradients). */
function applyEcm(y: tf.Tensor, ecm: OnlineNormEcm, clampValue: number, lsEpsilon: number): tf.Tensor {
  if (ecm === 'clamp') return tf.clipByValue(y, -clampValue, clampValue);
  if (ecm === 'layer-scaling') {
    const axes = y.shape.map((_, i) => i).slice(1);
    return tf.div(y, tf.sqrt(tf.add(tf.mean(tf.square(y), axes, true), lsEpsilon)));
  }
  return y;
}
