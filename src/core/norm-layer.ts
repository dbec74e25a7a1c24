/**
 * The base of every normalization layer with a learned affine (gamma, beta): Keras argument names, weight
 * names and config keys in one place, so each method's layer only says how it normalizes.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean, checkNonNegative, checkPositive, unknownKeyError } from './checks.js';
import { NormkitError } from './errors.js';
import { resolveConstraint, resolveInitializer, resolveRegularizer, serializeObject } from './serialization.js';

type LayerArgs = ConstructorParameters<typeof tfl.layers.Layer>[0];
type LayerVariable = tfl.LayerVariable;
type Initializer = ReturnType<typeof tfl.initializers.ones>;

/** tfjs's base layer arguments (LayerArgs), which every normkit layer accepts. */
export const BASE_LAYER_KEYS: readonly string[] = ['name', 'trainable', 'inputShape', 'batchInputShape', 'batchSize', 'dtype', 'inputDType', 'weights'];

/**
 * A config key that some saved models carry (Keras base-layer or Keras-only options) for which normkit has no
 * argument: accepted only at a value that changes nothing (`accepts`), refused otherwise (`expected` says which).
 */
export interface NeutralKey {
  accepts: (value: unknown) => boolean;
  expected: string;
}

/**
 * Keys every layer tolerates: `customObjects`, which tfjs's deserializer adds to every config it loads, and
 * the Keras base-layer keys without a tfjs counterpart (`autocast`, `activityRegularizer: null`).
 */
export const NEUTRAL_LAYER_KEYS: Readonly<Record<string, NeutralKey>> = {
  customObjects: { accepts: () => true, expected: 'anything (tfjs adds it when loading)' },
  autocast: { accepts: (v) => typeof v === 'boolean', expected: 'a boolean (no effect in tfjs)' },
  activityRegularizer: { accepts: (v) => v === null || v === undefined, expected: 'null (normkit layers have no activity regularizer)' },
};

/** What {@link checkLayerArgs} needs of a layer class: its name and the keys it accepts. */
export interface LayerClassKeys {
  className: string;
  /** The layer's own argument names; {@link BASE_LAYER_KEYS} are added. */
  argKeys: readonly string[];
  /** Keys accepted only at a neutral value; {@link NEUTRAL_LAYER_KEYS} are added. */
  neutralKeys?: Readonly<Record<string, NeutralKey>>;
}

/**
 * Checks a layer's constructor argument before tfjs sees it: an object (undefined means `{}`) whose every key
 * is one of `cls.argKeys`, {@link BASE_LAYER_KEYS} or a neutral key at a neutral value. Throws a NormkitError
 * naming the class and the key (and the closest accepted key, for a typo like `epsilion`). Returns the object.
 */
export function checkLayerArgs<A extends object>(cls: LayerClassKeys, args: A | undefined | null): A {
  const where = cls.className;
  if (args === undefined) return {} as A;
  if (args === null || typeof args !== 'object' || Array.isArray(args) || args instanceof tf.Tensor || args instanceof tfl.layers.Layer) {
    throw new NormkitError(where, 'args', 'an object of layer arguments (e.g. {name: ...})', args);
  }
  const neutral = { ...NEUTRAL_LAYER_KEYS, ...cls.neutralKeys };
  const known = [...BASE_LAYER_KEYS, ...cls.argKeys];
  for (const [key, value] of Object.entries(args)) {
    if (known.includes(key)) continue;
    const n = neutral[key];
    if (n === undefined) throw unknownKeyError(where, key, known, 'argument');
    if (!n.accepts(value)) throw new NormkitError(where, key, n.expected, value);
  }
  return args;
}

/**
 * Throws unless `inputs` is what a layer can be applied to: a tf.Tensor, a SymbolicTensor, or a non-empty
 * list of them (a layer with several inputs), of dtype float32 unless `anyDType` (layers taking token ids).
 */
export function checkLayerInputs(where: string, inputs: unknown, anyDType = false): void {
  const one = (t: unknown) => t instanceof tf.Tensor || t instanceof tfl.SymbolicTensor;
  if (!(one(inputs) || (Array.isArray(inputs) && inputs.length > 0 && inputs.every(one)))) {
    throw new NormkitError(where, 'inputs', 'a tf.Tensor, a SymbolicTensor or a non-empty list of them', inputs);
  }
  if (anyDType) return;
  for (const t of (Array.isArray(inputs) ? inputs : [inputs]) as Array<tf.Tensor | tfl.SymbolicTensor>) {
    if (t.dtype !== 'float32') throw new NormkitError(where, 'inputs', 'float32 tensors (cast integer data first)', `dtype ${t.dtype}`);
  }
}

/**
 * Runs tfjs's check of `inputs` against `layer`'s input spec (the rank and channel sizes it was built for),
 * turning its error into a NormkitError naming `where` and the inputs.
 */
export function checkInputSpec(where: string, layer: tfl.layers.Layer, inputs: tf.Tensor | tf.Tensor[] | tfl.SymbolicTensor | tfl.SymbolicTensor[]): void {
  try {
    (layer as unknown as { assertInputCompatibility(i: unknown): void }).assertInputCompatibility(inputs);
  } catch (e) {
    const shapes = (Array.isArray(inputs) ? inputs : [inputs]).map((t) => `[${t.shape.join(', ')}]`).join(', ');
    throw new NormkitError(where, 'inputs', '', undefined, `${where}: argument 'inputs' (shape ${shapes}) does not fit the layer as built: ${(e as Error).message}`);
  }
}

/**
 * The base of every normkit layer: its constructor refuses a non-object argument and unknown or misspelt keys
 * ({@link checkLayerArgs} with the subclass's static `argKeys`), and `apply` refuses anything but tensors.
 */
export abstract class NormkitLayer extends tfl.layers.Layer {
  /** The layer's own argument names (beyond tfjs's LayerArgs); every subclass lists its own. */
  static argKeys: readonly string[] = [];
  /** Keys a saved config may carry that are accepted at one neutral value (see {@link NeutralKey}). */
  static neutralKeys: Readonly<Record<string, NeutralKey>> = {};
  /** Whether inputs of any dtype are accepted (token ids); otherwise they must be float32. */
  static anyInputDType = false;

  constructor(args?: LayerArgs) {
    super(checkLayerArgs(new.target as unknown as LayerClassKeys, args));
  }

  override apply(inputs: tf.Tensor | tf.Tensor[] | tfl.SymbolicTensor | tfl.SymbolicTensor[], kwargs?: Record<string, unknown>): ReturnType<tfl.layers.Layer['apply']> {
    checkLayerInputs(this.getClassName(), inputs, (this.constructor as typeof NormkitLayer).anyInputDType);
    if (this.built) {
      checkInputSpec(this.getClassName(), this, inputs);
      return super.apply(inputs, kwargs);
    }
    try {
      return super.apply(inputs, kwargs);
    } catch (e) {
      // tfjs marks a layer built only when build returns: weights of a build that threw would stay allocated
      // with no way to dispose them, so a refused input would leak.
      if (!this.built) disposeOwnWeights(this);
      throw e;
    }
  }
}

/**
 * Disposes the weights `layer` itself created (not those of layers it wraps) and forgets them, returning an
 * unbuilt layer to its state before build.
 */
export function disposeOwnWeights(layer: tfl.layers.Layer): void {
  const own = layer as unknown as { _trainableWeights: tfl.LayerVariable[]; _nonTrainableWeights: tfl.LayerVariable[]; _addedWeightNames?: string[] };
  for (const w of [...own._trainableWeights, ...own._nonTrainableWeights]) w.dispose();
  own._trainableWeights = [];
  own._nonTrainableWeights = [];
  if (own._addedWeightNames) own._addedWeightNames = [];
}

/** The argument names of {@link AffineNormLayer}, which its subclasses extend. */
export const AFFINE_KEYS: readonly string[] = [
  'epsilon', 'center', 'scale', 'betaInitializer', 'gammaInitializer', 'betaRegularizer', 'gammaRegularizer', 'betaConstraint', 'gammaConstraint',
];

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
export abstract class AffineNormLayer extends NormkitLayer {
  static override argKeys: readonly string[] = AFFINE_KEYS;
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

  /**
   * `defaults.zeroEpsilon` lets epsilon be 0 (BatchNormalization, as tfjs and Keras); otherwise it must be > 0.
   */
  constructor(args: AffineLayerArgs | undefined, defaults: { epsilon: number; center?: boolean; scale?: boolean; zeroEpsilon?: boolean }) {
    super(args);
    args ??= {};
    const where = this.getClassName();
    this.epsilon = args.epsilon ?? defaults.epsilon;
    if (defaults.zeroEpsilon) checkNonNegative(where, 'epsilon', this.epsilon);
    else checkPositive(where, 'epsilon', this.epsilon);
    this.center = args.center ?? defaults.center ?? true;
    this.scale = args.scale ?? defaults.scale ?? true;
    checkBoolean(where, 'center', this.center);
    checkBoolean(where, 'scale', this.scale);
    this.betaInitializer = resolveInitializer(where, 'betaInitializer', args.betaInitializer, 'zeros');
    this.gammaInitializer = resolveInitializer(where, 'gammaInitializer', args.gammaInitializer, 'ones');
    this.betaRegularizer = resolveRegularizer(where, 'betaRegularizer', args.betaRegularizer);
    this.gammaRegularizer = resolveRegularizer(where, 'gammaRegularizer', args.gammaRegularizer);
    this.betaConstraint = resolveConstraint(where, 'betaConstraint', args.betaConstraint);
    this.gammaConstraint = resolveConstraint(where, 'gammaConstraint', args.gammaConstraint);
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

/** The shape of a layer's single (or first) input (tfjs passes one shape or a list of them). */
export function firstInputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
  return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
}

/** The single input tensor of a layer call (tfjs passes a tensor or a one-element list). */
export function singleInput(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0] : inputs;
}
