import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
// The library import registers the wasm kernels tfjs-backend-wasm 4.22 lacks (Conv2DBackpropFilter among them).
import '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { conv2dSame as refConv2dSame } from '../helpers/conv-reference.js';
import { assertClose, assertNoLeak, f64, finiteDifference, randn } from '../helpers/numeric.js';

/** The convolution RN-L uses: stride-1 'same' tf.conv2d. */
const conv = (x: tf.Tensor4D, kernel: tf.Tensor4D) => tf.conv2d(x, kernel, 1, 'same');

forEachBackend(() => {
  describe("tf.conv2d 'same' (trainable on every backend)", () => {
    const [n, h, w, ci, co] = [2, 4, 5, 3, 2];
    for (const k of [1, 3, 5]) {
      it(`matches a float64 convolution and its finite-difference gradients, k = ${k}`, () => {
        const xv = randn(n * h * w * ci, 1);
        const kv = randn(k * k * ci * co, 2);
        const dyv = randn(n * h * w * co, 3);
        const expected = refConv2dSame(xv, n, h, w, ci, kv, k, co);
        const loss = (xx: ArrayLike<number>, kk: ArrayLike<number>) => refConv2dSame(xx, n, h, w, ci, kk, k, co).reduce((s, v, i) => s + v * dyv[i], 0);
        const fdX = finiteDifference((v) => loss(v, kv), Float64Array.from(xv));
        const fdK = finiteDifference((v) => loss(xv, v), Float64Array.from(kv));
        tf.tidy(() => {
          const x = tf.tensor4d(xv, [n, h, w, ci]);
          const kernel = tf.tensor4d(kv, [k, k, ci, co]);
          assertClose(f64(conv(x, kernel)), expected, { atol: 1e-5, rtol: 1e-5 }, 'y');
          const dy = tf.tensor(dyv, [n, h, w, co]);
          const [dx, dk] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D), dy)))([x, kernel]);
          assertClose(f64(dx), fdX, { atol: 1e-4, rtol: 1e-4 }, 'dx');
          assertClose(f64(dk), fdK, { atol: 1e-4, rtol: 1e-4 }, 'dkernel');
        });
      });
    }

    it('leaks no tensors', async () => {
      const x = tf.tensor4d(randn(n * h * w * ci, 4), [n, h, w, ci]);
      const kernel = tf.tensor4d(randn(9 * ci * co, 5), [3, 3, ci, co]);
      await assertNoLeak(() => tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(conv(a as tf.Tensor4D, b as tf.Tensor4D)))([x, kernel])), 'gradient');
      tf.dispose([x, kernel]);
    });
  });
});
