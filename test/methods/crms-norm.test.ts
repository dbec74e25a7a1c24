import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { refNormalize } from '../helpers/reference.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

/** Float64 CRMSNorm from the page: xc * rsqrt((sum(xc^2) + sum(xc)^2) / d + eps), d = k + 1, per row of k. */
function refCRMS(xc: ArrayLike<number>, k: number, eps: number, gamma?: ArrayLike<number>, beta?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(xc.length);
  for (let r = 0; r < xc.length / k; r++) {
    let sq = 0;
    let s = 0;
    for (let j = 0; j < k; j++) {
      sq += xc[r * k + j] ** 2;
      s += xc[r * k + j];
    }
    const inv = 1 / Math.sqrt((sq + s * s) / (k + 1) + eps);
    for (let j = 0; j < k; j++) out[r * k + j] = xc[r * k + j] * inv * (gamma ? gamma[j] : 1) + (beta ? beta[j] : 0);
  }
  return out;
}

/** Zero-mean rows of d (float64): random rows minus their mean. */
function zeroMeanRows(rows: number, d: number, seed: number, scale = 1): Float64Array {
  const v = Float64Array.from(randn(rows * d, seed), (a) => a * scale);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let j = 0; j < d; j++) m += v[r * d + j];
    m /= d;
    for (let j = 0; j < d; j++) v[r * d + j] -= m;
  }
  return v;
}
const dropLast = (v: ArrayLike<number>, d: number) => Float64Array.from({ length: (v.length / d) * (d - 1) }, (_, i) => v[Math.floor(i / (d - 1)) * d + (i % (d - 1))]);

describe('crmsNorm float64 reference', () => {
  it('equals the first d-1 outputs of RMSNorm and of LayerNorm on zero-mean vectors (the paper\'s claim)', () => {
    const d = 7;
    const x = zeroMeanRows(5, d, 1);
    const rms = refNormalize(x, [5, d], [1], 1e-5, { center: false }).y;
    const ln = refNormalize(x, [5, d], [1], 1e-5).y;
    const crms = refCRMS(dropLast(x, d), d - 1, 1e-5);
    assertClose(crms, dropLast(rms, d), { atol: 1e-14 }, 'CRMS vs RMS');
    assertClose(crms, dropLast(ln, d), { atol: 1e-12 }, 'CRMS vs LN');
  });
});

forEachBackend(() => {
  describe('crmsNorm op', () => {
    it('forward matches the float64 reference, with and without gamma/beta, rank 2 and 3', () => {
      for (const shape of [[4, 6], [2, 3, 5], [3, 1]]) {
        const k = shape[shape.length - 1];
        const n = shape.reduce((a, b) => a * b, 1);
        const xv = randn(n, 10 + k);
        const gv = randn(k, 11, 1, 0.3);
        const bv = randn(k, 12);
        tf.tidy(() => {
          assertClose(f64(nk.crmsNorm(tf.tensor(xv, shape))), refCRMS(xv, k, 1e-5), { atol: 2e-6, rtol: 2e-5 }, `y [${shape}]`);
          const y = nk.crmsNorm(tf.tensor(xv, shape), { gamma: tf.tensor(gv), beta: tf.tensor(bv), epsilon: 1e-3 });
          assertClose(f64(y), refCRMS(xv, k, 1e-3, gv, bv), { atol: 2e-6, rtol: 2e-5 }, `affine y [${shape}]`);
        });
      }
    });

    it('gradients match finite differences of the float64 reference', () => {
      const shape = [3, 5];
      const xv = randn(15, 20);
      const gv = randn(5, 21, 1, 0.3);
      const dyv = randn(15, 22);
      const loss = (v: Float64Array, g: ArrayLike<number>) => refCRMS(v, 5, 1e-5, g).reduce((s, y, i) => s + y * dyv[i], 0);
      const fdx = finiteDifference((v) => loss(v, gv), Float64Array.from(xv));
      const fdg = finiteDifference((g) => loss(Float64Array.from(xv), g), Float64Array.from(gv));
      tf.tidy(() => {
        const [dx, dg] = tf.grads((a: tf.Tensor, g: tf.Tensor) => tf.sum(tf.mul(nk.crmsNorm(a, { gamma: g }), tf.tensor(dyv, shape))))([tf.tensor(xv, shape), tf.tensor(gv)]);
        assertClose(f64(dx), fdx, { atol: 1e-4, rtol: 1e-3 }, 'dx');
        assertClose(f64(dg), fdg, { atol: 1e-4, rtol: 1e-3 }, 'dgamma');
      });
    });

    it('on zero-mean inputs equals layerNorm on the first d-1 outputs; compress/decompress round-trip', () => {
      const d = 16;
      const x = zeroMeanRows(4, d, 30);
      tf.tidy(() => {
        const full = tf.tensor(Float32Array.from(x), [4, d]);
        const xc = nk.compressZeroMean(full);
        assert.deepEqual(xc.shape, [4, d - 1]);
        assertClose(f64(nk.decompressZeroMean(xc)), x, { atol: 1e-5 }, 'decompress(compress(x))');
        const ln = tf.slice(nk.layerNorm(full), [0, 0], [4, d - 1]);
        assertClose(f64(nk.crmsNorm(xc)), f64(ln), { atol: 1e-5, rtol: 1e-5 }, 'CRMS vs layerNorm');
      });
    });

    it('holds on magnitudes from 1e-20 to 1e15 and on a large common offset of the stored coordinates', () => {
      for (const [scale, offset] of [[1e-20, 0], [1e-3, 0], [1, 0], [1e6, 0], [1e15, 0], [1e-2, 1e4]]) {
        const xv = randn(32, 40).map((v) => offset + v * scale);
        tf.tidy(() => assertClose(f64(nk.crmsNorm(tf.tensor(xv, [4, 8]))), refCRMS(xv, 8, 1e-5), { atol: 1e-25, rtol: 1e-4 }, `y at ${scale}, offset ${offset}`));
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3]);
      assertThrowsMentioning(() => nk.crmsNorm(x, { gamma: tf.ones([4]) }), ['crmsNorm', "'gamma'", '[3]', '[4]']);
      assertThrowsMentioning(() => nk.crmsNorm(x, { beta: tf.ones([2]) }), ["'beta'", '[3]']);
      assertThrowsMentioning(() => nk.crmsNorm(x, { epsilon: -1 }), ["'epsilon'"]);
      assertThrowsMentioning(() => nk.crmsNorm(x, { axis: 0 } as never), ["'axis'"]);
      assertThrowsMentioning(() => nk.crmsNorm(tf.scalar(1)), ["'xc'", 'rank']);
      assertThrowsMentioning(() => nk.crmsNorm(tf.zeros([2, 0])), ["'xc'", 'length >= 1']);
      assertThrowsMentioning(() => nk.crmsNorm(tf.zeros([2, 3], 'int32')), ["'xc'", 'float32']);
      assertThrowsMentioning(() => nk.compressZeroMean(tf.zeros([2, 1])), ["'x'", 'length >= 2']);
      x.dispose();
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(12, 50), [3, 4]);
      const g = tf.ones([4]);
      await assertNoLeak(() => nk.crmsNorm(x, { gamma: g }).dispose(), 'forward');
      await assertNoLeak(() => tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(nk.crmsNorm(a, { gamma: b })))([x, g])), 'gradient');
      tf.dispose([x, g]);
    });
  });

  describe('CRMSNormalization layer', () => {
    it('has no affine by default and matches the op', () => {
      const layer = new nk.CRMSNormalization();
      const x = tf.tensor(randn(12, 60), [3, 4]);
      const y = layer.apply(x) as tf.Tensor;
      assert.equal(layer.weights.length, 0);
      assertClose(f64(y), refCRMS(x.dataSync(), 4, 1e-5), { atol: 1e-6, rtol: 1e-5 }, 'y');
      tf.dispose([x, y]);
    });

    it('is what the registry builds for "crms"', () => {
      for (const name of ['crms', 'crmsnorm', 'CRMSNormalization']) assert.ok(nk.createNorm(name) instanceof nk.CRMSNormalization);
      assertThrowsMentioning(() => new nk.CRMSNormalization({ epsilon: 0 }), ['CRMSNormalization', "'epsilon'"]);
    });
  });
});

runLayerTest(nk.CRMSNormalization, { make: () => new nk.CRMSNormalization(), inputShape: [3, 4], trainable: 0, nonTrainable: 0, supportsMasking: true });
runLayerTest(nk.CRMSNormalization, { label: 'affine', make: () => new nk.CRMSNormalization({ scale: true, center: true, epsilon: 1e-6, gammaInitializer: 'glorotUniform' }), inputShape: [3, 4],
  trainable: 2, nonTrainable: 0, weights: [['gamma', [4]], ['beta', [4]]], supportsMasking: true });
