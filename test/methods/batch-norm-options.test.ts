import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, randn } from '../helpers/numeric.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

/** Float64 per-channel mean and biased variance of rows [n, C] (independent of normkit). */
function columnStats(x: ArrayLike<number>, C: number): { mean: number[]; variance: number[]; n: number } {
  const n = x.length / C;
  const mean = new Array<number>(C).fill(0);
  const variance = new Array<number>(C).fill(0);
  for (let i = 0; i < x.length; i++) mean[i % C] += x[i] / n;
  for (let i = 0; i < x.length; i++) variance[i % C] += (x[i] - mean[i % C]) ** 2 / n;
  return { mean, variance, n };
}

function movingStats(layer: tfl.layers.Layer): { mean: Float64Array; variance: Float64Array } {
  const w = new Map(layer.weights.map((v) => [v.originalName.split('/').pop() as string, v]));
  return { mean: f64(w.get('moving_mean')!.read()), variance: f64(w.get('moving_variance')!.read()) };
}

forEachBackend(() => {
  describe('BatchNormalization accumulateSteps', () => {
    for (const convention of ['keras', 'pytorch'] as const) {
      it(`updates the moving statistics once per k micro-batches with the pooled statistics of their union (${convention})`, () => {
        const C = 3;
        const a = randn(4 * C, 1, 1e4, 1e-2);
        const b = randn(6 * C, 2, 1e4 + 0.05, 3e-2);
        const c = randn(2 * C, 3, 1e4 - 0.02, 1e-2);
        const layer = new nk.BatchNormalization({ accumulateSteps: 3, momentum: convention === 'keras' ? 0.5 : 0.5, convention, movingMeanInitializer: { className: 'Constant', config: { value: 1e4 } } });
        tf.tidy(() => {
          for (const [i, part] of [a, b].entries()) {
            const y = layer.apply(tf.tensor(part, [part.length / C, C]), { training: true }) as tf.Tensor;
            const s = columnStats(part, C);
            const expected = Array.from(part, (v, j) => (v - s.mean[j % C]) / Math.sqrt(s.variance[j % C] + layer.epsilon));
            assertClose(f64(y), expected, { atol: 1e-3, rtol: 1e-3 }, `micro-batch ${i} normalized with its own statistics`);
            assert.deepEqual([...movingStats(layer).mean], [1e4, 1e4, 1e4], 'no update before the k-th micro-batch');
          }
          layer.apply(tf.tensor(c, [2, C]), { training: true });
        });
        const union = columnStats([...a, ...b, ...c], C);
        const v = convention === 'keras' ? union.variance : union.variance.map((x) => (x * union.n) / (union.n - 1));
        const expectedMean = union.mean.map((m) => 0.5 * 1e4 + 0.5 * m);
        const expectedVar = v.map((x) => 0.5 * 1 + 0.5 * x);
        const s = movingStats(layer);
        assertClose(s.mean, expectedMean, { atol: 2e-3 }, 'moving mean');
        assertClose(s.variance, expectedVar, { rtol: 1e-4 }, 'moving variance (pooled exactly, not averaged)');
        layer.dispose();
      });
    }

    it('matches a single full-batch update under model.fit (batchSize 4, accumulateSteps 2 = one batch of 8), and leaks nothing', async () => {
      const C = 2;
      const xv = randn(8 * C, 4, 2, 3);
      const model = tfl.sequential();
      model.add(new nk.BatchNormalization({ inputShape: [C], accumulateSteps: 2, momentum: 0 }));
      model.add(tfl.layers.dense({ units: 1 }));
      model.compile({ optimizer: tf.train.sgd(0), loss: 'meanSquaredError' });
      const xs = tf.tensor(xv, [8, C]);
      const ys = tf.zeros([8, 1]);
      await model.fit(xs, ys, { epochs: 1, batchSize: 4, shuffle: false, verbose: 0 });
      const whole = columnStats(xv, C);
      assertClose(movingStats(model.layers[0]).mean, whole.mean, { atol: 1e-5, rtol: 1e-5 }, 'moving mean');
      assertClose(movingStats(model.layers[0]).variance, whole.variance, { atol: 1e-5, rtol: 1e-5 }, 'moving variance');
      await assertNoLeak(() => model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0 }), 'model.fit');
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it('holds a partial cycle in non-trainable weights that setWeights carries; without accumulation only the four Keras weights', () => {
      const C = 2;
      const names = (layer: tfl.layers.Layer) => layer.weights.map((v) => v.originalName.split('/').pop());
      const plain = new nk.BatchNormalization();
      plain.apply(tfl.input({ shape: [C] }));
      assert.deepEqual(names(plain), ['gamma', 'beta', 'moving_mean', 'moving_variance']);
      const parts = [randn(3 * C, 6, 1, 2), randn(5 * C, 7, -1, 1), randn(4 * C, 8, 0.5, 3)];
      const source = new nk.BatchNormalization({ accumulateSteps: 3, momentum: 0 });
      source.apply(tfl.input({ shape: [C] }));
      assert.deepEqual(names(source), ['gamma', 'beta', 'moving_mean', 'moving_variance', 'accumulated_mean', 'accumulated_m2', 'accumulated_count', 'accumulated_steps']);
      assert.equal(source.trainableWeights.length, 2);
      tf.tidy(() => {
        for (const part of parts.slice(0, 2)) source.apply(tf.tensor(part, [part.length / C, C]), { training: true });
      });
      // The cycle continues in a fresh layer that received the weights.
      const target = new nk.BatchNormalization({ accumulateSteps: 3, momentum: 0 });
      target.apply(tfl.input({ shape: [C] }));
      target.setWeights(source.getWeights());
      const last = tf.tensor(parts[2], [4, C]);
      assertNoLeak(() => tf.dispose(target.apply(last, { training: true }) as tf.Tensor), 'accumulating training call');
      const union = columnStats([...parts[0], ...parts[1], ...parts[2]], C);
      assertClose(movingStats(target).mean, union.mean, { atol: 1e-5, rtol: 1e-5 }, 'moving mean of the union');
      assertClose(movingStats(target).variance, union.variance, { atol: 1e-5, rtol: 1e-5 }, 'moving variance of the union');
      const state = target.weights.slice(4).map((v) => [...f64(v.read())]);
      assert.deepEqual(state, [[0, 0], [0, 0], [0], [0]], 'the pool is emptied after the k-th call');
      tf.dispose(last);
      for (const layer of [plain, source, target]) layer.dispose();
    });
  });

  describe('BatchNormalization onSmallBatch', () => {
    it("'error' (default) throws on a training batch of one", () => {
      const layer = new nk.BatchNormalization();
      assertThrowsMentioning(() => layer.apply(tf.zeros([1, 4]), { training: true }), ["'x'", 'more than one value per channel', 'onSmallBatch']);
    });

    it("'useMovingStats' normalizes a batch of one with the moving statistics and leaves them alone", () => {
      const layer = new nk.BatchNormalization({ onSmallBatch: 'useMovingStats', movingMeanInitializer: 'ones', movingVarianceInitializer: { className: 'Constant', config: { value: 4 } } });
      const xv = [3, -1, 0.5, 2];
      tf.tidy(() => {
        const y = layer.apply(tf.tensor(xv, [1, 1, 1, 4]), { training: true }) as tf.Tensor;
        assertClose(f64(y), xv.map((v) => (v - 1) / Math.sqrt(4 + 1e-3)), { atol: 1e-6 }, 'y');
        const y2 = layer.apply(tf.tensor(randn(8, 5), [2, 1, 1, 4]), { training: true }) as tf.Tensor;
        assert.equal(y2.shape[0], 2);
      });
      assert.ok(movingStats(layer).mean.some((m) => m !== 1), 'a normal batch still updates');
      layer.dispose();
    });

    it("'groupStats' normalizes a batch of one over groups of channels (GroupNorm statistics), with gradients", () => {
      assert.deepEqual([1, 2, 3, 6, 8, 64, 96, 7].map((c) => nk.smallBatchGroups(c)), [0, 1, 1, 3, 4, 32, 32, 1]);
      const layer = new nk.BatchNormalization({ onSmallBatch: 'groupStats', gammaInitializer: { className: 'Constant', config: { value: 2 } } });
      const xv = randn(6, 7, 3, 2);
      // C = 6 -> 3 groups of 2 channels.
      const expected = new Float64Array(6);
      for (let g = 0; g < 3; g++) {
        const m = (xv[2 * g] + xv[2 * g + 1]) / 2;
        const v = ((xv[2 * g] - m) ** 2 + (xv[2 * g + 1] - m) ** 2) / 2;
        for (const i of [2 * g, 2 * g + 1]) expected[i] = (2 * (xv[i] - m)) / Math.sqrt(v + 1e-3);
      }
      tf.tidy(() => {
        const y = layer.apply(tf.tensor(xv, [1, 1, 6]), { training: true }) as tf.Tensor;
        assertClose(f64(y), expected, { atol: 1e-5, rtol: 1e-5 }, 'y');
        const dx = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, tf.tensor([1, 0, 0, 0, 0, 0], [1, 1, 6]))))(tf.tensor(xv, [1, 1, 6]));
        assert.ok(f64(dx).every(Number.isFinite));
        assert.equal(f64(dx)[2], 0, 'no gradient across groups');
      });
      assert.deepEqual([...movingStats(layer).mean], [0, 0, 0, 0, 0, 0]);
      const single = new nk.BatchNormalization({ onSmallBatch: 'groupStats' });
      assertThrowsMentioning(() => single.apply(tf.zeros([1, 1]), { training: true }), ["'onSmallBatch'", 'fewer than 2 channels']);
      layer.dispose();
    });
  });

  describe('BatchNormalization options: config', () => {
    it('puts accumulateSteps and onSmallBatch in its config, and rejects bad values', () => {
      const layer = new nk.BatchNormalization({ accumulateSteps: 4, onSmallBatch: 'groupStats' });
      const config = layer.getConfig();
      assert.equal(config.accumulateSteps, 4);
      assert.equal(config.onSmallBatch, 'groupStats');
      assertThrowsMentioning(() => new nk.BatchNormalization({ accumulateSteps: 0 }), ["'accumulateSteps'", 'integer >= 1']);
      assertThrowsMentioning(() => new nk.BatchNormalization({ accumulateSteps: 1.5 }), ["'accumulateSteps'"]);
      assertThrowsMentioning(() => new nk.BatchNormalization({ onSmallBatch: 'skip' as never }), ["'onSmallBatch'", 'groupStats']);
    });
  });
});
runLayerTest(nk.BatchNormalization, { label: 'accumulateSteps, onSmallBatch', make: () => new nk.BatchNormalization({ accumulateSteps: 2, onSmallBatch: 'groupStats' }),
  inputShape: [3, 4], trainable: 2, nonTrainable: 6,
  weights: [['gamma', [4]], ['beta', [4]], ['moving_mean', [4]], ['moving_variance', [4]], ['accumulated_mean', [4]], ['accumulated_m2', [4]], ['accumulated_count', []], ['accumulated_steps', []]],
  // The counters return to their start after each whole accumulation cycle, so they are not checked as moving.
  state: ['moving_mean', 'moving_variance', 'accumulated_mean', 'accumulated_m2'], exact: ['accumulated_count', 'accumulated_steps'], supportsMasking: true });
