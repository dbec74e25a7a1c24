/**
 * Weight Normalization (Salimans & Kingma, 2016) as a wrapper around an existing kernel layer.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean, checkFloatTensor, checkPositive } from '../../core/checks.js';
import { unitBroadcastShape, unitShape, type KernelLayout } from '../../core/kernel-layout.js';
import { KernelWrapper, type KernelWrapperArgs, wrapKernelLayer } from '../../core/kernel-wrapper.js';
import { stableMoments } from '../../core/moments.js';
import { scaleByMaxAbs, scaledL2Norm } from '../../core/scaled-norm.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';

/** Arguments of {@link WeightNormalization}. */
export interface WeightNormalizationArgs extends KernelWrapperArgs {
  /**
   * Relative floor: added to `||v_j||^2 / max|v_j|^2` (which is >= 1 for a non-zero unit) inside the square
   * root, so an all-zero unit gives w_j = 0 with finite gradients (default 1e-12).
   */
  epsilon?: number;
  /**
   * Run the paper's data-dependent initialization on the first training call (default false; call
   * {@link WeightNormalization.initializeFromData} yourself for control over the batch).
   */
  dataInit?: boolean;
}

/**
 * Weight normalization of the wrapped layer's kernel, per output unit j:
 *
 *   w_j = g_j * v_j / ||v_j||,   computed as  g_j * u_j / sqrt(||u_j||^2 + eps),  u_j = v_j / max|v_j|,
 *
 * (the division by the largest magnitude keeps float32 exact for kernels from 1e-20 to 1e15; eps only matters
 * for an all-zero unit),
 * where v is the wrapped layer's own kernel (kept, trained and saved as before) and g (weight `g`, one per
 * output unit) is created at build time with g = ||v_j||, so wrapping does not change the layer's function
 * (the PyTorch / TF-Addons convention). The norm runs over the unit's fan-in axes (kernel-layout.ts):
 * axis 0 of a Dense kernel, (0, 1, 2) of a Conv2D kernel, (0, 1, 3) of a Conv2DTranspose kernel and (0, 1)
 * of a DepthwiseConv2D kernel (whose g has shape [in, multiplier]). Gradients flow to g and v by autodiff,
 * which equals the paper's `dL/dg = dL/dw . v/||v||`, `dL/dv = g/||v|| (dL/dw - dL/dg v/||v||)`.
 */
export class WeightNormalization extends KernelWrapper {
  static className = 'WeightNormalization';
  static override argKeys: readonly string[] = [...KernelWrapper.argKeys, 'epsilon', 'dataInit'];
  readonly epsilon: number;
  readonly dataInit: boolean;
  private g: tfl.LayerVariable | null = null;
  private initialized: tfl.LayerVariable | null = null;
  /** Cache of the `initialized` flag, so the variable is read back at most once per instance. */
  private initDone = false;

  constructor(args: WeightNormalizationArgs) {
    super(args);
    this.epsilon = args.epsilon ?? 1e-12;
    checkPositive(this.where, 'epsilon', this.epsilon);
    this.dataInit = args.dataInit ?? false;
    checkBoolean(this.where, 'dataInit', this.dataInit);
  }

  protected override buildReparam(kernelShape: number[], layout: KernelLayout): void {
    this.g = this.addWeight('g', unitShape(kernelShape, layout), 'float32', tfl.initializers.ones(), undefined, true);
    const norm = tf.tidy(() => tf.reshape(scaledL2Norm(this.rawKernel.read(), layout.fanInAxes), unitShape(kernelShape, layout)));
    this.g.write(norm);
    norm.dispose();
    if (this.dataInit) {
      this.initialized = this.addWeight('initialized', [], 'float32', tfl.initializers.zeros(), undefined, false);
    }
  }

  protected override computeKernel(v: tf.Tensor, layout: KernelLayout): tf.Tensor {
    const g = tf.reshape((this.g as tfl.LayerVariable).read(), unitBroadcastShape(v.shape, layout));
    const { scaled } = scaleByMaxAbs(v, layout.fanInAxes);
    return tf.mul(scaled, tf.mul(g, tf.rsqrt(tf.add(tf.sum(tf.square(scaled), layout.fanInAxes, true), this.epsilon))));
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    if (this.dataInit && kwargs?.training === true && !this.initDone) {
      const flag = this.initialized as tfl.LayerVariable;
      if (flag.read().dataSync()[0] === 0) this.initializeFromData(Array.isArray(inputs) ? inputs[0] : inputs);
      this.initDone = true;
    }
    return super.call(inputs, kwargs);
  }

  /**
   * The paper's data-dependent initialization from a batch `x`: with t the pre-activation (no bias, no
   * activation) of each output channel over the batch, sets `g <- g / sqrt(var(t) + 1e-10)` and, when the
   * wrapped layer has a bias, `b <- -mean(t) / sqrt(var(t) + 1e-10)`, so the initial pre-activations have zero
   * mean and unit variance per channel. Builds the layer first if needed.
   */
  initializeFromData(x: tf.Tensor): void {
    checkFloatTensor(`${this.where}.initializeFromData`, 'x', x, 2);
    if (!this.built) tf.dispose(this.apply(x) as tf.Tensor);
    const layout = this.requireLayout();
    const g = this.g as tfl.LayerVariable;
    tf.tidy(() => {
      const t = this.callWithKernel(x, this.computeKernel(this.rawKernel.read(), layout), {}, 'pre-activation');
      const axes = [...Array(t.rank - 1).keys()];
      const { mean, variance } = stableMoments(t, axes);
      const scale = tf.rsqrt(tf.add(tf.reshape(variance, [-1]), 1e-10));
      g.write(tf.mul(g.read(), tf.reshape(scale, g.shape as number[])));
      const bias = (this.layer as unknown as { bias?: tfl.LayerVariable | null }).bias;
      if (bias) bias.write(tf.reshape(tf.neg(tf.mul(tf.reshape(mean, [-1]), scale)), bias.shape as number[]));
      if (this.initialized) this.initialized.write(tf.scalar(1));
    });
    this.initDone = true;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon, dataInit: this.dataInit };
  }
}

/** Wraps `layer` in {@link WeightNormalization}; a shorthand like PyTorch's `weight_norm(module)`. */
export function weightNorm(layer: tfl.layers.Layer, options: Omit<WeightNormalizationArgs, 'layer'> = {}): WeightNormalization {
  return wrapKernelLayer('weightNorm', WeightNormalization, layer, options);
}

registerLayerClass(WeightNormalization);

registerNorm({
  name: 'weight-norm',
  aliases: ['wn', 'weightnorm', 'WeightNormalization'],
  kind: 'weight',
  description: 'Reparametrizes each output unit of a wrapped layer\'s kernel as w = g * v / ||v||, decoupling its length from its direction.',
  paper: 'Salimans & Kingma, "Weight Normalization: A Simple Reparameterization to Accelerate Training of Deep Neural Networks", NeurIPS 2016 (arXiv 1602.07868)',
  layerClass: 'WeightNormalization',
  create: (config) => new WeightNormalization(config as unknown as WeightNormalizationArgs),
  doc: 'docs/weight-norm.md',
});
