/**
 * FilterResponseNormalization: FRN + TLU layer over {@link filterResponseNorm}.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean } from '../../core/checks.js';
import { AFFINE_KEYS, type AffineLayerArgs, AffineNormLayer, singleInput } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass, resolveConstraint, resolveInitializer, resolveRegularizer, serializeObject } from '../../core/serialization.js';
import { filterResponseNorm } from './op.js';

/** Arguments of {@link FilterResponseNormalization}. */
export interface FilterResponseNormalizationArgs extends AffineLayerArgs {
  /** Apply the TLU `max(y, tau)` with a learned per-channel tau (default true). */
  tlu?: boolean;
  /** Learn an extra eps: eps = epsilon + |epsilon_l| (default false; the paper's advice for 1x1 maps and dense layers). */
  learnedEpsilon?: boolean;
  tauInitializer?: unknown;
  tauRegularizer?: unknown;
  tauConstraint?: unknown;
  /** Initializer of epsilon_l (default constant 1e-4: |.| has zero gradient at 0, so a zero start would never move). */
  epsilonLInitializer?: unknown;
}

type LayerVariable = tfl.LayerVariable;
const ser = (o: tf.serialization.Serializable | null) => serializeObject(o) as unknown as tf.serialization.ConfigDictValue;

/**
 * Filter Response Normalization with TLU on channels-last input [N, ...spatial, C]:
 * `max(gamma * x / sqrt(mean_spatial(x^2) + eps) + beta, tau)`. Weights: gamma, beta, tau [C] and, with
 * `learnedEpsilon`, epsilon_l [1].
 */
export class FilterResponseNormalization extends AffineNormLayer {
  static className = 'FilterResponseNormalization';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'tlu', 'learnedEpsilon', 'tauInitializer', 'tauRegularizer', 'tauConstraint', 'epsilonLInitializer'];
  readonly tlu: boolean;
  readonly learnedEpsilon: boolean;
  private readonly tauInitializer;
  private readonly tauRegularizer;
  private readonly tauConstraint;
  private readonly epsilonLInitializer;
  private tau: LayerVariable | null = null;
  private epsilonL: LayerVariable | null = null;

  constructor(args: FilterResponseNormalizationArgs = {}) {
    super(args, { epsilon: 1e-6 });
    this.tlu = args.tlu ?? true;
    this.learnedEpsilon = args.learnedEpsilon ?? false;
    checkBoolean('FilterResponseNormalization', 'tlu', this.tlu);
    checkBoolean('FilterResponseNormalization', 'learnedEpsilon', this.learnedEpsilon);
    this.tauInitializer = resolveInitializer('FilterResponseNormalization', 'tauInitializer', args.tauInitializer, 'zeros');
    this.tauRegularizer = resolveRegularizer('FilterResponseNormalization', 'tauRegularizer', args.tauRegularizer);
    this.tauConstraint = resolveConstraint('FilterResponseNormalization', 'tauConstraint', args.tauConstraint);
    this.epsilonLInitializer = resolveInitializer('FilterResponseNormalization', 'epsilonLInitializer', args.epsilonLInitializer ?? tfl.initializers.constant({ value: 1e-4 }), 'zeros');
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const channels = this.channelsLastSize(inputShape);
    this.buildAffine([channels]);
    if (this.tlu) {
      this.tau = this.addWeight('tau', [channels], 'float32', this.tauInitializer, this.tauRegularizer ?? undefined, true, this.tauConstraint ?? undefined);
    }
    if (this.learnedEpsilon) this.epsilonL = this.addWeight('epsilon_l', [1], 'float32', this.epsilonLInitializer, undefined, true);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => filterResponseNorm(singleInput(inputs), {
      epsilon: this.epsilon, ...this.affineValues(),
      ...(this.tau ? { tau: this.tau.read() } : {}),
      ...(this.epsilonL ? { epsilonL: this.epsilonL.read() } : {}),
    }));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(), ...this.affineConfig(), tlu: this.tlu, learnedEpsilon: this.learnedEpsilon,
      tauInitializer: ser(this.tauInitializer), tauRegularizer: ser(this.tauRegularizer), tauConstraint: ser(this.tauConstraint),
      epsilonLInitializer: ser(this.epsilonLInitializer),
    };
  }
}

registerLayerClass(FilterResponseNormalization);

registerNorm({
  name: 'frn',
  aliases: ['frn-tlu', 'filter-response', 'FilterResponseNormalization'],
  kind: 'activation',
  description: 'Per-sample, per-channel division by the spatial RMS, affine, then a learned threshold max(y, tau) (TLU).',
  paper: 'Singh & Krishnan, "Filter Response Normalization Layer: Eliminating Batch Dependence in the Training of Deep Neural Networks", CVPR 2020 (arXiv 1911.09737)',
  layerClass: 'FilterResponseNormalization',
  create: (config) => new FilterResponseNormalization(config as FilterResponseNormalizationArgs),
  doc: 'docs/filter-response-norm.md',
});
