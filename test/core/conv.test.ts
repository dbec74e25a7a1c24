import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { conv2dSame, conv2dSameComposite } from '../../src/core/conv.js';
import { forEachBackend } from '../helpers/backends.js';
import { conv2dSame as refConv2dSame } from '../helpers/conv-reference.js';
import { assertClose, assertNoLeak, f64, finiteDifference, randn } from '../helpers/numeric.js';

forEachBackend(() => {
  describe('conv2dSame (trainable on every backend)', () => {
    const [n, h, w, ci, co] = [2, 4, 5, 3, 2];
    for (const k of [1, 3, 5]) {
      it(`both paths match a float64 convolution and its finite-difference gradients, k = ${k}`, () => {
        const xv = randn(n * h * w * ci, 1);
        const kv = randn(k * k * ci * co, 2);
        const dyv = randn(n * h * w * co, 3);
        const expected = refConv2dSame(xv, n, h, w, ci, kv, k, co);
        const loss = (xx: ArrayLike<number>, kk: ArrayLike<number>) => refConv2dSame(xx, n, h, w, ci, kk, k, co).reduce((s, v, i) => s + v * dyv[i], 0);
        const fdX = finiteDifference((v) => loss(v, kv), Float64Array.from(xv));
        const fdK = finiteDifference((v) => loss(xv, v), Float64Array.from(kv));
        for (const [name, conv] of [['dispatch', conv2dSame], ['composite', conv2dSameComposite]] as const) {
          tf.tidy(() => {
            const x = tf.tensor4d(xv, [n, h, w, ci]);
            const kernel = tf.tensor4d(kv, [k, k, ci, co]);
            assertClose(f64(conv(x, kernel)), expected, { atol: 1e-5, rtol: 1e-5 }, `${name} y`);
            const dy = tf.tensor(dyv, [n, h, w, co]);
            const [dx, dk] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D), dy)))([x, kernel]);
            assertClose(f64(dx), fdX, { atol: 1e-4, rtol: 1e-4 }, `${name} dx`);
            assertClose(f64(dk), fdK, { atol: 1e-4, rtol: 1e-4 }, `${name} dkernel`);
          });
        }
      });
    }

    it('leaks no tensors', async () => {
      const x = tf.tensor4d(randn(n * h * w * ci, 4), [n, h, w, ci]);
      const kernel = tf.tensor4d(randn(9 * ci * co, 5), [3, 3, ci, co]);
      await assertNoLeak(() => tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(conv2dSameComposite(a as tf.Tensor4D, b as tf.Tensor4D)))([x, kernel])), 'composite gradient');
      tf.dispose([x, kernel]);
    });
  });
});
