/**
 * RMSNormalization: a Keras 3-compatible layer over {@link rmsNorm}, and the registry entries 'rms' and 'srms'.
 */
import * as tf from '@tensorflow/tfjs-core';
import { applyAffine } from '../../core/affine.js';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkAxisArgument, normalizeAxes, paramShape } from '../../core/axes.js';
import { AFFINE_KEYS, AffineNormLayer, firstInputShape, singleInput, type AffineLayerArgs } from '../../core/norm-layer.js';
import { registerLayerClass } from '../../core/serialization.js';
import { registerNorm } from '../../core/registry.js';
import { NormkitError } from '../../core/errors.js';
import { conventionDefaults, type Convention } from '../../core/conventions.js';
import { partialStatSize, rmsNorm } from './op.js';

/** Arguments of {@link RMSNormalization}; Keras 3 names and defaults (axis -1, epsilon 1e-6). */
export interface RMSNormalizationArgs extends AffineLayerArgs {
  /** Normalized axes (default -1). The gain has shape `[inputShape[a] for a in axis]`. */
  axis?: number | number[];
  /** pRMSNorm fraction p in (0, 1]: statistics from the first floor(p * d) features (single axis only). */
  partial?: number | null;
  /** `'keras'` (default: eps 1e-6) or `'pytorch'` (eps 2^-23, torch.nn.RMSNorm's default). Only changes defaults. */
  convention?: Convention;
}

/**
 * RMS normalization `y = scale * x / sqrt(mean_A(x^2) + eps)` over the axes A (default -1), eps inside the
 * square root. Same class name, config keys (`axis`, `epsilon`) and weight name (`scale`) as Keras 3's
 * RMSNormalization, so a Keras model.json loads into it. Beyond Keras: `scale: false` drops the gain
 * (SRMSNorm), `center: true` adds a bias `beta` (off by default, as in the paper), and `partial` gives pRMSNorm.
 */
export class RMSNormalization extends AffineNormLayer {
  static className = 'RMSNormalization';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'axis', 'partial', 'convention'];
  readonly axis: number | number[];
  readonly partial: number | null;
  readonly convention: Convention;
  private axes: number[] = [];

  constructor(args: RMSNormalizationArgs = {}) {
    const defaults = conventionDefaults('RMSNormalization', args?.convention);
    super(args, { epsilon: defaults.rmsEpsilon, center: false, scale: true });
    this.convention = defaults.convention;
    this.axis = args.axis ?? -1;
    checkAxisArgument('RMSNormalization', this.axis);
    this.partial = args.partial ?? null;
    if (this.partial !== null && (typeof this.partial !== 'number' || !(this.partial > 0 && this.partial <= 1))) {
      throw new NormkitError('RMSNormalization', 'partial', 'a number in (0, 1] or null', this.partial);
    }
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = firstInputShape(inputShape);
    this.axes = normalizeAxes('RMSNormalization', this.axis, shape.length);
    const pShape = paramShape(shape as number[], this.axes);
    if (pShape.some((d) => d == null)) {
      throw new NormkitError('RMSNormalization', 'inputShape', 'known sizes on the normalized axes', shape);
    }
    partialStatSize('RMSNormalization', this.partial, shape as number[], this.axes);
    // Keras 3 names the gain 'scale' (not 'gamma'): a Keras model's weights load by that name.
    if (this.scale) {
      this.gamma = this.addWeight('scale', pShape, 'float32', this.gammaInitializer, this.gammaRegularizer ?? undefined, true, this.gammaConstraint ?? undefined);
    }
    if (this.center) {
      this.beta = this.addWeight('beta', pShape, 'float32', this.betaInitializer, this.betaRegularizer ?? undefined, true, this.betaConstraint ?? undefined);
    }
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = singleInput(inputs);
      const { gamma, beta } = this.affineValues();
      const y = rmsNorm(x, { axis: this.axes, epsilon: this.epsilon, gamma, partial: this.partial ?? undefined });
      return applyAffine(y, this.axes, undefined, beta);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), axis: this.axis, ...this.affineConfig(), partial: this.partial, convention: this.convention };
  }
}

registerLayerClass(RMSNormalization);

const RMS_PAPER = 'Zhang & Sennrich, "Root Mean Square Layer Normalization", NeurIPS 2019 (arXiv 1910.07467)';

registerNorm({
  name: 'rms',
  aliases: ['rmsnorm', 'RMSNormalization', 'prms'],
  kind: 'activation',
  description: 'Divides each sample by the root mean square of its features (no centering), then scales by a learned gain.',
  paper: RMS_PAPER,
  layerClass: 'RMSNormalization',
  create: (config) => new RMSNormalization(config as RMSNormalizationArgs),
  doc: 'docs/rms-norm.md',
});

registerNorm({
  name: 'srms',
  aliases: ['srmsnorm', 'simple-rms'],
  kind: 'activation',
  description: 'Gain-free RMSNorm of TransNormerLLM: y = x / sqrt(mean(x^2) + 1e-6), no learned parameters.',
  paper: 'Qin et al., "Scaling TransNormer to 175 Billion Parameters" (TransNormerLLM), arXiv 2307.14995, 2023; RMSNorm: ' + RMS_PAPER,
  layerClass: 'RMSNormalization',
  create: (config) => new RMSNormalization({ epsilon: 1e-6, scale: false, ...(config as RMSNormalizationArgs) }),
  doc: 'docs/rms-norm.md',
});
