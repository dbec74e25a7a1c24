/**
 * GroupNormalization: a Keras-compatible layer over {@link groupNorm}, also loading TensorFlow Addons'
 * `Addons>GroupNormalization`.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { AFFINE_KEYS, AffineNormLayer, firstInputShape, singleInput, type AffineLayerArgs } from '../../core/norm-layer.js';
import { registerLayerClass } from '../../core/serialization.js';
import { registerNorm } from '../../core/registry.js';
import { NormkitError } from '../../core/errors.js';
import { checkChannelAxisArgument, checkGroupsArgument, resolveChannelAxis, resolveGroups } from '../../core/channels.js';
import { conventionDefaults, type Convention } from '../../core/conventions.js';
import { groupNorm } from './op.js';

/** Arguments of {@link GroupNormalization}; Keras 3 names and defaults (groups 32, axis -1, epsilon 1e-3). */
export interface GroupNormalizationArgs extends AffineLayerArgs {
  /** Number of groups of contiguous channels (default 32); -1 means one group per channel (instance norm). */
  groups?: number;
  /** The channel axis (default -1). gamma and beta have shape [C]. */
  axis?: number;
  /** `'keras'` (default: eps 1e-3) or `'pytorch'` (eps 1e-5, torch.nn.GroupNorm). Only changes defaults. */
  convention?: Convention;
}

/**
 * Group normalization: per sample and group of C/G contiguous channels, over every non-batch axis,
 * `y = gamma_c * (x - mu) / sqrt(var + eps) + beta_c`. Same class name, config keys and weight names
 * (`gamma`, `beta`, shape [C]) as Keras's GroupNormalization; `groups: -1` is one group per channel.
 */
export class GroupNormalization extends AffineNormLayer {
  static className = 'GroupNormalization';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'groups', 'axis', 'convention'];
  readonly groups: number;
  readonly axis: number;
  readonly convention: Convention;
  private channelAxis = -1;
  private resolvedGroups = 1;

  constructor(args: GroupNormalizationArgs = {}) {
    const defaults = conventionDefaults('GroupNormalization', args?.convention);
    super(args, { epsilon: defaults.epsilon });
    this.convention = defaults.convention;
    this.groups = args.groups ?? 32;
    checkGroupsArgument('GroupNormalization', this.groups);
    this.axis = args.axis ?? -1;
    checkChannelAxisArgument('GroupNormalization', this.axis);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = firstInputShape(inputShape);
    if (shape.length < 2) {
      throw new NormkitError('GroupNormalization', 'inputShape', 'a shape [N, ..., C] of rank >= 2', shape);
    }
    const { axis, channels } = resolveChannelAxis('GroupNormalization', this.axis, shape);
    this.channelAxis = axis;
    this.resolvedGroups = resolveGroups('GroupNormalization', this.groups, channels);
    this.buildAffine([channels]);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() =>
      groupNorm(singleInput(inputs), { groups: this.resolvedGroups, axis: this.channelAxis, epsilon: this.epsilon, ...this.affineValues() }),
    );
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), groups: this.groups, axis: this.axis, ...this.affineConfig(), convention: this.convention };
  }
}

// TensorFlow Addons' GroupNormalization has the same config keys; its default is groups = 2, not 32.
registerLayerClass(GroupNormalization, [
  { name: 'Addons>GroupNormalization', convertConfig: (config) => ({ ...config, groups: config.groups ?? 2 }) },
]);

registerNorm({
  name: 'group',
  aliases: ['gn', 'groupnorm', 'GroupNormalization'],
  kind: 'activation',
  description: 'Normalizes each sample over every non-batch axis within groups of contiguous channels, then scales and shifts per channel.',
  paper: 'Wu & He, "Group Normalization", ECCV 2018 (arXiv 1803.08494)',
  layerClass: 'GroupNormalization',
  create: (config) => new GroupNormalization(config as GroupNormalizationArgs),
  doc: 'docs/group-norm.md',
});
