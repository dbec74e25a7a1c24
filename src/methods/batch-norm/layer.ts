/**
 * BatchNormalization: a Keras-compatible layer over {@link batchNorm} that replaces tfjs-layers' own class
 * of the same name in the serialization map.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkInRange, checkOneOf } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { AffineNormLayer, singleInput, type AffineLayerArgs } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass, resolveInitializer, serializeObject } from '../../core/serialization.js';
import { BATCH_NORM_CONVENTIONS, batchNorm, batchNormDefaults, type BatchNormConvention } from './op.js';

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
  convention?: BatchNormConvention;
}

const WHERE = 'BatchNormalization';

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
  /** The axis as given (kept for getConfig). */
  readonly axis: number | number[];
  readonly momentum: number;
  readonly convention: BatchNormConvention;
  protected readonly movingMeanInitializer;
  protected readonly movingVarianceInitializer;
  protected movingMean: LayerVariable | null = null;
  protected movingVariance: LayerVariable | null = null;
  /** The resolved, non-negative channel axis (set by build). */
  protected channelAxis = -1;

  constructor(args: BatchNormalizationArgs = {}) {
    const convention = args.convention ?? 'keras';
    checkOneOf(WHERE, 'convention', convention, BATCH_NORM_CONVENTIONS);
    const defaults = batchNormDefaults(convention);
    super(args, { epsilon: defaults.epsilon });
    this.convention = convention;
    this.momentum = args.momentum ?? defaults.momentum;
    checkInRange(WHERE, 'momentum', this.momentum, 0, 1);
    this.axis = args.axis ?? -1;
    const single = Array.isArray(this.axis) ? (this.axis.length === 1 ? this.axis[0] : undefined) : this.axis;
    if (typeof single !== 'number' || !Number.isInteger(single)) {
      throw new NormkitError(WHERE, 'axis', 'one integer (or a list of one integer, as Keras writes it)', this.axis);
    }
    this.movingMeanInitializer = resolveInitializer(args.movingMeanInitializer, 'zeros');
    this.movingVarianceInitializer = resolveInitializer(args.movingVarianceInitializer, 'ones');
  }

  /** The channel axis as one integer (negative values count from the end). */
  protected axisValue(): number {
    return Array.isArray(this.axis) ? this.axis[0] : this.axis;
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const rank = shape.length;
    const axis = this.axisValue();
    if (rank < 2) throw new NormkitError(WHERE, 'inputShape', 'a shape of rank >= 2', shape);
    if (axis < -rank || axis >= rank) {
      throw new NormkitError(WHERE, 'axis', `an integer in [${-rank}, ${rank - 1}] for inputs of rank ${rank}`, this.axis);
    }
    this.channelAxis = axis < 0 ? axis + rank : axis;
    const channels = shape[this.channelAxis];
    if (channels == null) throw new NormkitError(WHERE, 'inputShape', 'a known size on the channel axis', shape);
    this.buildAffine([channels]);
    this.movingMean = this.addWeight('moving_mean', [channels], 'float32', this.movingMeanInitializer, undefined, false);
    this.movingVariance = this.addWeight('moving_variance', [channels], 'float32', this.movingVarianceInitializer, undefined, false);
    this.built = true;
  }

  /** Whether this call normalizes with batch statistics: training requested and the layer trainable (Keras). */
  protected isTrainingCall(kwargs: Record<string, unknown> | undefined): boolean {
    return kwargs?.['training'] === true && this.trainable;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs?: Record<string, unknown>): tf.Tensor {
    const x = singleInput(inputs);
    const training = this.isTrainingCall(kwargs);
    return tf.tidy(() => {
      const result = batchNorm(x, this.opOptions(training));
      if (training) {
        (this.movingMean as LayerVariable).write(result.movingMean);
        (this.movingVariance as LayerVariable).write(result.movingVariance);
      }
      return result.y;
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
    };
  }
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
