import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

/** Float64 DyT from the paper: gamma * tanh(alpha * x) + beta, per channel on the last axis. */
function refDYT(x: ArrayLike<number>, C: number, alpha: number, gamma: ArrayLike<number>, beta: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => gamma[i % C] * Math.tanh(alpha * v) + beta[i % C]);
}

const C = 5;
const shape = [2, 3, C];
const gamma = randn(C, 1, 1, 0.3);
const beta = randn(C, 2);

forEachBackend(() => {
  describe('dynamicTanh op', () => {
    it('forward and gradients (x, alpha, gamma, beta) match the float64 reference', () => {
      const xv = randn(30, 10, 0, 2);
      const dyv = randn(30, 11);
      const alpha = 0.7;
      const loss = (x: ArrayLike<number>, a: number, g: ArrayLike<number>, b: ArrayLike<number>) => refDYT(x, C, a, g, b).reduce((s, y, i) => s + y * dyv[i], 0);
      const fd = {
        x: finiteDifference((v) => loss(v, alpha, gamma, beta), Float64Array.from(xv)),
        alpha: finiteDifference((v) => loss(xv, v[0], gamma, beta), Float64Array.from([alpha])),
        gamma: finiteDifference((v) => loss(xv, alpha, v, beta), Float64Array.from(gamma)),
        beta: finiteDifference((v) => loss(xv, alpha, gamma, v), Float64Array.from(beta)),
      };
      tf.tidy(() => {
        const t = [tf.tensor(xv, shape), tf.tensor([alpha]), tf.tensor(gamma), tf.tensor(beta)];
        assertClose(f64(nk.dynamicTanh(t[0], { alpha: t[1], gamma: t[2], beta: t[3] })), refDYT(xv, C, alpha, gamma, beta), { atol: 1e-6, rtol: 1e-5 }, 'y');
        const grads = tf.grads((x: tf.Tensor, a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(nk.dynamicTanh(x, { alpha: a, gamma: g, beta: b }), tf.tensor(dyv, shape))))(t);
        (['x', 'alpha', 'gamma', 'beta'] as const).forEach((k, i) => assertClose(f64(grads[i]), fd[k], { atol: 1e-4, rtol: 1e-3 }, `d${k}`));
        assert.deepEqual(grads[1].shape, [1]);
      });
    });

    it('defaults to alpha 0.5 and accepts a number or a scalar tensor', () => {
      const xv = randn(30, 20);
      const one = new Float64Array(C).fill(1);
      const zero = new Float64Array(C);
      tf.tidy(() => {
        assertClose(f64(nk.dynamicTanh(tf.tensor(xv, shape))), refDYT(xv, C, 0.5, one, zero), { atol: 1e-6 }, 'default alpha');
        assertClose(f64(nk.dynamicTanh(tf.tensor(xv, shape), { alpha: 2 })), refDYT(xv, C, 2, one, zero), { atol: 1e-6 }, 'number alpha');
        assertClose(f64(nk.dynamicTanh(tf.tensor(xv, shape), { alpha: tf.scalar(-1) })), refDYT(xv, C, -1, one, zero), { atol: 1e-6 }, 'scalar alpha');
      });
    });

    it('saturates on huge inputs with finite outputs and gradients (no NaN from tanh)', () => {
      const xv = Float32Array.from([1e30, -1e30, 3e38, -3e38, 0, 1e-30, 40, -40, 1, -1]);
      tf.tidy(() => {
        const x = tf.tensor(xv, [2, 5]);
        const y = f64(nk.dynamicTanh(x, { alpha: 1 }));
        assertClose(y, refDYT(xv, 5, 1, [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]), { atol: 1e-6 }, 'y');
        const [dx, da] = tf.grads((a: tf.Tensor, al: tf.Tensor) => tf.sum(nk.dynamicTanh(a, { alpha: al })))([x, tf.tensor([1])]);
        assert.ok(f64(dx).every(Number.isFinite) && f64(da).every(Number.isFinite), 'finite gradients');
      });
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3]);
      assertThrowsMentioning(() => nk.dynamicTanh(x, { alpha: tf.ones([3]) }), ['dynamicTanh', "'alpha'", '[1]']);
      assertThrowsMentioning(() => nk.dynamicTanh(x, { alpha: Number.NaN }), ["'alpha'"]);
      assertThrowsMentioning(() => nk.dynamicTanh(x, { gamma: tf.ones([2]) }), ["'gamma'", '[3]']);
      assertThrowsMentioning(() => nk.dynamicTanh(x, { beta: tf.ones([3, 1]) }), ["'beta'"]);
      assertThrowsMentioning(() => nk.dynamicTanh(tf.zeros([2, 3], 'int32')), ["'x'", 'float32']);
      assertThrowsMentioning(() => nk.dynamicTanh(x, { epsilon: 1 } as never), ["'epsilon'"]);
      x.dispose();
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(12, 30), [3, 4]);
      const a = tf.tensor([0.5]);
      await assertNoLeak(() => nk.dynamicTanh(x, { alpha: a }).dispose(), 'forward');
      await assertNoLeak(() => tf.dispose(tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(nk.dynamicTanh(p, { alpha: q })))([x, a])), 'gradient');
      tf.dispose([x, a]);
    });
  });

  describe('DynamicTanh layer', () => {
    it('has alpha [1] initialised to alphaInitValue, gamma and beta', () => {
      const layer = new nk.DynamicTanh({ alphaInitValue: 0.8 });
      const x = tf.tensor(randn(30, 40), shape);
      const y = layer.apply(x) as tf.Tensor;
      assert.deepEqual(layer.weights.map((w) => w.originalName.split('/').pop()), ['alpha', 'gamma', 'beta']);
      assertClose(f64(layer.getWeights()[0]), [0.8], { rtol: 1e-6 }, 'alpha');
      assertClose(f64(y), refDYT(x.dataSync(), C, 0.8, new Float64Array(C).fill(1), new Float64Array(C)), { atol: 1e-6 }, 'y');
      tf.dispose([x, y]);
      assert.equal(new nk.DynamicTanh().alphaInitValue, 0.5);
    });

    it('has no epsilon key in its config', () => {
      const layer = new nk.DynamicTanh({ alphaInitValue: 0.2, center: false, gammaInitializer: 'glorotUniform' });
      const config = layer.getConfig();
      assert.ok(!('epsilon' in config));
    });

    it('is what the registry builds for "dyt"', () => {
      for (const name of ['dyt', 'dynamic-tanh', 'DynamicTanh']) assert.ok(nk.createNorm(name) instanceof nk.DynamicTanh);
      assert.equal(nk.listNorms().find((e) => e.name === 'dyt')?.kind, 'normalization-free');
      assertThrowsMentioning(() => new nk.DynamicTanh({ epsilon: 1e-5 } as never), ['DynamicTanh', "'epsilon'"]);
      assertThrowsMentioning(() => new nk.DynamicTanh({ alphaInitValue: Number.POSITIVE_INFINITY }), ["'alphaInitValue'"]);
    });
  });
});

runLayerTest(nk.DynamicTanh, { make: () => new nk.DynamicTanh({ alphaInitValue: 0.2, center: false, gammaInitializer: 'glorotUniform' }), inputShape: [3, 4], trainable: 2, nonTrainable: 0,
  weights: [['alpha', [1]], ['gamma', [4]]], supportsMasking: true });
