/**
 * DynamicTanh: a layer over {@link dynamicTanh}, a drop-in replacement of LayerNormalization.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { NormkitError } from '../../core/errors.js';
import { AFFINE_KEYS, AffineNormLayer, firstInputShape, singleInput, type AffineLayerArgs } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';
import { dynamicTanh } from './op.js';
import { checkFloat32 } from '../../core/checks.js';

/** Arguments of {@link DynamicTanh}: the Keras affine arguments (no epsilon) and alpha's initial value. */
export interface DynamicTanhArgs extends Omit<AffineLayerArgs, 'epsilon'> {
  /** Initial alpha (default 0.5; the paper's LLaMA configs use e.g. 0.8 / 0.2 for attention / other norms at 7B). */
  alphaInitValue?: number;
}

type LayerVariable = tfl.LayerVariable;

/**
 * DyT on the last axis: `gamma * tanh(alpha * x) + beta`. Weights: alpha [1], gamma and beta [C]
 * (`center: false` gives the paper's LLaMA variant without beta).
 */
export class DynamicTanh extends AffineNormLayer {
  static className = 'DynamicTanh';
  static override argKeys: readonly string[] = [...AFFINE_KEYS.filter((k) => k !== 'epsilon'), 'alphaInitValue'];
  readonly alphaInitValue: number;
  private alpha: LayerVariable | null = null;

  constructor(args: DynamicTanhArgs = {}) {
    if ((args as AffineLayerArgs | null)?.epsilon !== undefined) {
      throw new NormkitError('DynamicTanh', 'epsilon', 'absent (DyT computes no statistics)', (args as AffineLayerArgs).epsilon);
    }
    // AffineNormLayer validates an epsilon; DyT has none, so a placeholder is passed and never used or saved.
    super(args, { epsilon: 1 });
    this.alphaInitValue = args.alphaInitValue ?? 0.5;
    checkFloat32('DynamicTanh', 'alphaInitValue', this.alphaInitValue);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = firstInputShape(inputShape);
    const channels = shape[shape.length - 1];
    if (channels == null) throw new NormkitError('DynamicTanh', 'inputShape', 'a known channel (last) size', shape);
    this.alpha = this.addWeight('alpha', [1], 'float32', tfl.initializers.constant({ value: this.alphaInitValue }), undefined, true);
    this.buildAffine([channels]);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => dynamicTanh(singleInput(inputs), { alpha: (this.alpha as LayerVariable).read(), ...this.affineValues() }));
  }

  override getConfig(): tf.serialization.ConfigDict {
    const affine = this.affineConfig();
    delete affine['epsilon'];
    return { ...super.getConfig(), ...affine, alphaInitValue: this.alphaInitValue };
  }
}

registerLayerClass(DynamicTanh);

registerNorm({
  name: 'dyt',
  aliases: ['dynamic-tanh', 'DynamicTanh'],
  kind: 'normalization-free',
  description: 'Elementwise gamma * tanh(alpha * x) + beta with one learned scalar alpha: a statistics-free LayerNorm replacement.',
  paper: 'Zhu, Chen, He, LeCun & Liu, "Transformers without Normalization", CVPR 2025 (arXiv 2503.10622)',
  layerClass: 'DynamicTanh',
  create: (config) => new DynamicTanh(config as DynamicTanhArgs),
  doc: 'docs/dynamic-tanh.md',
});
