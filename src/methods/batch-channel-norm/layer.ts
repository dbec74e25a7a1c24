/**
 * BatchChannelNormalization: a layer over {@link batchChannelNorm}.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { CONVENTION_DEFAULTS } from '../../core/conventions.js';
import { checkBoolean, checkInRange, checkInteger, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { AFFINE_KEYS, type AffineLayerArgs, AffineNormLayer, singleInput } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';
import { resolveGroups } from '../../core/channels.js';
import { batchChannelNorm } from './op.js';

/** Arguments of {@link BatchChannelNormalization}. gamma/beta (and their initializers etc.) are the batch stage's per-channel affine. */
export interface BatchChannelNormalizationArgs extends AffineLayerArgs {
  /** Channel groups of the channel stage (default 32). */
  groups?: number;
  /** Batch stage momentum, PyTorch convention (weight of the new value, default 0.1). */
  momentum?: number;
  /** Channel stage eps (default 1e-5). */
  channelEpsilon?: number;
  /** Micro-batch estimate mode (EstBN, default false). */
  estimate?: boolean;
  /** EstBN moving speed (required when estimate is true). */
  estimateSpeed?: number;
}

type LayerVariable = tfl.LayerVariable;

/**
 * Batch-Channel Normalization on channels-last input [N, ..., C] (see {@link batchChannelNorm}). Weights:
 * gamma, beta [C] (batch stage), group_gamma, group_beta [G] (channel stage), moving_mean, moving_variance [C]
 * (not trainable).
 */
export class BatchChannelNormalization extends AffineNormLayer {
  static className = 'BatchChannelNormalization';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'groups', 'momentum', 'channelEpsilon', 'estimate', 'estimateSpeed'];
  readonly groups: number;
  readonly momentum: number;
  readonly channelEpsilon: number;
  readonly estimate: boolean;
  readonly estimateSpeed: number | null;
  private groupGamma: LayerVariable | null = null;
  private groupBeta: LayerVariable | null = null;
  private movingMean: LayerVariable | null = null;
  private movingVariance: LayerVariable | null = null;

  constructor(args: BatchChannelNormalizationArgs = {}) {
    super(args, { epsilon: CONVENTION_DEFAULTS.pytorch.epsilon });
    const where = 'BatchChannelNormalization';
    this.groups = args.groups ?? 32;
    this.momentum = args.momentum ?? CONVENTION_DEFAULTS.pytorch.momentum;
    this.channelEpsilon = args.channelEpsilon ?? 1e-5;
    this.estimate = args.estimate ?? false;
    this.estimateSpeed = args.estimateSpeed ?? null;
    checkInteger(where, 'groups', this.groups, 1);
    checkInRange(where, 'momentum', this.momentum, 0, 1);
    checkPositive(where, 'channelEpsilon', this.channelEpsilon);
    checkBoolean(where, 'estimate', this.estimate);
    if (this.estimate && this.estimateSpeed === null) {
      throw new NormkitError(where, 'estimateSpeed', 'a number in [0, 1] when estimate is true (0 freezes the estimates)', undefined);
    }
    if (this.estimateSpeed !== null) checkInRange(where, 'estimateSpeed', this.estimateSpeed, 0, 1);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const channels = this.channelsLastSize(inputShape);
    resolveGroups('BatchChannelNormalization', this.groups, channels);
    this.buildAffine([channels]);
    this.groupGamma = this.addWeight('group_gamma', [this.groups], 'float32', tfl.initializers.ones(), undefined, true);
    this.groupBeta = this.addWeight('group_beta', [this.groups], 'float32', tfl.initializers.zeros(), undefined, true);
    this.movingMean = this.addStateWeight('moving_mean', [channels], 'zeros');
    this.movingVariance = this.addStateWeight('moving_variance', [channels], 'ones');
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown> = {}): tf.Tensor {
    return tf.tidy(() => {
      const training = kwargs['training'] === true;
      const mean = this.movingMean as LayerVariable;
      const variance = this.movingVariance as LayerVariable;
      const r = batchChannelNorm(singleInput(inputs), {
        training, groups: this.groups, momentum: this.momentum, epsilon: this.epsilon, channelEpsilon: this.channelEpsilon,
        estimate: this.estimate, ...(this.estimateSpeed !== null ? { estimateSpeed: this.estimateSpeed } : {}),
        movingMean: mean.read(), movingVariance: variance.read(), ...this.affineValues(),
        groupGamma: (this.groupGamma as LayerVariable).read(), groupBeta: (this.groupBeta as LayerVariable).read(),
      });
      if (training) {
        mean.write(r.movingMean);
        variance.write(r.movingVariance);
      }
      return r.y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(), ...this.affineConfig(), groups: this.groups, momentum: this.momentum,
      channelEpsilon: this.channelEpsilon, estimate: this.estimate, estimateSpeed: this.estimateSpeed,
    };
  }
}

registerLayerClass(BatchChannelNormalization);

registerNorm({
  name: 'bcn',
  aliases: ['batch-channel', 'batchchannelnorm', 'BatchChannelNormalization'],
  kind: 'activation',
  description: 'BatchNorm (or its running-estimate micro-batch variant) followed by group normalization with a per-group affine.',
  paper: 'Qiao, Wang, Liu, Shen & Yuille, "Micro-Batch Training with Batch-Channel Normalization and Weight Standardization", arXiv 1903.10520, 2019',
  layerClass: 'BatchChannelNormalization',
  create: (config) => new BatchChannelNormalization(config as BatchChannelNormalizationArgs),
  doc: 'docs/batch-channel-norm.md',
});
