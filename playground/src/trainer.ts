/**
 * One model of the playground: normkit's reference CNN with a chosen normalization, its optimizer, a training
 * step, a held-out evaluation, and probes of every norm layer's input and output for the histograms.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from 'normkit';
import type { HistogramRow, StatsRow } from './charts.js';

/** Images and labels as tensors-to-be: `images` is `[n, side, side, 1]` row-major. */
export interface ImageData {
  images: Float32Array;
  labels: Int32Array;
  n: number;
  side: number;
}

/** Settings of one training run, shared by both models. */
export interface TrainSettings {
  learningRate: number;
  optimizer: 'adam' | 'adamp';
}

/** Channels of the CNN's three stages (the first keeps 14x14, the next two halve it). */
export const WIDTHS = [8, 16, 32];

/** The state a norm layer carries across batches, read from its non-trainable weights. */
export interface NormState {
  layer: string;
  /** Present when the layer keeps a moving mean and variance (BatchNorm and relatives). */
  moments?: StatsRow[];
  /** Any other per-channel state, by weight name. */
  other?: { name: string; channel: number; value: number }[];
}

/** Builds a batch `[k, side, side, 1]` and one-hot labels from example indices. */
export function gather(data: ImageData, indices: ArrayLike<number>): { x: tf.Tensor4D; y: tf.Tensor2D; labels: tf.Tensor1D } {
  const size = data.side * data.side;
  const images = new Float32Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    images.set(data.images.subarray(indices[k] * size, (indices[k] + 1) * size), k * size);
    labels[k] = data.labels[indices[k]];
  }
  return tf.tidy(() => {
    const l = tf.tensor1d(labels, 'int32');
    return { x: tf.tensor4d(images, [indices.length, data.side, data.side, 1]), y: tf.cast(tf.oneHot(l, 10), 'float32') as tf.Tensor2D, labels: l };
  });
}

/** A histogram of `values` over its own range (the 0.1 % tails folded into the edge bins; NaN and ±Inf left out). */
export function histogram(values: Float32Array, bins = 40): HistogramRow[] {
  const sorted = values.filter((v) => Number.isFinite(v)).sort();
  const q = (p: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * (sorted.length - 1)))]);
  let lo = q(0.001);
  let hi = q(0.999);
  if (!(hi > lo)) {
    lo -= 0.5;
    hi += 0.5;
  }
  const width = (hi - lo) / bins;
  const counts = new Float64Array(bins);
  for (const v of sorted) counts[Math.max(0, Math.min(bins - 1, Math.floor((v - lo) / width)))]++;
  const total = Math.max(1, sorted.length);
  return Array.from(counts, (c, i) => ({ x0: lo + i * width, x1: lo + (i + 1) * width, fraction: c / total }));
}

/** A CNN with one normalization, trained step by step. */
export class Run {
  readonly model: tfl.LayersModel;
  readonly normLayers: tfl.layers.Layer[];
  private readonly probe: tfl.LayersModel | null;
  private readonly optimizer: tf.Optimizer;

  constructor(readonly label: string, readonly norm: string, side: number, settings: TrainSettings) {
    const cnn = nk.buildCNN({ inputShape: [side, side, 1], numClasses: 10, norm, widths: WIDTHS, residual: false, seed: 1 });
    this.model = cnn.model;
    this.normLayers = cnn.normLayers;
    // A second model sharing the weights, whose outputs are every norm layer's input and output.
    const outputs = this.normLayers.flatMap((l) => [l.input as tfl.SymbolicTensor, l.output as tfl.SymbolicTensor]);
    this.probe = outputs.length > 0 ? tfl.model({ inputs: this.model.inputs, outputs }) : null;
    this.optimizer = settings.optimizer === 'adamp'
      ? new nk.AdamP({ learningRate: settings.learningRate, kernelLayouts: nk.kernelLayoutsByVariable(this.model.layers) })
      : tf.train.adam(settings.learningRate);
  }

  /** One optimizer step on a batch in training mode; returns the batch's loss and accuracy (on the device). */
  step(x: tf.Tensor4D, y: tf.Tensor2D, labels: tf.Tensor1D): { loss: tf.Scalar; accuracy: tf.Scalar } {
    let accuracy: tf.Scalar | null = null;
    const loss = this.optimizer.minimize(() => {
      const logits = this.model.apply(x, { training: true }) as tf.Tensor2D;
      accuracy = tf.keep(tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32')) as tf.Scalar);
      return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
    }, true) as tf.Scalar;
    return { loss, accuracy: accuracy as unknown as tf.Scalar };
  }

  /** Loss and accuracy on a held-out set in inference mode, in chunks of 250. */
  async evaluate(data: ImageData, count: number): Promise<{ loss: number; accuracy: number }> {
    let lossSum = 0;
    let correct = 0;
    const n = Math.min(count, data.n);
    for (let start = 0; start < n; start += 250) {
      const idx = Array.from({ length: Math.min(250, n - start) }, (_, k) => start + k);
      const batch = gather(data, idx);
      const [l, c] = tf.tidy(() => {
        const logits = this.model.predict(batch.x) as tf.Tensor2D;
        const loss = tf.mul(tf.losses.softmaxCrossEntropy(batch.y, logits), idx.length);
        return [loss, tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), batch.labels), 'float32'))];
      });
      const [lv, cv] = await Promise.all([l.data(), c.data()]);
      lossSum += lv[0];
      correct += cv[0];
      tf.dispose([l, c, batch.x, batch.y, batch.labels]);
    }
    return { loss: lossSum / n, accuracy: correct / n };
  }

  /** Histograms of every norm layer's input and output on `x`, in inference mode. */
  async histograms(x: tf.Tensor4D): Promise<{ before: HistogramRow[]; after: HistogramRow[] }[]> {
    if (this.probe === null) return [];
    const outs = this.probe.predict(x) as tf.Tensor[];
    const values = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
    tf.dispose(outs);
    return this.normLayers.map((_, i) => ({ before: histogram(values[2 * i]), after: histogram(values[2 * i + 1]) }));
  }

  /** The per-channel state each norm layer keeps across batches (empty when it keeps none). */
  async states(): Promise<NormState[]> {
    const out: NormState[] = [];
    for (const [i, layer] of this.normLayers.entries()) {
      const weights = layer.nonTrainableWeights;
      if (weights.length === 0) continue;
      const named = await Promise.all(weights.map(async (w) => ({ name: w.originalName.split('/').pop() ?? w.name, data: await w.read().data() })));
      const title = layerTitle(layer, i);
      const mean = named.find((w) => w.name === 'moving_mean');
      const variance = named.find((w) => w.name === 'moving_variance');
      if (mean && variance) {
        out.push({
          layer: title,
          moments: Array.from(mean.data, (m, c) => {
            const sd = Math.sqrt(Math.max(0, variance.data[c]));
            return { channel: c, mean: m, low: m - sd, high: m + sd };
          }),
        });
      } else {
        out.push({ layer: title, other: named.flatMap((w) => Array.from(w.data, (value, channel) => ({ name: w.name, channel, value }))) });
      }
    }
    return out;
  }

  dispose(): void {
    this.optimizer.dispose();
    // The probe's layers are all the model's own (disposing both would dispose them twice).
    this.model.dispose();
  }
}

/** "norm 2: GroupNormalization, 16 channels". */
export function layerTitle(layer: tfl.layers.Layer, index: number): string {
  const shape = layer.outputShape as number[];
  return `norm ${index + 1}: ${layer.getClassName()}, ${shape[shape.length - 1]} channels, ${shape[1]}×${shape[2]}`;
}
