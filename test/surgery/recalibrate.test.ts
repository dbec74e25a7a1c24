import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, f64, randn } from '../helpers/numeric.js';

/** Float64 x @ W + b for x [n, in], W [in, out]. */
function dense(x: Float64Array, n: number, w: Float64Array, b: Float64Array, out: number): Float64Array {
  const inDim = w.length / out;
  const y = new Float64Array(n * out);
  for (let r = 0; r < n; r++) for (let o = 0; o < out; o++) {
    let s = b[o];
    for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * w[i * out + o];
    y[r * out + o] = s;
  }
  return y;
}

/** Float64 column mean and variance (divisor n - ddof). */
function columnStats(x: Float64Array, C: number, ddof: number): { mean: number[]; variance: number[] } {
  const n = x.length / C;
  const mean = new Array<number>(C).fill(0);
  const variance = new Array<number>(C).fill(0);
  for (let i = 0; i < x.length; i++) mean[i % C] += x[i] / n;
  for (let i = 0; i < x.length; i++) variance[i % C] += (x[i] - mean[i % C]) ** 2;
  return { mean, variance: variance.map((v) => v / (n - ddof)) };
}

function buildModel(): tfl.Sequential {
  const model = tfl.sequential();
  model.add(tfl.layers.dense({ units: 4, inputShape: [3], biasInitializer: 'randomNormal' }));
  model.add(new nk.BatchNormalization({ movingMeanInitializer: 'ones' }));
  model.add(tfl.layers.dense({ units: 3, activation: 'relu', biasInitializer: 'randomNormal' }));
  model.add(new nk.BatchNormalization({ convention: 'pytorch' }));
  model.add(tfl.layers.dense({ units: 1 }));
  return model;
}

forEachBackend(() => {
  describe('recalibrateBatchNorm', () => {
    it('sets every BN to the exact statistics of its input over the data, in order, leaving other weights alone', async () => {
      const model = buildModel();
      const rows = 20;
      const xv = Float64Array.from(randn(rows * 3, 5, 3, 2));
      const x = tf.tensor(Float32Array.from(xv), [rows, 3]);
      const others = model.layers.filter((l) => l.getClassName() !== 'BatchNormalization').flatMap((l) => l.getWeights().map(f64));
      const bnAffine = [1, 3].flatMap((i) => model.layers[i].getWeights().slice(0, 2).map(f64));
      const before = tf.memory().numTensors;
      const report = await nk.recalibrateBatchNorm(model, x, { batchSize: 8 });
      assert.equal(tf.memory().numTensors, before, 'no leaked tensors');
      assert.deepEqual(report, [{ layer: model.layers[1].name, count: rows }, { layer: model.layers[3].name, count: rows }]);

      const w = model.layers.map((l) => l.getWeights().map(f64));
      const z1 = dense(xv, rows, w[0][0], w[0][1], 4);
      const s1 = columnStats(z1, 4, 0);
      const [g1, b1, m1, v1] = w[1];
      assertClose(m1, s1.mean, { atol: 1e-5, rtol: 1e-5 }, 'BN1 moving mean');
      assertClose(v1, s1.variance, { atol: 1e-5, rtol: 1e-5 }, 'BN1 moving variance (biased, Keras)');
      const h1 = z1.map((v, i) => (g1[i % 4] * (v - s1.mean[i % 4])) / Math.sqrt(s1.variance[i % 4] + 1e-3) + b1[i % 4]);
      const z2 = dense(h1, rows, w[2][0], w[2][1], 3).map((v) => Math.max(0, v));
      const s2 = columnStats(z2, 3, 1);
      assertClose(w[3][2], s2.mean, { atol: 1e-5, rtol: 1e-5 }, 'BN2 moving mean');
      assertClose(w[3][3], s2.variance, { atol: 1e-5, rtol: 1e-5 }, 'BN2 running variance (unbiased, PyTorch convention)');

      const othersAfter = model.layers.filter((l) => l.getClassName() !== 'BatchNormalization').flatMap((l) => l.getWeights().map(f64));
      assert.deepEqual(othersAfter, others, 'non-BN weights untouched');
      assert.deepEqual([1, 3].flatMap((i) => model.layers[i].getWeights().slice(0, 2).map(f64)), bnAffine, 'gamma and beta untouched');
      x.dispose();
      model.dispose();
    });

    it('uses only the first `batches` batches of a list, and works on tfjs-layers\' own BatchNormalization', async () => {
      const model = tfl.sequential();
      model.add(tfl.layers.batchNormalization({ inputShape: [2, 2] }));
      const parts = [randn(12, 6, 1, 2), randn(12, 7, -4, 1), randn(12, 8, 50, 9)];
      const batches = parts.map((p) => tf.tensor(p, [3, 2, 2]));
      const report = await nk.recalibrateBatchNorm(model, batches, { batches: 2 });
      tf.dispose(batches);
      assert.equal(report[0].count, 12);
      const s = columnStats(Float64Array.from([...parts[0], ...parts[1]]), 2, 0);
      const [, , mean, variance] = model.layers[0].getWeights().map(f64);
      assertClose(mean, s.mean, { atol: 1e-5, rtol: 1e-5 }, 'mean');
      assertClose(variance, s.variance, { atol: 1e-5, rtol: 1e-5 }, 'variance');
      model.dispose();
    });

    it('rejects bad arguments naming them', async () => {
      const model = buildModel();
      const x = tf.zeros([4, 3]);
      await assert.rejects(() => nk.recalibrateBatchNorm({} as never, x), /'model'/);
      await assert.rejects(() => nk.recalibrateBatchNorm(model, [] as never), /'data'/);
      await assert.rejects(() => nk.recalibrateBatchNorm(model, x, { batches: 0 }), /'batches'/);
      await assert.rejects(() => nk.recalibrateBatchNorm(model, x, { batchSize: 1.5 }), /'batchSize'/);
      const ints = tf.zeros([4, 3], 'int32');
      await assert.rejects(() => nk.recalibrateBatchNorm(model, ints), /'data'.*float32/);
      ints.dispose();
      await assert.rejects(() => nk.recalibrateBatchNorm(model, x, { batch: 2 } as never), /'batch'/);
      x.dispose();
      model.dispose();
    });
  });
});
