import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { refNormalize, refNormalizeBackward } from '../helpers/reference.js';
import { assertModelFitWithoutLeak } from '../helpers/layer-roundtrip.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Channels [from, to) of a channels-last flat array with C channels. */
function channelSlice(v: ArrayLike<number>, c: number, from: number, to: number): Float64Array {
  const out: number[] = [];
  for (let i = 0; i < v.length; i += c) for (let j = from; j < to; j++) out.push(v[i + j]);
  return Float64Array.from(out);
}

/** Interleaves two channels-last arrays back into one with ca + cb channels. */
function channelConcat(a: ArrayLike<number>, ca: number, b: ArrayLike<number>, cb: number): Float64Array {
  const rows = a.length / ca;
  const out = new Float64Array(rows * (ca + cb));
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < ca; j++) out[r * (ca + cb) + j] = a[r * ca + j];
    for (let j = 0; j < cb; j++) out[r * (ca + cb) + ca + j] = b[r * cb + j];
  }
  return out;
}

/**
 * IBN-a in float64 on [N, H, W, C] (the paper's equations, docs/ibn.md): InstanceNorm (per n, c over H, W) on the first h
 * channels, BatchNorm with batch statistics (over N, H, W) on the rest, each with its affine; plus the PyTorch
 * running-statistics update (unbiased batch variance, momentum = weight of the new value) and the backward.
 */
function refIBNA(x: ArrayLike<number>, dy: ArrayLike<number>, shape: number[], h: number, eps: number, p: { ig: ArrayLike<number>; ib: ArrayLike<number>; bg: ArrayLike<number>; bb: ArrayLike<number>; rm: ArrayLike<number>; rv: ArrayLike<number>; momentum: number }) {
  const c = shape[3];
  const shIn = [...shape.slice(0, 3), h];
  const shBN = [...shape.slice(0, 3), c - h];
  const xIn = channelSlice(x, c, 0, h);
  const xBN = channelSlice(x, c, h, c);
  const inRes = refNormalize(xIn, shIn, [1, 2], eps, { gamma: p.ig, beta: p.ib, paramAxes: [3] });
  const bnRes = refNormalize(xBN, shBN, [0, 1, 2], eps, { gamma: p.bg, beta: p.bb, paramAxes: [3] });
  const count = size(shape.slice(0, 3));
  const rm = Array.from(p.rm, (m, j) => (1 - p.momentum) * m + p.momentum * bnRes.mean[j]);
  const rv = Array.from(p.rv, (v, j) => (1 - p.momentum) * v + p.momentum * bnRes.variance[j] * (count / (count - 1)));
  const inB = refNormalizeBackward(xIn, channelSlice(dy, c, 0, h), shIn, [1, 2], eps, { gamma: p.ig, paramAxes: [3] });
  const bnB = refNormalizeBackward(xBN, channelSlice(dy, c, h, c), shBN, [0, 1, 2], eps, { gamma: p.bg, paramAxes: [3] });
  return {
    y: channelConcat(inRes.y, h, bnRes.y, c - h),
    movingMean: rm,
    movingVariance: rv,
    dx: channelConcat(inB.dx, h, bnB.dx, c - h),
    dInGamma: inB.dgamma,
    dBNGamma: bnB.dgamma,
    dBNBeta: bnB.dbeta,
  };
}

forEachBackend(() => {
  describe('ibnA op', () => {
    for (const { shape, ratio, h } of [
      { shape: [3, 4, 3, 6], ratio: 0.5, h: 3 },
      { shape: [2, 3, 3, 5], ratio: 0.5, h: 2 },
      { shape: [2, 2, 5, 4], ratio: 0.3, h: 1 },
    ]) {
      it(`training forward, moving statistics and gradients match the float64 reference, shape [${shape}], ratio ${ratio}`, () => {
        const c = shape[3];
        const xv = randn(size(shape), 1, 0.4, 1.7);
        const dyv = randn(size(shape), 2);
        const p = { ig: randn(h, 3, 1, 0.3), ib: randn(h, 4), bg: randn(c - h, 5, 1, 0.3), bb: randn(c - h, 6), rm: randn(c - h, 7), rv: randn(c - h, 8).map((v) => 0.5 + v * v), momentum: 0.1 };
        const ref = refIBNA(xv, dyv, shape, h, 1e-5, p);
        tf.tidy(() => {
          const t = (v: ArrayLike<number>, n: number) => tf.tensor(Float32Array.from(v), [n]);
          const rm = t(p.rm, c - h);
          const rv = t(p.rv, c - h);
          const run = (x: tf.Tensor, ig: tf.Tensor, bg: tf.Tensor, bb: tf.Tensor) =>
            nk.ibnA(x, { training: true, ratio, movingMean: rm, movingVariance: rv, inGamma: ig, inBeta: t(p.ib, h), bnGamma: bg, bnBeta: bb });
          const inputs = [tf.tensor(xv, shape), t(p.ig, h), t(p.bg, c - h), t(p.bb, c - h)];
          const r = run(inputs[0], inputs[1], inputs[2], inputs[3]);
          assertClose(f64(r.y), ref.y, { atol: 2e-5, rtol: 2e-5 }, 'y');
          assertClose(f64(r.movingMean), ref.movingMean, { atol: 1e-6, rtol: 1e-5 }, 'movingMean');
          assertClose(f64(r.movingVariance), ref.movingVariance, { atol: 1e-6, rtol: 1e-5 }, 'movingVariance');
          const dy = tf.tensor(dyv, shape);
          const g = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(run(a[0], a[1], a[2], a[3]).y, dy)))(inputs);
          assertClose(f64(g[0]), ref.dx, { atol: 1e-4, rtol: 1e-4 }, 'dx');
          assertClose(f64(g[1]), ref.dInGamma, { atol: 1e-4, rtol: 1e-4 }, 'dinGamma');
          assertClose(f64(g[2]), ref.dBNGamma, { atol: 1e-4, rtol: 1e-4 }, 'dbnGamma');
          assertClose(f64(g[3]), ref.dBNBeta, { atol: 1e-4, rtol: 1e-4 }, 'dbnBeta');
        });
      });
    }

    it('inference uses the moving statistics for the BatchNorm part only; gradient matches finite differences', () => {
      const shape = [2, 3, 2, 4];
      const xv = randn(48, 10, 2, 3);
      const rm = [0.5, -1];
      const rv = [2, 0.25];
      const ref = (v: ArrayLike<number>) => {
        const inPart = refNormalize(channelSlice(v, 4, 0, 2), [2, 3, 2, 2], [1, 2], 1e-5).y;
        const bnPart = channelSlice(v, 4, 2, 4).map((x, i) => (x - rm[i % 2]) / Math.sqrt(rv[i % 2] + 1e-5));
        return channelConcat(inPart, 2, bnPart, 2);
      };
      const dyv = randn(48, 11);
      const fd = finiteDifference((v) => ref(v).reduce((s, y, i) => s + y * dyv[i], 0), Float64Array.from(xv));
      tf.tidy(() => {
        const opts = { training: false, movingMean: tf.tensor(rm), movingVariance: tf.tensor(rv) };
        const r = nk.ibnA(tf.tensor(xv, shape), opts);
        assertClose(f64(r.y), ref(xv), { atol: 2e-5, rtol: 2e-5 }, 'y');
        assertClose(f64(r.movingMean), rm, { atol: 0 }, 'movingMean unchanged');
        const dx = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(nk.ibnA(x, opts).y, tf.tensor(dyv, shape))))(tf.tensor(xv, shape));
        assertClose(f64(dx), fd, { atol: 1e-3, rtol: 1e-3 }, 'dx vs finite differences');
      });
    });

    it('holds on a large common offset and on magnitudes from 1e-10 to 1e10', () => {
      const shape = [2, 4, 4, 2];
      for (const { mean, std } of [{ mean: 1e4, std: 1e-2 }, { mean: 0, std: 1e-10 }, { mean: 0, std: 1e10 }]) {
        const xv = randn(64, 20, mean, std);
        const eps = 1e-5 * std * std;
        const expected = channelConcat(refNormalize(channelSlice(xv, 2, 0, 1), [2, 4, 4, 1], [1, 2], eps).y, 1, refNormalize(channelSlice(xv, 2, 1, 2), [2, 4, 4, 1], [0, 1, 2], eps).y, 1);
        tf.tidy(() => {
          const r = nk.ibnA(tf.tensor(xv, shape), { training: true, epsilon: eps, movingMean: tf.zeros([1]), movingVariance: tf.ones([1]) });
          assertClose(f64(r.y), expected, { atol: 1e-3, rtol: 1e-3 }, `mean ${mean}, std ${std}`);
        });
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3, 3, 4]);
      const m = tf.zeros([2]);
      const ok = { training: true, movingMean: m, movingVariance: m };
      assertThrowsMentioning(() => nk.ibnA(tf.zeros([2, 4]), ok), ['ibnA', "'x'", 'rank']);
      assertThrowsMentioning(() => nk.ibnA(x, { ...ok, ratio: 0.1 }), ["'ratio'", '1 to 3']);
      assertThrowsMentioning(() => nk.ibnA(x, { ...ok, ratio: 1 }), ["'ratio'"]);
      assertThrowsMentioning(() => nk.ibnA(x, { ...ok, ratio: 2 }), ["'ratio'", '[0, 1]']);
      assertThrowsMentioning(() => nk.ibnA(x, { ...ok, movingMean: tf.zeros([4]) }), ["'movingMean'", '[2]', '[4]']);
      assertThrowsMentioning(() => nk.ibnA(x, { training: true, movingVariance: m } as never), ["'movingMean'"]);
      assertThrowsMentioning(() => nk.ibnA(x, { ...ok, inGamma: tf.ones([4]) }), ["'inGamma'", '[2]']);
      assertThrowsMentioning(() => nk.ibnA(x, { ...ok, training: 'yes' as never }), ["'training'", 'boolean']);
      assertThrowsMentioning(() => nk.ibnA(x, { ...ok, convention: 'tf' as never }), ["'convention'"]);
      assertThrowsMentioning(() => nk.ibnA(tf.zeros([1, 1, 1, 4]), ok), ['ibnA', "'x'", 'spatial']);
      assertThrowsMentioning(() => nk.ibnA(x, { ...ok, gamma: m } as never), ["'gamma'"]);
      tf.dispose([x, m]);
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(48, 30), [2, 3, 2, 4]);
      const m = tf.zeros([2]);
      const v = tf.ones([2]);
      const opts = { training: true, movingMean: m, movingVariance: v };
      await assertNoLeak(() => {
        const r = nk.ibnA(x, opts);
        tf.dispose([r.y, r.movingMean, r.movingVariance]);
      }, 'forward');
      await assertNoLeak(() => tf.grad((a: tf.Tensor) => tf.sum(tf.square(nk.ibnA(a, opts).y)))(x).dispose(), 'gradient');
      tf.dispose([x, m, v]);
    });
  });

  describe('ibnB op', () => {
    it('is InstanceNorm of residual + shortcut: forward and gradients match the float64 reference', () => {
      const shape = [2, 3, 3, 4];
      const av = randn(72, 40, 0, 2);
      const bv = randn(72, 41, 1, 1);
      const gv = randn(4, 42, 1, 0.3);
      const dyv = randn(72, 43);
      const sum = av.map((v, i) => v + bv[i]);
      const ref = refNormalize(sum, shape, [1, 2], 1e-5, { gamma: gv, beta: [0.1, 0.2, 0.3, 0.4], paramAxes: [3] }).y;
      const back = refNormalizeBackward(sum, dyv, shape, [1, 2], 1e-5, { gamma: gv, paramAxes: [3] });
      tf.tidy(() => {
        const opts = (g: tf.Tensor) => ({ gamma: g, beta: tf.tensor([0.1, 0.2, 0.3, 0.4]) });
        const inputs = [tf.tensor(av, shape), tf.tensor(bv, shape), tf.tensor(gv)];
        assertClose(f64(nk.ibnB(inputs[0], inputs[1], opts(inputs[2]))), ref, { atol: 2e-5, rtol: 2e-5 }, 'y');
        const dy = tf.tensor(dyv, shape);
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(nk.ibnB(a, b, opts(c)), dy)))(inputs);
        assertClose(f64(g[0]), back.dx, { atol: 1e-4, rtol: 1e-4 }, 'dresidual');
        assertClose(f64(g[1]), back.dx, { atol: 1e-4, rtol: 1e-4 }, 'dshortcut');
        assertClose(f64(g[2]), back.dgamma, { atol: 1e-4, rtol: 1e-4 }, 'dgamma');
      });
    });

    it('rejects bad input before computing, naming the argument', () => {
      const a = tf.zeros([2, 3, 3, 4]);
      assertThrowsMentioning(() => nk.ibnB(a, tf.zeros([2, 3, 3, 2])), ['ibnB', "'shortcut'", '[2, 3, 3, 4]']);
      assertThrowsMentioning(() => nk.ibnB(tf.zeros([2, 4]), tf.zeros([2, 4])), ["'residual'", 'rank']);
      assertThrowsMentioning(() => nk.ibnB(a, a, { gamma: tf.ones([3]) }), ["'gamma'", '[4]']);
      assertThrowsMentioning(() => nk.ibnB(a, a, { epsilon: -1 }), ["'epsilon'"]);
      a.dispose();
    });
  });

  describe('InstanceBatchNormalization (IBN-a) and ResidualInstanceNormalization (IBN-b) layers', () => {
    it('IBN-a: a training call updates the moving statistics as the reference; predict uses them', () => {
      const shape = [3, 2, 2, 4];
      const layer = new nk.InstanceBatchNormalization();
      const model = tfl.sequential({ layers: [tfl.layers.inputLayer({ inputShape: shape.slice(1) }), layer] });
      assert.deepEqual(layer.weights.map((w) => w.originalName.split('/').pop()), ['inGamma', 'inBeta', 'bnGamma', 'bnBeta', 'movingMean', 'movingVariance']);
      assert.deepEqual(layer.trainableWeights.length, 4);
      const xv = randn(48, 50, 1, 2);
      const ref = refIBNA(xv, new Float32Array(48), shape, 2, 1e-5, { ig: [1, 1], ib: [0, 0], bg: [1, 1], bb: [0, 0], rm: [0, 0], rv: [1, 1], momentum: 0.1 });
      tf.tidy(() => {
        assertClose(f64(layer.apply(tf.tensor(xv, shape), { training: true }) as tf.Tensor), ref.y, { atol: 2e-5, rtol: 2e-5 }, 'y');
      });
      assertClose(f64(layer.weights[4].read()), ref.movingMean, { atol: 1e-6, rtol: 1e-5 }, 'movingMean');
      assertClose(f64(layer.weights[5].read()), ref.movingVariance, { atol: 1e-6, rtol: 1e-5 }, 'movingVariance');
      const outT = tf.tidy(() => model.predict(tf.tensor(xv, shape)) as tf.Tensor);
      const out = f64(outT);
      outT.dispose();
      const bnPart = channelSlice(xv, 4, 2, 4).map((x, i) => (x - ref.movingMean[i % 2]) / Math.sqrt(ref.movingVariance[i % 2] + 1e-5));
      assertClose(channelSlice(out, 4, 2, 4), bnPart, { atol: 2e-5, rtol: 2e-5 }, 'predict uses moving statistics');
      model.dispose();
    });

    it('IBN-a: trains between dense layers without leaking', async () => {
      const xs = tf.tensor(randn(12 * 8, 60), [12, 2, 2, 2]);
      const ys = tf.tensor(randn(12, 61), [12, 1]);
      const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 4, inputShape: [2, 2, 2] }), new nk.InstanceBatchNormalization({ ratio: 0.25 }), tfl.layers.flatten(), tfl.layers.dense({ units: 1 })] });
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      await assertModelFitWithoutLeak(model, xs, ys);
      model.dispose();
      tf.dispose([xs, ys]);
    });

    it('IBN-b: trains in a residual block without leaking', async () => {
      const input = tfl.input({ shape: [3, 3, 2] });
      const residual = tfl.layers.dense({ units: 2 }).apply(input) as tfl.SymbolicTensor;
      const layer = new nk.ResidualInstanceNormalization();
      const normed = layer.apply([residual, input]) as tfl.SymbolicTensor;
      const out = tfl.layers.dense({ units: 1 }).apply(tfl.layers.flatten().apply(tfl.layers.reLU().apply(normed))) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: input, outputs: out });
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      assert.equal(layer.epsilon, 1e-5);
      const xs = tf.tensor(randn(8 * 18, 70), [8, 3, 3, 2]);
      const ys = tf.tensor(randn(8, 71), [8, 1]);
      await assertModelFitWithoutLeak(model, xs, ys);
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it('are what the registry builds for "ibn-a" and "ibn-b", and reject bad arguments', () => {
      assert.ok(nk.createNorm('ibn-a', { ratio: 0.5 }) instanceof nk.InstanceBatchNormalization);
      assert.ok(nk.createNorm('ibn-b') instanceof nk.ResidualInstanceNormalization);
      assertThrowsMentioning(() => new nk.InstanceBatchNormalization({ ratio: -0.5 }), ['InstanceBatchNormalization', "'ratio'"]);
      assertThrowsMentioning(() => new nk.InstanceBatchNormalization({ momentum: 2 }), ["'momentum'"]);
      assertThrowsMentioning(() => tfl.sequential({ layers: [tfl.layers.inputLayer({ inputShape: [2, 2, 3] }), new nk.InstanceBatchNormalization({ ratio: 0.2 })] }), ["'ratio'", '1 to 2']);
      assertThrowsMentioning(() => new nk.ResidualInstanceNormalization().apply(tf.zeros([1, 2, 2, 1])), ['ResidualInstanceNormalization', "'inputs'"]);
    });
  });
});

runLayerTest(nk.InstanceBatchNormalization, { make: () => new nk.InstanceBatchNormalization({ momentum: 0.2 }), inputShape: [3, 3, 4], trainable: 4, nonTrainable: 2,
  weights: [['inGamma', [2]], ['inBeta', [2]], ['bnGamma', [2]], ['bnBeta', [2]], ['movingMean', [2]], ['movingVariance', [2]]], supportsMasking: false });
runLayerTest(nk.ResidualInstanceNormalization, { make: () => new nk.ResidualInstanceNormalization({ epsilon: 1e-3 }), inputShape: [[3, 3, 4], [3, 3, 4]], trainable: 2, nonTrainable: 0,
  weights: [['gamma', [4]], ['beta', [4]]], supportsMasking: true });
runLayerTest(nk.InstanceBatchNormalization, { label: 'ratio 0.75, keras convention, no beta',
  make: () => new nk.InstanceBatchNormalization({ ratio: 0.75, convention: 'keras', center: false, gammaInitializer: 'glorotUniform' }), inputShape: [3, 3, 4], trainable: 2, nonTrainable: 2,
  weights: [['inGamma', [3]], ['bnGamma', [1]], ['movingMean', [1]], ['movingVariance', [1]]], supportsMasking: false });
runLayerTest(nk.ResidualInstanceNormalization, { label: 'no gamma', make: () => new nk.ResidualInstanceNormalization({ scale: false }), inputShape: [[3, 3, 4], [3, 3, 4]], trainable: 1, nonTrainable: 0,
  weights: [['beta', [4]]], supportsMasking: true });
