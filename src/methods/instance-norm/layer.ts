/**
 * InstanceNormalization: a layer over {@link instanceNorm}, loading TensorFlow Addons'
 * `Addons>InstanceNormalization` too.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { AFFINE_KEYS, AffineNormLayer, firstInputShape, singleInput, type AffineLayerArgs } from '../../core/norm-layer.js';
import { registerLayerClass } from '../../core/serialization.js';
import { registerNorm } from '../../core/registry.js';
import { NormkitError } from '../../core/errors.js';
import { checkChannelAxisArgument, resolveChannelAxis } from '../../core/channels.js';
import { conventionDefaults, type Convention } from '../../core/conventions.js';
import { instanceNorm, spatialAxes } from './op.js';

/**
 * Arguments of {@link InstanceNormalization}. Defaults follow TensorFlow Addons (the Keras-side reference):
 * axis -1, epsilon 1e-3, center and scale on.
 */
export interface InstanceNormalizationArgs extends AffineLayerArgs {
  /** The channel axis (default -1). gamma and beta have shape [C]. */
  axis?: number;
  /**
   * `'keras'` (default: eps 1e-3, affine on) or `'pytorch'` (eps 1e-5, center and scale off as
   * torch.nn.InstanceNorm2d's `affine=False`). Only changes defaults.
   */
  convention?: Convention;
}

/**
 * Instance normalization: per sample and channel, over the spatial axes (every axis but batch and channel),
 * `y = gamma_c * (x - mu) / sqrt(var + eps) + beta_c`. Class name, config keys and weight names (`gamma`,
 * `beta`, shape [C]) as TensorFlow Addons' InstanceNormalization. Inputs whose spatial size is 1 are refused
 * (their output would be beta whatever the input).
 */
export class InstanceNormalization extends AffineNormLayer {
  static className = 'InstanceNormalization';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'axis', 'convention'];
  readonly axis: number;
  readonly convention: Convention;
  private channelAxis = -1;

  constructor(args: InstanceNormalizationArgs = {}) {
    const defaults = conventionDefaults('InstanceNormalization', args?.convention);
    super(args, { epsilon: defaults.epsilon, center: defaults.instanceAffine, scale: defaults.instanceAffine });
    this.convention = defaults.convention;
    this.axis = args.axis ?? -1;
    checkChannelAxisArgument('InstanceNormalization', this.axis);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = firstInputShape(inputShape);
    if (shape.length < 3) {
      throw new NormkitError('InstanceNormalization', 'inputShape', 'a shape [N, ..., C] of rank >= 3 (at least one spatial axis)', shape);
    }
    const { axis, channels } = resolveChannelAxis('InstanceNormalization', this.axis, shape);
    this.channelAxis = axis;
    // Refuse a spatial size of 1 now when the spatial sizes are known; otherwise the op checks at call time.
    const spatialSizes = shape.filter((_, i) => i !== 0 && i !== axis);
    if (spatialSizes.every((d) => d != null)) spatialAxes('InstanceNormalization', shape as number[], axis);
    this.buildAffine([channels]);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => instanceNorm(singleInput(inputs), { axis: this.channelAxis, epsilon: this.epsilon, ...this.affineValues() }));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), axis: this.axis, ...this.affineConfig(), convention: this.convention };
  }
}

// TensorFlow Addons' InstanceNormalization is its GroupNormalization with one group per channel and saves
// that `groups` key; it carries no information here.
registerLayerClass(InstanceNormalization, [
  {
    name: 'Addons>InstanceNormalization',
    convertConfig: (config) => {
      const rest = { ...config };
      delete rest.groups;
      return rest;
    },
  },
]);

registerNorm({
  name: 'instance',
  aliases: ['in', 'instancenorm', 'InstanceNormalization'],
  kind: 'activation',
  description: 'Normalizes each channel of each sample over its spatial axes, then scales and shifts per channel.',
  paper: 'Ulyanov, Vedaldi & Lempitsky, "Instance Normalization: The Missing Ingredient for Fast Stylization", arXiv 1607.08022, 2016',
  layerClass: 'InstanceNormalization',
  create: (config) => new InstanceNormalization(config as InstanceNormalizationArgs),
  doc: 'docs/instance-norm.md',
});
