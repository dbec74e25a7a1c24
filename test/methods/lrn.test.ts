import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/**
 * The AlexNet formula (Krizhevsky et al. 2012, section 3.3) in float64, channels last:
 * b_i = a_i / (k + alpha * sum_{j = max(0, i - n/2)}^{min(N - 1, i + n/2)} a_j^2)^beta, n/2 rounded down.
 * Caffe (and PyTorch) use alpha / n in place of alpha.
 */
function refLRN(x: ArrayLike<number>, channels: number, p: { n: number; k: number; alpha: number; beta: number; caffe?: boolean }): Float64Array {
  const y = new Float64Array(x.length);
  const half = Math.floor(p.n / 2);
  const a = p.caffe ? p.alpha / p.n : p.alpha;
  for (let base = 0; base < x.length; base += channels) {
    for (let i = 0; i < channels; i++) {
      let sum = 0;
      for (let j = Math.max(0, i - half); j <= Math.min(channels - 1, i + half); j++) sum += x[base + j] ** 2;
      y[base + i] = x[base + i] / (p.k + a * sum) ** p.beta;
    }
  }
  return y;
}

/**
 * PyTorch's LocalResponseNorm (torch/nn/functional.py local_response_norm) in float64, channels last: the
 * squares are zero-padded with floor(n/2) channels before and floor((n-1)/2) after, averaged over n (so
 * alpha / n), then b_c = a_c / (k + alpha * avg)^beta. Written from that definition for even n.
 */
function refTorchLRN(x: ArrayLike<number>, channels: number, p: { n: number; k: number; alpha: number; beta: number }): Float64Array {
  const y = new Float64Array(x.length);
  for (let base = 0; base < x.length; base += channels) {
    const padded = new Float64Array(channels + p.n - 1);
    for (let c = 0; c < channels; c++) padded[c + Math.floor(p.n / 2)] = x[base + c] ** 2;
    for (let c = 0; c < channels; c++) {
      let avg = 0;
      for (let t = 0; t < p.n; t++) avg += padded[c + t];
      avg /= p.n;
      y[base + c] = x[base + c] / (p.k + p.alpha * avg) ** p.beta;
    }
  }
  return y;
}

forEachBackend(() => {
  describe('localResponseNorm op, even window sizes (PyTorch window)', () => {
    for (const c of [
      { shape: [2, 3, 7], n: 2, k: 1, alpha: 0.9, beta: 0.75 },
      { shape: [3, 6], n: 4, k: 2, alpha: 1.5, beta: 0.6 },
      { shape: [2, 2, 2, 5], n: 6, k: 1, alpha: 2, beta: 1.1 },
      { shape: [4, 3], n: 8, k: 0.5, alpha: 1, beta: 0.75 },
    ]) {
      it(`forward and gradient match PyTorch's definition in float64, shape [${c.shape}], size ${c.n}`, () => {
        const channels = c.shape[c.shape.length - 1];
        const xv = randn(size(c.shape), 3 + c.n, 0, 1.5);
        const dyv = randn(size(c.shape), 4 + c.n);
        const opts = { size: c.n, bias: c.k, alpha: c.alpha, beta: c.beta, convention: 'caffe' as const };
        const fd = finiteDifference((v) => refTorchLRN(v, channels, c).reduce((s, y, i) => s + y * dyv[i], 0), Float64Array.from(xv));
        tf.tidy(() => {
          const x = tf.tensor(xv, c.shape);
          assertClose(f64(nk.localResponseNorm(x, opts)), refTorchLRN(xv, channels, c), { atol: 1e-6, rtol: 1e-5 }, 'y');
          const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(nk.localResponseNorm(v, opts), tf.tensor(dyv, c.shape))))(x);
          assertClose(f64(dx), fd, { atol: 1e-5, rtol: 1e-4 }, 'dx');
        });
      });
    }

    it('the layer takes even sizes too, and leaks nothing', async () => {
      const xv = randn(2 * 5, 7);
      const layer = new nk.LocalResponseNormalization({ size: 4, convention: 'caffe', alpha: 1 });
      tf.tidy(() => assertClose(f64(layer.apply(tf.tensor(xv, [2, 5])) as tf.Tensor), refTorchLRN(xv, 5, { n: 4, k: 1, alpha: 1, beta: 0.75 }), { rtol: 1e-5 }, 'y'));
      const x = tf.tensor(xv, [2, 5]);
      await assertNoLeak(() => tf.grad((v: tf.Tensor) => tf.sum(nk.localResponseNorm(v, { size: 2 })))(x).dispose(), 'gradient');
      x.dispose();
    });
  });

  describe('localResponseNorm op', () => {
    const cases: Array<{ shape: number[]; n: number; k: number; alpha: number; beta: number; caffe: boolean }> = [
      { shape: [2, 3, 3, 7], n: 5, k: 2, alpha: 1e-4, beta: 0.75, caffe: false },
      { shape: [2, 3, 3, 7], n: 5, k: 2, alpha: 0.5, beta: 0.75, caffe: false },
      { shape: [4, 6], n: 3, k: 1, alpha: 0.8, beta: 0.5, caffe: true },
      { shape: [3, 2, 2], n: 5, k: 1.5, alpha: 1, beta: 1.2, caffe: false },
      { shape: [9], n: 1, k: 0.5, alpha: 2, beta: 0.75, caffe: true },
    ];
    for (const c of cases) {
      const label = `shape [${c.shape}], n ${c.n}, k ${c.k}, alpha ${c.alpha}, beta ${c.beta}, ${c.caffe ? 'caffe' : 'alexnet'}`;
      it(`forward and gradient match the float64 AlexNet formula, ${label}`, () => {
        const channels = c.shape[c.shape.length - 1];
        const xv = randn(size(c.shape), 1, 0, 1.5);
        const dyv = randn(size(c.shape), 2);
        const p = { n: c.n, k: c.k, alpha: c.alpha, beta: c.beta, caffe: c.caffe };
        const opts = { size: c.n, bias: c.k, alpha: c.alpha, beta: c.beta, convention: c.caffe ? ('caffe' as const) : ('alexnet' as const) };
        const fd = finiteDifference((v) => refLRN(v, channels, p).reduce((s, y, i) => s + y * dyv[i], 0), Float64Array.from(xv));
        tf.tidy(() => {
          const x = tf.tensor(xv, c.shape);
          const y = nk.localResponseNorm(x, opts);
          assert.deepEqual(y.shape, c.shape);
          assertClose(f64(y), refLRN(xv, channels, p), { atol: 1e-6, rtol: 1e-5 }, 'y');
          const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(nk.localResponseNorm(v, opts), tf.tensor(dyv, c.shape))))(x);
          assertClose(f64(dx), fd, { atol: 1e-5, rtol: 1e-4 }, 'dx');
        });
      });
    }

    it('uses the AlexNet defaults (n 5, k 2, alpha 1e-4, beta 0.75) and the Caffe/PyTorch ones (k 1, alpha / n)', () => {
      const xv = randn(2 * 8, 10, 0, 20);
      tf.tidy(() => {
        const x = tf.tensor(xv, [2, 8]);
        assertClose(f64(nk.localResponseNorm(x)), refLRN(xv, 8, { n: 5, k: 2, alpha: 1e-4, beta: 0.75 }), { rtol: 1e-5 }, 'alexnet');
        assertClose(f64(nk.localResponseNorm(x, { convention: 'caffe' })), refLRN(xv, 8, { n: 5, k: 1, alpha: 1e-4, beta: 0.75, caffe: true }), { rtol: 1e-5 }, 'caffe');
      });
    });

    it('holds on magnitudes from 1e-10 to 1e15', () => {
      for (const scale of [1e-10, 1e-3, 1e3, 1e15]) {
        const xv = randn(24, 20).map((v) => v * scale);
        const p = { n: 3, k: 1, alpha: 1, beta: 0.75 };
        tf.tidy(() => assertClose(f64(nk.localResponseNorm(tf.tensor(xv, [4, 6]), { size: 3, bias: 1, alpha: 1 })), refLRN(xv, 6, p), { atol: 1e-30, rtol: 1e-4 }, `scale ${scale}`));
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 4]);
      assertThrowsMentioning(() => nk.localResponseNorm(tf.scalar(1)), ['localResponseNorm', "'x'", 'rank']);
      assertThrowsMentioning(() => nk.localResponseNorm(tf.zeros([2, 4], 'int32')), ["'x'", 'float32']);
      assertThrowsMentioning(() => nk.localResponseNorm(x, { size: 2.5 }), ["'size'", 'integer', '2.5']);
      assertThrowsMentioning(() => nk.localResponseNorm(x, { size: 0 }), ["'size'", '>= 1']);
      assertThrowsMentioning(() => nk.localResponseNorm(x, { alpha: -1 }), ["'alpha'", '>= 0']);
      assertThrowsMentioning(() => nk.localResponseNorm(x, { beta: NaN }), ["'beta'"]);
      assertThrowsMentioning(() => nk.localResponseNorm(x, { bias: 0 }), ["'bias'", '> 0']);
      assertThrowsMentioning(() => nk.localResponseNorm(x, { convention: 'torch' as never }), ["'convention'", '"caffe"']);
      assertThrowsMentioning(() => nk.localResponseNorm(x, { depthRadius: 2 } as never), ["'depthRadius'"]);
      x.dispose();
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(24, 30), [2, 2, 6]);
      await assertNoLeak(() => nk.localResponseNorm(x).dispose(), 'forward');
      await assertNoLeak(() => tf.grad((v: tf.Tensor) => tf.sum(nk.localResponseNorm(v, { alpha: 0.5 })))(x).dispose(), 'gradient');
      x.dispose();
    });
  });

  describe('LocalResponseNormalization layer', () => {
    it('computes the op', () => {
      const layer = new nk.LocalResponseNormalization({ size: 3, alpha: 0.5, convention: 'caffe' });
      assert.equal(layer.bias, 1);
      const xv = randn(2 * 3 * 2 * 4, 40);
      tf.tidy(() => {
        const y = layer.apply(tf.tensor(xv, [2, 3, 2, 4])) as tf.Tensor;
        assertClose(f64(y), refLRN(xv, 4, { n: 3, k: 1, alpha: 0.5, beta: 0.75, caffe: true }), { atol: 1e-6, rtol: 1e-5 }, 'y');
      });
    });

    it('is what the registry builds for "lrn", and rejects bad arguments', () => {
      const layer = nk.createNorm('lrn', { size: 3 });
      assert.ok(layer instanceof nk.LocalResponseNormalization);
      assert.equal(layer.size, 3);
      assert.equal(layer.bias, 2);
      assertThrowsMentioning(() => new nk.LocalResponseNormalization({ size: 0 }), ['LocalResponseNormalization', "'size'"]);
      assertThrowsMentioning(() => new nk.LocalResponseNormalization({ depthRadius: 2 } as never), ['LocalResponseNormalization', "'depthRadius'"]);
    });
  });
});

runLayerTest(nk.LocalResponseNormalization, { make: () => new nk.LocalResponseNormalization({ size: 3, alpha: 0.1, bias: 1.5 }), inputShape: [3, 3, 4], trainable: 0, nonTrainable: 0, supportsMasking: false });
runLayerTest(nk.LocalResponseNormalization, { label: 'caffe convention', make: () => new nk.LocalResponseNormalization({ size: 7, alpha: 2e-4, beta: 0.5, bias: 1.5, convention: 'caffe' }),
  inputShape: [3, 3, 4], trainable: 0, nonTrainable: 0, supportsMasking: false });
