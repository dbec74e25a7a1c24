import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { assertForwardAndGradient, assertGradMatchesFiniteDifferences, assertOpNoLeak } from '../helpers/op-checks.js';
import { assertModelFitWithoutLeak } from '../helpers/layer-roundtrip.js';
import { refNormalize, refNormalizeBackward } from '../helpers/reference.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

describe('layerNorm float64 reference', () => {
  it('its backward matches finite differences of its forward', () => {
    const shape = [3, 5];
    const x = Float64Array.from(randn(15, 1));
    const dy = Float64Array.from(randn(15, 2));
    const gamma = Float64Array.from(randn(5, 3));
    const loss = (v: Float64Array) => refNormalize(v, shape, [1], 1e-3, { gamma }).y.reduce((s, y, i) => s + y * dy[i], 0);
    const fd = finiteDifference(loss, x);
    assertClose(refNormalizeBackward(x, dy, shape, [1], 1e-3, { gamma }).dx, fd, { atol: 1e-7, rtol: 1e-6 }, 'dx');
  });
});

forEachBackend(() => {
  describe('layerNorm op', () => {
    const cases: Array<{ shape: number[]; axis: number | number[]; axes: number[] }> = [
      { shape: [4, 8], axis: -1, axes: [1] },
      { shape: [2, 3, 5], axis: [1, 2], axes: [1, 2] },
      { shape: [2, 3, 4], axis: 1, axes: [1] },
      { shape: [2, 2, 3, 4], axis: [-3, -1], axes: [1, 3] },
    ];
    for (const { shape, axis, axes } of cases) {
      it(`forward matches float64 reference, shape [${shape}] axis ${JSON.stringify(axis)}`, () => {
        const xv = randn(size(shape), 10);
        const pSize = axes.reduce((n, a) => n * shape[a], 1);
        const pShape = axes.map((a) => shape[a]);
        const gv = randn(pSize, 11, 1, 0.5);
        const bv = randn(pSize, 12);
        const expected = refNormalize(xv, shape, axes, 1e-5, { gamma: gv, beta: bv, paramAxes: axes }).y;
        tf.tidy(() => {
          const y = nk.layerNorm(tf.tensor(xv, shape), { axis, gamma: tf.tensor(gv, pShape), beta: tf.tensor(bv, pShape) });
          assert.deepEqual(y.shape, shape);
          assertClose(f64(y), expected, { atol: 2e-5, rtol: 2e-5 }, 'y');
        });
      });

      it(`gradients match float64 reference, shape [${shape}] axis ${JSON.stringify(axis)}`, () => {
        const xv = randn(size(shape), 20);
        const dyv = randn(size(shape), 21);
        const pShape = axes.map((a) => shape[a]);
        const gv = randn(size(pShape), 22, 1, 0.5);
        const ref = refNormalizeBackward(xv, dyv, shape, axes, 1e-5, { gamma: gv, paramAxes: axes });
        tf.tidy(() => {
          const dy = tf.tensor(dyv, shape);
          const grads = tf.grads((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(nk.layerNorm(x, { axis, gamma: g, beta: b }), dy)));
          const [dx, dg, db] = grads([tf.tensor(xv, shape), tf.tensor(gv, pShape), tf.zeros(pShape)]);
          assertClose(f64(dx), ref.dx, { atol: 1e-4, rtol: 1e-4 }, 'dx');
          assertClose(f64(dg), ref.dgamma, { atol: 1e-4, rtol: 1e-4 }, 'dgamma');
          assertClose(f64(db), ref.dbeta, { atol: 1e-4, rtol: 1e-4 }, 'dbeta');
        });
      });
    }

    it('gradient matches finite differences of the op itself', () => {
      assertGradMatchesFiniteDifferences((x) => nk.layerNorm(x, { epsilon: 1e-2 }), [2, 6], randn(12, 30), randn(12, 31));
    });

    it('is exact on a large common offset (mean 1e4, std 1e-2)', () => {
      const shape = [8, 256];
      const xv = randn(size(shape), 40, 1e4, 1e-2);
      const dyv = randn(size(shape), 41);
      const expected = { y: refNormalize(xv, shape, [1], 1e-5).y, dx: refNormalizeBackward(xv, dyv, shape, [1], 1e-5).dx };
      assertForwardAndGradient((x) => nk.layerNorm(x), shape, xv, dyv, expected, { y: { atol: 1e-4, rtol: 1e-4 }, dx: { atol: 1e-2, rtol: 1e-3 } });
    });

    it('maps constant rows to beta, with finite gradients', () => {
      const shape = [3, 16];
      const xv = new Float32Array(48).fill(7.25);
      const bv = randn(16, 50);
      tf.tidy(() => {
        const y = nk.layerNorm(tf.tensor(xv, shape), { beta: tf.tensor(bv, [16]) });
        const expected = new Float64Array(48).map((_, i) => bv[i % 16]);
        assertClose(f64(y), expected, { atol: 1e-6 }, 'y');
        const dx = f64(tf.grad((x: tf.Tensor) => tf.sum(tf.mul(nk.layerNorm(x), tf.tensor(randn(48, 51), shape))))(tf.tensor(xv, shape)));
        assert.ok(dx.every(Number.isFinite), 'finite gradient');
        assertClose(dx, refNormalizeBackward(xv, randn(48, 51), shape, [1], 1e-5).dx, { atol: 1e-2, rtol: 1e-4 }, 'dx');
      });
    });

    it('holds on magnitudes from 1e-20 to 1e15', () => {
      for (const scale of [1e-20, 1e-10, 1e-3, 1, 1e6, 1e15]) {
        const shape = [4, 32];
        const xv = randn(size(shape), 60).map((v) => v * scale);
        const expected = refNormalize(xv, shape, [1], 1e-5).y;
        tf.tidy(() => assertClose(f64(nk.layerNorm(tf.tensor(xv, shape))), expected, { atol: 1e-25, rtol: 1e-4 }, `y at scale ${scale}`));
      }
    });

    it('handles a normalized axis of length 1 (output is beta, gradient is zero)', () => {
      tf.tidy(() => {
        const x = tf.tensor([[3], [-2], [1e6]]);
        const y = nk.layerNorm(x, { beta: tf.tensor([0.5]) });
        assertClose(f64(y), [0.5, 0.5, 0.5], { atol: 1e-6 }, 'y');
        const dx = tf.grad((v: tf.Tensor) => tf.sum(nk.layerNorm(v)))(x);
        assertClose(f64(dx), [0, 0, 0], { atol: 1e-6 }, 'dx');
      });
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3]);
      assertThrowsMentioning(() => nk.layerNorm(x, { axis: 2 }), ['layerNorm', "'axis'", '2']);
      assertThrowsMentioning(() => nk.layerNorm(x, { axis: [1, -1] }), ["'axis'", 'distinct']);
      assertThrowsMentioning(() => nk.layerNorm(tf.zeros([2, 3], 'int32')), ["'x'", 'float32', 'int32']);
      assertThrowsMentioning(() => nk.layerNorm(tf.scalar(1)), ["'x'", 'rank']);
      assertThrowsMentioning(() => nk.layerNorm(x, { gamma: tf.ones([2]) }), ["'gamma'", '[3]', '[2]']);
      assertThrowsMentioning(() => nk.layerNorm(x, { beta: tf.ones([3, 1]) }), ["'beta'", '[3]']);
      assertThrowsMentioning(() => nk.layerNorm(x, { epsilon: 0 }), ["'epsilon'", '> 0']);
      assertThrowsMentioning(() => nk.layerNorm(x, { epsilon: -1 }), ["'epsilon'"]);
      assertThrowsMentioning(() => nk.layerNorm(x, { epsilion: 1 } as never), ["'epsilion'"]);
      x.dispose();
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(24, 70), [4, 6]);
      const g = tf.ones([6]);
      await assertOpNoLeak((a, b) => nk.layerNorm(a, { gamma: b }), x, g);
      x.dispose();
      g.dispose();
    });
  });

  describe('LayerNormalization layer', () => {
    it('matches the op and Keras weight names, and trains in model.fit without leaking', async () => {
      const model = tfl.sequential();
      model.add(tfl.layers.dense({ units: 8, inputShape: [5] }));
      model.add(new nk.LayerNormalization());
      model.add(tfl.layers.dense({ units: 1 }));
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      const ln = model.layers[1] as nk.LayerNormalization;
      assert.deepEqual(ln.weights.map((w) => w.originalName.split('/').pop()), ['gamma', 'beta']);
      assert.equal(ln.epsilon, 1e-3);
      const xs = tf.tensor(randn(40, 80), [8, 5]);
      const ys = tf.tensor(randn(8, 81), [8, 1]);
      await assertModelFitWithoutLeak(model, xs, ys, { warmupBatchSize: 8 });
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it("takes PyTorch's epsilon with the 'pytorch' convention", () => {
      assert.equal(new nk.LayerNormalization({ axis: [-2, -1], convention: 'pytorch' }).epsilon, 1e-5);
    });

    it('is what the registry builds for "layer"', () => {
      const layer = nk.createNorm('layer', { epsilon: 1e-4 });
      assert.ok(layer instanceof nk.LayerNormalization);
      assert.equal((layer as nk.LayerNormalization).epsilon, 1e-4);
      assertThrowsMentioning(() => nk.createNorm('nope'), ["'name'", "'layer'"]);
    });
  });
});

runLayerTest(nk.LayerNormalization, { make: () => new nk.LayerNormalization(), inputShape: [3, 4], trainable: 2, nonTrainable: 0,
  weights: [['gamma', [4]], ['beta', [4]]], supportsMasking: true });
runLayerTest(nk.LayerNormalization, { label: 'two axes, pytorch convention', make: () => new nk.LayerNormalization({ axis: [-2, -1], convention: 'pytorch', gammaInitializer: 'glorotUniform', center: false }),
  inputShape: [3, 4], trainable: 1, nonTrainable: 0, weights: [['gamma', [3, 4]]], supportsMasking: true });
