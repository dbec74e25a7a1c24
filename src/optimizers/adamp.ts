/**
 * AdamP (Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant
 * Weights", ICLR 2021), following the official clovaai/AdamP update, in tfjs layouts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelLayout } from '../core/kernel-layout.js';
import { registerNorm } from '../core/registry.js';
import { adamHyperparameters, movingAverage, type AdamHyperparameters } from './adam-moments.js';
import { checkKnownKeys } from './options.js';
import { decayedWeight, fanInAxesFor, projectionHyperparameters, scaleInvariantUpdate, type ProjectionHyperparameters } from './projection.js';
import { SlotOptimizer } from './slot-optimizer.js';

/** Options of {@link AdamP} (official defaults). */
export interface AdamPOptions extends Partial<AdamHyperparameters>, Partial<ProjectionHyperparameters> {
  /**
   * Kernel layouts by variable name (`kernelLayoutsByVariable(model.layers)`), so Conv2DTranspose and
   * DepthwiseConv2D kernels use their true output unit; other tensors use the last axis. Not serialized.
   */
  kernelLayouts?: Map<string, KernelLayout>;
}

const KNOWN = ['learningRate', 'beta1', 'beta2', 'epsilon', 'weightDecay', 'delta', 'wdRatio', 'nesterov', 'kernelLayouts'];

export { fanInAxesFor } from './projection.js';

/**
 * AdamP. Per variable p with gradient g at step t:
 *
 *   m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
 *   d = m / (sqrt(v) / sqrt(1 - b2^t) + eps)          (nesterov: (b1 m + (1 - b1) g) in place of m)
 *   if rank(p) > 1: d, r = projectScaleInvariant(p, g, d)   (r = wdRatio when projected, else 1)
 *   p <- p (1 - lr wd r);   p <- p - lr / (1 - b1^t) d
 *
 * Moments live in slots `m` and `v`.
 */
export class AdamP extends SlotOptimizer {
  static className = 'AdamP';
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  readonly delta: number;
  readonly wdRatio: number;
  readonly nesterov: boolean;
  private readonly kernelLayouts?: Map<string, KernelLayout>;

  constructor(options: AdamPOptions = {}) {
    super();
    const where = 'AdamP';
    checkKnownKeys(where, options, KNOWN);
    const adam = adamHyperparameters(where, options);
    this.learningRate = adam.learningRate;
    this.beta1 = adam.beta1;
    this.beta2 = adam.beta2;
    this.epsilon = adam.epsilon;
    this.weightDecay = adam.weightDecay;
    const projection = projectionHyperparameters(where, options);
    this.delta = projection.delta;
    this.wdRatio = projection.wdRatio;
    this.nesterov = projection.nesterov;
    this.kernelLayouts = options.kernelLayouts;
  }

  protected override update(name: string, p: tf.Variable, g: tf.Tensor, step: number): void {
    const m = this.slot(name, 'm', () => tf.zerosLike(p));
    const v = this.slot(name, 'v', () => tf.zerosLike(p));
    const bc1 = 1 - this.beta1 ** step;
    const bc2 = 1 - this.beta2 ** step;
    const mNew = movingAverage(m, g, this.beta1);
    const vNew = movingAverage(v, tf.square(g), this.beta2);
    m.assign(mNew);
    v.assign(vNew);
    const denom = tf.add(tf.div(tf.sqrt(vNew), Math.sqrt(bc2)), this.epsilon);
    const numer = this.nesterov ? movingAverage(mNew, g, this.beta1) : mNew;
    const { update, wdFactor } = scaleInvariantUpdate(p, g, tf.div(numer, denom), { delta: this.delta, wdRatio: this.wdRatio, epsilon: this.epsilon, fanInAxes: fanInAxesFor(this.kernelLayouts, name, p.rank) });
    p.assign(tf.sub(decayedWeight(p, wdFactor, this.learningRate * this.weightDecay), tf.mul(update, this.learningRate / bc1)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      learningRate: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
      weightDecay: this.weightDecay,
      delta: this.delta,
      wdRatio: this.wdRatio,
      nesterov: this.nesterov,
    };
  }
}

tf.serialization.registerClass(AdamP);

registerNorm({
  name: 'adamp',
  aliases: ['AdamP'],
  kind: 'optimizer',
  description: 'Adam that removes the radial component of updates of scale-invariant weights, so their norm stops growing.',
  paper: 'Heo, Chun, Oh, Han, Yun, Kim, Uh & Ha, "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights", ICLR 2021 (arXiv 2006.08217)',
  doc: 'docs/adamp-sgdp.md',
});
