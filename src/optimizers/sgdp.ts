/**
 * SGDP (Heo et al., ICLR 2021), following the official clovaai/AdamP `sgdp.py` update, in tfjs layouts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelLayout } from '../core/kernel-layout.js';
import { NormkitError } from '../core/errors.js';
import { registerNorm } from '../core/registry.js';
import { checkKnownKeys, checkNonNegative, checkPositive, checkUnitInterval } from './options.js';
import { decayedWeight, fanInAxesFor, projectionHyperparameters, scaleInvariantUpdate, type ProjectionHyperparameters } from './projection.js';
import { SlotOptimizer } from './slot-optimizer.js';

/** Options of {@link SGDP} (official defaults except the learning rate, which is required). */
export interface SGDPOptions extends Partial<ProjectionHyperparameters> {
  learningRate: number;
  momentum?: number;
  dampening?: number;
  epsilon?: number;
  weightDecay?: number;
  /** Kernel layouts by variable name, as for {@link AdamP}. Not serialized. */
  kernelLayouts?: Map<string, KernelLayout>;
}

const KNOWN = ['learningRate', 'momentum', 'dampening', 'epsilon', 'weightDecay', 'delta', 'wdRatio', 'nesterov', 'kernelLayouts'];

/**
 * SGDP. Per variable p with gradient g:
 *
 *   buf <- momentum buf + (1 - dampening) g;   d = nesterov ? g + momentum buf : buf
 *   if rank(p) > 1: d, r = projectScaleInvariant(p, g, d)
 *   without nesterov the projected d is written back into buf (the official code projects `buf` in place)
 *   p <- p (1 - lr wd r / (1 - momentum));   p <- p - lr d
 *
 * The momentum buffer lives in slot `momentum`.
 */
export class SGDP extends SlotOptimizer {
  static className = 'SGDP';
  readonly learningRate: number;
  readonly momentum: number;
  readonly dampening: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  readonly delta: number;
  readonly wdRatio: number;
  readonly nesterov: boolean;
  private readonly kernelLayouts?: Map<string, KernelLayout>;

  constructor(options: SGDPOptions) {
    super();
    const where = 'SGDP';
    if (options === null || typeof options !== 'object') throw new NormkitError(where, 'options', 'an object with a learningRate', options);
    checkKnownKeys(where, options, KNOWN);
    this.learningRate = options.learningRate;
    this.momentum = options.momentum ?? 0;
    this.dampening = options.dampening ?? 0;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    checkPositive(where, 'learningRate', this.learningRate);
    checkUnitInterval(where, 'momentum', this.momentum);
    checkUnitInterval(where, 'dampening', this.dampening);
    checkPositive(where, 'epsilon', this.epsilon);
    checkNonNegative(where, 'weightDecay', this.weightDecay);
    const projection = projectionHyperparameters(where, options);
    this.delta = projection.delta;
    this.wdRatio = projection.wdRatio;
    this.nesterov = projection.nesterov;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new NormkitError(where, 'nesterov', 'used with momentum > 0 and dampening 0', `momentum ${this.momentum}, dampening ${this.dampening}`);
    }
    this.kernelLayouts = options.kernelLayouts;
  }

  protected override update(name: string, p: tf.Variable, g: tf.Tensor, _step: number): void {
    const buf = this.slot(name, 'momentum', () => tf.zerosLike(p));
    const bufNew = tf.add(tf.mul(buf, this.momentum), tf.mul(g, 1 - this.dampening));
    const proposed = this.nesterov ? tf.add(g, tf.mul(bufNew, this.momentum)) : bufNew;
    const { update, wdFactor } = scaleInvariantUpdate(p, g, proposed, { delta: this.delta, wdRatio: this.wdRatio, epsilon: this.epsilon, fanInAxes: fanInAxesFor(this.kernelLayouts, name, p.rank) });
    buf.assign(this.nesterov ? bufNew : update);
    p.assign(tf.sub(decayedWeight(p, wdFactor, (this.learningRate * this.weightDecay) / (1 - this.momentum)), tf.mul(update, this.learningRate)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      learningRate: this.learningRate,
      momentum: this.momentum,
      dampening: this.dampening,
      epsilon: this.epsilon,
      weightDecay: this.weightDecay,
      delta: this.delta,
      wdRatio: this.wdRatio,
      nesterov: this.nesterov,
    };
  }
}

tf.serialization.registerClass(SGDP);

registerNorm({
  name: 'sgdp',
  aliases: ['SGDP'],
  kind: 'optimizer',
  description: 'SGD with momentum that removes the radial component of updates of scale-invariant weights.',
  paper: 'Heo, Chun, Oh, Han, Yun, Kim, Uh & Ha, "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights", ICLR 2021 (arXiv 2006.08217)',
  doc: 'docs/adamp-sgdp.md',
});
