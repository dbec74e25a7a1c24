/**
 * The base of every normalization layer with a learned affine (gamma, beta): Keras argument names, weight
 * names and config keys in one place, so each method's layer only says how it normalizes.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean, checkPositive } from './checks.js';
import { NormkitError } from './errors.js';
import { resolveConstraint, resolveInitializer, resolveRegularizer, serializeObject } from './serialization.js';

type LayerArgs = ConstructorParameters<typeof tfl.layers.Layer>[0];
type LayerVariable = tfl.LayerVariable;
type Initializer = ReturnType<typeof tfl.initializers.ones>;

/** Keras arguments shared by every layer with an affine transform. */
export interface AffineLayerArgs extends NonNullable<LayerArgs> {
  /** Small constant added inside the square root. */
  epsilon?: number;
  /** Learn a shift beta (default true). */
  center?: boolean;
  /** Learn a scale gamma (default true). */
  scale?: boolean;
  betaInitializer?: unknown;
  gammaInitializer?: unknown;
  betaRegularizer?: unknown;
  gammaRegularizer?: unknown;
  betaConstraint?: unknown;
  gammaConstraint?: unknown;
}

/**
 * A Layer with optional `gamma` (scale) and `beta` (shift) weights, created by {@link buildAffine}.
 * Subclasses set `static className`, implement `build`, `call` and extend `getConfig`.
 */
export abstract class AffineNormLayer extends tfl.layers.Layer {
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  protected readonly betaInitializer;
  protected readonly gammaInitializer;
  protected readonly betaRegularizer;
  protected readonly gammaRegularizer;
  protected readonly betaConstraint;
  protected readonly gammaConstraint;
  protected gamma: LayerVariable | null = null;
  protected beta: LayerVariable | null = null;

  constructor(args: AffineLayerArgs, defaults: { epsilon: number; center?: boolean; scale?: boolean }) {
    super(args);
    const where = (this.constructor as unknown as { className: string }).className;
    this.epsilon = args.epsilon ?? defaults.epsilon;
    checkPositive(where, 'epsilon', this.epsilon);
    this.center = args.center ?? defaults.center ?? true;
    this.scale = args.scale ?? defaults.scale ?? true;
    checkBoolean(where, 'center', this.center);
    checkBoolean(where, 'scale', this.scale);
    this.betaInitializer = resolveInitializer(args.betaInitializer, 'zeros');
    this.gammaInitializer = resolveInitializer(args.gammaInitializer, 'ones');
    this.betaRegularizer = resolveRegularizer(args.betaRegularizer);
    this.gammaRegularizer = resolveRegularizer(args.gammaRegularizer);
    this.betaConstraint = resolveConstraint(args.betaConstraint);
    this.gammaConstraint = resolveConstraint(args.gammaConstraint);
    this.supportsMasking = true;
  }

  /** Creates `gamma` and `beta` of `shape` as enabled by `scale` and `center`. */
  protected buildAffine(shape: number[]): void {
    if (this.scale) {
      this.gamma = this.addWeight('gamma', shape, 'float32', this.gammaInitializer, this.gammaRegularizer ?? undefined, true, this.gammaConstraint ?? undefined);
    }
    if (this.center) {
      this.beta = this.addWeight('beta', shape, 'float32', this.betaInitializer, this.betaRegularizer ?? undefined, true, this.betaConstraint ?? undefined);
    }
  }

  /**
   * The channel (last) size of a channels-last input `[N, ..., C]` of rank >= `minRank`; throws a NormkitError
   * naming `inputShape` (and this layer) before anything is built otherwise.
   */
  protected channelsLastSize(inputShape: tfl.Shape | tfl.Shape[], minRank = 2, expected = `rank >= ${minRank} with a known channel (last) size`): number {
    const shape = firstInputShape(inputShape);
    const channels = shape[shape.length - 1];
    if (shape.length < minRank || channels == null) {
      throw new NormkitError((this.constructor as unknown as { className: string }).className, 'inputShape', expected, shape);
    }
    return channels;
  }

  /**
   * Adds a non-trainable float32 state weight (running statistics, streams, counters, windows): saved, loaded
   * and listed by getWeights like any weight, never updated by an optimizer, only by the layer's own writes.
   */
  protected addStateWeight(name: string, shape: number[], initializer: 'zeros' | 'ones' | Initializer): LayerVariable {
    const init = initializer === 'zeros' ? tfl.initializers.zeros() : initializer === 'ones' ? tfl.initializers.ones() : initializer;
    return this.addWeight(name, shape, 'float32', init, undefined, false);
  }

  /** Current gamma and beta values (undefined when disabled), for passing to an op. */
  protected affineValues(): { gamma?: tf.Tensor; beta?: tf.Tensor } {
    return { gamma: this.gamma?.read(), beta: this.beta?.read() };
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  /** The Keras config keys of the affine part; subclasses merge their own keys in. */
  protected affineConfig(): tf.serialization.ConfigDict {
    return {
      epsilon: this.epsilon,
      center: this.center,
      scale: this.scale,
      betaInitializer: serializeObject(this.betaInitializer) as unknown as tf.serialization.ConfigDictValue,
      gammaInitializer: serializeObject(this.gammaInitializer) as unknown as tf.serialization.ConfigDictValue,
      betaRegularizer: serializeObject(this.betaRegularizer) as unknown as tf.serialization.ConfigDictValue,
      gammaRegularizer: serializeObject(this.gammaRegularizer) as unknown as tf.serialization.ConfigDictValue,
      betaConstraint: serializeObject(this.betaConstraint) as unknown as tf.serialization.ConfigDictValue,
      gammaConstraint: serializeObject(this.gammaConstraint) as unknown as tf.serialization.ConfigDictValue,
    };
  }
}

/** Whose defaults a layer follows (epsilon, affine): Keras's or PyTorch's. */
export type NormConvention = 'keras' | 'pytorch';

/** Throws unless `convention` is 'keras' or 'pytorch'. */
export function checkConvention(where: string, convention: unknown): asserts convention is NormConvention {
  if (convention !== 'keras' && convention !== 'pytorch') throw new NormkitError(where, 'convention', "'keras' or 'pytorch'", convention);
}

/** The shape of a layer's single (or first) input (tfjs passes one shape or a list of them). */
export function firstInputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
  return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
}

/** The single input tensor of a layer call (tfjs passes a tensor or a one-element list). */
export function singleInput(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0] : inputs;
}
