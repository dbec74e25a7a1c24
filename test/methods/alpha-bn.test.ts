import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/**
 * alpha-BN in float64, channels last (x as rows of C values): mu = a mu_s + (1-a) mu_t, var = a var_s +
 * (1-a) var_t [+ a (1-a)(mu_s - mu_t)^2], y = gamma (x - mu)/sqrt(var + eps) + beta, mu_t and var_t the
 * test batch mean and biased variance per channel.
 */
function refAlphaBN(x: ArrayLike<number>, c: number, p: { a: number; ms: ArrayLike<number>; vs: ArrayLike<number>; eps: number; gamma?: ArrayLike<number>; beta?: ArrayLike<number>; mixture?: boolean }): Float64Array {
  const rows = x.length / c;
  const y = new Float64Array(x.length);
  for (let ch = 0; ch < c; ch++) {
    let mt = 0;
    for (let r = 0; r < rows; r++) mt += x[r * c + ch];
    mt /= rows;
    let vt = 0;
    for (let r = 0; r < rows; r++) vt += (x[r * c + ch] - mt) ** 2;
    vt /= rows;
    const a = rows < 2 ? 1 : p.a;
    const mu = a * p.ms[ch] + (1 - a) * mt;
    let v = a * p.vs[ch] + (1 - a) * vt;
    if (p.mixture) v += a * (1 - a) * (p.ms[ch] - mt) ** 2;
    for (let r = 0; r < rows; r++) {
      const i = r * c + ch;
      y[i] = ((x[i] - mu) / Math.sqrt(v + p.eps)) * (p.gamma ? p.gamma[ch] : 1) + (p.beta ? p.beta[ch] : 0);
    }
  }
  return y;
}

forEachBackend(() => {
  describe('alphaBatchNorm op', () => {
    for (const { shape, a, mixture } of [
      { shape: [4, 3, 3, 5], a: 0.7, mixture: false },
      { shape: [4, 3, 3, 5], a: 0.3, mixture: true },
      { shape: [6, 4], a: 0, mixture: false },
      { shape: [6, 4], a: 1, mixture: false },
      { shape: [3, 5, 2], a: 0.9, mixture: true },
    ]) {
      it(`forward and gradients match the float64 reference, shape [${shape}], sourceWeight ${a}, ${mixture ? 'mixture' : 'linear'}`, () => {
        const c = shape[shape.length - 1];
        const xv = randn(size(shape), 1, 1.5, 2);
        const dyv = randn(size(shape), 2);
        const p = { a, ms: randn(c, 3), vs: randn(c, 4).map((v) => 0.5 + v * v), eps: 1e-3, gamma: randn(c, 5, 1, 0.3), beta: randn(c, 6), mixture };
        const fd = finiteDifference((v) => refAlphaBN(v, c, p).reduce((s, y, i) => s + y * dyv[i], 0), Float64Array.from(xv));
        tf.tidy(() => {
          const opts = { sourceWeight: a, movingMean: tf.tensor(p.ms), movingVariance: tf.tensor(p.vs), gamma: tf.tensor(p.gamma), beta: tf.tensor(p.beta), varianceMixing: mixture ? ('mixture' as const) : ('linear' as const) };
          const x = tf.tensor(xv, shape);
          assertClose(f64(nk.alphaBatchNorm(x, opts)), refAlphaBN(xv, c, p), { atol: 2e-5, rtol: 2e-5 }, 'y');
          const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(nk.alphaBatchNorm(v, opts), tf.tensor(dyv, shape))))(x);
          assertClose(f64(dx), fd, { atol: 2e-4, rtol: 1e-3 }, 'dx vs finite differences');
        });
      });
    }

    it('sourceWeight 1 is inference BatchNorm and 0 is BatchNorm with the test batch statistics (normkit batchNorm)', () => {
      const shape = [5, 2, 3];
      const xv = randn(30, 10, 3, 2);
      tf.tidy(() => {
        const x = tf.tensor(xv, shape);
        const movingMean = tf.tensor([0.5, -1, 2]);
        const movingVariance = tf.tensor([1, 4, 0.25]);
        const bn = (training: boolean) => nk.batchNorm(x, { training, movingMean, movingVariance, epsilon: 1e-3 }).y;
        assertClose(f64(nk.alphaBatchNorm(x, { sourceWeight: 1, movingMean, movingVariance })), f64(bn(false)), { atol: 1e-5, rtol: 1e-5 }, 'a = 1');
        assertClose(f64(nk.alphaBatchNorm(x, { sourceWeight: 0, movingMean, movingVariance })), f64(bn(true)), { atol: 1e-5, rtol: 1e-5 }, 'a = 0');
      });
    });

    it('falls back to the stored statistics for a batch with one value per channel', () => {
      tf.tidy(() => {
        const y = nk.alphaBatchNorm(tf.tensor([[3, -1]]), { sourceWeight: 0.2, movingMean: tf.tensor([1, 1]), movingVariance: tf.tensor([4, 1]), epsilon: 1e-6 });
        assertClose(f64(y), [(3 - 1) / Math.sqrt(4 + 1e-6), (-1 - 1) / Math.sqrt(1 + 1e-6)], { atol: 1e-6 }, 'y');
      });
    });

    it('holds on a large common offset (test batch and source at 1e4) and magnitudes from 1e-10 to 1e10', () => {
      const shape = [16, 3];
      for (const { mean, std } of [{ mean: 1e4, std: 1e-2 }, { mean: 0, std: 1e-10 }, { mean: 0, std: 1e10 }]) {
        const xv = randn(48, 20, mean, std);
        // The stored statistics as float32 holds them (the reference must see the same inputs).
        const p = { a: 0.6, ms: [mean + 0.5 * std, mean - std, mean].map(Math.fround), vs: [std * std, 2 * std * std, 0.5 * std * std].map(Math.fround), eps: 1e-5 * std * std };
        tf.tidy(() => {
          const y = nk.alphaBatchNorm(tf.tensor(xv, shape), { sourceWeight: p.a, movingMean: tf.tensor(p.ms), movingVariance: tf.tensor(p.vs), epsilon: p.eps });
          assertClose(f64(y), refAlphaBN(xv, 3, p), { atol: 5e-4, rtol: 5e-4 }, `mean ${mean}, std ${std}`);
        });
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([4, 3]);
      const m = tf.zeros([3]);
      const ok = { sourceWeight: 0.5, movingMean: m, movingVariance: m };
      assertThrowsMentioning(() => nk.alphaBatchNorm(x, { movingMean: m, movingVariance: m } as never), ['alphaBatchNorm', "'sourceWeight'", 'undefined']);
      assertThrowsMentioning(() => nk.alphaBatchNorm(x, { ...ok, sourceWeight: 1.5 }), ["'sourceWeight'", '[0, 1]']);
      assertThrowsMentioning(() => nk.alphaBatchNorm(tf.zeros([3]), ok), ["'x'", 'rank']);
      assertThrowsMentioning(() => nk.alphaBatchNorm(x, { ...ok, movingMean: tf.zeros([4]) }), ["'movingMean'", '[3]', '[4]']);
      assertThrowsMentioning(() => nk.alphaBatchNorm(x, { sourceWeight: 0.5, movingMean: m } as never), ["'movingVariance'"]);
      assertThrowsMentioning(() => nk.alphaBatchNorm(x, { ...ok, axis: 2 }), ["'axis'"]);
      assertThrowsMentioning(() => nk.alphaBatchNorm(x, { ...ok, varianceMixing: 'pooled' as never }), ["'varianceMixing'", '"mixture"']);
      assertThrowsMentioning(() => nk.alphaBatchNorm(x, { ...ok, epsilon: 0 }), ["'epsilon'"]);
      assertThrowsMentioning(() => nk.alphaBatchNorm(x, { ...ok, alpha: 0.5 } as never), ["'alpha'"]);
      tf.dispose([x, m]);
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(24, 30), [4, 2, 3]);
      const m = tf.zeros([3]);
      const v = tf.ones([3]);
      const opts = { sourceWeight: 0.5, movingMean: m, movingVariance: v };
      await assertNoLeak(() => nk.alphaBatchNorm(x, opts).dispose(), 'forward');
      await assertNoLeak(() => tf.grad((a: tf.Tensor) => tf.sum(tf.square(nk.alphaBatchNorm(a, opts))))(x).dispose(), 'gradient');
      tf.dispose([x, m, v]);
    });
  });

  describe('AlphaBatchNormalization layer and toAlphaBatchNorm', () => {
    it('predict calibrates with the test batch, leaves the moving statistics alone; training calls are BatchNorm', () => {
      const layer = new nk.AlphaBatchNormalization({ sourceWeight: 0.25 });
      const reference = new nk.BatchNormalization();
      const model = tfl.sequential({ layers: [tfl.layers.inputLayer({ inputShape: [2] }), layer] });
      const bnModel = tfl.sequential({ layers: [tfl.layers.inputLayer({ inputShape: [2] }), reference] });
      const weights = [tf.tensor([1.5, 0.5]), tf.tensor([0.1, -0.2]), tf.tensor([2, -3]), tf.tensor([4, 0.5])];
      layer.setWeights(weights);
      reference.setWeights(weights);
      const xv = randn(12, 40, 1, 2);
      const expected = refAlphaBN(xv, 2, { a: 0.25, ms: [2, -3], vs: [4, 0.5], eps: 1e-3, gamma: [1.5, 0.5], beta: [0.1, -0.2] });
      tf.tidy(() => {
        const x = tf.tensor(xv, [6, 2]);
        assertClose(f64(model.predict(x) as tf.Tensor), expected, { atol: 2e-5, rtol: 2e-5 }, 'predict');
        assertClose(f64(layer.getWeights()[2]), [2, -3], { atol: 0 }, 'moving mean untouched by predict');
        const yTrain = layer.apply(x, { training: true }) as tf.Tensor;
        const yBN = reference.apply(x, { training: true }) as tf.Tensor;
        assertClose(f64(yTrain), f64(yBN), { atol: 1e-6 }, 'training call equals BatchNormalization');
        assertClose(f64(layer.getWeights()[2]), f64(reference.getWeights()[2]), { atol: 1e-7 }, 'moving mean updated as BatchNormalization');
      });
      tf.dispose(weights);
      model.dispose();
      bnModel.dispose();
    });

    it('toAlphaBatchNorm converts every BatchNormalization (tfjs and normkit) of a trained model, keeping weights', async () => {
      const model = tfl.sequential({
        layers: [
          tfl.layers.dense({ units: 3, inputShape: [4] }),
          tfl.layers.batchNormalization(),
          tfl.layers.dense({ units: 3 }),
          new nk.BatchNormalization({ epsilon: 1e-2 }),
        ],
      });
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      const xs = tf.tensor(randn(32, 50, 2, 3), [8, 4]);
      const ys = tf.tensor(randn(24, 51), [8, 3]);
      await model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0 });
      const converted = await nk.toAlphaBatchNorm(model, { sourceWeight: 0.6, varianceMixing: 'mixture' });
      assert.deepEqual(converted.layers.map((l) => l.getClassName()), ['Dense', 'AlphaBatchNormalization', 'Dense', 'AlphaBatchNormalization']);
      assert.deepEqual(model.layers.map((l) => l.getClassName()), ['Dense', 'BatchNormalization', 'Dense', 'BatchNormalization'], 'original untouched');
      const alphaLayer = converted.layers[3] as nk.AlphaBatchNormalization;
      assert.equal(alphaLayer.sourceWeight, 0.6);
      assert.equal(alphaLayer.varianceMixing, 'mixture');
      assert.equal(alphaLayer.epsilon, 1e-2);
      const ow = model.getWeights().map(f64);
      converted.getWeights().forEach((w, i) => assertClose(f64(w), ow[i], { atol: 0 }, `weight ${i}`));
      // Float64 forward of the converted model from the original's weights.
      const byLayer = model.layers.map((l) => l.getWeights().map(f64));
      const dense = (x: ArrayLike<number>, rows: number, [w, b]: Float64Array[], inDim: number, outDim: number) => {
        const out = new Float64Array(rows * outDim);
        for (let r = 0; r < rows; r++) for (let o = 0; o < outDim; o++) {
          let s = b[o];
          for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * w[i * outDim + o];
          out[r * outDim + o] = s;
        }
        return out;
      };
      const bn = (x: ArrayLike<number>, [gamma, beta, ms, vs]: Float64Array[], eps: number) => refAlphaBN(x, 3, { a: 0.6, ms, vs, eps, gamma, beta, mixture: true });
      const xv = randn(20, 52, 1, 3);
      const expected = bn(dense(bn(dense(xv, 5, byLayer[0], 4, 3), byLayer[1], 1e-3), 5, byLayer[2], 3, 3), byLayer[3], 1e-2);
      const out = tf.tidy(() => converted.predict(tf.tensor(xv, [5, 4])) as tf.Tensor);
      assertClose(f64(out), expected, { atol: 1e-4, rtol: 1e-4 }, 'converted predict');
      out.dispose();
      await assert.rejects(nk.toAlphaBatchNorm(tfl.sequential({ layers: [tfl.layers.dense({ units: 1, inputShape: [2] })] }), { sourceWeight: 0.5 }), /BatchNormalization/);
      await assert.rejects(nk.toAlphaBatchNorm(model, { sourceWeight: -1 }), /sourceWeight/);
      tf.dispose([xs, ys]);
      model.dispose();
      converted.dispose();
    });

    it('is the registry entry "alpha-bn" and requires sourceWeight', () => {
      const layer = nk.createNorm('alpha-bn', { sourceWeight: 0.9 });
      assert.ok(layer instanceof nk.AlphaBatchNormalization);
      assert.ok(nk.listNorms().some((e) => e.name === 'alpha-bn' && e.kind === 'test-time'));
      assertThrowsMentioning(() => new nk.AlphaBatchNormalization(), ['AlphaBatchNormalization', "'sourceWeight'"]);
      assertThrowsMentioning(() => new nk.AlphaBatchNormalization({ sourceWeight: 2 }), ["'sourceWeight'", '[0, 1]']);
    });
  });
});

runLayerTest(nk.AlphaBatchNormalization, { make: () => new nk.AlphaBatchNormalization({ sourceWeight: 0.8, varianceMixing: 'mixture', convention: 'pytorch' }), inputShape: [3, 4], trainable: 2, nonTrainable: 2,
  weights: [['gamma', [4]], ['beta', [4]], ['moving_mean', [4]], ['moving_variance', [4]]], supportsMasking: true });
