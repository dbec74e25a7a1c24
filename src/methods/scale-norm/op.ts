/**
 * ScaleNorm and FixNorm (Nguyen & Salazar, "Transformers without Tears", IWSLT 2019).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkFloat32, checkFloatTensor, checkKnownKeys, checkPositive, checkScalarParam } from '../../core/checks.js';
import { powerOfTwoScale } from '../../core/moments.js';

/** Options of {@link scaleNorm}. */
export interface ScaleNormOptions {
  /** The single learned gain g: a finite number or a tensor of shape [] or [1] (default sqrt(d), the paper's init). */
  g?: number | tf.Tensor;
  /** Lower clamp of the norm, NOT added under a square root (default 1e-5). */
  epsilon?: number;
}

/** Options of {@link fixNorm}. */
export interface FixNormOptions {
  /** Lower clamp of the norm (default 1e-12, PyTorch's F.normalize). */
  epsilon?: number;
  /** Multiplies the unit rows (default 1; the paper's embeddings use sqrt(d)). */
  scale?: number;
}

/** Floor of the clamp's square: the smallest normal float32, so sqrt at the clamp keeps a finite gradient. */
const MIN_SQUARE = 1.2e-38;

/**
 * `x / max(||x||_2, eps)` over the last axis, computed as `v / sqrt(max(sum(v^2), (eps / s)^2))` with
 * v = x / s and s a constant power of two above max|x| (so squares neither overflow nor underflow). The
 * clamp acts on the squared norm, so rows where it is active (all-zero rows included) get the finite
 * gradient of x / eps instead of the NaN of sqrt's gradient at 0.
 */
function unitRows(x: tf.Tensor, epsilon: number): tf.Tensor {
  const axes = [x.rank - 1];
  const s = powerOfTwoScale(x, axes);
  const v = tf.div(x, s);
  const floor = tf.maximum(tf.square(tf.div(epsilon, s)), MIN_SQUARE);
  return tf.div(v, tf.sqrt(tf.maximum(tf.sum(tf.square(v), axes, true), floor)));
}

/**
 * ScaleNorm over the last axis (d features):
 *
 *   y = g * x / max(||x||_2, eps)
 *
 * with ONE scalar g per layer (no per-feature gain, no bias) and eps a clamp of the norm. Equivalent to
 * RMSNorm with a shared gain g/sqrt(d) except for the eps treatment. Differentiable in x and g.
 */
export function scaleNorm(x: tf.Tensor, options: ScaleNormOptions = {}): tf.Tensor {
  const where = 'scaleNorm';
  checkKnownKeys(where, options, ['g', 'epsilon']);
  checkFloatTensor(where, 'x', x, 1);
  const epsilon = options.epsilon ?? 1e-5;
  checkPositive(where, 'epsilon', epsilon);
  const g = options.g ?? Math.sqrt(x.shape[x.rank - 1]);
  checkScalarParam(where, 'g', g);
  return tf.tidy(() => tf.mul(unitRows(x, epsilon), typeof g === 'number' ? tf.scalar(g) : tf.reshape(g, [])));
}

/**
 * FixNorm: l2-normalizes each row (last axis) of `x`, `scale * x / max(||x||_2, eps)`. Applied to a word
 * embedding table [V, d] before lookup and before its use as the tied output projection. Differentiable.
 */
export function fixNorm(x: tf.Tensor, options: FixNormOptions = {}): tf.Tensor {
  const where = 'fixNorm';
  checkKnownKeys(where, options, ['epsilon', 'scale']);
  checkFloatTensor(where, 'x', x, 1);
  const epsilon = options.epsilon ?? 1e-12;
  checkPositive(where, 'epsilon', epsilon);
  const scale = options.scale ?? 1;
  checkFloat32(where, 'scale', scale);
  return tf.tidy(() => (scale === 1 ? unitRows(x, epsilon) : tf.mul(unitRows(x, epsilon), scale)));
}
