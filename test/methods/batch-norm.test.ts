import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { assertGradMatchesFiniteDifferences } from '../helpers/op-checks.js';
import { refNormalize, refNormalizeBackward } from '../helpers/reference.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const allBut = (axis: number, rank: number) => [...Array(rank).keys()].filter((a) => a !== axis);

/** Float64 per-channel mean and biased variance over every axis but `axis` (independent of normkit). */
function refChannelStats(x: ArrayLike<number>, shape: number[], axis: number): { mean: number[]; variance: number[]; n: number } {
  const r = refNormalize(x, shape, allBut(axis, shape.length), 1);
  return { mean: r.mean, variance: r.variance, n: x.length / shape[axis] };
}

/** Float64 moving-average step, written from the two frameworks' documented rules. */
function refMovingUpdate(
  old: { mean: ArrayLike<number>; variance: ArrayLike<number> },
  batch: { mean: number[]; variance: number[]; n: number },
  momentum: number,
  convention: 'keras' | 'pytorch',
): { mean: number[]; variance: number[] } {
  if (convention === 'keras') {
    return {
      mean: batch.mean.map((b, c) => momentum * old.mean[c] + (1 - momentum) * b),
      variance: batch.variance.map((b, c) => momentum * old.variance[c] + (1 - momentum) * b),
    };
  }
  const unbiased = batch.variance.map((v) => (v * batch.n) / (batch.n - 1));
  return {
    mean: batch.mean.map((b, c) => (1 - momentum) * old.mean[c] + momentum * b),
    variance: unbiased.map((b, c) => (1 - momentum) * old.variance[c] + momentum * b),
  };
}

/** Float64 inference-mode batch norm with given statistics. */
function refInference(x: ArrayLike<number>, shape: number[], axis: number, mean: ArrayLike<number>, variance: ArrayLike<number>, eps: number, gamma?: ArrayLike<number>, beta?: ArrayLike<number>): Float64Array {
  const stride = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / stride) % shape[axis];
    y[i] = ((x[i] - mean[c]) / Math.sqrt(variance[c] + eps)) * (gamma ? gamma[c] : 1) + (beta ? beta[c] : 0);
  }
  return y;
}

describe('batchNorm float64 reference', () => {
  it('its training backward over all-but-channel axes matches finite differences of its forward', () => {
    const shape = [3, 2, 4];
    const axes = [0, 1];
    const x = Float64Array.from(randn(24, 1));
    const dy = Float64Array.from(randn(24, 2));
    const gamma = Float64Array.from(randn(4, 3));
    const loss = (v: Float64Array) => refNormalize(v, shape, axes, 1e-3, { gamma, paramAxes: [2] }).y.reduce((s, y, i) => s + y * dy[i], 0);
    const fd = finiteDifference(loss, x);
    assertClose(refNormalizeBackward(x, dy, shape, axes, 1e-3, { gamma, paramAxes: [2] }).dx, fd, { atol: 1e-7, rtol: 1e-6 }, 'dx');
  });
});

forEachBackend(() => {
  describe('batchNorm op', () => {
    const cases: Array<{ shape: number[]; axis: number; channel: number }> = [
      { shape: [6, 4], axis: -1, channel: 1 },
      { shape: [2, 3, 3, 4], axis: -1, channel: 3 },
      { shape: [3, 4, 5], axis: 1, channel: 1 },
      { shape: [2, 2, 2, 3, 3], axis: -1, channel: 4 },
    ];
    for (const { shape, axis, channel } of cases) {
      for (const convention of ['keras', 'pytorch'] as const) {
        it(`training forward and moving statistics match float64, shape [${shape}] axis ${axis} (${convention})`, () => {
          const C = shape[channel];
          const xv = randn(size(shape), 10, 0.5, 2);
          const gv = randn(C, 11, 1, 0.5);
          const bv = randn(C, 12);
          const mm = randn(C, 13);
          const mv = randn(C, 14).map((v) => 1 + v * v);
          const eps = convention === 'keras' ? 1e-3 : 1e-5;
          const momentum = convention === 'keras' ? 0.99 : 0.1;
          const expected = refNormalize(xv, shape, allBut(channel, shape.length), eps, { gamma: gv, beta: bv, paramAxes: [channel] }).y;
          const moving = refMovingUpdate({ mean: mm, variance: mv }, refChannelStats(xv, shape, channel), momentum, convention);
          tf.tidy(() => {
            const r = nk.batchNorm(tf.tensor(xv, shape), {
              training: true, axis, convention, gamma: tf.tensor(gv), beta: tf.tensor(bv), movingMean: tf.tensor(mm), movingVariance: tf.tensor(mv),
            });
            assert.deepEqual(r.y.shape, shape);
            assertClose(f64(r.y), expected, { atol: 2e-5, rtol: 2e-5 }, 'y');
            assertClose(f64(r.movingMean), moving.mean, { atol: 1e-6, rtol: 1e-5 }, 'movingMean');
            assertClose(f64(r.movingVariance), moving.variance, { atol: 1e-6, rtol: 1e-5 }, 'movingVariance');
          });
        });
      }

      it(`inference uses the moving statistics and returns them unchanged, shape [${shape}] axis ${axis}`, () => {
        const C = shape[channel];
        const xv = randn(size(shape), 15);
        const gv = randn(C, 16);
        const bv = randn(C, 17);
        const mm = randn(C, 18);
        const mv = randn(C, 19).map((v) => 0.5 + v * v);
        const expected = refInference(xv, shape, channel, mm, mv, 1e-3, gv, bv);
        tf.tidy(() => {
          const r = nk.batchNorm(tf.tensor(xv, shape), { training: false, axis, gamma: tf.tensor(gv), beta: tf.tensor(bv), movingMean: tf.tensor(mm), movingVariance: tf.tensor(mv) });
          assertClose(f64(r.y), expected, { atol: 1e-5, rtol: 1e-5 }, 'y');
          assertClose(f64(r.movingMean), mm, {}, 'movingMean');
          assertClose(f64(r.movingVariance), mv, {}, 'movingVariance');
        });
      });

      it(`training gradients flow through the batch statistics (float64 reference), shape [${shape}] axis ${axis}`, () => {
        const C = shape[channel];
        const xv = randn(size(shape), 20);
        const dyv = randn(size(shape), 21);
        const gv = randn(C, 22, 1, 0.5);
        const ref = refNormalizeBackward(xv, dyv, shape, allBut(channel, shape.length), 1e-3, { gamma: gv, paramAxes: [channel] });
        tf.tidy(() => {
          const dy = tf.tensor(dyv, shape);
          const stats = { movingMean: tf.zeros([C]), movingVariance: tf.ones([C]) };
          const grads = tf.grads((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(nk.batchNorm(x, { training: true, axis, gamma: g, beta: b, ...stats }).y, dy)));
          const [dx, dg, db] = grads([tf.tensor(xv, shape), tf.tensor(gv), tf.zeros([C])]);
          assertClose(f64(dx), ref.dx, { atol: 1e-4, rtol: 1e-4 }, 'dx');
          assertClose(f64(dg), ref.dgamma, { atol: 1e-4, rtol: 1e-4 }, 'dgamma');
          assertClose(f64(db), ref.dbeta, { atol: 1e-4, rtol: 1e-4 }, 'dbeta');
        });
      });
    }

    it('training gradient matches finite differences of the op itself', () => {
      const opts = () => ({ training: true, epsilon: 1e-2, movingMean: tf.zeros([3]), movingVariance: tf.ones([3]) });
      assertGradMatchesFiniteDifferences((x) => nk.batchNorm(x, opts()).y, [4, 3], randn(12, 30), randn(12, 31));
    });

    it('inference gradient is gamma * dy / sqrt(movingVariance + eps) only; dgamma = sum(dy * xhat)', () => {
      const shape = [5, 3];
      const xv = randn(15, 32);
      const dyv = randn(15, 33);
      const gv = [0.5, -2, 1.5];
      const mm = [0.1, -0.3, 2];
      const mv = [0.5, 2, 4];
      const eps = 1e-3;
      const dxRef = new Float64Array(15).map((_, i) => (gv[i % 3] * dyv[i]) / Math.sqrt(mv[i % 3] + eps));
      const dgRef = [0, 0, 0];
      for (let i = 0; i < 15; i++) dgRef[i % 3] += (dyv[i] * (xv[i] - mm[i % 3])) / Math.sqrt(mv[i % 3] + eps);
      tf.tidy(() => {
        const stats = { movingMean: tf.tensor(mm), movingVariance: tf.tensor(mv) };
        const grads = tf.grads((x: tf.Tensor, g: tf.Tensor) => tf.sum(tf.mul(nk.batchNorm(x, { training: false, gamma: g, ...stats }).y, tf.tensor(dyv, shape))));
        const [dx, dg] = grads([tf.tensor(xv, shape), tf.tensor(gv)]);
        assertClose(f64(dx), dxRef, { atol: 1e-6, rtol: 1e-5 }, 'dx');
        assertClose(f64(dg), dgRef, { atol: 1e-5, rtol: 1e-5 }, 'dgamma');
      });
    });

    it('is exact on a large common offset (mean 1e4, std 1e-2), forward, moving mean and gradient', () => {
      const shape = [64, 8];
      const xv = randn(size(shape), 40, 1e4, 1e-2);
      const dyv = randn(size(shape), 41);
      const expected = refNormalize(xv, shape, [0], 1e-5, { paramAxes: [1] });
      const ref = refNormalizeBackward(xv, dyv, shape, [0], 1e-5, { paramAxes: [1] });
      tf.tidy(() => {
        const stats = { movingMean: tf.fill([8], 1e4), movingVariance: tf.ones([8]) };
        const r = nk.batchNorm(tf.tensor(xv, shape), { training: true, convention: 'pytorch', momentum: 1, ...stats });
        assertClose(f64(r.y), expected.y, { atol: 1e-3, rtol: 1e-3 }, 'y');
        assertClose(f64(r.movingMean), expected.mean, { atol: 1e-3, rtol: 0 }, 'movingMean');
        const unbiased = expected.variance.map((v) => (v * 64) / 63);
        assertClose(f64(r.movingVariance), unbiased, { rtol: 1e-3 }, 'movingVariance');
        const dx = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(nk.batchNorm(x, { training: true, epsilon: 1e-5, ...stats }).y, tf.tensor(dyv, shape))))(tf.tensor(xv, shape));
        assertClose(f64(dx), ref.dx, { atol: 1e-2, rtol: 1e-3 }, 'dx');
      });
    });

    it('maps constant channels to beta, with finite gradients', () => {
      const shape = [8, 4];
      const xv = new Float32Array(32).map((_, i) => [7.25, -3, 1e4, 0][i % 4]);
      const bv = randn(4, 50);
      const dyv = randn(32, 51);
      tf.tidy(() => {
        const stats = { movingMean: tf.zeros([4]), movingVariance: tf.ones([4]) };
        const r = nk.batchNorm(tf.tensor(xv, shape), { training: true, beta: tf.tensor(bv), ...stats });
        assertClose(f64(r.y), new Float64Array(32).map((_, i) => bv[i % 4]), { atol: 1e-6 }, 'y');
        const dx = f64(tf.grad((x: tf.Tensor) => tf.sum(tf.mul(nk.batchNorm(x, { training: true, ...stats }).y, tf.tensor(dyv, shape))))(tf.tensor(xv, shape)));
        assert.ok(dx.every(Number.isFinite), 'finite gradient');
        assertClose(dx, refNormalizeBackward(xv, dyv, shape, [0], 1e-3, { paramAxes: [1] }).dx, { atol: 1e-2, rtol: 1e-4 }, 'dx');
      });
    });

    it('holds on magnitudes from 1e-20 to 1e15', () => {
      for (const scale of [1e-20, 1e-10, 1e-3, 1, 1e6, 1e15]) {
        const shape = [32, 4];
        const xv = randn(size(shape), 60).map((v) => v * scale);
        const expected = refNormalize(xv, shape, [0], 1e-5, { paramAxes: [1] });
        const moving = refMovingUpdate({ mean: [0, 0, 0, 0], variance: [1, 1, 1, 1] }, refChannelStats(xv, shape, 1), 0.99, 'keras');
        tf.tidy(() => {
          const r = nk.batchNorm(tf.tensor(xv, shape), { training: true, epsilon: 1e-5, movingMean: tf.zeros([4]), movingVariance: tf.ones([4]) });
          assertClose(f64(r.y), expected.y, { atol: 1e-25, rtol: 1e-4 }, `y at scale ${scale}`);
          assertClose(f64(r.movingMean), moving.mean, { atol: 1e-30, rtol: 1e-4 }, `movingMean at scale ${scale}`);
          assertClose(f64(r.movingVariance), moving.variance, { atol: 1e-30, rtol: 1e-4 }, `movingVariance at scale ${scale}`);
        });
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([4, 3]);
      const s = { movingMean: tf.zeros([3]), movingVariance: tf.ones([3]) };
      const before = tf.memory().numTensors;
      assertThrowsMentioning(() => nk.batchNorm(tf.zeros([1, 3]), { training: true, ...s }), ['batchNorm', "'x'", 'more than one value per channel', '[1, 3]']);
      assertThrowsMentioning(() => nk.batchNorm(tf.zeros([1, 1, 1, 3]), { training: true, ...s }), ["'x'", 'more than one value per channel']);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: true, momentum: 1.5, ...s }), ["'momentum'", '[0, 1]', '1.5']);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: true, momentum: -0.1, ...s }), ["'momentum'"]);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: true, epsilon: -1, ...s }), ["'epsilon'", '>= 0']);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: true, epsilon: Infinity, ...s }), ["'epsilon'"]);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: true, movingMean: tf.zeros([4]), movingVariance: s.movingVariance }), ["'movingMean'", '[3]', '[4]']);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: true, movingMean: s.movingMean, movingVariance: tf.ones([3, 1]) }), ["'movingVariance'", '[3]']);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: false, movingMean: s.movingMean } as never), ["'movingVariance'"]);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: true, gamma: tf.ones([2]), ...s }), ["'gamma'", '[3]', '[2]']);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: true, beta: tf.ones([4]), ...s }), ["'beta'", '[3]']);
      assertThrowsMentioning(() => nk.batchNorm(tf.zeros([4, 3], 'int32'), { training: true, ...s }), ["'x'", 'float32', 'int32']);
      assertThrowsMentioning(() => nk.batchNorm(tf.zeros([3]), { training: false, ...s }), ["'x'", 'rank >= 2']);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: true, axis: 2, ...s }), ["'axis'", '2']);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: true, axis: [1] as never, ...s }), ["'axis'", 'one integer']);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: 'yes' as never, ...s }), ["'training'", 'boolean']);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: true, convention: 'torch' as never, ...s }), ["'convention'", 'pytorch']);
      assertThrowsMentioning(() => nk.batchNorm(x, { training: true, momentun: 0.9, ...s } as never), ["'momentun'"]);
      assert.equal(tf.memory().numTensors, before + 8, 'only the test inputs were allocated');
      tf.dispose([x, s.movingMean, s.movingVariance]);
    });

    it('leaks no tensors in forward (training and inference) or gradient', async () => {
      const x = tf.tensor(randn(24, 70), [4, 2, 3]);
      const g = tf.ones([3]);
      const s = { movingMean: tf.zeros([3]), movingVariance: tf.ones([3]) };
      await assertNoLeak(() => { const r = nk.batchNorm(x, { training: true, gamma: g, ...s }); tf.dispose([r.y, r.movingMean, r.movingVariance]); }, 'training forward');
      await assertNoLeak(() => { const r = nk.batchNorm(x, { training: false, gamma: g, ...s }); tf.dispose([r.y, r.movingMean, r.movingVariance]); }, 'inference forward');
      await assertNoLeak(() => tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(nk.batchNorm(a, { training: true, gamma: b, ...s }).y))([x, g])), 'gradient');
      tf.dispose([x, g, s.movingMean, s.movingVariance]);
    });
  });

  describe('BatchNormalization layer', () => {
    const stats = (layer: tfl.layers.Layer) => {
      const byName = new Map(layer.weights.map((w) => [w.originalName.split('/').pop() as string, w]));
      return { mean: f64(byName.get('moving_mean')!.read()), variance: f64(byName.get('moving_variance')!.read()) };
    };

    it('has Keras weight names and defaults; model.fit updates the moving statistics and predict uses them', async () => {
      const model = tfl.sequential();
      model.add(new nk.BatchNormalization({ inputShape: [3] }));
      model.add(tfl.layers.dense({ units: 1, kernelInitializer: 'ones' }));
      model.compile({ optimizer: tf.train.sgd(0), loss: 'meanSquaredError' });
      const bn = model.layers[0] as nk.BatchNormalization;
      assert.deepEqual(bn.weights.map((w) => w.originalName.split('/').pop()), ['gamma', 'beta', 'moving_mean', 'moving_variance']);
      assert.equal(bn.momentum, 0.99);
      assert.equal(bn.epsilon, 1e-3);
      const a = randn(12, 80, 2, 3);
      const b = randn(12, 81, -1, 0.5);
      const xs = tf.tensor([...a, ...b], [8, 3]);
      const ys = tf.zeros([8, 1]);
      await model.fit(xs, ys, { epochs: 1, batchSize: 4, shuffle: false, verbose: 0 });
      const after1 = refMovingUpdate({ mean: [0, 0, 0], variance: [1, 1, 1] }, refChannelStats(a, [4, 3], 1), 0.99, 'keras');
      const after2 = refMovingUpdate(after1, refChannelStats(b, [4, 3], 1), 0.99, 'keras');
      const s = stats(bn);
      assertClose(s.mean, after2.mean, { atol: 1e-6, rtol: 1e-5 }, 'moving_mean after two steps');
      assertClose(s.variance, after2.variance, { atol: 1e-6, rtol: 1e-5 }, 'moving_variance after two steps');
      const bnOnly = tfl.sequential({ layers: [bn] });
      const pred = bnOnly.predict(xs) as tf.Tensor;
      assertClose(f64(pred), refInference([...a, ...b], [8, 3], 1, s.mean, s.variance, 1e-3), { atol: 1e-5, rtol: 1e-5 }, 'predict');
      tf.dispose([xs, ys, pred]);
      model.dispose();
    });

    it('a model.fit step, a training call and an inference call leak no tensors', async () => {
      const model = tfl.sequential();
      model.add(tfl.layers.dense({ units: 4, inputShape: [5] }));
      model.add(new nk.BatchNormalization());
      model.add(tfl.layers.dense({ units: 1 }));
      model.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
      const xs = tf.tensor(randn(40, 82), [8, 5]);
      const ys = tf.tensor(randn(8, 83), [8, 1]);
      await model.fit(xs, ys, { epochs: 1, batchSize: 8, verbose: 0 });
      await assertNoLeak(() => model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0 }), 'model.fit');
      const bn = model.layers[1];
      const h = tf.tensor(randn(16, 84), [4, 4]);
      await assertNoLeak(() => (bn.apply(h, { training: true }) as tf.Tensor).dispose(), 'training call');
      await assertNoLeak(() => (bn.apply(h, { training: false }) as tf.Tensor).dispose(), 'inference call');
      tf.dispose([xs, ys, h]);
      model.dispose();
    });

    for (const flags of [{ center: false }, { scale: false }, { center: false, scale: false }]) {
      it(`trains with ${JSON.stringify(flags)} (tfjs-layers' own layer crashes here)`, async () => {
        const model = tfl.sequential();
        model.add(tfl.layers.dense({ units: 4, inputShape: [3] }));
        model.add(new nk.BatchNormalization(flags));
        model.add(tfl.layers.dense({ units: 1 }));
        model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
        const bn = model.layers[1] as nk.BatchNormalization;
        const expected = [...(flags.scale === false ? [] : ['gamma']), ...(flags.center === false ? [] : ['beta']), 'moving_mean', 'moving_variance'];
        assert.deepEqual(bn.weights.map((w) => w.originalName.split('/').pop()), expected);
        const xs = tf.tensor(randn(24, 85), [8, 3]);
        const ys = tf.tensor(randn(8, 86), [8, 1]);
        const h = await model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0 });
        assert.ok(Number.isFinite(h.history.loss[1] as number));
        assert.ok(stats(bn).mean.some((m) => m !== 0), 'moving mean moved');
        tf.dispose([xs, ys]);
        model.dispose();
      });
    }

    it('with trainable = false runs in inference mode and never updates its moving statistics (Keras semantics)', async () => {
      const model = tfl.sequential();
      model.add(new nk.BatchNormalization({ inputShape: [3], movingMeanInitializer: 'ones' }));
      model.add(tfl.layers.dense({ units: 1 }));
      const bn = model.layers[0] as nk.BatchNormalization;
      bn.trainable = false;
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      const xv = randn(24, 87, 3, 2);
      const xs = tf.tensor(xv, [8, 3]);
      const ys = tf.tensor(randn(8, 88), [8, 1]);
      await model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0 });
      assert.deepEqual([...stats(bn).mean], [1, 1, 1]);
      assert.deepEqual([...stats(bn).variance], [1, 1, 1]);
      tf.tidy(() => {
        const y = bn.apply(xs, { training: true }) as tf.Tensor;
        assertClose(f64(y), refInference(xv, [8, 3], 1, [1, 1, 1], [1, 1, 1], 1e-3), { atol: 1e-5, rtol: 1e-5 }, 'training call of a frozen layer');
      });
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it('inside a base model frozen with setBatchNormTrainable(base, false), stays in inference mode under model.fit', async () => {
      const base = tfl.sequential();
      base.add(tfl.layers.dense({ units: 3, inputShape: [4] }));
      base.add(new nk.BatchNormalization());
      const model = tfl.sequential();
      model.add(base);
      model.add(tfl.layers.dense({ units: 1 }));
      base.trainable = false;
      assert.equal(nk.setBatchNormTrainable(model, false), 1);
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      const xs = tf.tensor(randn(32, 92, 2, 3), [8, 4]);
      const ys = tf.tensor(randn(8, 93), [8, 1]);
      await model.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
      const bn = base.layers[1] as nk.BatchNormalization;
      assert.equal(bn.trainable, false);
      assert.deepEqual([...stats(bn).mean], [0, 0, 0]);
      assert.deepEqual([...stats(bn).variance], [1, 1, 1]);
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it('handles rank-5 inputs (3-D CNNs) and a channel axis that is not last, in training and inference', () => {
      const shape = [2, 2, 3, 2, 4];
      const xv = randn(size(shape), 89);
      for (const axis of [-1, 1]) {
        const ch = axis < 0 ? 4 : 1;
        const layer = new nk.BatchNormalization({ axis, momentum: 0.5 });
        tf.tidy(() => {
          const x = tf.tensor(xv, shape);
          const y = layer.apply(x, { training: true }) as tf.Tensor;
          assertClose(f64(y), refNormalize(xv, shape, allBut(ch, 5), 1e-3, { paramAxes: [ch] }).y, { atol: 1e-5, rtol: 1e-5 }, `y (axis ${axis})`);
          const C = shape[ch];
          const moving = refMovingUpdate({ mean: new Array(C).fill(0), variance: new Array(C).fill(1) }, refChannelStats(xv, shape, ch), 0.5, 'keras');
          assertClose(stats(layer).mean, moving.mean, { atol: 1e-6, rtol: 1e-5 }, 'moving_mean');
          const yi = layer.apply(x, { training: false }) as tf.Tensor;
          assertClose(f64(yi), refInference(xv, shape, ch, moving.mean, moving.variance, 1e-3), { atol: 1e-5, rtol: 1e-5 }, 'inference');
        });
        layer.dispose();
      }
    });

    it("follows PyTorch's convention on request: momentum 0.1 weights the new value, unbiased running variance, eps 1e-5", () => {
      const layer = new nk.BatchNormalization({ convention: 'pytorch' });
      assert.equal(layer.momentum, 0.1);
      assert.equal(layer.epsilon, 1e-5);
      const xv = randn(15, 90, 1, 2);
      tf.tidy(() => {
        const y = layer.apply(tf.tensor(xv, [5, 3]), { training: true }) as tf.Tensor;
        assertClose(f64(y), refNormalize(xv, [5, 3], [0], 1e-5, { paramAxes: [1] }).y, { atol: 1e-5, rtol: 1e-5 }, 'y');
      });
      const moving = refMovingUpdate({ mean: [0, 0, 0], variance: [1, 1, 1] }, refChannelStats(xv, [5, 3], 1), 0.1, 'pytorch');
      assertClose(stats(layer).mean, moving.mean, { atol: 1e-6, rtol: 1e-5 }, 'running_mean');
      assertClose(stats(layer).variance, moving.variance, { atol: 1e-6, rtol: 1e-5 }, 'running_var (unbiased)');
      layer.dispose();
    });

    it("takes PyTorch's epsilon with the 'pytorch' convention", () => {
      assert.equal(new nk.BatchNormalization({ convention: 'pytorch' }).epsilon, 1e-5);
    });

    it('loads a Keras model.json (snake_case config, axis as a list, BatchNormalizationV1 alias) with its weights', async () => {
      const kerasLayer = (className: string, name: string, extra: object) => ({
        class_name: className,
        config: {
          name, trainable: true, dtype: 'float32', axis: [1], momentum: 0.9, epsilon: 0.01, center: true, scale: true,
          beta_initializer: { class_name: 'Zeros', config: {} }, gamma_initializer: { class_name: 'Ones', config: {} },
          moving_mean_initializer: { class_name: 'Zeros', config: {} }, moving_variance_initializer: { class_name: 'Ones', config: {} },
          beta_regularizer: null, gamma_regularizer: null, beta_constraint: null, gamma_constraint: null, ...extra,
        },
      });
      const topology = {
        class_name: 'Sequential',
        config: { name: 'keras_bn', layers: [kerasLayer('BatchNormalization', 'bn1', { batch_input_shape: [null, 2], synchronized: false }), kerasLayer('BatchNormalizationV1', 'bn2', {})] },
        keras_version: '2.15.0',
        backend: 'tensorflow',
      };
      const values = { gamma: [2, 0.5], beta: [1, -1], moving_mean: [3, -2], moving_variance: [4, 0.25] };
      const names = ['gamma', 'beta', 'moving_mean', 'moving_variance'] as const;
      const weightSpecs = ['bn1', 'bn2'].flatMap((l) => names.map((n) => ({ name: `${l}/${n}`, shape: [2], dtype: 'float32' as const })));
      const weightData = new Float32Array([...names.map((n) => values[n]).flat(), ...names.map((n) => values[n]).flat()]).buffer;
      const model = await tfl.loadLayersModel(tf.io.fromMemory({ modelTopology: topology, weightSpecs, weightData }));
      assert.ok(model.layers.every((l) => l instanceof nk.BatchNormalization));
      const bn = model.layers[0] as nk.BatchNormalization;
      assert.equal(bn.momentum, 0.9);
      assert.equal(bn.epsilon, 0.01);
      const xv = [1, 2, 3, 4];
      const once = refInference(xv, [2, 2], 1, values.moving_mean, values.moving_variance, 0.01, values.gamma, values.beta);
      const twice = refInference(once, [2, 2], 1, values.moving_mean, values.moving_variance, 0.01, values.gamma, values.beta);
      tf.tidy(() => assertClose(f64(model.predict(tf.tensor(xv, [2, 2])) as tf.Tensor), twice, { atol: 1e-5, rtol: 1e-5 }, 'predict'));
      model.dispose();
    });

    it('accepts epsilon 0 as tfjs and Keras do (a Keras model.json may carry it) and normalizes data with spread', async () => {
      const topology = {
        class_name: 'Sequential',
        config: {
          name: 'keras_bn0',
          layers: [{ class_name: 'BatchNormalization', config: { name: 'bn', trainable: true, dtype: 'float32', batch_input_shape: [null, 2], axis: -1, momentum: 0.99, epsilon: 0, fused: null, renorm: false, renorm_clipping: null, renorm_momentum: 0.99, virtual_batch_size: null, adjustment: null } }],
        },
        keras_version: '2.15.0',
        backend: 'tensorflow',
      };
      const values = { gamma: [2, 0.5], beta: [1, -1], moving_mean: [3, -2], moving_variance: [4, 0.25] };
      const names = ['gamma', 'beta', 'moving_mean', 'moving_variance'] as const;
      const weightSpecs = names.map((n) => ({ name: `bn/${n}`, shape: [2], dtype: 'float32' as const }));
      const weightData = new Float32Array(names.map((n) => values[n]).flat()).buffer;
      const model = await tfl.loadLayersModel(tf.io.fromMemory({ modelTopology: topology, weightSpecs, weightData }));
      assert.equal((model.layers[0] as nk.BatchNormalization).epsilon, 0);
      const xv = [1, 2, 3, 4, -5, 7];
      tf.tidy(() => assertClose(f64(model.predict(tf.tensor(xv, [3, 2])) as tf.Tensor), refInference(xv, [3, 2], 1, values.moving_mean, values.moving_variance, 0, values.gamma, values.beta), { atol: 1e-5, rtol: 1e-5 }, 'predict'));
      // Training statistics with epsilon 0 on a channel with spread: the float64 formula with eps = 0.
      const layer = new nk.BatchNormalization({ epsilon: 0, center: false, scale: false });
      tf.tidy(() => {
        const y = f64(layer.apply(tf.tensor(xv, [3, 2]), { training: true }) as tf.Tensor);
        for (const c of [0, 1]) {
          const col = [xv[c], xv[c + 2], xv[c + 4]];
          const mean = col.reduce((a, b) => a + b, 0) / 3;
          const std = Math.sqrt(col.reduce((a, b) => a + (b - mean) ** 2, 0) / 3);
          assertClose([y[c], y[c + 2], y[c + 4]], col.map((v) => (v - mean) / std), { atol: 1e-5, rtol: 1e-5 }, `channel ${c}`);
        }
      });
      model.dispose();
      layer.dispose();
    });

    it('rejects bad arguments naming them', () => {
      assertThrowsMentioning(() => new nk.BatchNormalization({ momentum: 2 }), ['BatchNormalization', "'momentum'"]);
      assertThrowsMentioning(() => new nk.BatchNormalization({ epsilon: -1e-3 }), ["'epsilon'", '>= 0']);
      assertThrowsMentioning(() => new nk.BatchNormalization({ renorm: true } as never), ["'renorm'", 'false']);
      assertThrowsMentioning(() => new nk.BatchNormalization({ momentun: 0.9 } as never), ['BatchNormalization', "'momentun'", "'momentum'"]);
      assertThrowsMentioning(() => new nk.BatchNormalization({ axis: [1, 2] }), ["'axis'", 'one integer']);
      assertThrowsMentioning(() => new nk.BatchNormalization({ convention: 'caffe' as never }), ["'convention'"]);
      const layer = new nk.BatchNormalization({ axis: 3 });
      assertThrowsMentioning(() => layer.apply(tf.zeros([2, 3])), ["'axis'", '3']);
      const one = new nk.BatchNormalization();
      assertThrowsMentioning(() => one.apply(tf.zeros([1, 3]), { training: true }), ["'x'", 'more than one value per channel']);
      const built = new nk.BatchNormalization();
      tf.tidy(() => { built.apply(tf.zeros([2, 2, 3])); });
      assertThrowsMentioning(() => built.apply(tf.zeros([2, 3])), ['expected ndim=3']);
      assertThrowsMentioning(() => built.apply(tf.zeros([2, 2, 4])), ['expected axis 2']);
    });

    it('is what the registry builds for "batch" and its aliases, and replaces tfjs\'s BatchNormalization in deserialization', () => {
      for (const name of ['batch', 'bn', 'batchnorm', 'BatchNormalization']) assert.ok(nk.createNorm(name) instanceof nk.BatchNormalization, name);
      assert.equal((nk.createNorm('bn', { momentum: 0.8 }) as nk.BatchNormalization).momentum, 0.8);
      const map = tf.serialization.SerializationMap.getMap().classNameMap;
      for (const name of ['BatchNormalization', 'BatchNormalizationV1', 'BatchNormalizationV2']) assert.equal(map[name][0], nk.BatchNormalization, name);
      assert.ok(nk.listNorms().some((e) => e.name === 'batch' && e.doc === 'docs/batch-norm.md' && e.hasLayer));
    });
  });
});

runLayerTest(nk.BatchNormalization, { make: () => new nk.BatchNormalization({ momentum: 0.5 }), inputShape: [3, 4], trainable: 2, nonTrainable: 2,
  weights: [['gamma', [4]], ['beta', [4]], ['moving_mean', [4]], ['moving_variance', [4]]], supportsMasking: true });
runLayerTest(nk.BatchNormalization, { label: 'pytorch convention, regularized gamma, no beta',
  make: () => new nk.BatchNormalization({ axis: [-1], momentum: 0.9, convention: 'pytorch', gammaInitializer: 'glorotUniform', center: false, gammaRegularizer: tfl.regularizers.l2({ l2: 0.01 }) }),
  inputShape: [3, 4], trainable: 1, nonTrainable: 2, weights: [['gamma', [4]], ['moving_mean', [4]], ['moving_variance', [4]]], supportsMasking: true });
