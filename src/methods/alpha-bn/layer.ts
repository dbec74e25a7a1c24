/**
 * AlphaBatchNormalization (a BatchNormalization that calibrates its statistics at test time) and
 * {@link toAlphaBatchNorm}, which converts every BatchNormalization layer of a trained model.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkInRange, checkOneOf } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { singleInput } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';
import { BatchNormalization, type BatchNormalizationArgs } from '../batch-norm/layer.js';
import { VARIANCE_MIXINGS, alphaBatchNorm, type VarianceMixing } from './op.js';

/** Arguments of {@link AlphaBatchNormalization}: BatchNormalization's, plus the calibration. */
export interface AlphaBatchNormalizationArgs extends BatchNormalizationArgs {
  /** Weight alpha of the stored (source) statistics at test time, in [0, 1]. Required: see docs/alpha-bn.md. */
  sourceWeight?: number;
  /** `'linear'` (default, the paper) or `'mixture'`. */
  varianceMixing?: VarianceMixing;
}

const WHERE = 'AlphaBatchNormalization';

/**
 * A {@link BatchNormalization} whose inference calls (`predict`, `evaluate`, training = false) normalize with
 * `a * stored + (1 - a) * test-batch` statistics (see {@link alphaBatchNorm}); training calls are plain
 * BatchNorm. Same weights (gamma, beta, moving_mean, moving_variance) and config as BatchNormalization plus
 * `sourceWeight` and `varianceMixing`, so a trained BatchNormalization's weights load unchanged.
 */
export class AlphaBatchNormalization extends BatchNormalization {
  static override className = 'AlphaBatchNormalization';
  static override argKeys: readonly string[] = [...BatchNormalization.argKeys, 'sourceWeight', 'varianceMixing'];
  readonly sourceWeight: number;
  readonly varianceMixing: VarianceMixing;

  constructor(args: AlphaBatchNormalizationArgs = {}) {
    super(args);
    if (args.sourceWeight === undefined) {
      throw new NormkitError(WHERE, 'sourceWeight', 'a number in [0, 1] (the weight of the stored statistics; there is no default)', undefined);
    }
    checkInRange(WHERE, 'sourceWeight', args.sourceWeight, 0, 1);
    this.sourceWeight = args.sourceWeight;
    this.varianceMixing = args.varianceMixing ?? 'linear';
    checkOneOf(WHERE, 'varianceMixing', this.varianceMixing, VARIANCE_MIXINGS);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs?: Record<string, unknown>): tf.Tensor {
    if (this.isTrainingCall(kwargs)) return super.call(inputs, kwargs);
    const { movingMean, movingVariance, epsilon, gamma, beta } = this.opOptions(false);
    return tf.tidy(() =>
      alphaBatchNorm(singleInput(inputs), {
        sourceWeight: this.sourceWeight,
        varianceMixing: this.varianceMixing,
        axis: this.channelAxis,
        movingMean,
        movingVariance,
        epsilon,
        gamma,
        beta,
      }),
    );
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), sourceWeight: this.sourceWeight, varianceMixing: this.varianceMixing };
  }
}

registerLayerClass(AlphaBatchNormalization);

/** Options of {@link toAlphaBatchNorm}. */
export interface ToAlphaBatchNormOptions {
  /** Weight of the stored statistics in [0, 1]. Required. */
  sourceWeight: number;
  /** `'linear'` (default) or `'mixture'`. */
  varianceMixing?: VarianceMixing;
}

type PyDict = { [key: string]: unknown };

/** Rewrites, in a model topology (Keras JSON), every BatchNormalization layer config, nested models included. */
function convertTopology(node: unknown, sourceWeight: number, varianceMixing: VarianceMixing): number {
  if (Array.isArray(node)) return node.reduce((n: number, item) => n + convertTopology(item, sourceWeight, varianceMixing), 0);
  if (node === null || typeof node !== 'object') return 0;
  const dict = node as PyDict;
  let count = 0;
  if (dict['class_name'] === 'BatchNormalization' && typeof dict['config'] === 'object' && dict['config'] !== null) {
    dict['class_name'] = AlphaBatchNormalization.className;
    Object.assign(dict['config'] as PyDict, { source_weight: sourceWeight, variance_mixing: varianceMixing });
    count += 1;
  }
  for (const value of Object.values(dict)) count += convertTopology(value, sourceWeight, varianceMixing);
  return count;
}

/**
 * Returns a copy of `model` in which every BatchNormalization layer (tfjs's or normkit's, nested models
 * included) is an {@link AlphaBatchNormalization} with the same config and weights, so `predict` calibrates
 * the statistics of each test batch. The original model is left untouched. Throws when the model has no
 * BatchNormalization layer.
 */
export async function toAlphaBatchNorm(model: tfl.LayersModel, options: ToAlphaBatchNormOptions): Promise<tfl.LayersModel> {
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError('toAlphaBatchNorm', 'model', 'a tf.LayersModel', model);
  if (options === undefined || options === null || typeof options !== 'object') {
    throw new NormkitError('toAlphaBatchNorm', 'options', 'an object with sourceWeight', options);
  }
  checkInRange('toAlphaBatchNorm', 'sourceWeight', options.sourceWeight, 0, 1);
  const varianceMixing = options.varianceMixing ?? 'linear';
  checkOneOf('toAlphaBatchNorm', 'varianceMixing', varianceMixing, VARIANCE_MIXINGS);
  const topology = model.toJSON(null, false) as PyDict;
  const converted = convertTopology(topology['config'], options.sourceWeight, varianceMixing);
  if (converted === 0) throw new NormkitError('toAlphaBatchNorm', 'model', 'a model with at least one BatchNormalization layer', 'none');
  const copy = await tfl.models.modelFromJSON({ modelTopology: topology as tf.io.ModelJSON['modelTopology'] });
  const weights = model.getWeights();
  copy.setWeights(weights);
  return copy;
}

registerNorm({
  name: 'alpha-bn',
  aliases: ['alphabn', 'AlphaBatchNormalization'],
  kind: 'test-time',
  description: 'BatchNorm that normalizes test batches with a weighted mix of its stored and the test batch statistics.',
  paper: 'You, Li & Zhao, "Test-time Batch Statistics Calibration for Covariate Shift", arXiv 2110.04065, 2021',
  layerClass: 'AlphaBatchNormalization',
  create: (config) => new AlphaBatchNormalization(config as AlphaBatchNormalizationArgs),
  doc: 'docs/alpha-bn.md',
});
