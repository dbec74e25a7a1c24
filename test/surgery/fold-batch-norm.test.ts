import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertThrowsMentioning, f64, randn } from '../helpers/numeric.js';

let seed = 100;
/** Gives every BatchNorm of `model` non-trivial statistics and affine parameters. */
function randomizeBatchNorms(model: tfl.LayersModel): void {
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const values = layer.weights.map((w) => {
      const n = w.shape[0] as number;
      const name = w.originalName.split('/').pop();
      if (name === 'moving_variance') return tf.tensor(randn(n, seed++).map((v) => 0.3 + v * v));
      if (name === 'gamma') return tf.tensor(randn(n, seed++, 1, 0.5));
      return tf.tensor(randn(n, seed++, 0, 0.5));
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}

const bnCount = (m: tfl.LayersModel) => m.layers.filter((l) => l.getClassName() === 'BatchNormalization').length;

async function checkFold(model: tfl.LayersModel, input: tf.Tensor, expectedFolded: number): Promise<tfl.LayersModel> {
  randomizeBatchNorms(model);
  const before = model.getWeights().map((w) => f64(w));
  const folded = await nk.foldBatchNorm(model);
  assert.equal(bnCount(model) - bnCount(folded), expectedFolded, 'number of folded BatchNorms');
  assert.equal(nk.findFoldableBatchNorms(model).length, expectedFolded);
  tf.tidy(() => {
    const want = f64(model.predict(input) as tf.Tensor);
    const got = f64(folded.predict(input) as tf.Tensor);
    assertClose(got, want, { atol: 1e-5, rtol: 1e-5 }, 'folded output');
  });
  model.getWeights().forEach((w, i) => assert.deepEqual(f64(w), before[i], 'the original model is untouched'));
  return folded;
}

forEachBackend(() => {
  describe('foldBatchNorm', () => {
    it('folds BN after Dense (with and without bias) in a Sequential model, leaves a BN after a relu Dense', async () => {
      const model = tfl.sequential();
      model.add(tfl.layers.dense({ units: 6, inputShape: [5] }));
      model.add(new nk.BatchNormalization());
      model.add(tfl.layers.dense({ units: 4, useBias: false }));
      model.add(tfl.layers.batchNormalization({}));
      model.add(tfl.layers.dense({ units: 3, activation: 'relu' }));
      model.add(new nk.BatchNormalization({ center: false }));
      const x = tf.tensor(randn(20, 1), [4, 5]);
      const folded = await checkFold(model, x, 2);
      assert.deepEqual(folded.layers.map((l) => l.getClassName()), ['Dense', 'Dense', 'Dense', 'BatchNormalization']);
      assert.equal(folded.layers[1].weights.length, 2, 'a bias was added');
      tf.dispose(x);
      model.dispose();
      folded.dispose();
    });

    it('folds BN after Conv2D, DepthwiseConv2D and Conv2DTranspose (channels last)', async () => {
      const model = tfl.sequential();
      model.add(tfl.layers.conv2d({ filters: 4, kernelSize: 3, inputShape: [6, 6, 3], padding: 'same' }));
      model.add(new nk.BatchNormalization({ scale: false }));
      model.add(tfl.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2 }));
      model.add(new nk.BatchNormalization({ axis: 3 }));
      model.add(tfl.layers.conv2dTranspose({ filters: 3, kernelSize: 2, strides: 2, useBias: false }));
      model.add(new nk.BatchNormalization({ convention: 'pytorch' }));
      const x = tf.tensor(randn(2 * 6 * 6 * 3, 2), [2, 6, 6, 3]);
      const folded = await checkFold(model, x, 3);
      assert.equal(bnCount(folded), 0);
      tf.dispose(x);
      model.dispose();
      folded.dispose();
    });

    it('folds in a functional model and leaves BNs whose producer feeds other layers or is not linear', async () => {
      const input = tfl.input({ shape: [5, 5, 2] });
      const c1 = tfl.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same' }).apply(input) as tfl.SymbolicTensor;
      const b1 = new nk.BatchNormalization().apply(c1) as tfl.SymbolicTensor; // foldable
      const c2 = tfl.layers.conv2d({ filters: 3, kernelSize: 1 }).apply(input) as tfl.SymbolicTensor;
      const b2 = new nk.BatchNormalization().apply(c2) as tfl.SymbolicTensor; // c2 also feeds the add: not foldable
      const c3 = tfl.layers.conv2d({ filters: 3, kernelSize: 1, activation: 'tanh' }).apply(input) as tfl.SymbolicTensor;
      const b3 = new nk.BatchNormalization().apply(c3) as tfl.SymbolicTensor; // tanh: not foldable
      const sum = tfl.layers.add().apply([b1, b2, c2, b3]) as tfl.SymbolicTensor;
      const d = tfl.layers.dense({ units: 2 }).apply(tfl.layers.flatten().apply(sum)) as tfl.SymbolicTensor;
      const out = new nk.BatchNormalization().apply(d) as tfl.SymbolicTensor; // model output: foldable
      const model = tfl.model({ inputs: input, outputs: out });
      const x = tf.tensor(randn(2 * 25 * 2, 3), [2, 5, 5, 2]);
      const folded = await checkFold(model, x, 2);
      assert.equal(bnCount(folded), 2);
      tf.dispose(x);
      model.dispose();
      folded.dispose();
    });

    it('folds BN on axis 1 after a channels-first Conv2D', async () => {
      const model = tfl.sequential();
      model.add(tfl.layers.conv2d({ filters: 3, kernelSize: 2, inputShape: [2, 4, 4], dataFormat: 'channelsFirst' }));
      model.add(new nk.BatchNormalization({ axis: 1 }));
      const x = tf.tensor(randn(2 * 2 * 4 * 4, 5), [2, 2, 4, 4]);
      const folded = await checkFold(model, x, 1);
      tf.dispose(x);
      model.dispose();
      folded.dispose();
    });

    it('leaves a BN on another axis than the producer\'s channels in place', async () => {
      const model = tfl.sequential();
      model.add(tfl.layers.dense({ units: 4, inputShape: [3, 2] }));
      model.add(new nk.BatchNormalization({ axis: 1 }));
      const x = tf.tensor(randn(12, 4), [2, 3, 2]);
      const folded = await checkFold(model, x, 0);
      tf.dispose(x);
      model.dispose();
      folded.dispose();
    });

    it('rejects what is not a LayersModel', async () => {
      await assert.rejects(() => nk.foldBatchNorm({} as never), /'model'/);
      assertThrowsMentioning(() => nk.batchNormParameters(new nk.BatchNormalization()), ["'layer'", 'built']);
    });
  });
});
