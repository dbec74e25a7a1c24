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

/** Float64 weight norm: w_j = g_j v_j / sqrt(||v_j||^2 + eps) per unit group. */
function refWeightNorm(v: ArrayLike<number>, g: ArrayLike<number>, groups: number[][], eps = 1e-12): Float64Array {
  const w = new Float64Array(v.length);
  groups.forEach((idx, j) => {
    let ss = 0;
    for (const i of idx) ss += v[i] * v[i];
    const s = g[j] / Math.sqrt(ss + eps);
    for (const i of idx) w[i] = v[i] * s;
  });
  return w;
}

function gOf(layer: nk.WeightNormalization): tf.Tensor {
  const w = layer.weights.find((x) => x.originalName.endsWith('/g'));
  assert.ok(w, 'a weight named g');
  return w.read();
}

forEachBackend(() => {
  describe('WeightNormalization', () => {
    for (const c of KERNEL_CASES) {
      it(`${c.name}: per-unit kernel, g init = ||v|| and output match a float64 reference`, () => {
        const layer = new nk.WeightNormalization({ layer: c.make() });
        const x = tf.tensor(randn(2 * size(c.inputShape), 1), [2, ...c.inputShape]);
        layer.apply(x);
        const v = kernelOf(layer.layer);
        assert.deepEqual(v.shape, c.kernelShape);
        const groups = unitGroups(c.kernelShape, c.unitAxes);
        // Give g values different from the initial ||v|| so g really scales.
        const gv = randn(groups.length, 2, 1, 0.3);
        const vv = f64(v.read());
        const gInit = f64(gOf(layer));
        assertClose(gInit, groups.map((idx) => Math.sqrt(idx.reduce((s, i) => s + vv[i] * vv[i], 0))), { rtol: 1e-5 }, 'g init');
        (gOf(layer) as tf.Variable).assign(tf.tensor(gv, gOf(layer).shape));
        const expected = refWeightNorm(vv, gv, groups);
        assertKernelAndOutput(layer, x, expected, { kernel: { atol: 1e-6, rtol: 1e-5 }, output: { atol: 1e-5, rtol: 1e-4 } }, 'effective kernel');
        x.dispose();
        layer.dispose();
      });
    }

    it('Dense: gradients w.r.t. v and g match finite differences of a float64 reference', () => {
      const layer = new nk.WeightNormalization({ layer: tfl.layers.dense({ units: 3, useBias: false }) });
      const xv = randn(8, 3);
      const dyv = randn(6, 4);
      const x = tf.tensor(xv, [2, 4]);
      layer.apply(x);
      const v = kernelOf(layer.layer);
      const vv = f64(v.read());
      const gv = f64(gOf(layer));
      const groups = unitGroups([4, 3], [1]);
      // loss(v, g) = sum(dy * (x @ w(v, g))) in float64.
      const loss = (vAll: Float64Array, gAll: Float64Array) => {
        const w = refWeightNorm(vAll, gAll, groups);
        let s = 0;
        for (let b = 0; b < 2; b++) for (let o = 0; o < 3; o++) {
          let y = 0;
          for (let i = 0; i < 4; i++) y += xv[b * 4 + i] * w[i * 3 + o];
          s += dyv[b * 3 + o] * y;
        }
        return s;
      };
      const dv = finiteDifference((p) => loss(p, gv), vv);
      const dg = finiteDifference((p) => loss(vv, p), gv);
      const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, tf.tensor(dyv, [2, 3]))) as tf.Scalar);
      const names = Object.keys(grads);
      const vName = names.find((n) => n.endsWith('kernel'));
      const gName = names.find((n) => n.endsWith('/g'));
      assert.ok(vName && gName, `gradients for v and g, got ${names}`);
      assertClose(f64(grads[vName]), dv, { atol: 1e-4, rtol: 1e-3 }, 'dL/dv');
      assertClose(f64(grads[gName]), dg, { atol: 1e-4, rtol: 1e-3 }, 'dL/dg');
      // The v-gradient is orthogonal to v per unit (the paper's projection).
      const dvv = f64(grads[vName]);
      for (const idx of groups) assert.ok(Math.abs(idx.reduce((s, i) => s + dvv[i] * vv[i], 0)) < 1e-4, 'v . dL/dv = 0');
      tf.dispose([x, value, ...Object.values(grads)]);
      layer.dispose();
    });

    for (const c of KERNEL_CASES.filter((k) => ['Dense', 'Conv2D', 'DepthwiseConv2D', 'Conv2DTranspose'].includes(k.name))) {
      it(`${c.name}: data-dependent init standardizes the first batch's pre-activations per channel`, () => {
        const layer = new nk.WeightNormalization({ layer: c.make() });
        const x = tf.tensor(randn(8 * size(c.inputShape), 5, 3, 2), [8, ...c.inputShape]);
        layer.initializeFromData(x);
        const y = layer.apply(x) as tf.Tensor;
        const yv = f64(y);
        const ch = y.shape[y.rank - 1] as number;
        for (let o = 0; o < ch; o++) {
          let m = 0;
          let n = 0;
          for (let i = o; i < yv.length; i += ch) { m += yv[i]; n++; }
          m /= n;
          let v = 0;
          for (let i = o; i < yv.length; i += ch) v += (yv[i] - m) ** 2;
          v /= n;
          assert.ok(Math.abs(m) < 1e-4, `channel ${o} mean ${m}`);
          assert.ok(Math.abs(v - 1) < 1e-3, `channel ${o} variance ${v}`);
        }
        tf.dispose([x, y]);
        layer.dispose();
      });
    }

    it('dataInit: true initializes once on the first training call, and the flag is saved', async () => {
      const layer = new nk.WeightNormalization({ layer: tfl.layers.dense({ units: 2 }), dataInit: true });
      const model = tfl.sequential({ layers: [tfl.layers.inputLayer({ inputShape: [3] }), layer] });
      const xs = tf.tensor(randn(24, 7, 5, 3), [8, 3]);
      const ys = tf.zeros([8, 2]);
      model.compile({ optimizer: tf.train.sgd(1e-9), loss: 'meanSquaredError' });
      await model.fit(xs, ys, { epochs: 1, batchSize: 8, verbose: 0 });
      const y = model.predict(xs) as tf.Tensor;
      const m = tf.mean(y, 0);
      assertClose(f64(m), [0, 0], { atol: 1e-4 }, 'mean after data init');
      const flag = layer.weights.find((w) => w.originalName.endsWith('initialized'));
      assert.equal(flag?.read().dataSync()[0], 1);
      tf.dispose([xs, ys, y, m]);
      model.dispose();
    });

    it('holds on kernels from 1e-20 to 1e15 and on an all-zero unit (finite gradients)', () => {
      const layer = new nk.WeightNormalization({ layer: tfl.layers.dense({ units: 3, useBias: false }) });
      const x = tf.tensor(randn(8, 20), [2, 4]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      const groups = unitGroups([4, 3], [1]);
      const gv = randn(3, 21, 1, 0.3);
      (gOf(layer) as tf.Variable).assign(tf.tensor(gv));
      for (const scale of [1e-20, 1e-3, 1, 1e6, 1e15]) {
        const v = randn(12, 22).map((e) => e * scale);
        tf.tidy(() => kernelOf(layer.layer).write(tf.tensor(v, [4, 3])));
        const k = layer.effectiveKernel();
        // Textbook g v / ||v|| in float64, no epsilon.
        assertClose(f64(k), refWeightNorm(Float64Array.from(v), gv, groups, 0), { atol: 1e-7, rtol: 1e-5 }, `kernel at scale ${scale}`);
        k.dispose();
      }
      const v = randn(12, 23);
      for (const i of groups[1]) v[i] = 0;
      tf.tidy(() => kernelOf(layer.layer).write(tf.tensor(v, [4, 3])));
      const k = layer.effectiveKernel();
      assert.ok(groups[1].every((i) => k.dataSync()[i] === 0), 'zero unit stays zero');
      k.dispose();
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(x) as tf.Tensor)) as tf.Scalar);
      for (const g of Object.values(grads)) assert.ok(f64(g).every(Number.isFinite), 'finite gradients');
      tf.dispose([x, value, ...Object.values(grads)]);
      layer.dispose();
    });

    it('trains in model.fit (loss goes down) without leaking tensors', async () => {
      await assertWrapperFitsDense((inner) => new nk.WeightNormalization({ layer: inner }));
    });

    it('leaks no tensors in a call, a gradient or data init', async () => {
      const layer = new nk.WeightNormalization({ layer: tfl.layers.dense({ units: 3 }) });
      const x = tf.tensor(randn(8, 13), [2, 4]);
      layer.apply(x);
      await assertNoLeak(() => (layer.apply(x) as tf.Tensor).dispose(), 'call');
      await assertNoLeak(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(layer.apply(x) as tf.Tensor) as tf.Scalar);
        tf.dispose([value, ...Object.values(grads)]);
      }, 'gradient');
      await assertNoLeak(() => layer.initializeFromData(x), 'initializeFromData');
      await assertNoLeak(() => layer.effectiveKernel().dispose(), 'effectiveKernel');
      x.dispose();
      layer.dispose();
    });

    it('a frozen wrapper (trainable: false) freezes the wrapped layer\'s weights too', () => {
      const layer = new nk.WeightNormalization({ layer: tfl.layers.dense({ units: 2 }), trainable: false });
      tf.dispose(layer.apply(tf.ones([1, 3])) as tf.Tensor);
      assert.deepEqual(layer.trainableWeights, []);
      assert.deepEqual(layer.nonTrainableWeights.map((w) => w.originalName.split('/').pop()).sort(), ['bias', 'g', 'kernel']);
      layer.dispose();
    });

    it('rejects bad arguments, naming them', () => {
      assertThrowsMentioning(() => new nk.WeightNormalization({ layer: tfl.layers.flatten() }), ['WeightNormalization', "'layer'", 'Dense', 'Flatten']);
      assertThrowsMentioning(() => new nk.WeightNormalization({ layer: 'dense' as never }), ["'layer'", 'a tfjs layer']);
      assertThrowsMentioning(() => new nk.WeightNormalization({ layer: tfl.layers.dense({ units: 2 }), epsilon: 0 }), ["'epsilon'", '> 0']);
      assertThrowsMentioning(() => new nk.WeightNormalization({ layer: tfl.layers.dense({ units: 2 }), dataInit: 1 as never }), ["'dataInit'", 'boolean']);
      assertThrowsMentioning(() => new nk.WeightNormalization({ layer: tfl.layers.dense({ units: 2 }), epsilion: 1 } as never), ["'epsilion'"]);
      const layer = new nk.WeightNormalization({ layer: tfl.layers.dense({ units: 2 }) });
      assertThrowsMentioning(() => layer.effectiveKernel(), ["'layer'", 'built']);
      assertThrowsMentioning(() => layer.initializeFromData(tf.zeros([2, 3], 'int32')), ["'x'", 'float32']);
    });

    it('is in the registry as a weight method', () => {
      const info = nk.listNorms().find((e) => e.name === 'weight-norm');
      assert.equal(info?.kind, 'weight');
      assert.equal(info?.doc, 'docs/weight-norm.md');
      const layer = nk.createNorm('wn', { layer: tfl.layers.dense({ units: 2 }) });
      assert.ok(layer instanceof nk.WeightNormalization);
      assert.ok(nk.weightNorm(tfl.layers.dense({ units: 2 })) instanceof nk.WeightNormalization);
      // A JSON-style config names the wrapped layer by its serialized form.
      const fromJSON = nk.createNorm('weight-norm', { layer: { className: 'Conv2D', config: { filters: 4, kernelSize: 3 } } }) as nk.WeightNormalization;
      assert.equal(fromJSON.layer.getClassName(), 'Conv2D');
      assertThrowsMentioning(() => nk.createNorm('wn', { layer: { className: 'NoSuchLayer', config: {} } }), ["'layer'", 'registered class']);
    });
  });
});

runLayerTest(nk.WeightNormalization, { make: () => new nk.WeightNormalization({ layer: tfl.layers.dense({ units: 3 }) }), inputShape: [4], trainable: 3, nonTrainable: 0,
  weights: [['kernel', [4, 3]], ['bias', [3]], ['g', [3]]], supportsMasking: false });
for (const c of KERNEL_CASES.filter((k) => ['Conv2D', 'DepthwiseConv2D', 'Conv2DTranspose'].includes(k.name))) {
  runLayerTest(nk.WeightNormalization, { label: `${c.name}, data-dependent init`, make: () => new nk.WeightNormalization({ layer: c.make(), epsilon: 1e-10, dataInit: true }), inputShape: c.inputShape,
    // `initialized` is a 0/1 flag: the first training call sets it after the data-dependent init.
    trainable: 3, nonTrainable: 1, exact: ['initialized'], supportsMasking: false });
}
