/**
 * AdamP (Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant
 * Weights", ICLR 2021), following the official clovaai/AdamP update, in tfjs layouts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { defaultFanInAxes, type KernelLayout } from '../core/kernel-layout.js';
import { registerNorm } from '../core/registry.js';
import { checkBoolean, checkKnownKeys, checkNonNegative, checkPositive, checkUnitInterval } from './options.js';
import { projectScaleInvariant } from './projection.js';
import { configAsOptions, SlotOptimizer } from './slot-optimizer.js';

/** Options of {@link AdamP} (official defaults). */
export interface AdamPOptions {
  learningRate?: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  weightDecay?: number;
  delta?: number;
  wdRatio?: number;
  nesterov?: boolean;
  /**
   * Kernel layouts by variable name (`kernelLayoutsByVariable(model.layers)`), so Conv2DTranspose and
   * DepthwiseConv2D kernels use their true output unit; other tensors use the last axis. Not serialized.
   */
  kernelLayouts?: Map<string, KernelLayout>;
}

const KNOWN = ['learningRate', 'beta1', 'beta2', 'epsilon', 'weightDecay', 'delta', 'wdRatio', 'nesterov', 'kernelLayouts'];

/** The fan-in axes of variable `name` of `rank` for the channel view. */
export function fanInAxesFor(layouts: Map<string, KernelLayout> | undefined, name: string, rank: number): number[] {
  return layouts?.get(name)?.fanInAxes ?? defaultFanInAxes(rank);
}

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
    this.learningRate = options.learningRate ?? 1e-3;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.delta = options.delta ?? 0.1;
    this.wdRatio = options.wdRatio ?? 0.1;
    this.nesterov = options.nesterov ?? false;
    checkPositive(where, 'learningRate', this.learningRate);
    checkUnitInterval(where, 'beta1', this.beta1);
    checkUnitInterval(where, 'beta2', this.beta2);
    checkPositive(where, 'epsilon', this.epsilon);
    checkNonNegative(where, 'weightDecay', this.weightDecay);
    checkPositive(where, 'delta', this.delta);
    checkNonNegative(where, 'wdRatio', this.wdRatio);
    checkBoolean(where, 'nesterov', this.nesterov);
    this.kernelLayouts = options.kernelLayouts;
  }

  protected override update(name: string, p: tf.Variable, g: tf.Tensor, step: number): void {
    const m = this.slot(name, 'm', () => tf.zerosLike(p));
    const v = this.slot(name, 'v', () => tf.zerosLike(p));
    const bc1 = 1 - this.beta1 ** step;
    const bc2 = 1 - this.beta2 ** step;
    const mNew = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
    const vNew = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
    m.assign(mNew);
    v.assign(vNew);
    const denom = tf.add(tf.div(tf.sqrt(vNew), Math.sqrt(bc2)), this.epsilon);
    const numer = this.nesterov ? tf.add(tf.mul(mNew, this.beta1), tf.mul(g, 1 - this.beta1)) : mNew;
    let d = tf.div(numer, denom);
    let wdFactor: tf.Tensor | number = 1;
    if (p.rank > 1) {
      const r = projectScaleInvariant(p, g, d, { delta: this.delta, wdRatio: this.wdRatio, epsilon: this.epsilon, fanInAxes: fanInAxesFor(this.kernelLayouts, name, p.rank) });
      d = r.update;
      wdFactor = r.wdFactor;
    }
    let next: tf.Tensor = p;
    if (this.weightDecay > 0) next = tf.mul(next, tf.sub(1, tf.mul(wdFactor, this.learningRate * this.weightDecay)));
    p.assign(tf.sub(next, tf.mul(d, this.learningRate / bc1)));
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

  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>, config: tf.serialization.ConfigDict): T {
    return new cls(configAsOptions(config));
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
