import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { assertForwardAndGradient, assertGradMatchesFiniteDifferences, assertOpNoLeak } from '../helpers/op-checks.js';
import { assertModelFitWithoutLeak } from '../helpers/layer-roundtrip.js';
import { refNormalize, refNormalizeBackward } from '../helpers/reference.js';
import { kerasSequentialArtifacts } from '../helpers/layer-io.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Float64 pRMSNorm over the last axis of a [rows, d] matrix, written from the paper: the mean square of the
 * first k features of each row scales all d features.
 */
function refPartialRMS(x: ArrayLike<number>, rows: number, d: number, k: number, eps: number, gamma?: ArrayLike<number>): Float64Array {
  const y = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let ms = 0;
    for (let j = 0; j < k; j++) ms += x[r * d + j] ** 2;
    ms /= k;
    const inv = 1 / Math.sqrt(ms + eps);
    for (let j = 0; j < d; j++) y[r * d + j] = x[r * d + j] * inv * (gamma ? gamma[j] : 1);
  }
  return y;
}

describe('rmsNorm float64 references', () => {
  it('the RMS backward (center: false) matches finite differences of its forward', () => {
    const shape = [3, 5];
    const x = Float64Array.from(randn(15, 1));
    const dy = Float64Array.from(randn(15, 2));
    const gamma = Float64Array.from(randn(5, 3));
    const opts = { center: false, gamma };
    const loss = (v: Float64Array) => refNormalize(v, shape, [1], 1e-3, opts).y.reduce((s, y, i) => s + y * dy[i], 0);
    assertClose(refNormalizeBackward(x, dy, shape, [1], 1e-3, opts).dx, finiteDifference(loss, x), { atol: 1e-7, rtol: 1e-6 }, 'dx');
  });

  it('pRMSNorm with p = 1 equals plain RMS normalization', () => {
    const x = randn(12, 4);
    assertClose(refPartialRMS(x, 3, 4, 4, 1e-6), refNormalize(x, [3, 4], [1], 1e-6, { center: false }).y, { atol: 1e-12 }, 'y');
  });
});

forEachBackend(() => {
  describe('rmsNorm op', () => {
    const cases: Array<{ shape: number[]; axis: number | number[]; axes: number[] }> = [
      { shape: [4, 8], axis: -1, axes: [1] },
      { shape: [2, 3, 5], axis: [1, 2], axes: [1, 2] },
      { shape: [2, 3, 4], axis: 1, axes: [1] },
      { shape: [2, 2, 3, 4], axis: [-3, -1], axes: [1, 3] },
    ];
    for (const { shape, axis, axes } of cases) {
      it(`forward matches float64 reference, shape [${shape}] axis ${JSON.stringify(axis)}`, () => {
        const xv = randn(size(shape), 10, 0.5);
        const pShape = axes.map((a) => shape[a]);
        const gv = randn(size(pShape), 11, 1, 0.5);
        const expected = refNormalize(xv, shape, axes, 1e-6, { center: false, gamma: gv, paramAxes: axes }).y;
        tf.tidy(() => {
          const y = nk.rmsNorm(tf.tensor(xv, shape), { axis, gamma: tf.tensor(gv, pShape) });
          assert.deepEqual(y.shape, shape);
          assertClose(f64(y), expected, { atol: 2e-5, rtol: 2e-5 }, 'y');
        });
      });

      it(`gradients match float64 reference, shape [${shape}] axis ${JSON.stringify(axis)}`, () => {
        const xv = randn(size(shape), 20, 0.3);
        const dyv = randn(size(shape), 21);
        const pShape = axes.map((a) => shape[a]);
        const gv = randn(size(pShape), 22, 1, 0.5);
        const ref = refNormalizeBackward(xv, dyv, shape, axes, 1e-6, { center: false, gamma: gv, paramAxes: axes });
        tf.tidy(() => {
          const dy = tf.tensor(dyv, shape);
          const grads = tf.grads((x: tf.Tensor, g: tf.Tensor) => tf.sum(tf.mul(nk.rmsNorm(x, { axis, gamma: g }), dy)));
          const [dx, dg] = grads([tf.tensor(xv, shape), tf.tensor(gv, pShape)]);
          assertClose(f64(dx), ref.dx, { atol: 1e-4, rtol: 1e-4 }, 'dx');
          assertClose(f64(dg), ref.dgamma, { atol: 1e-4, rtol: 1e-4 }, 'dgamma');
        });
      });
    }

    it('puts epsilon inside the square root', () => {
      // One feature of value 1 with eps 3: inside gives 1/sqrt(1 + 3) = 0.5, outside would give 1/(1 + 3).
      tf.tidy(() => assertClose(f64(nk.rmsNorm(tf.tensor([[1]]), { epsilon: 3 })), [0.5], { atol: 1e-7 }, 'y'));
    });

    it('gradient matches finite differences of the op itself', () => {
      assertGradMatchesFiniteDifferences((x) => nk.rmsNorm(x, { epsilon: 1e-2 }), [2, 6], randn(12, 30), randn(12, 31));
    });

    it('pRMSNorm: forward and gradient match a float64 reference', () => {
      const rows = 3;
      const d = 16;
      const p = 0.3; // k = floor(4.8) = 4
      const xv = randn(rows * d, 35);
      const gv = randn(d, 36, 1, 0.3);
      const dyv = randn(rows * d, 37);
      const expected = refPartialRMS(xv, rows, d, 4, 1e-6, gv);
      const loss = (v: Float64Array) => refPartialRMS(v, rows, d, 4, 1e-6, gv).reduce((s, y, i) => s + y * dyv[i], 0);
      const fd = finiteDifference(loss, Float64Array.from(xv));
      tf.tidy(() => {
        const x = tf.tensor(xv, [rows, d]);
        const gamma = tf.tensor(gv, [d]);
        assertClose(f64(nk.rmsNorm(x, { gamma, partial: p })), expected, { atol: 2e-5, rtol: 2e-5 }, 'y');
        const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(nk.rmsNorm(v, { gamma, partial: p }), tf.tensor(dyv, [rows, d]))))(x);
        assertClose(f64(dx), fd, { atol: 1e-4, rtol: 1e-4 }, 'dx');
        assertClose(f64(nk.rmsNorm(x, { partial: 1 })), refNormalize(xv, [rows, d], [1], 1e-6, { center: false }).y, { atol: 2e-5, rtol: 2e-5 }, 'p = 1');
      });
    });

    it('is exact on a large common offset (mean 1e4, std 1e-2)', () => {
      const shape = [4, 64];
      const xv = randn(size(shape), 40, 1e4, 1e-2);
      const dyv = randn(size(shape), 41);
      const expected = { y: refNormalize(xv, shape, [1], 1e-6, { center: false }).y, dx: refNormalizeBackward(xv, dyv, shape, [1], 1e-6, { center: false }).dx };
      assertForwardAndGradient((x) => nk.rmsNorm(x), shape, xv, dyv, expected, { y: { atol: 1e-6, rtol: 1e-5 }, dx: { atol: 1e-8, rtol: 1e-3 } });
    });

    it('handles constant and all-zero rows, with finite gradients', () => {
      const shape = [3, 8];
      const xv = new Float32Array(24);
      xv.fill(-2.5, 0, 8);
      xv.fill(4, 8, 16); // last row stays zero: y = 0, dy/dx = 1/sqrt(eps)
      const dyv = randn(24, 51);
      const ref = refNormalizeBackward(xv, dyv, shape, [1], 1e-6, { center: false });
      tf.tidy(() => {
        assertClose(f64(nk.rmsNorm(tf.tensor(xv, shape))), refNormalize(xv, shape, [1], 1e-6, { center: false }).y, { atol: 1e-6 }, 'y');
        const dx = f64(tf.grad((x: tf.Tensor) => tf.sum(tf.mul(nk.rmsNorm(x), tf.tensor(dyv, shape))))(tf.tensor(xv, shape)));
        assert.ok(dx.every(Number.isFinite), 'finite gradient');
        assertClose(dx, ref.dx, { atol: 1e-5, rtol: 1e-4 }, 'dx');
      });
    });

    it('holds on magnitudes from 1e-20 to 1e15', () => {
      for (const scale of [1e-20, 1e-10, 1e-3, 1, 1e6, 1e15]) {
        const shape = [4, 32];
        const xv = randn(size(shape), 60).map((v) => v * scale);
        const expected = refNormalize(xv, shape, [1], 1e-6, { center: false }).y;
        tf.tidy(() => assertClose(f64(nk.rmsNorm(tf.tensor(xv, shape))), expected, { atol: 1e-25, rtol: 1e-4 }, `y at scale ${scale}`));
      }
    });

    it('handles a normalized axis of length 1 (y = x / sqrt(x^2 + eps))', () => {
      const xv = [3, -2, 1e-4];
      const eps = 1e-6;
      tf.tidy(() => {
        const x = tf.tensor(xv, [3, 1]);
        assertClose(f64(nk.rmsNorm(x)), xv.map((v) => v / Math.sqrt(v * v + eps)), { atol: 1e-6, rtol: 1e-5 }, 'y');
        const dx = tf.grad((v: tf.Tensor) => tf.sum(nk.rmsNorm(v)))(x);
        // d/dx [x (x^2 + eps)^-1/2] = eps (x^2 + eps)^-3/2
        assertClose(f64(dx), xv.map((v) => eps * (v * v + eps) ** -1.5), { atol: 1e-6, rtol: 1e-3 }, 'dx');
      });
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3]);
      assertThrowsMentioning(() => nk.rmsNorm(x, { axis: 2 }), ['rmsNorm', "'axis'", '2']);
      assertThrowsMentioning(() => nk.rmsNorm(x, { axis: [1, -1] }), ["'axis'", 'distinct']);
      assertThrowsMentioning(() => nk.rmsNorm(tf.zeros([2, 3], 'int32')), ["'x'", 'float32', 'int32']);
      assertThrowsMentioning(() => nk.rmsNorm(tf.scalar(1)), ["'x'", 'rank']);
      assertThrowsMentioning(() => nk.rmsNorm(x, { gamma: tf.ones([2]) }), ["'gamma'", '[3]', '[2]']);
      assertThrowsMentioning(() => nk.rmsNorm(x, { epsilon: 0 }), ["'epsilon'", '> 0']);
      assertThrowsMentioning(() => nk.rmsNorm(x, { epsilon: -1 }), ["'epsilon'"]);
      assertThrowsMentioning(() => nk.rmsNorm(x, { partial: 0 }), ["'partial'", '(0, 1]']);
      assertThrowsMentioning(() => nk.rmsNorm(x, { partial: 1.5 }), ["'partial'"]);
      assertThrowsMentioning(() => nk.rmsNorm(x, { partial: 0.2 }), ["'partial'", 'floor']);
      assertThrowsMentioning(() => nk.rmsNorm(x, { partial: 0.5, axis: [0, 1] }), ["'axis'", 'single axis']);
      assertThrowsMentioning(() => nk.rmsNorm(x, { beta: tf.ones([3]) } as never), ["'beta'"]);
      x.dispose();
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(24, 70), [4, 6]);
      const g = tf.ones([6]);
      await assertOpNoLeak((a, b) => nk.rmsNorm(a, { gamma: b }), x, g);
      await assertNoLeak(() => nk.rmsNorm(x, { gamma: g, partial: 0.5 }).dispose(), 'partial forward');
      x.dispose();
      g.dispose();
    });
  });
});

forEachBackend(() => {
  describe('RMSNormalization layer', () => {
    it('works in a functional tf.model', () => {
      const input = tfl.input({ shape: [3, 4] });
      const output = new nk.RMSNormalization({ axis: [-2, -1] }).apply(input) as tfl.SymbolicTensor;
      assert.deepEqual(output.shape, [null, ...[3, 4]]);
      const model = tfl.model({ inputs: input, outputs: output });
      const xv = randn(24, 95);
      tf.tidy(() => assertClose(f64(model.predict(tf.tensor(xv, [2, 3, 4])) as tf.Tensor), refNormalize(xv, [2, 3, 4], [1, 2], 1e-6, { center: false }).y, { atol: 2e-5, rtol: 2e-5 }, 'y'));
      model.dispose();
    });

    it('uses Keras 3 defaults and weight name, matches the reference, and trains in model.fit without leaking', async () => {
      const model = tfl.sequential();
      model.add(tfl.layers.dense({ units: 8, inputShape: [5] }));
      model.add(new nk.RMSNormalization());
      model.add(tfl.layers.dense({ units: 1 }));
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      const rms = model.layers[1] as nk.RMSNormalization;
      assert.deepEqual(rms.weights.map((w) => w.originalName.split('/').pop()), ['scale']);
      assert.equal(rms.epsilon, 1e-6);
      const gv = randn(8, 82, 1, 0.5);
      rms.setWeights([tf.tensor(gv, [8])]);
      const hv = randn(24, 83);
      const h = tf.tensor(hv, [3, 8]);
      await assertNoLeak(() => (rms.apply(h) as tf.Tensor).dispose(), 'layer call');
      tf.tidy(() => {
        const y = rms.apply(h) as tf.Tensor;
        assertClose(f64(y), refNormalize(hv, [3, 8], [1], 1e-6, { center: false, gamma: gv }).y, { atol: 2e-5, rtol: 2e-5 }, 'y');
      });
      const xs = tf.tensor(randn(40, 80), [8, 5]);
      const ys = tf.tensor(randn(8, 81), [8, 1]);
      await assertModelFitWithoutLeak(model, xs, ys, { warmupBatchSize: 8 });
      tf.dispose([xs, ys, h]);
      model.dispose();
    });

    it('adds an optional bias and supports pRMSNorm', () => {
      const layer = new nk.RMSNormalization({ center: true, partial: 0.5, betaInitializer: 'ones' });
      const xv = randn(12, 84);
      tf.tidy(() => {
        const y = layer.apply(tf.tensor(xv, [3, 4])) as tf.Tensor;
        assert.deepEqual(layer.weights.map((w) => w.originalName.split('/').pop()), ['scale', 'beta']);
        const expected = refPartialRMS(xv, 3, 4, 2, 1e-6).map((v) => v + 1);
        assertClose(f64(y), expected, { atol: 2e-5, rtol: 2e-5 }, 'y');
      });
      layer.dispose();
    });

    it("takes PyTorch's epsilon (float32 machine epsilon) with the 'pytorch' convention", () => {
      assert.equal(new nk.RMSNormalization({ convention: 'pytorch' }).epsilon, 2 ** -23);
    });

    it('loads a Keras 3 RMSNormalization model.json (weight "scale")', async () => {
      const gv = randn(8, 88, 1, 0.5);
      const artifacts = kerasSequentialArtifacts('RMSNormalization', { name: 'rms_normalization', axis: [-1], epsilon: 1e-6 }, [null, 3, 8], [
        { name: 'rms_normalization/scale', shape: [8], values: gv },
      ]);
      const model = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
      const xv = randn(48, 89);
      tf.tidy(() => {
        const y = model.predict(tf.tensor(xv, [2, 3, 8])) as tf.Tensor;
        assertClose(f64(y), refNormalize(xv, [2, 3, 8], [2], 1e-6, { center: false, gamma: gv, paramAxes: [2] }).y, { atol: 2e-5, rtol: 2e-5 }, 'y');
      });
      model.dispose();
    });

    it('is what the registry builds for "rms" and "srms" (gain-free, eps 1e-6)', () => {
      const rms = nk.createNorm('rms', { epsilon: 1e-4 });
      assert.ok(rms instanceof nk.RMSNormalization);
      assert.equal((rms as nk.RMSNormalization).epsilon, 1e-4);
      const srms = nk.createNorm('srms') as nk.RMSNormalization;
      assert.ok(srms instanceof nk.RMSNormalization);
      assert.equal(srms.epsilon, 1e-6);
      const xv = randn(12, 90);
      tf.tidy(() => {
        const y = srms.apply(tf.tensor(xv, [3, 4])) as tf.Tensor;
        assert.equal(srms.weights.length, 0);
        assertClose(f64(y), refNormalize(xv, [3, 4], [1], 1e-6, { center: false }).y, { atol: 2e-5, rtol: 2e-5 }, 'y');
      });
      const names = nk.listNorms().map((e) => e.name);
      assert.ok(names.includes('rms') && names.includes('srms'));
    });

    it('rejects bad arguments when built or constructed', () => {
      assertThrowsMentioning(() => new nk.RMSNormalization({ epsilon: 0 }), ['RMSNormalization', "'epsilon'"]);
      assertThrowsMentioning(() => new nk.RMSNormalization({ partial: 2 }), ['RMSNormalization', "'partial'"]);
      assertThrowsMentioning(() => new nk.RMSNormalization({ convention: 'torch' as never }), ["'convention'"]);
      assertThrowsMentioning(() => new nk.RMSNormalization({ axis: 3 }).build([2, 4]), ["'axis'", '3']);
      assertThrowsMentioning(() => new nk.RMSNormalization({ axis: [0, 1], partial: 0.5 }).build([2, 4]), ["'axis'", 'single axis']);
    });
  });
});

runLayerTest(nk.RMSNormalization, { make: () => new nk.RMSNormalization(), inputShape: [3, 4], trainable: 1, nonTrainable: 0, weights: [['scale', [4]]], supportsMasking: true });
runLayerTest(nk.RMSNormalization, { label: 'sRMSNorm, no scale', make: () => nk.createNorm('srms'), inputShape: [3, 4], trainable: 0, nonTrainable: 0, supportsMasking: true });
runLayerTest(nk.RMSNormalization, { label: 'centered, partial, pytorch convention',
  make: () => new nk.RMSNormalization({ convention: 'pytorch', gammaInitializer: 'glorotUniform', center: true, partial: 0.25 }),
  inputShape: [3, 4], trainable: 2, nonTrainable: 0, weights: [['scale', [4]], ['beta', [4]]], supportsMasking: true });
runLayerTest(nk.RMSNormalization, { label: 'two axes, centered', make: () => new nk.RMSNormalization({ axis: [-2, -1], center: true, epsilon: 1e-4 }),
  inputShape: [3, 4], trainable: 2, nonTrainable: 0, weights: [['scale', [3, 4]], ['beta', [3, 4]]], supportsMasking: true });
