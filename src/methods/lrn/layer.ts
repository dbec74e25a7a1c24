/**
 * LocalResponseNormalization: a layer over {@link localResponseNorm} (tfjs has the op but no layer).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';
import { localResponseNorm, resolveLRNParams, type LocalResponseNormOptions, type LRNConvention } from './op.js';
import { NormkitLayer } from '../../core/norm-layer.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;

/** Arguments of {@link LocalResponseNormalization}: the op's options (size, alpha, beta, bias, convention). */
export interface LocalResponseNormalizationArgs extends LayerArgs, LocalResponseNormOptions {}

/**
 * Cross-channel local response normalization, channels last, no weights:
 * `y_c = x_c / (bias + a * sum_{c - floor(size/2) <= j <= c + floor((size-1)/2)} x_j^2)^beta` with a = alpha (`'alexnet'`, default)
 * or alpha / size (`'caffe'`, as Caffe's LRN layer and PyTorch's LocalResponseNorm).
 */
export class LocalResponseNormalization extends NormkitLayer {
  static className = 'LocalResponseNormalization';
  static override argKeys: readonly string[] = ['size', 'alpha', 'beta', 'bias', 'convention'];
  readonly size: number;
  readonly alpha: number;
  readonly beta: number;
  readonly bias: number;
  readonly convention: LRNConvention;

  constructor(args: LocalResponseNormalizationArgs = {}) {
    super(args);
    const p = resolveLRNParams('LocalResponseNormalization', args ?? {});
    this.size = p.size;
    this.alpha = p.alpha;
    this.beta = p.beta;
    this.bias = p.bias;
    this.convention = p.convention;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    return tf.tidy(() => localResponseNorm(x, { size: this.size, alpha: this.alpha, beta: this.beta, bias: this.bias, convention: this.convention }));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), size: this.size, alpha: this.alpha, beta: this.beta, bias: this.bias, convention: this.convention };
  }
}

registerLayerClass(LocalResponseNormalization);

registerNorm({
  name: 'lrn',
  aliases: ['local-response', 'LocalResponseNormalization'],
  kind: 'activation',
  description: 'Divides each activation by a power of the sum of squares of its neighbouring channels (AlexNet).',
  paper: 'Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", NeurIPS 2012',
  layerClass: 'LocalResponseNormalization',
  create: (config) => new LocalResponseNormalization(config as LocalResponseNormalizationArgs),
  doc: 'docs/lrn.md',
});
