/**
 * Re-estimating BatchNorm moving statistics on data ("precise BN", "re-normalization" after weight merging or
 * pruning): every BN layer gets the exact mean and variance of its input over the data, not an EMA.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkFloatTensor, checkInteger, checkKnownKeys } from '../core/checks.js';
import { CONVENTION_DEFAULTS, type Convention } from '../core/conventions.js';
import { NormkitError } from '../core/errors.js';
import { batchNormParameters, isBatchNormLayer } from './fold-batch-norm.js';

/** Options of {@link recalibrateBatchNorm}. */
export interface RecalibrateOptions {
  /** Use at most this many batches of the data (default: all). */
  batches?: number;
  /** When `data` is one tensor, it is split along axis 0 into batches of this size (default 32). */
  batchSize?: number;
}

/** What {@link recalibrateBatchNorm} did to one BatchNorm layer. */
export interface RecalibratedLayer {
  layer: string;
  /** Values per channel the statistics were computed over. */
  count: number;
}

const WHERE = 'recalibrateBatchNorm';

/** Running per-channel count, mean and sum of squared deviations, pooled in float64 with Chan's formula. */
class PooledMoments {
  count = 0;
  readonly mean: Float64Array;
  readonly m2: Float64Array;

  constructor(channels: number) {
    this.mean = new Float64Array(channels);
    this.m2 = new Float64Array(channels);
  }

  /** Adds a batch given as its flat values, its shape and its channel axis (two-pass in float64). */
  add(values: ArrayLike<number>, shape: readonly number[], channelAxis: number): void {
    const channels = this.mean.length;
    const stride = shape.slice(channelAxis + 1).reduce((a, b) => a * b, 1);
    const nb = values.length / channels;
    const meanB = new Float64Array(channels);
    const m2B = new Float64Array(channels);
    for (let i = 0; i < values.length; i++) meanB[Math.floor(i / stride) % channels] += values[i];
    for (let c = 0; c < channels; c++) meanB[c] /= nb;
    for (let i = 0; i < values.length; i++) {
      const c = Math.floor(i / stride) % channels;
      m2B[c] += (values[i] - meanB[c]) ** 2;
    }
    const na = this.count;
    const n = na + nb;
    for (let c = 0; c < channels; c++) {
      const delta = meanB[c] - this.mean[c];
      this.mean[c] += (delta * nb) / n;
      this.m2[c] += m2B[c] + (delta * delta * na * nb) / n;
    }
    this.count = n;
  }
}

/**
 * Re-estimates the moving statistics of every top-level BatchNormalization layer of `model` on `data`:
 * for each BN in topological order, with the BNs before it already recalibrated and the model in inference
 * mode, its input over all the data gives, per channel over n values,
 *
 *   moving_mean = mean,   moving_variance = M2 / n   (Keras convention and tfjs-layers' BN)
 *                               or M2 / (n - 1)      (a normkit BN with convention 'pytorch')
 *
 * computed exactly (float64 two-pass per batch, batches pooled with Chan's formula). No other weight changes.
 * `data` is one input tensor (split into batches of `batchSize`) or a list of input batches, for a
 * single-input model. A BN called more than once in the model is skipped.
 */
export async function recalibrateBatchNorm(model: tfl.LayersModel, data: tf.Tensor | tf.Tensor[], options: RecalibrateOptions = {}): Promise<RecalibratedLayer[]> {
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError(WHERE, 'model', 'a tf.LayersModel', model);
  checkKnownKeys(WHERE, options, ['batches', 'batchSize']);
  if (model.inputs.length !== 1) throw new NormkitError(WHERE, 'model', 'a model with one input', `${model.inputs.length} inputs`);
  const batchSize = options.batchSize ?? 32;
  checkInteger(WHERE, 'batchSize', batchSize, 1);
  if (options.batches !== undefined) checkInteger(WHERE, 'batches', options.batches, 1);
  const list = Array.isArray(data) ? data : [data];
  if (list.length === 0) throw new NormkitError(WHERE, 'data', 'a tensor or a non-empty list of batches', data);
  list.forEach((t, i) => checkFloatTensor(WHERE, Array.isArray(data) ? `data[${i}]` : 'data', t, 1));

  const batches: tf.Tensor[] = [];
  const owned: tf.Tensor[] = [];
  for (const t of list) {
    if (Array.isArray(data)) batches.push(t);
    else for (let start = 0; start < t.shape[0]; start += batchSize) {
      const b = tf.slice(t, start, Math.min(batchSize, t.shape[0] - start));
      batches.push(b);
      owned.push(b);
    }
  }
  const used = batches.slice(0, options.batches ?? batches.length);
  const report: RecalibratedLayer[] = [];
  try {
    for (const layer of model.layers) {
      if (!isBatchNormLayer(layer) || layer.inboundNodes.length !== 1) continue;
      const probe = tfl.model({ inputs: model.inputs, outputs: layer.input as tfl.SymbolicTensor });
      const params = batchNormParameters(layer);
      const channels = params.movingMean.shape[0];
      const pooled = new PooledMoments(channels);
      for (const batch of used) {
        const h = probe.predict(batch) as tf.Tensor;
        const axis = params.axis < 0 ? params.axis + h.rank : params.axis;
        pooled.add(h.dataSync(), h.shape, axis);
        h.dispose();
      }
      const convention = (layer.getConfig() as { convention?: Convention }).convention;
      const unbiased = convention !== undefined && CONVENTION_DEFAULTS[convention]?.unbiasedMovingVariance === true;
      const n = pooled.count;
      const variance = Float32Array.from(pooled.m2, (m) => m / (unbiased && n > 1 ? n - 1 : n));
      const byName = new Map(layer.weights.map((w) => [w.originalName.split('/').pop() as string, w]));
      const mean = tf.tensor(Float32Array.from(pooled.mean));
      const vari = tf.tensor(variance);
      byName.get('moving_mean')!.write(mean);
      byName.get('moving_variance')!.write(vari);
      tf.dispose([mean, vari]);
      report.push({ layer: layer.name, count: n });
    }
  } finally {
    tf.dispose(owned);
  }
  return report;
}
