/**
 * EvoNormB0 and EvoNormS0 layers over {@link evoNormB0} and {@link evoNormS0}.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { CONVENTION_DEFAULTS } from '../../core/conventions.js';
import { checkInRange, checkInteger } from '../../core/checks.js';
import { AFFINE_KEYS, type AffineLayerArgs, AffineNormLayer, singleInput } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass, resolveInitializer, serializeObject } from '../../core/serialization.js';
import { resolveGroups } from '../../core/channels.js';
import { evoNormB0, evoNormS0 } from './op.js';

type LayerVariable = tfl.LayerVariable;

/** Arguments shared by the EvoNorm layers. */
interface EvoNormArgs extends AffineLayerArgs {
  /** Initializer of v (default ones). */
  vInitializer?: unknown;
}

/** Arguments of {@link EvoNormB0}: epsilon 1e-3, momentum 0.1 (weight of the new value), as timm. */
export interface EvoNormB0Args extends EvoNormArgs {
  momentum?: number;
}

/** Arguments of {@link EvoNormS0}: epsilon 1e-5, groups 32, as timm. */
export interface EvoNormS0Args extends EvoNormArgs {
  groups?: number;
}

/** What EvoNorm layers accept: image-like channels-last input (statistics over spatial axes). */
const EVONORM_INPUT = 'rank >= 3 ([N, ...spatial, C]) with a known channel (last) size';

/**
 * EvoNorm-B0, channels last: `x / max(sqrt(s2_batch + eps), v x + sqrt(s2_inst + eps)) * gamma + beta`
 * (see {@link evoNormB0}). Weights: gamma, beta, v [C] (trainable), moving_variance [C] (not trainable).
 */
export class EvoNormB0 extends AffineNormLayer {
  static className = 'EvoNormB0';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'momentum', 'vInitializer'];
  readonly momentum: number;
  private readonly vInitializer;
  private v: LayerVariable | null = null;
  private movingVariance: LayerVariable | null = null;

  constructor(args: EvoNormB0Args = {}) {
    super(args, { epsilon: 1e-3 });
    this.momentum = args.momentum ?? CONVENTION_DEFAULTS.pytorch.momentum;
    checkInRange('EvoNormB0', 'momentum', this.momentum, 0, 1);
    this.vInitializer = resolveInitializer(this.getClassName(), 'vInitializer', args.vInitializer, 'ones');
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const channels = this.channelsLastSize(inputShape, 3, EVONORM_INPUT);
    this.buildAffine([channels]);
    this.v = this.addWeight('v', [channels], 'float32', this.vInitializer, undefined, true);
    this.movingVariance = this.addStateWeight('moving_variance', [channels], 'ones');
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown> = {}): tf.Tensor {
    return tf.tidy(() => {
      const training = kwargs['training'] === true;
      const moving = this.movingVariance as LayerVariable;
      const r = evoNormB0(singleInput(inputs), {
        training, momentum: this.momentum, epsilon: this.epsilon, movingVariance: moving.read(),
        v: (this.v as LayerVariable).read(), ...this.affineValues(),
      });
      if (training) moving.write(r.movingVariance);
      return r.y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(), ...this.affineConfig(), momentum: this.momentum,
      vInitializer: serializeObject(this.vInitializer) as unknown as tf.serialization.ConfigDictValue,
    };
  }
}

/**
 * EvoNorm-S0, channels last: `x * sigmoid(v x) / sqrt(s2_group(x) + eps) * gamma + beta` (see
 * {@link evoNormS0}). Weights: gamma, beta, v [C].
 */
export class EvoNormS0 extends AffineNormLayer {
  static className = 'EvoNormS0';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'groups', 'vInitializer'];
  readonly groups: number;
  private readonly vInitializer;
  private v: LayerVariable | null = null;

  constructor(args: EvoNormS0Args = {}) {
    super(args, { epsilon: 1e-5 });
    this.groups = args.groups ?? 32;
    checkInteger('EvoNormS0', 'groups', this.groups, 1);
    this.vInitializer = resolveInitializer(this.getClassName(), 'vInitializer', args.vInitializer, 'ones');
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const channels = this.channelsLastSize(inputShape, 3, EVONORM_INPUT);
    resolveGroups('EvoNormS0', this.groups, channels);
    this.buildAffine([channels]);
    this.v = this.addWeight('v', [channels], 'float32', this.vInitializer, undefined, true);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => evoNormS0(singleInput(inputs), { groups: this.groups, epsilon: this.epsilon, v: (this.v as LayerVariable).read(), ...this.affineValues() }));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(), ...this.affineConfig(), groups: this.groups,
      vInitializer: serializeObject(this.vInitializer) as unknown as tf.serialization.ConfigDictValue,
    };
  }
}

registerLayerClass(EvoNormB0);
registerLayerClass(EvoNormS0);

const EVONORM_PAPER = 'Liu, Brock, Simonyan & Le, "Evolving Normalization-Activation Layers", NeurIPS 2020 (arXiv 2004.02967)';

registerNorm({
  name: 'evonorm-b0',
  aliases: ['evonormb0', 'EvoNormB0'],
  kind: 'activation',
  description: 'Batch-dependent normalization-activation: x / max(batch std, v x + instance std), then a per-channel affine.',
  paper: EVONORM_PAPER,
  layerClass: 'EvoNormB0',
  create: (config) => new EvoNormB0(config as EvoNormB0Args),
  doc: 'docs/evonorm.md',
});

registerNorm({
  name: 'evonorm-s0',
  aliases: ['evonorms0', 'EvoNormS0'],
  kind: 'activation',
  description: 'Sample-based normalization-activation: x sigmoid(v x) / group std, then a per-channel affine.',
  paper: EVONORM_PAPER,
  layerClass: 'EvoNormS0',
  create: (config) => new EvoNormS0(config as EvoNormS0Args),
  doc: 'docs/evonorm.md',
});
