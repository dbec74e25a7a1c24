import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

/** Float64 ScaleNorm from the paper: g * x / max(||x||_2, eps) per row of d. FixNorm is g = scale, eps 1e-12. */
function refScale(x: ArrayLike<number>, d: number, g: number, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[r * d + j] ** 2;
    const n = Math.max(Math.sqrt(s), eps);
    for (let j = 0; j < d; j++) y[r * d + j] = (g * x[r * d + j]) / n;
  }
  return y;
}

const d = 6;
const shape = [2, 3, d];

forEachBackend(() => {
  describe('scaleNorm and fixNorm ops', () => {
    it('scaleNorm forward and gradients (x, g) match the float64 reference; g defaults to sqrt(d)', () => {
      const xv = randn(36, 10, 0.2, 1.5);
      const dyv = randn(36, 11);
      const g = 1.7;
      const loss = (x: ArrayLike<number>, gv: number) => refScale(x, d, gv, 1e-5).reduce((s, y, i) => s + y * dyv[i], 0);
      const fdx = finiteDifference((v) => loss(v, g), Float64Array.from(xv));
      const fdg = finiteDifference((v) => loss(xv, v[0]), Float64Array.from([g]));
      tf.tidy(() => {
        assertClose(f64(nk.scaleNorm(tf.tensor(xv, shape))), refScale(xv, d, Math.sqrt(d), 1e-5), { atol: 1e-6, rtol: 1e-5 }, 'default g');
        const [dx, dg] = tf.grads((x: tf.Tensor, gt: tf.Tensor) => tf.sum(tf.mul(nk.scaleNorm(x, { g: gt }), tf.tensor(dyv, shape))))([tf.tensor(xv, shape), tf.tensor([g])]);
        assertClose(f64(dx), fdx, { atol: 1e-4, rtol: 1e-3 }, 'dx');
        assertClose(f64(dg), fdg, { atol: 1e-4, rtol: 1e-3 }, 'dg');
      });
    });

    it('scaleNorm clamps tiny norms at eps (not under a square root) and holds on magnitudes up to 1e15', () => {
      for (const scale of [1e-20, 1e-7, 1e-3, 1, 1e6, 1e15]) {
        const xv = randn(36, 20).map((v) => v * scale);
        tf.tidy(() => {
          assertClose(f64(nk.scaleNorm(tf.tensor(xv, shape), { g: 2 })), refScale(xv, d, 2, 1e-5), { atol: 1e-14, rtol: 1e-4 }, `y at ${scale}`);
          const dx = f64(tf.grad((a: tf.Tensor) => tf.sum(tf.square(nk.scaleNorm(a))))(tf.tensor(xv, shape)));
          assert.ok(dx.every(Number.isFinite), `finite gradient at ${scale}`);
        });
      }
    });

    it('fixNorm gives unit rows (times scale) and its gradient matches finite differences', () => {
      const xv = randn(20, 30);
      const dyv = randn(20, 31);
      const fd = finiteDifference((v) => refScale(v, 5, 3, 1e-12).reduce((s, y, i) => s + y * dyv[i], 0), Float64Array.from(xv));
      tf.tidy(() => {
        const unit = nk.fixNorm(tf.tensor(xv, [4, 5]));
        assertClose(f64(unit), refScale(xv, 5, 1, 1e-12), { atol: 1e-6, rtol: 1e-5 }, 'unit rows');
        assertClose(f64(tf.sqrt(tf.sum(tf.square(unit), -1))), [1, 1, 1, 1], { atol: 1e-6 }, 'row norms');
        const dx = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(nk.fixNorm(a, { scale: 3 }), tf.tensor(dyv, [4, 5]))))(tf.tensor(xv, [4, 5]));
        assertClose(f64(dx), fd, { atol: 1e-4, rtol: 1e-3 }, 'dx');
        assertClose(f64(nk.fixNorm(tf.zeros([2, 3]))), [0, 0, 0, 0, 0, 0], { atol: 0 }, 'zero rows stay zero');
      });
    });

    it('rows where the clamp is active (all-zero, or norm below eps) get the finite gradient of g x / eps', () => {
      // Row 0 all zero, row 1 of norm 5e-6 < eps = 1e-5, row 2 ordinary: d/dx sum(y * dy) = g dy / eps on the
      // clamped rows, and the float64 reference's finite differences on the ordinary one.
      const xv = new Float32Array([0, 0, 0, 0, 3e-6, 4e-6, 0.5, -1.5, 2]);
      const dyv = randn(9, 12);
      const eps = 1e-5;
      for (const [name, op, gain] of [
        ['scaleNorm', (a: tf.Tensor) => nk.scaleNorm(a, { g: 2, epsilon: eps }), 2],
        ['fixNorm', (a: tf.Tensor) => nk.fixNorm(a, { epsilon: eps, scale: 3 }), 3],
      ] as const) {
        tf.tidy(() => {
          const dx = f64(tf.grad((a: tf.Tensor) => tf.sum(tf.mul(op(a), tf.tensor(dyv, [3, 3]))))(tf.tensor(xv, [3, 3])));
          assert.ok(dx.every(Number.isFinite), `${name}: finite gradients ${Array.from(dx)}`);
          const clamped = Array.from(dyv.slice(0, 6), (v) => (gain * v) / eps);
          assertClose(dx.slice(0, 6), clamped, { rtol: 1e-5 }, `${name}: dx on clamped rows`);
          const fd = finiteDifference((v) => refScale(v, 3, gain, eps).slice(6).reduce((t, y, i) => t + y * dyv[6 + i], 0), Float64Array.from(xv));
          assertClose(dx.slice(6), fd.slice(6), { atol: 1e-4, rtol: 1e-3 }, `${name}: dx on the ordinary row`);
        });
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3]);
      assertThrowsMentioning(() => nk.scaleNorm(x, { g: tf.ones([3]) }), ['scaleNorm', "'g'", '[1]']);
      assertThrowsMentioning(() => nk.scaleNorm(x, { g: Number.NaN }), ["'g'"]);
      assertThrowsMentioning(() => nk.scaleNorm(x, { epsilon: 0 }), ["'epsilon'"]);
      assertThrowsMentioning(() => nk.scaleNorm(tf.scalar(1)), ["'x'", 'rank']);
      assertThrowsMentioning(() => nk.scaleNorm(x, { gain: 1 } as never), ["'gain'"]);
      assertThrowsMentioning(() => nk.fixNorm(x, { scale: Number.POSITIVE_INFINITY }), ['fixNorm', "'scale'"]);
      assertThrowsMentioning(() => nk.fixNorm(tf.zeros([2], 'int32')), ["'x'", 'float32']);
      x.dispose();
    });

    it('leak no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(12, 40), [3, 4]);
      const g = tf.tensor([2]);
      await assertNoLeak(() => nk.scaleNorm(x, { g }).dispose(), 'scaleNorm forward');
      await assertNoLeak(() => tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(nk.scaleNorm(a, { g: b })))([x, g])), 'scaleNorm gradient');
      await assertNoLeak(() => tf.grad((a: tf.Tensor) => tf.sum(nk.fixNorm(a)))(x).dispose(), 'fixNorm gradient');
      tf.dispose([x, g]);
    });
  });

  describe('ScaleNorm layer', () => {
    it('initializes g to sqrt(d) and matches the op', () => {
      const layer = new nk.ScaleNorm();
      const x = tf.tensor(randn(36, 50), shape);
      const y = layer.apply(x) as tf.Tensor;
      assert.deepEqual(layer.weights.map((w) => w.originalName.split('/').pop()), ['g']);
      assertClose(f64(layer.getWeights()[0]), [Math.sqrt(d)], { rtol: 1e-6 }, 'g init');
      assertClose(f64(y), refScale(x.dataSync(), d, Math.sqrt(d), 1e-5), { atol: 1e-6, rtol: 1e-5 }, 'y');
      tf.dispose([x, y]);
    });

  });

  describe('FixNormEmbedding layer', () => {
    it('looks up sqrt(d) * unit rows, exposes the normalized table and trains in model.fit without leaking', async () => {
      const layer = new nk.FixNormEmbedding({ inputDim: 7, outputDim: 4 });
      const ids = tf.tensor([[0, 3, 6], [2, 2, 1]], [2, 3], 'int32');
      const y = layer.apply(ids) as tf.Tensor;
      assert.deepEqual(y.shape, [2, 3, 4]);
      const table = f64(layer.getWeights()[0]);
      assert.ok(table.every((v) => Math.abs(v) <= 0.01), 'uniform(-0.01, 0.01) init');
      const unit = refScale(table, 4, 1, 1e-12);
      const expected = [0, 3, 6, 2, 2, 1].flatMap((id) => Array.from(unit.slice(id * 4, id * 4 + 4), (v) => 2 * v));
      assertClose(f64(y), expected, { atol: 1e-6, rtol: 1e-5 }, 'lookup');
      const eh = layer.normalizedEmbeddings();
      assertClose(f64(eh), unit, { atol: 1e-6, rtol: 1e-5 }, 'normalizedEmbeddings');
      tf.dispose([ids, y, eh]);

      const model = tfl.sequential();
      model.add(new nk.FixNormEmbedding({ inputDim: 7, outputDim: 4, inputShape: [3] }));
      model.add(tfl.layers.dense({ units: 7, activation: 'softmax' }));
      model.compile({ optimizer: 'sgd', loss: 'sparseCategoricalCrossentropy' });
      const xs = tf.tensor([[0, 1, 2], [3, 4, 5], [6, 0, 1], [2, 3, 4]], [4, 3], 'float32');
      const ys = tf.tensor([1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4], [4, 3, 1], 'float32');
      await model.fit(xs, ys, { epochs: 1, verbose: 0 });
      const before = tf.memory().numTensors;
      await model.fit(xs, ys, { epochs: 2, verbose: 0 });
      assert.equal(tf.memory().numTensors, before, 'model.fit leaked tensors');
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it('ScaleNorm and FixNorm are in the registry as "scale" and "fix"', () => {
      for (const name of ['scale', 'scalenorm', 'ScaleNorm']) assert.ok(nk.createNorm(name) instanceof nk.ScaleNorm);
      assert.ok(nk.createNorm('fix', { inputDim: 10, outputDim: 4 }) instanceof nk.FixNormEmbedding);
      assertThrowsMentioning(() => new nk.FixNormEmbedding({ inputDim: 0, outputDim: 4 }), ['FixNormEmbedding', "'inputDim'"]);
      assertThrowsMentioning(() => new nk.ScaleNorm({ gInitValue: Number.NaN }), ['ScaleNorm', "'gInitValue'"]);
    });
  });
});

runLayerTest(nk.ScaleNorm, { make: () => new nk.ScaleNorm({ epsilon: 1e-6, gInitValue: 2.5 }), inputShape: [3, 4], trainable: 1, nonTrainable: 0, weights: [['g', [1]]], supportsMasking: true });
runLayerTest(nk.FixNormEmbedding, { make: () => new nk.FixNormEmbedding({ inputDim: 5, outputDim: 4, scale: 1, embeddingsInitializer: 'glorotUniform' }), inputShape: [3], trainable: 1, nonTrainable: 0,
  inputs: (n, seed) => [tf.tensor(Array.from({ length: n * 3 }, (_, i) => (i * 3 + seed) % 5), [n, 3], 'int32')],
  weights: [['embeddings', [5, 4]]], supportsMasking: false });
