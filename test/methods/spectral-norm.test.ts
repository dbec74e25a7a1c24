import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { assertKernelAndOutput, assertWrapperFitsDense, KERNEL_CASES, kernelOf, unitGroups } from '../helpers/kernel-wrappers.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** W_mat[unit][k] = weight k (in flat order) of unit `unit`: PyTorch's weight.reshape(out, -1) up to column order. */
function unitMatrix(w: ArrayLike<number>, groups: number[][]): number[][] {
  return groups.map((idx) => idx.map((i) => w[i]));
}

/** Largest singular value of a float64 matrix by power iteration on A^T A to convergence. */
function refSigma(a: number[][]): number {
  const n = a[0].length;
  let x = Array.from({ length: n }, (_, i) => 1 + 0.1 * i);
  let sigma = 0;
  for (let it = 0; it < 5000; it++) {
    const ax = a.map((row) => row.reduce((s, v, j) => s + v * x[j], 0));
    const atax = x.map((_, j) => a.reduce((s, row, r) => s + row[j] * ax[r], 0));
    const norm = Math.sqrt(atax.reduce((s, v) => s + v * v, 0));
    x = atax.map((v) => v / norm);
    const next = Math.sqrt(norm);
    if (Math.abs(next - sigma) < 1e-15 * next) break;
    sigma = next;
  }
  return sigma;
}

function stateOf(layer: nk.SpectralNormalization, name: 'u' | 'v'): tf.Tensor {
  const w = layer.nonTrainableWeights.find((x) => x.originalName.endsWith(`/${name}`));
  assert.ok(w, `a non-trainable weight named ${name}`);
  return w.read();
}

forEachBackend(() => {
  describe('SpectralNormalization', () => {
    for (const c of KERNEL_CASES) {
      it(`${c.name}: sigma, kernel and output match a float64 power-iteration reference`, () => {
        const layer = new nk.SpectralNormalization({ layer: c.make(), powerIterations: 20 });
        const x = tf.tensor(randn(2 * size(c.inputShape), 1), [2, ...c.inputShape]);
        tf.dispose(layer.apply(x) as tf.Tensor);
        const groups = unitGroups(c.kernelShape, c.unitAxes);
        const w = f64(kernelOf(layer.layer).read());
        const sigma = refSigma(unitMatrix(w, groups));
        assert.equal(f64(stateOf(layer, 'u')).length, groups.length, 'u has one entry per output unit');
        assert.equal(f64(stateOf(layer, 'v')).length, w.length / groups.length, 'v has one entry per fan-in weight');
        for (let i = 0; i < 5; i++) tf.dispose(layer.apply(x, { training: true }) as tf.Tensor);
        assertClose([layer.sigma()], [sigma], { rtol: 1e-4 }, 'sigma');
        const expected = w.map((v) => v / sigma);
        assertKernelAndOutput(layer, x, expected, { kernel: { atol: 1e-6, rtol: 2e-4 }, output: { atol: 1e-5, rtol: 2e-4 } }, 'W / sigma');
        x.dispose();
        layer.dispose();
      });
    }

    it('updates u and v only in training calls, converging to the top singular value', () => {
      const layer = new nk.SpectralNormalization({ layer: tfl.layers.dense({ units: 6 }) });
      const x = tf.tensor(randn(16, 2), [2, 8]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      const sigma = refSigma(unitMatrix(f64(kernelOf(layer.layer).read()), unitGroups([8, 6], [1])));
      const u0 = f64(stateOf(layer, 'u'));
      tf.dispose(layer.apply(x) as tf.Tensor);
      assert.deepEqual(f64(stateOf(layer, 'u')), u0, 'inference leaves u alone');
      for (let i = 0; i < 200; i++) tf.dispose(layer.apply(x, { training: true }) as tf.Tensor);
      assertClose([layer.sigma()], [sigma], { rtol: 1e-4 }, 'sigma after 200 one-step updates');
      const u = f64(stateOf(layer, 'u'));
      assertClose([Math.sqrt(u.reduce((s, v) => s + v * v, 0))], [1], { rtol: 1e-5 }, '||u||');
      x.dispose();
      layer.dispose();
    });

    it('holds on kernels from 1e-20 to 1e15 (the power iteration is scale-free)', () => {
      const layer = new nk.SpectralNormalization({ layer: tfl.layers.dense({ units: 3, useBias: false }) });
      const x = tf.tensor(randn(8, 30), [2, 4]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      const groups = unitGroups([4, 3], [1]);
      const base = randn(12, 31);
      for (const scale of [1e-20, 1e-3, 1, 1e6, 1e15]) {
        const w = base.map((e) => e * scale);
        tf.tidy(() => kernelOf(layer.layer).write(tf.tensor(w, [4, 3])));
        layer.powerIterate(30);
        const sigma = refSigma(unitMatrix(Float64Array.from(w), groups));
        assertClose([layer.sigma()], [sigma], { rtol: 1e-4 }, `sigma at scale ${scale}`);
        const k = layer.effectiveKernel();
        assertClose(f64(k), Float64Array.from(w).map((e) => e / sigma), { atol: 1e-6, rtol: 2e-4 }, `W / sigma at scale ${scale}`);
        k.dispose();
      }
      x.dispose();
      layer.dispose();
    });

    it('Dense: the gradient flows through sigma with u, v held constant (finite differences, float64)', () => {
      const layer = new nk.SpectralNormalization({ layer: tfl.layers.dense({ units: 3, useBias: false }) });
      const xv = randn(8, 3);
      const dyv = randn(6, 4);
      const x = tf.tensor(xv, [2, 4]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      const groups = unitGroups([4, 3], [1]);
      // A training call updates u, v first, then differentiates with them fixed.
      const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, tf.tensor(dyv, [2, 3]))) as tf.Scalar);
      const u = f64(stateOf(layer, 'u'));
      const v = f64(stateOf(layer, 'v'));
      const loss = (w: Float64Array) => {
        const m = unitMatrix(w, groups); // [units][fanIn]
        let sigma = 0;
        for (let o = 0; o < 3; o++) for (let i = 0; i < 4; i++) sigma += u[o] * m[o][i] * v[i];
        let s = 0;
        for (let b = 0; b < 2; b++) for (let o = 0; o < 3; o++) {
          let y = 0;
          for (let i = 0; i < 4; i++) y += xv[b * 4 + i] * w[i * 3 + o];
          s += (dyv[b * 3 + o] * y) / sigma;
        }
        return s;
      };
      const w = f64(kernelOf(layer.layer).read());
      const name = Object.keys(grads).find((n) => n.endsWith('kernel'));
      assert.ok(name);
      assert.deepEqual(Object.keys(grads).filter((n) => n.endsWith('/u') || n.endsWith('/v')), [], 'no gradient for u, v');
      assertClose(f64(grads[name]), finiteDifference(loss, w), { atol: 1e-4, rtol: 1e-3 }, 'dL/dW');
      tf.dispose([x, value, ...Object.values(grads)]);
      layer.dispose();
    });

    it('trains in model.fit (loss goes down) without leaking tensors', async () => {
      await assertWrapperFitsDense((inner) => new nk.SpectralNormalization({ layer: inner }));
    });

    it('leaks no tensors in training and inference calls and gradients', async () => {
      const layer = new nk.SpectralNormalization({ layer: tfl.layers.dense({ units: 3 }) });
      const x = tf.tensor(randn(8, 13), [2, 4]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      await assertNoLeak(() => (layer.apply(x) as tf.Tensor).dispose(), 'inference call');
      await assertNoLeak(() => (layer.apply(x, { training: true }) as tf.Tensor).dispose(), 'training call');
      await assertNoLeak(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(layer.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
        tf.dispose([value, ...Object.values(grads)]);
      }, 'gradient');
      await assertNoLeak(() => layer.sigma(), 'sigma');
      await assertNoLeak(() => layer.powerIterate(3), 'powerIterate');
      x.dispose();
      layer.dispose();
    });

    it('rejects bad arguments, naming them', () => {
      assertThrowsMentioning(() => new nk.SpectralNormalization({ layer: tfl.layers.flatten() }), ['SpectralNormalization', "'layer'", 'Flatten']);
      assertThrowsMentioning(() => new nk.SpectralNormalization({ layer: tfl.layers.dense({ units: 2 }), powerIterations: 0 }), ["'powerIterations'", 'integer >= 1']);
      assertThrowsMentioning(() => new nk.SpectralNormalization({ layer: tfl.layers.dense({ units: 2 }), powerIterations: 1.5 }), ["'powerIterations'"]);
      assertThrowsMentioning(() => new nk.SpectralNormalization({ layer: tfl.layers.dense({ units: 2 }), epsilon: -1 }), ["'epsilon'"]);
      assertThrowsMentioning(() => new nk.SpectralNormalization({ layer: tfl.layers.dense({ units: 2 }), epsilon: 1e308 }), ["'epsilon'", '(0, 1]']);
      const layer = new nk.SpectralNormalization({ layer: tfl.layers.dense({ units: 2 }) });
      assertThrowsMentioning(() => layer.sigma(), ["'layer'", 'built']);
    });

    it('is in the registry as a weight method', () => {
      const info = nk.listNorms().find((e) => e.name === 'spectral-norm');
      assert.equal(info?.kind, 'weight');
      assert.ok(nk.createNorm('sn', { layer: tfl.layers.dense({ units: 2 }) }) instanceof nk.SpectralNormalization);
      assert.ok(nk.spectralNorm(tfl.layers.dense({ units: 2 })) instanceof nk.SpectralNormalization);
    });
  });
});

runLayerTest(nk.SpectralNormalization, { make: () => new nk.SpectralNormalization({ layer: tfl.layers.dense({ units: 3 }) }), inputShape: [4], trainable: 2, nonTrainable: 2,
  weights: [['kernel', [4, 3]], ['bias', [3]], ['u', [3]], ['v', [4]]], supportsMasking: false });
for (const c of KERNEL_CASES.filter((k) => ['Conv2D', 'DepthwiseConv2D', 'Conv2DTranspose'].includes(k.name))) {
  runLayerTest(nk.SpectralNormalization, { label: c.name, make: () => new nk.SpectralNormalization({ layer: c.make(), powerIterations: 2, epsilon: 1e-10 }), inputShape: c.inputShape,
    trainable: 2, nonTrainable: 2, supportsMasking: false });
}
