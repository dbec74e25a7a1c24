/**
 * InstanceBatchNormalization (IBN-a) and ResidualInstanceNormalization (IBN-b): layers over {@link ibnA} and
 * {@link ibnB}.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean, checkInRange, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { type AffineLayerArgs, AffineNormLayer, firstInputShape, NormkitLayer } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass, resolveInitializer, resolveRegularizer, serializeObject } from '../../core/serialization.js';
import { CONVENTION_DEFAULTS, conventionDefaults, type Convention } from '../../core/conventions.js';
import { ibnA, ibnB, ibnSplit } from './op.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;
type LayerVariable = tfl.LayerVariable;

/** Arguments of {@link InstanceBatchNormalization}. */
export interface InstanceBatchNormalizationArgs extends LayerArgs {
  /** Fraction of channels (the first floor(C * ratio)) normalized per instance (default 0.5). */
  ratio?: number;
  /** Epsilon of both parts (default 1e-5). */
  epsilon?: number;
  /** BatchNorm momentum in the convention's meaning (default 0.1 for 'pytorch', 0.99 for 'keras'). */
  momentum?: number;
  /** BatchNorm moving-statistics rule (default 'pytorch', the paper's framework). */
  convention?: Convention;
  /** Learn shifts inBeta and bnBeta (default true). */
  center?: boolean;
  /** Learn scales inGamma and bnGamma (default true). */
  scale?: boolean;
  gammaInitializer?: unknown;
  betaInitializer?: unknown;
  gammaRegularizer?: unknown;
  betaRegularizer?: unknown;
}

const WHERE_A = 'InstanceBatchNormalization';
const serialized = (obj: tf.serialization.Serializable | null) => serializeObject(obj) as unknown as tf.serialization.ConfigDictValue;

/**
 * IBN-a, channels last ([N, ...spatial, C]): the first floor(C * ratio) channels go through InstanceNorm with
 * affine, the others through BatchNorm (batch statistics under `fit`, moving statistics under `predict`).
 * Replaces the first BatchNorm of a residual block in ResNet stages 1-3 (the paper's IBN-a). Weights: `inGamma`,
 * `inBeta` [h], `bnGamma`, `bnBeta`, and non-trainable `movingMean`, `movingVariance` [C - h]; with PyTorch's
 * split order, so `IN.weight`, `BN.weight`, ... port directly.
 */
export class InstanceBatchNormalization extends NormkitLayer {
  static className = 'InstanceBatchNormalization';
  static override argKeys: readonly string[] = ['ratio', 'epsilon', 'momentum', 'convention', 'center', 'scale', 'gammaInitializer', 'betaInitializer', 'gammaRegularizer', 'betaRegularizer'];
  readonly ratio: number;
  readonly epsilon: number;
  readonly momentum: number;
  readonly convention: Convention;
  readonly center: boolean;
  readonly scale: boolean;
  private readonly gammaInitializer;
  private readonly betaInitializer;
  private readonly gammaRegularizer;
  private readonly betaRegularizer;
  private vars: Partial<Record<'inGamma' | 'inBeta' | 'bnGamma' | 'bnBeta' | 'movingMean' | 'movingVariance', LayerVariable>> = {};

  constructor(args: InstanceBatchNormalizationArgs = {}) {
    super(args);
    args ??= {};
    this.ratio = args.ratio ?? 0.5;
    checkInRange(WHERE_A, 'ratio', this.ratio, 0, 1);
    const defaults = conventionDefaults(WHERE_A, args.convention, 'pytorch');
    this.convention = defaults.convention;
    this.momentum = args.momentum ?? defaults.momentum;
    checkInRange(WHERE_A, 'momentum', this.momentum, 0, 1);
    this.epsilon = args.epsilon ?? CONVENTION_DEFAULTS.pytorch.epsilon;
    checkPositive(WHERE_A, 'epsilon', this.epsilon);
    this.center = args.center ?? true;
    this.scale = args.scale ?? true;
    checkBoolean(WHERE_A, 'center', this.center);
    checkBoolean(WHERE_A, 'scale', this.scale);
    this.gammaInitializer = resolveInitializer(WHERE_A, 'gammaInitializer', args.gammaInitializer, 'ones');
    this.betaInitializer = resolveInitializer(WHERE_A, 'betaInitializer', args.betaInitializer, 'zeros');
    this.gammaRegularizer = resolveRegularizer(WHERE_A, 'gammaRegularizer', args.gammaRegularizer);
    this.betaRegularizer = resolveRegularizer(WHERE_A, 'betaRegularizer', args.betaRegularizer);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = firstInputShape(inputShape);
    const channels = shape[shape.length - 1];
    if (shape.length < 3 || channels == null) {
      throw new NormkitError(WHERE_A, 'inputShape', 'a shape [N, ...spatial, C] of rank >= 3 with a known C', shape);
    }
    const half = ibnSplit(WHERE_A, channels, this.ratio);
    const add = (name: string, size: number, init: ReturnType<typeof resolveInitializer>, reg: ReturnType<typeof resolveRegularizer>, trainable: boolean) =>
      this.addWeight(name, [size], 'float32', init, reg ?? undefined, trainable);
    if (this.scale) this.vars.inGamma = add('inGamma', half, this.gammaInitializer, this.gammaRegularizer, true);
    if (this.center) this.vars.inBeta = add('inBeta', half, this.betaInitializer, this.betaRegularizer, true);
    if (this.scale) this.vars.bnGamma = add('bnGamma', channels - half, this.gammaInitializer, this.gammaRegularizer, true);
    if (this.center) this.vars.bnBeta = add('bnBeta', channels - half, this.betaInitializer, this.betaRegularizer, true);
    this.vars.movingMean = add('movingMean', channels - half, tfl.initializers.zeros(), null, false);
    this.vars.movingVariance = add('movingVariance', channels - half, tfl.initializers.ones(), null, false);
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs?: Record<string, unknown>): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    // As Keras's BatchNormalization: batch statistics only in a training call of a trainable layer.
    const training = kwargs?.['training'] === true && this.trainable;
    const v = this.vars;
    if (!v.movingMean || !v.movingVariance) throw new Error(`${WHERE_A}: call() before build()`);
    const movingMean = v.movingMean;
    const movingVariance = v.movingVariance;
    return tf.tidy(() => {
      const r = ibnA(x, {
        training,
        ratio: this.ratio,
        epsilon: this.epsilon,
        momentum: this.momentum,
        convention: this.convention,
        movingMean: movingMean.read(),
        movingVariance: movingVariance.read(),
        inGamma: v.inGamma?.read(),
        inBeta: v.inBeta?.read(),
        bnGamma: v.bnGamma?.read(),
        bnBeta: v.bnBeta?.read(),
      });
      if (training) {
        movingMean.write(r.movingMean);
        movingVariance.write(r.movingVariance);
      }
      return r.y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      ratio: this.ratio,
      epsilon: this.epsilon,
      momentum: this.momentum,
      convention: this.convention,
      center: this.center,
      scale: this.scale,
      gammaInitializer: serialized(this.gammaInitializer),
      betaInitializer: serialized(this.betaInitializer),
      gammaRegularizer: serialized(this.gammaRegularizer),
      betaRegularizer: serialized(this.betaRegularizer),
    };
  }
}

/** Arguments of {@link ResidualInstanceNormalization}: the affine arguments (epsilon default 1e-5). */
export type ResidualInstanceNormalizationArgs = AffineLayerArgs;

/**
 * IBN-b's normalization, channels last: called on `[residual, shortcut]`, returns
 * `gamma (s - mu_{n,c}) / sqrt(var_{n,c} + eps) + beta` with s = residual + shortcut and instance statistics
 * over the spatial axes. Place it where a residual block adds its shortcut, before the final ReLU (the paper
 * does so in the last block of stages 1 and 2). Weights `gamma`, `beta` [C].
 */
export class ResidualInstanceNormalization extends AffineNormLayer {
  static className = 'ResidualInstanceNormalization';

  constructor(args: ResidualInstanceNormalizationArgs = {}) {
    super(args, { epsilon: CONVENTION_DEFAULTS.pytorch.epsilon });
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    if (!Array.isArray(inputShape[0]) || inputShape.length !== 2) {
      throw new NormkitError('ResidualInstanceNormalization', 'inputs', 'two inputs [residual, shortcut]', inputShape);
    }
    const shape = inputShape[0] as tfl.Shape;
    const channels = shape[shape.length - 1];
    if (shape.length < 3 || channels == null) {
      throw new NormkitError('ResidualInstanceNormalization', 'inputShape', 'a shape [N, ...spatial, C] of rank >= 3 with a known C', shape);
    }
    this.buildAffine([channels]);
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return firstInputShape(inputShape);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    if (!Array.isArray(inputs) || inputs.length !== 2) {
      throw new NormkitError('ResidualInstanceNormalization', 'inputs', 'a list [residual, shortcut]', inputs);
    }
    return tf.tidy(() => ibnB(inputs[0], inputs[1], { epsilon: this.epsilon, ...this.affineValues() }));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.affineConfig() };
  }
}

registerLayerClass(InstanceBatchNormalization);
registerLayerClass(ResidualInstanceNormalization);

const PAPER = 'Pan, Luo, Shi & Tang, "Two at Once: Enhancing Learning and Generalization Capacities via IBN-Net", ECCV 2018, arXiv 1807.09441';

registerNorm({
  name: 'ibn-a',
  aliases: ['ibn', 'InstanceBatchNormalization'],
  kind: 'activation',
  description: 'Instance-normalizes the first part of the channels and batch-normalizes the rest (IBN-Net IBN-a).',
  paper: PAPER,
  layerClass: 'InstanceBatchNormalization',
  create: (config) => new InstanceBatchNormalization(config as InstanceBatchNormalizationArgs),
  doc: 'docs/ibn.md',
});

registerNorm({
  name: 'ibn-b',
  aliases: ['ResidualInstanceNormalization'],
  kind: 'activation',
  description: 'Instance-normalizes a residual block output after the shortcut addition (IBN-Net IBN-b); inputs [residual, shortcut].',
  paper: PAPER,
  layerClass: 'ResidualInstanceNormalization',
  create: (config) => new ResidualInstanceNormalization(config as ResidualInstanceNormalizationArgs),
  doc: 'docs/ibn.md',
});
