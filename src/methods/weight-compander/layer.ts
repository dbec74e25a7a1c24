/**
 * Weight Compander (Cakaj, Mehnert & Yang, IJCNN 2023) as a wrapper around an existing kernel layer.
 *
 * The paper's exact companding function (its Eq. 1-3) could not be retrieved from any stored source; the
 * function below is normkit's documented stand-in that has every property the paper states (see
 * docs/weight-compander.md): a mu-law compander anchored at a crossover magnitude.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean, checkPositive } from '../../core/checks.js';
import type { KernelLayout } from '../../core/kernel-layout.js';
import { KernelWrapper, type KernelWrapperArgs, wrapKernelLayer } from '../../core/kernel-wrapper.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';

/** Arguments of {@link WeightCompander}. */
export interface WeightCompanderArgs extends KernelWrapperArgs {
  /** Companding strength mu in (0, 1e6] (default 4): slope mu / ln(1 + mu) at 0, mu / ((1 + mu) ln(1 + mu)) at c. */
  mu?: number;
  /** Crossover magnitude c in (0, 1e30] where f(c) = c; null (default) takes the RMS of the initial kernel. */
  crossover?: number | null;
  /** Learn mu and c jointly with the network (default false), as the paper's learned variant. */
  learnable?: boolean;
}

/**
 * Largest mu accepted: mu |w| / c and mu / ln(1 + mu) must stay finite in float32 for weights far beyond c
 * (mu-law companding uses 255; a larger mu only sharpens the log further).
 */
export const MAX_MU = 1e6;
/** Largest crossover c accepted: a float32 weight (1e30 leaves room for mu |w| / c and its gradient). */
export const MAX_CROSSOVER = 1e30;

/** Below this x the series of q(x) = log1p(x)/x and of q'(x) are used (their error there is below 1e-12). */
const SERIES_BELOW = 1e-4;

/** q(x) = ln(1 + x) / x for x >= 0, with q(0) = 1. */
function qValue(x: tf.Tensor): tf.Tensor {
  const small = tf.less(x, SERIES_BELOW);
  const safeX = tf.where(small, tf.onesLike(x), x);
  const series = tf.add(tf.sub(1, tf.div(x, 2)), tf.div(tf.square(x), 3));
  return tf.where(small, series, tf.div(tf.log1p(safeX), safeX));
}

/** q'(x) = (x / (1 + x) - ln(1 + x)) / x^2, with q'(0) = -1/2. */
function qDerivative(x: tf.Tensor): tf.Tensor {
  const small = tf.less(x, SERIES_BELOW);
  const safeX = tf.where(small, tf.onesLike(x), x);
  const series = tf.add(-0.5, tf.mul(x, 2 / 3));
  const exact = tf.div(tf.sub(tf.div(safeX, tf.add(safeX, 1)), tf.log1p(safeX)), tf.square(safeX));
  return tf.where(small, series, exact);
}

/**
 * q with an explicit gradient: its two branches (series near 0, closed form elsewhere) are chosen by a
 * comparison, which must stay off the gradient tape.
 */
const q = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor;
  (args[1] as tf.GradSaveFunc)([x]);
  return { value: qValue(x), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, qDerivative(saved[0])) };
});

/**
 * The compander, elementwise: `f(w) = sign(w) * c * ln(1 + mu |w| / c) / ln(1 + mu)`, written as
 * `w * (mu / ln(1 + mu)) * q(mu |w| / c)` with `q(x) = ln(1 + x) / x` (q(0) = 1), so the derivative at w = 0
 * is the true slope mu / ln(1 + mu) instead of autodiff's 0 for `sign`/`abs` (zero weights must still learn).
 * Odd, monotone, f(0) = 0, f(+-c) = +-c; expands |w| < c (slope > 1 at 0) and compresses |w| > c
 * (logarithmic growth). Differentiable in w, mu and c.
 */
export function compand(w: tf.Tensor, mu: tf.Tensor | number, crossover: tf.Tensor | number): tf.Tensor {
  return tf.tidy(() => {
    const muT = typeof mu === 'number' ? tf.scalar(mu) : mu;
    const x = tf.div(tf.mul(tf.abs(w), muT), crossover);
    return tf.mul(w, tf.mul(tf.div(muT, tf.log1p(muT)), q(x) as tf.Tensor));
  });
}

/**
 * Replaces every kernel weight w by `f(w)` ({@link compand}) in the forward pass; the stored kernel stays raw.
 * mu and c are scalar weights of the wrapper (`mu`, `crossover`), trainable when `learnable` (kept > 1e-6).
 */
export class WeightCompander extends KernelWrapper {
  static className = 'WeightCompander';
  static override argKeys: readonly string[] = [...KernelWrapper.argKeys, 'mu', 'crossover', 'learnable'];
  readonly mu: number;
  readonly crossover: number | null;
  readonly learnable: boolean;
  private muWeight: tfl.LayerVariable | null = null;
  private crossoverWeight: tfl.LayerVariable | null = null;

  constructor(args: WeightCompanderArgs) {
    super(args);
    this.mu = args.mu ?? 4;
    checkPositive(this.where, 'mu', this.mu, MAX_MU);
    this.crossover = args.crossover ?? null;
    if (this.crossover !== null) checkPositive(this.where, 'crossover', this.crossover, MAX_CROSSOVER);
    this.learnable = args.learnable ?? false;
    checkBoolean(this.where, 'learnable', this.learnable);
  }

  protected override buildReparam(): void {
    this.muWeight = this.addWeight('mu', [], 'float32', tfl.initializers.constant({ value: this.mu }), undefined, this.learnable);
    this.crossoverWeight = this.addWeight('crossover', [], 'float32', tfl.initializers.ones(), undefined, this.learnable);
    const c = this.crossover ?? Math.max(Math.sqrt(tf.tidy(() => tf.mean(tf.square(this.rawKernel.read())).dataSync()[0])), 1e-6);
    tf.tidy(() => {
      (this.crossoverWeight as tfl.LayerVariable).write(tf.scalar(c));
    });
  }

  protected override computeKernel(kernel: tf.Tensor, _layout: KernelLayout): tf.Tensor {
    const mu = tf.maximum((this.muWeight as tfl.LayerVariable).read(), 1e-6);
    const c = tf.maximum((this.crossoverWeight as tfl.LayerVariable).read(), 1e-6);
    return compand(kernel, mu, c);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), mu: this.mu, crossover: this.crossover, learnable: this.learnable };
  }
}

/** Wraps `layer` in {@link WeightCompander}. */
export function weightCompander(layer: tfl.layers.Layer, options: Omit<WeightCompanderArgs, 'layer'> = {}): WeightCompander {
  return wrapKernelLayer('weightCompander', WeightCompander, layer, options);
}

registerLayerClass(WeightCompander);

registerNorm({
  name: 'weight-compander',
  aliases: ['wc', 'compander', 'WeightCompander'],
  kind: 'weight',
  description: 'Reparametrizes each kernel weight through an odd compander that expands small and compresses large weights (normkit stand-in for the unretrieved Eq.; see the docs page).',
  paper: 'Cakaj, Mehnert & Yang, "Weight Compander: A Simple Weight Reparameterization for Regularization", IJCNN 2023 (arXiv 2306.16993)',
  layerClass: 'WeightCompander',
  create: (config) => new WeightCompander(config as unknown as WeightCompanderArgs),
  doc: 'docs/weight-compander.md',
});
