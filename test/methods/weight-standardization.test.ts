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

/** Float64 WS: (w - mean) / sqrt(var + eps) per unit, biased variance. */
function refWS(w: ArrayLike<number>, groups: number[][], eps: number): Float64Array {
  const out = new Float64Array(w.length);
  for (const idx of groups) {
    const m = idx.reduce((s, i) => s + w[i], 0) / idx.length;
    const v = idx.reduce((s, i) => s + (w[i] - m) ** 2, 0) / idx.length;
    for (const i of idx) out[i] = (w[i] - m) / Math.sqrt(v + eps);
  }
  return out;
}

/** Float64 scaled WS: gamma * gain_o * (w - mean) / sqrt(max(N var, eps)) per unit. */
function refScaledWS(w: ArrayLike<number>, groups: number[][], gain: ArrayLike<number>, eps: number, gamma = 1): Float64Array {
  const out = new Float64Array(w.length);
  groups.forEach((idx, o) => {
    const m = idx.reduce((s, i) => s + w[i], 0) / idx.length;
    const v = idx.reduce((s, i) => s + (w[i] - m) ** 2, 0) / idx.length;
    for (const i of idx) out[i] = (gamma * gain[o] * (w[i] - m)) / Math.sqrt(Math.max(idx.length * v, eps));
  });
  return out;
}

/** loss = sum(dy * (x @ kernel)) for a Dense [4, 3] kernel, float64. */
function denseLoss(xv: ArrayLike<number>, dyv: ArrayLike<number>, k: ArrayLike<number>): number {
  let s = 0;
  for (let b = 0; b < 2; b++) for (let o = 0; o < 3; o++) {
    let y = 0;
    for (let i = 0; i < 4; i++) y += xv[b * 4 + i] * k[i * 3 + o];
    s += dyv[b * 3 + o] * y;
  }
  return s;
}

function gainOf(layer: nk.ScaledWeightStandardization): tf.Variable {
  const w = layer.weights.find((x) => x.originalName.endsWith('/gain'));
  assert.ok(w, 'a weight named gain');
  return w.read() as tf.Variable;
}

forEachBackend(() => {
  describe('WeightStandardization', () => {
    for (const c of KERNEL_CASES) {
      it(`${c.name}: standardized kernel and output match a float64 reference`, () => {
        const layer = new nk.WeightStandardization({ layer: c.make() });
        const x = tf.tensor(randn(2 * size(c.inputShape), 1), [2, ...c.inputShape]);
        tf.dispose(layer.apply(x) as tf.Tensor);
        const groups = unitGroups(c.kernelShape, c.unitAxes);
        const expected = refWS(f64(kernelOf(layer.layer).read()), groups, 1e-5);
        assertKernelAndOutput(layer, x, expected, { kernel: { atol: 1e-5, rtol: 1e-4 }, output: { atol: 1e-4, rtol: 1e-4 } });
        x.dispose();
        layer.dispose();
      });
    }

    it('Dense: differentiates through the mean and variance (finite differences, float64)', () => {
      const layer = new nk.WeightStandardization({ layer: tfl.layers.dense({ units: 3, useBias: false }), epsilon: 1e-3 });
      const xv = randn(8, 3);
      const dyv = randn(6, 4);
      const x = tf.tensor(xv, [2, 4]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      const groups = unitGroups([4, 3], [1]);
      const w = f64(kernelOf(layer.layer).read());
      const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, tf.tensor(dyv, [2, 3]))) as tf.Scalar);
      const fd = finiteDifference((p) => denseLoss(xv, dyv, refWS(p, groups, 1e-3)), w);
      assertClose(f64(Object.values(grads)[0]), fd, { atol: 1e-3, rtol: 1e-3 }, 'dL/dW');
      tf.dispose([x, value, ...Object.values(grads)]);
      layer.dispose();
    });

    it('holds on hard kernels: a large common offset, a constant unit, tiny and huge magnitudes', () => {
      const layer = new nk.WeightStandardization({ layer: tfl.layers.dense({ units: 3 }) });
      const x = tf.tensor(randn(8, 3), [2, 4]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      const kernel = kernelOf(layer.layer);
      const groups = unitGroups([4, 3], [1]);
      const cases: Array<[string, Float32Array]> = [
        ['offset 1e3, std 1e-1', randn(12, 4, 1e3, 1e-1)],
        ['constant', new Float32Array(12).fill(2.5)],
        ['scale 1e-3', randn(12, 5, 0, 1e-3)],
        ['scale 1e6', randn(12, 6, 0, 1e6)],
      ];
      for (const [what, values] of cases) {
        tf.tidy(() => kernel.write(tf.tensor(values, [4, 3])));
        const k = layer.effectiveKernel();
        assertClose(f64(k), refWS(values, groups, 1e-5), { atol: 2e-3, rtol: 2e-3 }, what);
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(x) as tf.Tensor)) as tf.Scalar);
        assert.ok(f64(Object.values(grads)[0]).every(Number.isFinite), `finite gradient (${what})`);
        tf.dispose([k, value, ...Object.values(grads)]);
      }
      x.dispose();
      layer.dispose();
    });

    it('trains in model.fit (loss goes down) without leaking tensors', async () => {
      await assertWrapperFitsDense((inner) => new nk.WeightStandardization({ layer: inner }));
    });

    it('rejects bad arguments and leaks nothing', async () => {
      assertThrowsMentioning(() => new nk.WeightStandardization({ layer: tfl.layers.flatten() }), ['WeightStandardization', "'layer'", 'Flatten']);
      assertThrowsMentioning(() => new nk.WeightStandardization({ layer: tfl.layers.dense({ units: 2 }), epsilon: 0 }), ["'epsilon'", '> 0']);
      assertThrowsMentioning(() => new nk.WeightStandardization({ layer: tfl.layers.dense({ units: 2 }), eps: 1 } as never), ["'eps'"]);
      const layer = new nk.WeightStandardization({ layer: tfl.layers.dense({ units: 3 }) });
      const x = tf.tensor(randn(8, 13), [2, 4]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      await assertNoLeak(() => (layer.apply(x) as tf.Tensor).dispose(), 'call');
      await assertNoLeak(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(layer.apply(x) as tf.Tensor) as tf.Scalar);
        tf.dispose([value, ...Object.values(grads)]);
      }, 'gradient');
      x.dispose();
      layer.dispose();
    });
  });

  describe('ScaledWeightStandardization', () => {
    for (const c of KERNEL_CASES) {
      it(`${c.name}: gain * (W - mean) / sqrt(max(N var, 1e-4)) per unit matches float64, output too`, () => {
        const layer = new nk.ScaledWeightStandardization({ layer: c.make(), gamma: 1.7139588594436646 });
        const x = tf.tensor(randn(2 * size(c.inputShape), 1), [2, ...c.inputShape]);
        tf.dispose(layer.apply(x) as tf.Tensor);
        const groups = unitGroups(c.kernelShape, c.unitAxes);
        const gain = randn(groups.length, 3, 1, 0.3);
        gainOf(layer).assign(tf.tensor(gain, gainOf(layer).shape));
        const expected = refScaledWS(f64(kernelOf(layer.layer).read()), groups, gain, 1e-4, 1.7139588594436646);
        assertKernelAndOutput(layer, x, expected, { kernel: { atol: 1e-5, rtol: 1e-4 }, output: { atol: 1e-4, rtol: 1e-4 } });
        x.dispose();
        layer.dispose();
      });
    }

    it('applies the 1e-4 floor as a maximum (a near-constant unit) and differentiates through it', () => {
      const layer = new nk.ScaledWeightStandardization({ layer: tfl.layers.dense({ units: 3, useBias: false }) });
      const xv = randn(8, 3);
      const dyv = randn(6, 4);
      const x = tf.tensor(xv, [2, 4]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      const w = randn(12, 7);
      for (let i = 0; i < 4; i++) w[i * 3 + 1] = 0.5 + 1e-4 * i; // unit 1: N var ~ 5e-8 < 1e-4
      tf.tidy(() => kernelOf(layer.layer).write(tf.tensor(w, [4, 3])));
      const groups = unitGroups([4, 3], [1]);
      const gain = [1, 1, 1];
      const k = layer.effectiveKernel();
      assertClose(f64(k), refScaledWS(w, groups, gain, 1e-4), { atol: 1e-5, rtol: 1e-4 }, 'kernel with a floored unit');
      const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, tf.tensor(dyv, [2, 3]))) as tf.Scalar);
      const wName = Object.keys(grads).find((n) => n.endsWith('kernel')) as string;
      const gName = Object.keys(grads).find((n) => n.endsWith('/gain')) as string;
      const fdW = finiteDifference((p) => denseLoss(xv, dyv, refScaledWS(p, groups, gain, 1e-4)), Float64Array.from(w), 1e-6);
      const fdG = finiteDifference((p) => denseLoss(xv, dyv, refScaledWS(w, groups, p, 1e-4)), Float64Array.from(gain));
      assertClose(f64(grads[wName]), fdW, { atol: 2e-3, rtol: 2e-3 }, 'dL/dW');
      assertClose(f64(grads[gName]), fdG, { atol: 1e-4, rtol: 1e-3 }, 'dL/dgain');
      tf.dispose([x, k, value, ...Object.values(grads)]);
      layer.dispose();
    });

    it('trains in model.fit (loss goes down) without leaking tensors', async () => {
      await assertWrapperFitsDense((inner) => new nk.ScaledWeightStandardization({ layer: inner }));
    });

    it('rejects bad arguments and is in the registry', () => {
      assertThrowsMentioning(() => new nk.ScaledWeightStandardization({ layer: tfl.layers.dense({ units: 2 }), gamma: 0 }), ["'gamma'", '(0, 10000]']);
      assertThrowsMentioning(() => new nk.ScaledWeightStandardization({ layer: tfl.layers.dense({ units: 2 }), gamma: 1e308 }), ["'gamma'", '1e+308']);
      assertThrowsMentioning(() => new nk.ScaledWeightStandardization({ layer: tfl.layers.dense({ units: 2 }), trainableGain: 'yes' as never }), ["'trainableGain'", 'boolean']);
      assertThrowsMentioning(() => new nk.ScaledWeightStandardization({ layer: tfl.layers.batchNormalization() }), ["'layer'", 'BatchNormalization']);
      for (const [name, cls] of [['ws', nk.WeightStandardization], ['scaled-ws', nk.ScaledWeightStandardization]] as const) {
        assert.ok(nk.createNorm(name, { layer: tfl.layers.dense({ units: 2 }) }) instanceof cls);
      }
      assert.equal(nk.listNorms().find((e) => e.name === 'scaled-weight-standardization')?.kind, 'weight');
    });
  });
});

runLayerTest(nk.WeightStandardization, { make: () => new nk.WeightStandardization({ layer: tfl.layers.conv2d({ filters: 3, kernelSize: 2 }) }), inputShape: [4, 4, 2], trainable: 2, nonTrainable: 0,
  weights: [['kernel', [2, 2, 2, 3]], ['bias', [3]]], supportsMasking: false });
runLayerTest(nk.ScaledWeightStandardization, { make: () => new nk.ScaledWeightStandardization({ layer: tfl.layers.conv2d({ filters: 3, kernelSize: 2 }) }), inputShape: [4, 4, 2], trainable: 3, nonTrainable: 0,
  weights: [['kernel', [2, 2, 2, 3]], ['bias', [3]], ['gain', [3]]], supportsMasking: false });
for (const c of KERNEL_CASES.filter((k) => ['Conv2D', 'DepthwiseConv2D'].includes(k.name))) {
  runLayerTest(nk.WeightStandardization, { label: c.name, make: () => new nk.WeightStandardization({ layer: c.make(), epsilon: 1e-4 }), inputShape: c.inputShape,
    trainable: 2, nonTrainable: 0, supportsMasking: false });
}
runLayerTest(nk.ScaledWeightStandardization, { label: 'Conv2DTranspose, frozen gain',
  make: () => new nk.ScaledWeightStandardization({ layer: KERNEL_CASES[5].make(), gamma: 1.5939117670059204, epsilon: 1e-3, trainableGain: false }), inputShape: KERNEL_CASES[5].inputShape,
  // The gain is a fixed weight when not trainable.
  trainable: 2, nonTrainable: 1, weights: [['kernel', [2, 2, 3, 2]], ['bias', [3]], ['gain', [3]]], state: [], supportsMasking: false });
