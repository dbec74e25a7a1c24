/**
 * BatchNormalization: a Keras-compatible layer over {@link batchNorm} that replaces tfjs-layers' own class
 * of the same name in the serialization map.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { applyAffine } from '../../core/affine.js';
import { checkInRange, checkInteger, checkOneOf } from '../../core/checks.js';
import { checkChannelAxisArgument, resolveChannelAxis } from '../../core/channels.js';
import { conventionDefaults, type Convention } from '../../core/conventions.js';
import { standardize } from '../../core/moments.js';
import { NormkitError } from '../../core/errors.js';
import { AFFINE_KEYS, AffineNormLayer, firstInputShape, singleInput, type AffineLayerArgs } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass, resolveInitializer, serializeObject } from '../../core/serialization.js';
import {
  batchNorm,
  batchNormTraining,
  updateMovingStatistics,
  validateBatchNorm,
  valuesPerChannel,
} from './op.js';

/** What a training call does with a batch that has a single value per channel. */
export type OnSmallBatch = 'error' | 'useMovingStats' | 'groupStats';
const ON_SMALL_BATCH: readonly OnSmallBatch[] = ['error', 'useMovingStats', 'groupStats'];

type LayerVariable = tfl.LayerVariable;

/** Arguments of {@link BatchNormalization}: Keras names, plus normkit's `convention`. */
export interface BatchNormalizationArgs extends AffineLayerArgs {
  /** The channel axis (default -1). Keras files may write it as a one-element list, e.g. `[3]`. */
  axis?: number | number[];
  /** Keras: weight of the OLD moving value (default 0.99). PyTorch convention: weight of the NEW value (0.1). */
  momentum?: number;
  movingMeanInitializer?: unknown;
  movingVarianceInitializer?: unknown;
  /** `'keras'` (default; momentum 0.99, eps 1e-3, biased moving variance) or `'pytorch'` (0.1, 1e-5, unbiased). */
  convention?: Convention;
  /**
   * Gradient accumulation over k micro-batches (default 1): each micro-batch is normalized with its own
   * statistics, and every k training calls the moving statistics receive ONE update with the exact mean and
   * variance of the union of the k micro-batches (pooled with Chan's parallel formula).
   */
  accumulateSteps?: number;
  /**
   * A training batch with one value per channel (e.g. shape [1, C]): `'error'` (default) throws;
   * `'useMovingStats'` normalizes it with the moving statistics (inference behaviour, no update);
   * `'groupStats'` normalizes it with statistics over groups of channels of that one sample (see
   * {@link smallBatchGroups}), no update.
   */
  onSmallBatch?: OnSmallBatch;
}

/**
 * Number of channel groups used by `onSmallBatch: 'groupStats'`: the largest divisor G of C with G <= 32
 * (GroupNorm's default) that leaves at least 2 channels per group; 0 when C < 2 (no grouping possible).
 */
export function smallBatchGroups(channels: number): number {
  for (let g = Math.min(32, Math.floor(channels / 2)); g >= 1; g--) if (channels % g === 0) return g;
  return 0;
}

const WHERE = 'BatchNormalization';

const isNull = (v: unknown) => v === null || v === undefined;
/**
 * Keras's BatchNormalization options without a normkit counterpart: `fused` and `synchronized` change only
 * how Keras computes (one device here), `renormMomentum` matters only with renorm; batch renormalization,
 * virtual batches and `adjustment` would change the math, so only their "off" values are accepted.
 */
const KERAS_BATCH_NORM_KEYS = {
  fused: { accepts: (v: unknown) => isNull(v) || typeof v === 'boolean', expected: 'a boolean or null (no effect)' },
  synchronized: { accepts: (v: unknown) => typeof v === 'boolean', expected: 'a boolean (no effect on one device)' },
  renorm: { accepts: (v: unknown) => v === false, expected: 'false (batch renormalization is not implemented)' },
  renormClipping: { accepts: isNull, expected: 'null (batch renormalization is not implemented)' },
  renormMomentum: { accepts: (v: unknown) => typeof v === 'number', expected: 'a number (unused without renorm)' },
  virtualBatchSize: { accepts: isNull, expected: 'null (virtual batches are not implemented; see accumulateSteps)' },
  adjustment: { accepts: isNull, expected: 'null' },
};

/**
 * Batch normalization per channel (the channel axis `axis`, default -1) over every other axis, for inputs of
 * any rank >= 2. Under `model.fit` (training = true) it normalizes with the batch statistics and updates
 * `moving_mean` / `moving_variance`; under `predict` (training = false) it normalizes with them. Same class
 * name, config keys and weight names (gamma, beta, moving_mean, moving_variance) as Keras.
 *
 * Differences from tfjs-layers' BatchNormalization, all matching Keras: `center: false` / `scale: false`
 * train; a layer with `trainable = false` always runs in inference mode and never updates its moving
 * statistics; inputs of rank 5 and more work.
 */
export class BatchNormalization extends AffineNormLayer {
  static className = 'BatchNormalization';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'axis', 'momentum', 'movingMeanInitializer', 'movingVarianceInitializer', 'convention', 'accumulateSteps', 'onSmallBatch'];
  /** Keras-only options a saved Keras model carries, accepted at the values that mean plain batch normalization. */
  static override neutralKeys = KERAS_BATCH_NORM_KEYS;
  /** The axis as given (kept for getConfig). */
  readonly axis: number | number[];
  readonly momentum: number;
  readonly convention: Convention;
  readonly accumulateSteps: number;
  readonly onSmallBatch: OnSmallBatch;
  protected readonly movingMeanInitializer;
  protected readonly movingVarianceInitializer;
  protected movingMean: LayerVariable | null = null;
  protected movingVariance: LayerVariable | null = null;
  /** The resolved, non-negative channel axis (set by build). */
  protected channelAxis = -1;
  /**
   * The accumulation cycle's state, as non-trainable weights (only with accumulateSteps > 1): pooled mean and
   * sum of squared deviations per channel, values per channel and micro-batches pooled so far (scalars).
   */
  private accMean: LayerVariable | null = null;
  private accM2: LayerVariable | null = null;
  private accCount: LayerVariable | null = null;
  private accSteps: LayerVariable | null = null;

  constructor(args: BatchNormalizationArgs = {}) {
    const defaults = conventionDefaults(WHERE, args?.convention);
    super(args, { epsilon: defaults.epsilon, zeroEpsilon: true });
    this.convention = defaults.convention;
    this.momentum = args.momentum ?? defaults.momentum;
    checkInRange(WHERE, 'momentum', this.momentum, 0, 1);
    this.axis = args.axis ?? -1;
    // Keras files write the axis as a list of one integer, e.g. [3].
    const single = Array.isArray(this.axis) && this.axis.length === 1 ? this.axis[0] : this.axis;
    checkChannelAxisArgument(WHERE, single, { batchAxis: true });
    this.accumulateSteps = args.accumulateSteps ?? 1;
    checkInteger(WHERE, 'accumulateSteps', this.accumulateSteps, 1);
    this.onSmallBatch = args.onSmallBatch ?? 'error';
    checkOneOf(WHERE, 'onSmallBatch', this.onSmallBatch, ON_SMALL_BATCH);
    this.movingMeanInitializer = resolveInitializer(WHERE, 'movingMeanInitializer', args.movingMeanInitializer, 'zeros');
    this.movingVarianceInitializer = resolveInitializer(WHERE, 'movingVarianceInitializer', args.movingVarianceInitializer, 'ones');
  }

  /** The channel axis as one integer (negative values count from the end). */
  protected axisValue(): number {
    return Array.isArray(this.axis) ? this.axis[0] : this.axis;
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = firstInputShape(inputShape);
    const rank = shape.length;
    if (rank < 2) throw new NormkitError(WHERE, 'inputShape', 'a shape of rank >= 2', shape);
    const { axis, channels } = resolveChannelAxis(WHERE, this.axisValue(), shape, { batchAxis: true });
    this.channelAxis = axis;
    // As Keras: later inputs must have the same rank and channel count.
    this.inputSpec = [new tfl.InputSpec({ ndim: rank, axes: { [this.channelAxis]: channels } })];
    this.buildAffine([channels]);
    this.movingMean = this.addStateWeight('moving_mean', [channels], this.movingMeanInitializer);
    this.movingVariance = this.addStateWeight('moving_variance', [channels], this.movingVarianceInitializer);
    if (this.accumulateSteps > 1) {
      // Weights, so getWeights/setWeights and save/load carry a partial cycle; a layer without accumulation
      // keeps Keras's four weights.
      this.accMean = this.addStateWeight('accumulated_mean', [channels], 'zeros');
      this.accM2 = this.addStateWeight('accumulated_m2', [channels], 'zeros');
      this.accCount = this.addStateWeight('accumulated_count', [], 'zeros');
      this.accSteps = this.addStateWeight('accumulated_steps', [], 'zeros');
    }
    this.built = true;
  }

  /** Whether this call normalizes with batch statistics: training requested and the layer trainable (Keras). */
  protected isTrainingCall(kwargs: Record<string, unknown> | undefined): boolean {
    return kwargs?.['training'] === true && this.trainable;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs?: Record<string, unknown>): tf.Tensor {
    const x = singleInput(inputs);
    let training = this.isTrainingCall(kwargs);
    if (training && this.onSmallBatch !== 'error' && valuesPerChannel(x.shape, this.channelAxis) < 2) {
      if (this.onSmallBatch === 'groupStats') return this.normalizeWithGroupStats(x);
      training = false;
    }
    if (training && this.accumulateSteps > 1) return this.callAccumulating(x);
    return tf.tidy(() => {
      const result = batchNorm(x, this.opOptions(training));
      if (training) {
        (this.movingMean as LayerVariable).write(result.movingMean);
        (this.movingVariance as LayerVariable).write(result.movingVariance);
      }
      return result.y;
    });
  }

  /**
   * Training call with `accumulateSteps` k > 1: normalize with this micro-batch's statistics, pool them into
   * the cycle's (count, mean, M2) with Chan's formula
   *   n = na + nb,  d = mean_b - mean_a,  mean = mean_a + d * nb / n,  M2 = M2_a + M2_b + d^2 * na * nb / n,
   * and on the k-th call update the moving statistics once with mean and M2 / n (the union's biased variance;
   * the PyTorch convention turns it into M2 / (n - 1)) and zero the pool. The cycle's position lives in the
   * weights, so the k-th call is picked with tf.where on the device instead of a branch on a read-back value.
   */
  private callAccumulating(x: tf.Tensor): tf.Tensor {
    const args = validateBatchNorm(WHERE, x, this.opOptions(true));
    const [accMean, accM2, accCount, accSteps] = [this.accMean, this.accM2, this.accCount, this.accSteps] as LayerVariable[];
    return tf.tidy(() => {
      const { y, batchMean, batchVariance, count } = batchNormTraining(x, args.channelAxis, args.epsilon, args.gamma, args.beta);
      // An empty pool holds zeros, so the first micro-batch needs no special case: mean = d, M2 = M2_b.
      const na = accCount.read();
      const n = tf.add(na, count);
      const delta = tf.sub(batchMean, accMean.read());
      const mean = tf.add(accMean.read(), tf.mul(delta, tf.div(count, n)));
      const m2 = tf.add(tf.add(accM2.read(), tf.mul(batchVariance, count)), tf.mul(tf.square(delta), tf.div(tf.mul(na, count), n)));
      const steps = tf.add(accSteps.read(), 1);
      const done = tf.greaterEqual(steps, this.accumulateSteps);
      const moving = updateMovingStatistics(args.movingMean, args.movingVariance, mean, tf.div(m2, n), n, this.momentum, this.convention);
      const zero = tf.zerosLike(mean);
      (this.movingMean as LayerVariable).write(tf.where(done, moving.movingMean, args.movingMean));
      (this.movingVariance as LayerVariable).write(tf.where(done, moving.movingVariance, args.movingVariance));
      accMean.write(tf.where(done, zero, mean));
      accM2.write(tf.where(done, zero, m2));
      accCount.write(tf.where(done, tf.zerosLike(n), n));
      accSteps.write(tf.where(done, tf.zerosLike(steps), steps));
      return y;
    });
  }

  /** Drops the statistics pooled so far in the current accumulation cycle. */
  resetAccumulation(): void {
    tf.tidy(() => {
      for (const w of [this.accMean, this.accM2, this.accCount, this.accSteps]) w?.write(tf.zerosLike(w.read()));
    });
  }

  /**
   * `onSmallBatch: 'groupStats'`: a batch with one value per channel is normalized per sample over groups of
   * G = {@link smallBatchGroups}(C) consecutive channels (GroupNorm statistics), then gamma and beta are
   * applied; the moving statistics are left alone. Gradients flow through the group statistics.
   */
  private normalizeWithGroupStats(x: tf.Tensor): tf.Tensor {
    const channels = x.shape[this.channelAxis];
    const groups = smallBatchGroups(channels);
    if (groups === 0) {
      throw new NormkitError(WHERE, 'onSmallBatch', "'error' or 'useMovingStats' for a layer with fewer than 2 channels ('groupStats' needs 2 channels per group)", this.onSmallBatch);
    }
    return tf.tidy(() => {
      // With one value per channel every other axis has size 1, so the flat order is the channel order.
      const grouped = tf.reshape(x, [groups, channels / groups]);
      const y = tf.reshape(standardize(grouped, [1], this.epsilon).xhat, x.shape);
      const { gamma, beta } = this.affineValues();
      return applyAffine(y, [this.channelAxis], gamma, beta);
    });
  }

  /** The op's options for this layer's weights. */
  protected opOptions(training: boolean) {
    return {
      training,
      axis: this.channelAxis,
      momentum: this.momentum,
      epsilon: this.epsilon,
      convention: this.convention,
      movingMean: (this.movingMean as LayerVariable).read(),
      movingVariance: (this.movingVariance as LayerVariable).read(),
      ...this.affineValues(),
    };
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      axis: this.axis,
      momentum: this.momentum,
      ...this.affineConfig(),
      movingMeanInitializer: serializeObject(this.movingMeanInitializer) as unknown as tf.serialization.ConfigDictValue,
      movingVarianceInitializer: serializeObject(this.movingVarianceInitializer) as unknown as tf.serialization.ConfigDictValue,
      convention: this.convention,
      accumulateSteps: this.accumulateSteps,
      onSmallBatch: this.onSmallBatch,
    };
  }
}

/**
 * Sets `trainable` on every BatchNormalization layer inside `model`, nested models included, and returns how
 * many it changed. Needed to freeze a base model the Keras way in tfjs: `base.trainable = false` excludes the
 * base's weights from training but does not reach the layers inside, whose own `trainable` flag is what
 * makes a BatchNorm run in inference mode (and tfjs's compile marks their weights trainable again).
 */
export function setBatchNormTrainable(model: tfl.LayersModel, trainable: boolean): number {
  let changed = 0;
  const visit = (layers: tfl.layers.Layer[]) => {
    for (const layer of layers) {
      if (layer instanceof tfl.LayersModel) visit(layer.layers);
      else if (layer.getClassName() === 'BatchNormalization') {
        layer.trainable = trainable;
        changed++;
      }
    }
  };
  visit(model.layers);
  return changed;
}

registerLayerClass(BatchNormalization, [{ name: 'BatchNormalizationV1' }, { name: 'BatchNormalizationV2' }]);

registerNorm({
  name: 'batch',
  aliases: ['bn', 'batchnorm', 'BatchNormalization'],
  kind: 'activation',
  description: 'Normalizes each channel with the mean and variance of the batch in training and with moving averages of them in inference.',
  paper: 'Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift", ICML 2015 (arXiv 1502.03167)',
  layerClass: 'BatchNormalization',
  create: (config) => new BatchNormalization(config as BatchNormalizationArgs),
  doc: 'docs/batch-norm.md',
});
