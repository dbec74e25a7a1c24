/**
 * Self-normalizing networks (Klambauer et al., NeurIPS 2017): SELU with its companions, LeCun-normal init
 * and AlphaDropout. tfjs has the `selu` activation; normkit adds an exact LeCun-normal initializer, a
 * corrected AlphaDropout layer and a self-normalizing MLP builder.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkInRange, checkInteger, checkKnownKeys } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { NormkitLayer, singleInput } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';

/** SELU's alpha (Klambauer et al., `selu.py`). */
export const SELU_ALPHA = 1.6732632423543772;
/** SELU's lambda (scale). */
export const SELU_LAMBDA = 1.0507009873554805;
/** Std of a normal truncated at ±2 std, relative to the untruncated std (tfjs truncates 'normal' init there). */
const TRUNCATED_STD = 0.87962566103423978;

/**
 * LeCun-normal initializer with the exact variance 1/fan_in that SELU's fixed point needs. tfjs's
 * `leCunNormal` draws a normal truncated at 2 std without correcting its std, so its variance is only
 * 0.774/fan_in; this one divides the std by 0.8796 first, as Keras does. Serializes as tfjs's VarianceScaling.
 */
export function lecunNormal(seed?: number): ReturnType<typeof tfl.initializers.varianceScaling> {
  return tfl.initializers.varianceScaling({ scale: 1 / TRUNCATED_STD ** 2, mode: 'fanIn', distribution: 'normal', seed });
}

/** AlphaDropout's constants for a drop rate: dropped units take alpha' = -lambda*alpha, then y = a*x + b. */
export function alphaDropoutConstants(rate: number): { alphaPrime: number; a: number; b: number } {
  checkInRange('alphaDropoutConstants', 'rate', rate, 0, 0.999);
  const alphaPrime = -SELU_LAMBDA * SELU_ALPHA;
  const q = 1 - rate;
  const a = (q + alphaPrime ** 2 * q * (1 - q)) ** -0.5;
  return { alphaPrime, a, b: -a * (1 - q) * alphaPrime };
}

/** Arguments of {@link AlphaDropout}. */
export interface AlphaDropoutArgs extends NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]> {
  /** Drop probability in [0, 1). */
  rate: number;
}

/**
 * AlphaDropout: in training, each unit is kept with probability q = 1 - rate, dropped units are set to
 * alpha' = -lambda*alpha (SELU's negative saturation), then `y = a*x + b` with
 * `a = (q + alpha'^2 q (1-q))^(-1/2)`, `b = -a (1-q) alpha'`, which keeps mean 0 and variance 1. Identity
 * at inference. (tfjs-layers 4.22's AlphaDropout sets dropped units to +alpha' instead, which shifts the mean.)
 */
export class AlphaDropout extends NormkitLayer {
  static className = 'NormkitAlphaDropout';
  static override argKeys: readonly string[] = ['rate'];
  readonly rate: number;

  constructor(args: AlphaDropoutArgs) {
    super(args);
    checkInRange('AlphaDropout', 'rate', args?.rate, 0, 0.999);
    this.rate = args.rate;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    const x = singleInput(inputs);
    if (kwargs?.['training'] !== true || this.rate === 0) return tf.clone(x);
    const { alphaPrime, a, b } = alphaDropoutConstants(this.rate);
    return tf.tidy(() => {
      const keep = tf.cast(tf.greaterEqual(tf.randomUniform(x.shape, 0, 1, 'float32'), this.rate), 'float32');
      const dropped = tf.add(tf.mul(x, keep), tf.mul(tf.sub(1, keep), alphaPrime));
      return tf.add(tf.mul(dropped, a), b);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), rate: this.rate };
  }
}

registerLayerClass(AlphaDropout);

/** Configuration of {@link buildSeluMLP}. */
export interface SeluMLPConfig {
  inputDim: number;
  /** Widths of the hidden SELU layers. */
  hiddenUnits: number[];
  outputUnits: number;
  /** Output activation (default 'linear'). */
  outputActivation?: 'linear' | 'softmax' | 'sigmoid';
  /** AlphaDropout rate after every hidden layer (default 0; the paper's examples use 0.05). */
  dropoutRate?: number;
  /** Seed of the weight initializers. */
  seed?: number;
}

/**
 * A self-normalizing MLP: `Dense(selu, LeCun-normal exact, zero bias)` [+ AlphaDropout] per hidden layer,
 * then a Dense output layer. With standardized inputs its activations stay near mean 0 / variance 1.
 */
export function buildSeluMLP(config: SeluMLPConfig): tfl.Sequential {
  const where = 'buildSeluMLP';
  if (config === null || typeof config !== 'object') throw new NormkitError(where, 'config', 'an object', config);
  checkKnownKeys(where, config, ['inputDim', 'hiddenUnits', 'outputUnits', 'outputActivation', 'dropoutRate', 'seed']);
  checkInteger(where, 'inputDim', config.inputDim);
  checkInteger(where, 'outputUnits', config.outputUnits);
  if (!Array.isArray(config.hiddenUnits)) throw new NormkitError(where, 'hiddenUnits', 'a list of layer widths', config.hiddenUnits);
  config.hiddenUnits.forEach((u) => checkInteger(where, 'hiddenUnits', u));
  const rate = config.dropoutRate ?? 0;
  checkInRange(where, 'dropoutRate', rate, 0, 0.999);
  let seed = config.seed;
  const next = () => (seed === undefined ? undefined : seed++);
  const model = tfl.sequential();
  config.hiddenUnits.forEach((units, i) => {
    model.add(tfl.layers.dense({ units, activation: 'selu', kernelInitializer: lecunNormal(next()), ...(i === 0 ? { inputShape: [config.inputDim] } : {}), name: `selu_dense${i}` }));
    if (rate > 0) model.add(new AlphaDropout({ rate, name: `alpha_dropout${i}` }));
  });
  model.add(tfl.layers.dense({ units: config.outputUnits, activation: config.outputActivation ?? 'linear', kernelInitializer: lecunNormal(next()), ...(config.hiddenUnits.length === 0 ? { inputShape: [config.inputDim] } : {}), name: 'output' }));
  return model;
}

registerNorm({
  name: 'selu',
  aliases: ['snn', 'self-normalizing'],
  kind: 'normalization-free',
  description: 'Self-normalizing networks: SELU activations with LeCun-normal init and AlphaDropout keep activations near mean 0 / variance 1 without normalization layers.',
  paper: 'Klambauer, Unterthiner, Mayr & Hochreiter, "Self-Normalizing Neural Networks", NeurIPS 2017 (arXiv 1706.02515)',
  doc: 'docs/selu.md',
});
