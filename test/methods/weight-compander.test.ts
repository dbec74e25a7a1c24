import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { assertKernelAndOutput, assertWrapperFitsDense, KERNEL_CASES, kernelOf } from '../helpers/kernel-wrappers.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Float64 compander: sign(w) c ln(1 + mu |w| / c) / ln(1 + mu). */
const refF = (w: number, mu: number, c: number) => (Math.sign(w) * c * Math.log(1 + (mu * Math.abs(w)) / c)) / Math.log(1 + mu);

function scalarWeight(layer: nk.WeightCompander, name: string): tf.Variable {
  const w = layer.weights.find((x) => x.originalName.endsWith(`/${name}`));
  assert.ok(w, `a weight named ${name}`);
  return w.read() as tf.Variable;
}

forEachBackend(() => {
  describe('WeightCompander', () => {
    it('compand is odd, monotone, fixes +-c, expands below c and compresses above (float64 reference)', () => {
      const mu = 4;
      const c = 0.3;
      const ws = [-30, -3, -0.6, -0.31, -0.3, -0.1, -1e-3, -1e-7, 0, 1e-7, 1e-3, 0.1, 0.3, 0.31, 0.6, 3, 30];
      const yT = nk.compand(tf.tensor(ws), mu, c);
      const y = f64(yT);
      yT.dispose();
      assertClose(y, ws.map((w) => refF(w, mu, c)), { rtol: 1e-5, atol: 1e-12 }, 'f(w)');
      for (let i = 1; i < ws.length; i++) assert.ok(y[i] >= y[i - 1], 'monotone');
      ws.forEach((w, i) => assertClose([y[ws.length - 1 - i]], [-y[i]], { atol: 1e-7, rtol: 1e-6 }, `odd at ${w}`));
      assert.equal(y[ws.indexOf(0)], 0);
      assertClose([y[ws.indexOf(0.3)]], [0.3], { rtol: 1e-6 }, 'f(c) = c');
      ws.forEach((w, i) => {
        if (Math.abs(w) > 0 && Math.abs(w) < c) assert.ok(Math.abs(y[i]) > Math.abs(w), `expands ${w}`);
        if (Math.abs(w) > c) assert.ok(Math.abs(y[i]) < Math.abs(w), `compresses ${w}`);
      });
      // Slope at 0 is mu / ln(1 + mu), also exactly at w = 0 (dead weights still get a gradient).
      const slopeT = tf.tidy(() => tf.grad((w: tf.Tensor) => tf.sum(nk.compand(w, mu, c)))(tf.tensor([0, 1e-6, -1e-6])));
      const slope = f64(slopeT);
      slopeT.dispose();
      assertClose(slope, [1, 1, 1].map(() => mu / Math.log(1 + mu)), { rtol: 1e-4 }, "f'(0)");
    });

    for (const c of KERNEL_CASES.filter((k) => ['Dense', 'Conv2D', 'DepthwiseConv2D', 'Conv2DTranspose'].includes(k.name))) {
      it(`${c.name}: companded kernel and output match float64; crossover defaults to the kernel RMS`, () => {
        const layer = new nk.WeightCompander({ layer: c.make(), mu: 6 });
        const x = tf.tensor(randn(2 * size(c.inputShape), 1), [2, ...c.inputShape]);
        tf.dispose(layer.apply(x) as tf.Tensor);
        const w = f64(kernelOf(layer.layer).read());
        const rms = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
        assertClose(f64(scalarWeight(layer, 'crossover')), [rms], { rtol: 1e-5 }, 'crossover');
        const expected = w.map((v) => refF(v, 6, rms));
        assertKernelAndOutput(layer, x, expected, { kernel: { atol: 1e-7, rtol: 1e-5 }, output: { atol: 1e-5, rtol: 1e-4 } });
        x.dispose();
        layer.dispose();
      });
    }

    it('Dense, learnable: gradients w.r.t. the kernel (a zero weight included), mu and c match finite differences', () => {
      const layer = new nk.WeightCompander({ layer: tfl.layers.dense({ units: 3, useBias: false }), mu: 3, crossover: 0.4, learnable: true });
      const xv = randn(8, 3);
      const dyv = randn(6, 4);
      const x = tf.tensor(xv, [2, 4]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      const w = randn(12, 5);
      w[4] = 0;
      tf.tidy(() => kernelOf(layer.layer).write(tf.tensor(w, [4, 3])));
      const loss = (k: ArrayLike<number>, mu: number, c: number) => {
        let s = 0;
        for (let b = 0; b < 2; b++) for (let o = 0; o < 3; o++) {
          let y = 0;
          for (let i = 0; i < 4; i++) y += xv[b * 4 + i] * refF(k[i * 3 + o], mu, c);
          s += dyv[b * 3 + o] * y;
        }
        return s;
      };
      const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, tf.tensor(dyv, [2, 3]))) as tf.Scalar);
      const find = (suffix: string) => grads[Object.keys(grads).find((n) => n.endsWith(suffix)) as string];
      const dw = f64(find('kernel'));
      const fdW = finiteDifference((p) => loss(p, 3, 0.4), Float64Array.from(w));
      // The compander is smooth at 0, so the central difference there is its true slope.
      assertClose(dw, fdW, { atol: 1e-4, rtol: 1e-3 }, 'dL/dW');
      assert.ok(Math.abs(dw[4]) > 1e-3, 'the zero weight gets a gradient');
      assertClose(f64(find('/mu')), finiteDifference((p) => loss(w, p[0], 0.4), Float64Array.from([3])), { atol: 1e-4, rtol: 1e-3 }, 'dL/dmu');
      assertClose(f64(find('/crossover')), finiteDifference((p) => loss(w, 3, p[0]), Float64Array.from([0.4])), { atol: 1e-4, rtol: 1e-3 }, 'dL/dc');
      tf.dispose([x, value, ...Object.values(grads)]);
      layer.dispose();
    });

    it('fixed by default: mu and c are not trainable', () => {
      const layer = new nk.WeightCompander({ layer: tfl.layers.dense({ units: 2 }) });
      tf.dispose(layer.apply(tf.zeros([1, 3])) as tf.Tensor);
      assert.deepEqual(layer.trainableWeights.map((w) => w.originalName.split('/').pop()), ['kernel', 'bias']);
      layer.dispose();
    });

    it('trains without leaking, and its calls leak nothing', async () => {
      await assertWrapperFitsDense((inner) => new nk.WeightCompander({ layer: inner, learnable: true }));
      const l2 = new nk.WeightCompander({ layer: tfl.layers.dense({ units: 3 }) });
      const xx = tf.ones([2, 4]);
      tf.dispose(l2.apply(xx) as tf.Tensor);
      await assertNoLeak(() => (l2.apply(xx) as tf.Tensor).dispose(), 'call');
      await assertNoLeak(() => l2.effectiveKernel().dispose(), 'effectiveKernel');
      xx.dispose();
      l2.dispose();
    });

    it('rejects bad arguments and is in the registry', () => {
      assertThrowsMentioning(() => new nk.WeightCompander({ layer: tfl.layers.dense({ units: 2 }), mu: 0 }), ['WeightCompander', "'mu'", '(0, 1000000]']);
      // Larger mu would overflow float32 (mu / ln(1 + mu), mu |w| / c) into Inf/NaN kernels.
      assertThrowsMentioning(() => new nk.WeightCompander({ layer: tfl.layers.dense({ units: 2 }), mu: 1e308 }), ['WeightCompander', "'mu'", '1e+308']);
      assertThrowsMentioning(() => new nk.WeightCompander({ layer: tfl.layers.dense({ units: 2 }), crossover: 1e308 }), ["'crossover'"]);
      assertThrowsMentioning(() => new nk.WeightCompander({ layer: tfl.layers.dense({ units: 2 }), crossover: -1 }), ["'crossover'"]);
      assertThrowsMentioning(() => new nk.WeightCompander({ layer: tfl.layers.dense({ units: 2 }), learnable: 'no' as never }), ["'learnable'"]);
      assertThrowsMentioning(() => new nk.WeightCompander({ layer: tfl.layers.flatten() }), ["'layer'", 'Flatten']);
      assert.ok(nk.createNorm('wc', { layer: tfl.layers.dense({ units: 2 }) }) instanceof nk.WeightCompander);
      assert.equal(nk.listNorms().find((e) => e.name === 'weight-compander')?.kind, 'weight');
    });
  });
});

runLayerTest(nk.WeightCompander, { make: () => new nk.WeightCompander({ layer: tfl.layers.dense({ units: 3 }) }), inputShape: [4], trainable: 2, nonTrainable: 2,
  weights: [['kernel', [4, 3]], ['bias', [3]], ['mu', []], ['crossover', []]],
  // mu and the crossover are fixed unless `learnable`.
  state: [], supportsMasking: false });
runLayerTest(nk.WeightCompander, { label: 'Conv2D, learnable', make: () => new nk.WeightCompander({ layer: KERNEL_CASES[2].make(), mu: 2, crossover: 0.2, learnable: true }), inputShape: KERNEL_CASES[2].inputShape,
  trainable: 4, nonTrainable: 0, supportsMasking: false });
