/**
 * LayerNormalization: a Keras-compatible layer over {@link layerNorm}.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkAxisArgument, normalizeAxes, paramShape } from '../../core/axes.js';
import { AFFINE_KEYS, AffineNormLayer, firstInputShape, singleInput, type AffineLayerArgs } from '../../core/norm-layer.js';
import { registerLayerClass } from '../../core/serialization.js';
import { registerNorm } from '../../core/registry.js';
import { NormkitError } from '../../core/errors.js';
import { conventionDefaults, type Convention } from '../../core/conventions.js';
import { layerNorm } from './op.js';

/** Arguments of {@link LayerNormalization}; Keras names and defaults (epsilon 1e-3). */
export interface LayerNormalizationArgs extends AffineLayerArgs {
  /** Normalized axes (default -1). gamma and beta have shape `[inputShape[a] for a in axis]`. */
  axis?: number | number[];
  /** `'keras'` (default: eps 1e-3) or `'pytorch'` (eps 1e-5). Only changes defaults. */
  convention?: Convention;
}

/**
 * Layer normalization `y = gamma * (x - mean_A x) / sqrt(var_A x + eps) + beta` over the axes A (default -1).
 * Same class name, config keys and weight names as Keras's LayerNormalization, so Keras model.json files
 * load into it; gamma and beta broadcast instead of being tiled to the input's size.
 */
export class LayerNormalization extends AffineNormLayer {
  static className = 'LayerNormalization';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'axis', 'convention'];
  // Keras 3 writes rms_scaling (false); true would be RMSNormalization's math.
  static override neutralKeys = { rmsScaling: { accepts: (v: unknown) => v === false, expected: 'false (use RMSNormalization for RMS scaling)' } };
  readonly axis: number | number[];
  readonly convention: Convention;
  private axes: number[] = [];

  constructor(args: LayerNormalizationArgs = {}) {
    const defaults = conventionDefaults('LayerNormalization', args?.convention);
    super(args, { epsilon: defaults.epsilon });
    this.convention = defaults.convention;
    this.axis = args.axis ?? -1;
    checkAxisArgument('LayerNormalization', this.axis);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = firstInputShape(inputShape);
    this.axes = normalizeAxes('LayerNormalization', this.axis, shape.length);
    const pShape = paramShape(shape as number[], this.axes);
    if (pShape.some((d) => d == null)) {
      throw new NormkitError('LayerNormalization', 'inputShape', 'known sizes on the normalized axes', shape);
    }
    this.buildAffine(pShape);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => layerNorm(singleInput(inputs), { axis: this.axes, epsilon: this.epsilon, ...this.affineValues() }));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), axis: this.axis, ...this.affineConfig(), convention: this.convention };
  }
}

registerLayerClass(LayerNormalization);

registerNorm({
  name: 'layer',
  aliases: ['ln', 'layernorm', 'LayerNormalization'],
  kind: 'activation',
  description: 'Normalizes each sample over its feature axes to zero mean and unit variance, then scales and shifts.',
  paper: 'Ba, Kiros & Hinton, "Layer Normalization", arXiv 1607.06450, 2016',
  layerClass: 'LayerNormalization',
  create: (config) => new LayerNormalization(config as LayerNormalizationArgs),
  doc: 'docs/layer-norm.md',
});
