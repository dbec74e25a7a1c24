import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { slices } from '../helpers/reference.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

interface P { gamma: ArrayLike<number>; beta: ArrayLike<number>; tau?: ArrayLike<number>; epsL?: ArrayLike<number> }

/** Float64 FRN + TLU from the page/paper: max(gamma * x / sqrt(mean_spatial(x^2) + eps + |epsL|) + beta, tau). */
function refFRN(x: ArrayLike<number>, shape: number[], eps: number, p: P): Float64Array {
  const C = shape[shape.length - 1];
  const spatial = shape.slice(1, -1).map((_, i) => i + 1);
  const y = new Float64Array(x.length);
  for (const idx of slices(shape, spatial)) {
    const nu2 = idx.reduce((s, i) => s + x[i] ** 2, 0) / idx.length;
    for (const i of idx) {
      const c = i % C;
      const e = eps + (p.epsL ? Math.abs(p.epsL[p.epsL.length === 1 ? 0 : c]) : 0);
      const v = (p.gamma[c] * x[i]) / Math.sqrt(nu2 + e) + p.beta[c];
      y[i] = p.tau ? Math.max(v, p.tau[c]) : v;
    }
  }
  return y;
}

const C = 3;
const params: P = { gamma: randn(C, 1, 1, 0.3), beta: randn(C, 2, 0, 0.5), tau: randn(C, 3, 0, 0.3) };

forEachBackend(() => {
  describe('filterResponseNorm op', () => {
    for (const shape of [[2, 3, 2, C], [2, 4, C], [4, C]]) {
      it(`forward and gradients (x, gamma, beta, tau, epsilonL) match the float64 reference, shape [${shape}]`, () => {
        const size = shape.reduce((a, b) => a * b, 1);
        const xv = randn(size, 10 + shape.length, 0.1, 1.2);
        const dyv = randn(size, 20);
        const p: P = { ...params, epsL: [0.02] };
        const eps = 1e-3;
        const loss = (x: ArrayLike<number>, q: P) => refFRN(x, shape, eps, q).reduce((s, y, i) => s + y * dyv[i], 0);
        const fd = {
          x: finiteDifference((a) => loss(a, p), Float64Array.from(xv)),
          gamma: finiteDifference((a) => loss(xv, { ...p, gamma: a }), Float64Array.from(p.gamma)),
          beta: finiteDifference((a) => loss(xv, { ...p, beta: a }), Float64Array.from(p.beta)),
          tau: finiteDifference((a) => loss(xv, { ...p, tau: a }), Float64Array.from(p.tau as ArrayLike<number>)),
          epsL: finiteDifference((a) => loss(xv, { ...p, epsL: a }), Float64Array.from([0.02])),
        };
        tf.tidy(() => {
          const t = [tf.tensor(xv, shape), tf.tensor(p.gamma), tf.tensor(p.beta), tf.tensor(p.tau as Float32Array), tf.tensor([0.02])];
          const f = (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, tau: tf.Tensor, epsilonL: tf.Tensor) => nk.filterResponseNorm(x, { epsilon: eps, gamma, beta, tau, epsilonL });
          assertClose(f64(f(t[0], t[1], t[2], t[3], t[4])), refFRN(xv, shape, eps, p), { atol: 1e-5, rtol: 1e-4 }, 'y');
          const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor, e: tf.Tensor) => tf.sum(tf.mul(f(a, b, c, d, e), tf.tensor(dyv, shape))))(t);
          (['x', 'gamma', 'beta', 'tau', 'epsL'] as const).forEach((k, i) => assertClose(f64(grads[i]), fd[k], { atol: 2e-4, rtol: 2e-3 }, `d${k}`));
        });
      });
    }

    it('without tau is plain FRN; per-channel epsilonL; default eps 1e-6', () => {
      const shape = [2, 5, C];
      const xv = randn(30, 30);
      tf.tidy(() => {
        assertClose(f64(nk.filterResponseNorm(tf.tensor(xv, shape))), refFRN(xv, shape, 1e-6, { gamma: [1, 1, 1], beta: [0, 0, 0] }), { atol: 1e-5, rtol: 1e-4 }, 'plain');
        const epsL = [0.1, -0.2, 0.3];
        const y = nk.filterResponseNorm(tf.tensor(xv, shape), { epsilonL: tf.tensor(epsL) });
        assertClose(f64(y), refFRN(xv, shape, 1e-6, { gamma: [1, 1, 1], beta: [0, 0, 0], epsL }), { atol: 1e-5, rtol: 1e-4 }, 'per-channel epsL');
      });
    });

    it('holds on magnitudes from 1e-3 to 1e15 (forward and gradient finite)', () => {
      const shape = [2, 8, C];
      for (const scale of [1e-3, 1, 1e6, 1e15]) {
        const xv = randn(48, 40).map((v) => v * scale);
        tf.tidy(() => {
          assertClose(f64(nk.filterResponseNorm(tf.tensor(xv, shape))), refFRN(xv, shape, 1e-6, { gamma: [1, 1, 1], beta: [0, 0, 0] }), { atol: 1e-5, rtol: 1e-4 }, `y at ${scale}`);
          const dx = f64(tf.grad((a: tf.Tensor) => tf.sum(tf.square(nk.filterResponseNorm(a))))(tf.tensor(xv, shape)));
          assert.ok(dx.every(Number.isFinite), `finite gradient at ${scale}`);
        });
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3, 4]);
      assertThrowsMentioning(() => nk.filterResponseNorm(x, { tau: tf.ones([3]) }), ['filterResponseNorm', "'tau'", '[4]']);
      assertThrowsMentioning(() => nk.filterResponseNorm(x, { gamma: tf.ones([4, 1]) }), ["'gamma'"]);
      assertThrowsMentioning(() => nk.filterResponseNorm(x, { epsilonL: tf.ones([2]) }), ["'epsilonL'", '[1] or [4]']);
      assertThrowsMentioning(() => nk.filterResponseNorm(x, { epsilon: 0 }), ["'epsilon'"]);
      assertThrowsMentioning(() => nk.filterResponseNorm(tf.zeros([4])), ["'x'", 'rank']);
      assertThrowsMentioning(() => nk.filterResponseNorm(x, { eps: 1 } as never), ["'eps'"]);
      x.dispose();
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(24, 50), [2, 3, 4]);
      const tau = tf.zeros([4]);
      await assertNoLeak(() => nk.filterResponseNorm(x, { tau }).dispose(), 'forward');
      await assertNoLeak(() => tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(nk.filterResponseNorm(a, { tau: b })))([x, tau])), 'gradient');
      tf.dispose([x, tau]);
    });
  });

  describe('FilterResponseNormalization layer', () => {
    it('has gamma, beta, tau (and epsilon_l when learned) and matches the op', () => {
      const layer = new nk.FilterResponseNormalization({ learnedEpsilon: true });
      const x = tf.tensor(randn(24, 60), [2, 3, 4]);
      const y = layer.apply(x) as tf.Tensor;
      assert.deepEqual(layer.weights.map((w) => w.originalName.split('/').pop()), ['gamma', 'beta', 'tau', 'epsilon_l']);
      assertClose(f64(layer.getWeights()[3]), [1e-4], { rtol: 1e-6 }, 'epsilon_l init');
      assertClose(f64(y), refFRN(x.dataSync(), [2, 3, 4], 1e-6, { gamma: [1, 1, 1, 1], beta: [0, 0, 0, 0], tau: [0, 0, 0, 0], epsL: [1e-4] }), { atol: 1e-5, rtol: 1e-4 }, 'y');
      tf.dispose([x, y]);
    });

    it('is what the registry builds for "frn"', () => {
      for (const name of ['frn', 'frn-tlu', 'FilterResponseNormalization']) assert.ok(nk.createNorm(name) instanceof nk.FilterResponseNormalization);
      assertThrowsMentioning(() => new nk.FilterResponseNormalization({ tlu: 'yes' } as never), ['FilterResponseNormalization', "'tlu'"]);
    });
  });
});

runLayerTest(nk.FilterResponseNormalization, { make: () => new nk.FilterResponseNormalization(), inputShape: [3, 3, 4], trainable: 3, nonTrainable: 0,
  weights: [['gamma', [4]], ['beta', [4]], ['tau', [4]]], supportsMasking: true });
runLayerTest(nk.FilterResponseNormalization, { label: 'learned epsilon', make: () => new nk.FilterResponseNormalization({ learnedEpsilon: true, tauInitializer: 'ones', epsilon: 1e-5 }),
  inputShape: [3, 3, 4], trainable: 4, nonTrainable: 0, weights: [['gamma', [4]], ['beta', [4]], ['tau', [4]], ['epsilon_l', [1]]], supportsMasking: true });
runLayerTest(nk.FilterResponseNormalization, { label: 'no TLU', make: () => new nk.FilterResponseNormalization({ tlu: false }), inputShape: [3, 3, 4], trainable: 2, nonTrainable: 0,
  weights: [['gamma', [4]], ['beta', [4]]], supportsMasking: true });
