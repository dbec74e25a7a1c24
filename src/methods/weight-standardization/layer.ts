/**
 * Weight Standardization (Qiao et al., 2019) and Scaled Weight Standardization (Brock, De & Smith, 2021;
 * NFNets) as wrappers around an existing kernel layer.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { unitBroadcastShape, unitShape, type KernelLayout } from '../../core/kernel-layout.js';
import { KernelWrapper, type KernelWrapperArgs } from '../../core/kernel-wrapper.js';
import { scaledMoments, standardize } from '../../core/moments.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';

/** Arguments of {@link WeightStandardization}. */
export interface WeightStandardizationArgs extends KernelWrapperArgs {
  /** Added to the (biased) variance inside the square root (default 1e-5). */
  epsilon?: number;
}

/**
 * Weight standardization of the wrapped layer's kernel, per output unit o over its fan-in F:
 *
 *   W_hat[..., o] = (W[..., o] - mean_F) / sqrt(var_F + eps),   var_F biased,
 *
 * differentiated THROUGH the mean and variance. The fan-in axes come from kernel-layout.ts (axes (0, 1, 2) of
 * a Conv2D kernel, as in the authors' TensorFlow snippet). Of the published variants this takes the biased
 * variance (TF snippet, timm) with eps inside the square root (BCN repo, timm), which keeps the gradient
 * finite for a constant unit. Statistics use shifted two-pass moments.
 */
export class WeightStandardization extends KernelWrapper {
  static className = 'WeightStandardization';
  static override argKeys: readonly string[] = [...KernelWrapper.argKeys, 'epsilon'];
  readonly epsilon: number;

  constructor(args: WeightStandardizationArgs) {
    super(args);
    this.epsilon = args.epsilon ?? 1e-5;
    checkPositive(this.where, 'epsilon', this.epsilon);
  }

  protected override buildReparam(): void {
    // No weights of its own: the standardized kernel is a function of the wrapped kernel only.
  }

  protected override computeKernel(kernel: tf.Tensor, layout: KernelLayout): tf.Tensor {
    return standardize(kernel, layout.fanInAxes, this.epsilon).xhat;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon };
  }
}

/**
 * Largest `gamma` accepted by {@link ScaledWeightStandardization}: the activations' gammas are near 1 to 2
 * (1.71 for relu); far larger factors overflow the float32 kernel (gamma * sqrt(fan-in) per weight) and its
 * gradient.
 */
export const MAX_SWS_GAMMA = 1e4;

/** Arguments of {@link ScaledWeightStandardization}. */
export interface ScaledWeightStandardizationArgs extends KernelWrapperArgs {
  /** Floor of `N * var` (default 1e-4, as NFNets' `WSConv2D`). */
  epsilon?: number;
  /**
   * A fixed factor on the kernel (default 1): the activation's variance-preserving gamma when it is
   * folded into the convolution instead of the activation (timm's `gamma_in_act = False`), e.g.
   * 1.7139588594436646 for relu. At most {@link MAX_SWS_GAMMA} (1e4).
   */
  gamma?: number;
  /** Learn the per-unit gain (default true; the gain is always created and saved). */
  trainableGain?: boolean;
}

/**
 * Scaled weight standardization (NF-ResNets / NFNets), per output unit o over its fan-in of size N:
 *
 *   W_hat[..., o] = gamma * gain_o * (W[..., o] - mean) / sqrt(max(N * var, eps)),   var biased,
 *
 * with a learned per-unit `gain` (weight `gain`, initialized to 1) and the floor eps = 1e-4 applied as a
 * maximum, not an addend (deepmind-research `nfnets/base.py` `WSConv2D`, whose HWIO layout is tfjs's).
 * NFNets also always use a bias: give the wrapped layer `useBias: true` (its default).
 */
export class ScaledWeightStandardization extends KernelWrapper {
  static className = 'ScaledWeightStandardization';
  static override argKeys: readonly string[] = [...KernelWrapper.argKeys, 'epsilon', 'gamma', 'trainableGain'];
  readonly epsilon: number;
  readonly gamma: number;
  readonly trainableGain: boolean;
  private gain: tfl.LayerVariable | null = null;

  constructor(args: ScaledWeightStandardizationArgs) {
    super(args);
    this.epsilon = args.epsilon ?? 1e-4;
    checkPositive(this.where, 'epsilon', this.epsilon);
    this.gamma = args.gamma ?? 1;
    checkPositive(this.where, 'gamma', this.gamma, MAX_SWS_GAMMA);
    this.trainableGain = args.trainableGain ?? true;
    if (typeof this.trainableGain !== 'boolean') throw new NormkitError(this.where, 'trainableGain', 'a boolean', this.trainableGain);
  }

  protected override buildReparam(kernelShape: number[], layout: KernelLayout): void {
    this.gain = this.addWeight('gain', unitShape(kernelShape, layout), 'float32', tfl.initializers.ones(), undefined, this.trainableGain);
  }

  protected override computeKernel(kernel: tf.Tensor, layout: KernelLayout): tf.Tensor {
    const fanIn = layout.fanInAxes.reduce((n, a) => n * kernel.shape[a], 1);
    // In units of s (see scaledMoments): centered / s * rsqrt(max(var / s^2 * fanIn, eps / s^2)).
    const { centered, variance, scale: s } = scaledMoments(kernel, layout.fanInAxes);
    const scale = tf.rsqrt(tf.maximum(tf.mul(variance, fanIn), tf.div(tf.div(this.epsilon, s), s)));
    const gain = tf.reshape((this.gain as tfl.LayerVariable).read(), unitBroadcastShape(kernel.shape, layout));
    return tf.mul(centered, tf.mul(scale, this.gamma === 1 ? gain : tf.mul(gain, this.gamma)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon, gamma: this.gamma, trainableGain: this.trainableGain };
  }
}

registerLayerClass(WeightStandardization);
registerLayerClass(ScaledWeightStandardization);

registerNorm({
  name: 'weight-standardization',
  aliases: ['ws', 'weightstandardization', 'WeightStandardization'],
  kind: 'weight',
  description: 'Standardizes each output unit of a wrapped layer\'s kernel to zero mean and unit variance over its fan-in.',
  paper: 'Qiao, Wang, Liu, Shen & Yuille, "Micro-Batch Training with Batch-Channel Normalization and Weight Standardization", arXiv 1903.10520, 2019',
  layerClass: 'WeightStandardization',
  create: (config) => new WeightStandardization(config as unknown as WeightStandardizationArgs),
  doc: 'docs/weight-standardization.md',
});

registerNorm({
  name: 'scaled-weight-standardization',
  aliases: ['scaled-ws', 'sws', 'ScaledWeightStandardization'],
  kind: 'weight',
  description: 'NF-Net scaled weight standardization: gain * (W - mean) / sqrt(max(fanIn * var, eps)) per output unit.',
  paper: 'Brock, De & Smith, "Characterizing signal propagation to close the performance gap in unnormalized ResNets", ICLR 2021 (arXiv 2101.08692)',
  layerClass: 'ScaledWeightStandardization',
  create: (config) => new ScaledWeightStandardization(config as unknown as ScaledWeightStandardizationArgs),
  doc: 'docs/weight-standardization.md',
});
