import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, f64, randn } from '../helpers/numeric.js';

/** Norms whose layers take two inputs ([x, mask], [residual, shortcut]): they do not fit a plain conv stack. */
const TWO_INPUT_NORMS = new Set(['ibn-b', 'region-b']);

/** TF 'same' padding: output ceil(H / s), pad_total = max((out - 1) s + k - H, 0), pad_before = floor(pad_total / 2). */
function samePad(size: number, k: number, s: number): { out: number; before: number } {
  const out = Math.ceil(size / s);
  return { out, before: Math.floor(Math.max((out - 1) * s + k - size, 0) / 2) };
}

/** Float64 reference of conv2d 'same' with its input and kernel gradients for a cotangent dy (direct loops). */
function refConv(x: Float64Array, xs: number[], w: Float64Array, ws: number[], s: number, dy?: Float64Array) {
  const [n, h, wd, c] = xs;
  const [k, , , f] = ws;
  const ph = samePad(h, k, s);
  const pw = samePad(wd, k, s);
  const y = new Float64Array(n * ph.out * pw.out * f);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  for (let b = 0; b < n; b++) for (let i = 0; i < ph.out; i++) for (let j = 0; j < pw.out; j++) for (let o = 0; o < f; o++) {
    const yi = ((b * ph.out + i) * pw.out + j) * f + o;
    for (let a = 0; a < k; a++) for (let e = 0; e < k; e++) {
      const r = i * s + a - ph.before;
      const q = j * s + e - pw.before;
      if (r < 0 || r >= h || q < 0 || q >= wd) continue;
      for (let ch = 0; ch < c; ch++) {
        const xi = ((b * h + r) * wd + q) * c + ch;
        const wi = ((a * k + e) * c + ch) * f + o;
        y[yi] += x[xi] * w[wi];
        if (dy) {
          dx[xi] += w[wi] * dy[yi];
          dw[wi] += x[xi] * dy[yi];
        }
      }
    }
  }
  return { y, dx, dw, shape: [n, ph.out, pw.out, f] };
}

forEachBackend(() => {
  describe('FastGradConv2D', () => {
    for (const [strides, kernelSize, size] of [[1, 3, 5], [2, 3, 5], [2, 3, 6], [2, 1, 6]] as const) {
      it(`matches a float64 reference in value, input and kernel gradients (k ${kernelSize}, stride ${strides}, ${size}x${size})`, () => {
        const xs = [2, size, size, 3];
        const ws = [kernelSize, kernelSize, 3, 4];
        const x = randn(xs.reduce((a, b) => a * b), 1);
        const w = randn(ws.reduce((a, b) => a * b), 2, 0, 0.5);
        const layer = nk.fastConv2d({ filters: 4, kernelSize, strides, useBias: false, seed: 0 });
        layer.apply(tfl.input({ shape: xs.slice(1) }));
        layer.setWeights([tf.tensor(w, ws)]);
        const ref = refConv(Float64Array.from(x), xs, Float64Array.from(w), ws, strides);
        const dyValues = randn(ref.y.length, 3);
        const refGrad = refConv(Float64Array.from(x), xs, Float64Array.from(w), ws, strides, Float64Array.from(dyValues));
        const xt = tf.tensor(x, xs);
        const dy = tf.tensor(dyValues, ref.shape);
        const y = layer.apply(xt) as tf.Tensor;
        assert.deepEqual(y.shape, ref.shape);
        assertClose(f64(y), ref.y, { atol: 1e-5, rtol: 1e-5 }, 'y');
        const kernel = layer.trainableWeights[0].read() as tf.Variable;
        const { grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(xt) as tf.Tensor, dy)) as tf.Scalar, [kernel]);
        assertClose(f64(grads[kernel.name]), refGrad.dw, { atol: 1e-4, rtol: 1e-5 }, 'dW');
        const dx = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(layer.apply(input) as tf.Tensor, dy)))(xt);
        assertClose(f64(dx), refGrad.dx, { atol: 1e-4, rtol: 1e-5 }, 'dx');
        tf.dispose([xt, dy, y, dx, ...Object.values(grads)]);
        layer.dispose();
      });
    }
  });

  describe('buildCNN', () => {
    const x = () => tf.tensor(randn(4 * 8 * 8, 5), [4, 8, 8, 1]);
    const labels = () => tf.oneHot(tf.tensor1d([1, 2, 3, 4], 'int32'), 10);
    const norms = () => ['none', ...nk.listNorms().filter((n) => n.hasLayer && (n.kind === 'activation' || n.kind === 'normalization-free') && !TWO_INPUT_NORMS.has(n.name)).map((n) => n.name)];

    it('builds and trains with every available single-input norm, with no leaked tensor in a step', () => {
      const checked: string[] = [];
      for (const norm of norms()) {
        // The plain (non-residual) stack is checked with two norms; every norm in the ResNet.
        for (const residual of norm === 'none' || norm === 'batch' ? [true, false] : [true]) {
          const { model, normLayers, convLayers } = nk.buildCNN({ inputShape: [8, 8, 1], numClasses: 10, norm, widths: [4, 8], residual, seed: 3 });
          assert.equal(normLayers.length === 0, norm === 'none', norm);
          assert.equal(convLayers.length, residual ? 6 : 2, norm);
          const xs = x();
          const ys = labels();
          const optimizer = tf.train.sgd(0.01);
          const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
          const step = () => {
            const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(ys, model.apply(xs, { training: true }) as tf.Tensor) as tf.Scalar, vars);
            optimizer.applyGradients(grads);
            const loss = value.dataSync()[0];
            tf.dispose([value, grads]);
            return loss;
          };
          assert.ok(Number.isFinite(step()), norm);
          assertNoLeak(() => void step(), `${norm} training step`);
          const out = model.predict(xs) as tf.Tensor;
          assert.deepEqual(out.shape, [4, 10]);
          tf.dispose([out, xs, ys]);
          optimizer.dispose();
          model.dispose();
        }
        checked.push(norm);
      }
      assert.ok(checked.includes('batch') && checked.includes('group') && checked.includes('layer'), checked.join(', '));
    });

    it('wraps every conv in weight standardization when asked', () => {
      const { model, convLayers } = nk.buildCNN({ inputShape: [8, 8, 1], numClasses: 10, norm: 'group', widths: [4, 8], seed: 1, convWrapper: 'weight-standardization' });
      assert.equal(model.layers.filter((l) => l.getClassName() === 'WeightStandardization').length, convLayers.length);
      const xs = x();
      const out = model.predict(xs) as tf.Tensor;
      assert.ok(out.dataSync().every(Number.isFinite));
      tf.dispose([xs, out]);
      model.dispose();
    });

    it('is a deterministic function of its seed and round-trips through save/load as a plain tfjs model', async () => {
      const build = (seed: number) => nk.buildCNN({ inputShape: [8, 8, 1], numClasses: 10, norm: 'batch', widths: [4, 8], seed }).model;
      const a = build(7);
      const b = build(7);
      const c = build(8);
      const values = (m: tfl.LayersModel) => m.getWeights().map((w) => [...w.dataSync()]);
      assert.deepEqual(values(a), values(b));
      assert.notDeepEqual(values(a), values(c));
      let artifacts: tf.io.ModelArtifacts | undefined;
      await a.save(tf.io.withSaveHandler(async (art) => {
        artifacts = art;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }));
      assert.ok(JSON.stringify(artifacts!.modelTopology).includes('"class_name":"Conv2D"'));
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
      const xs = x();
      const ya = a.predict(xs) as tf.Tensor;
      const yl = loaded.predict(xs) as tf.Tensor;
      assertClose(f64(yl), f64(ya), { atol: 1e-5, rtol: 1e-5 }, 'loaded model output');
      tf.dispose([xs, ya, yl]);
      for (const m of [a, b, c, loaded]) m.dispose();
    });

    it('rejects bad options before building anything', () => {
      assert.throws(() => nk.buildCNN({ inputShape: [8, 8, 1], numClasses: 10, norm: 'no-such-norm' }), (e: Error) => e instanceof nk.NormkitError && e.message.includes("'batch'") && e.message.includes('no-such-norm'));
      assert.throws(() => nk.buildCNN({ inputShape: [8, 8] as unknown as [number, number, number], numClasses: 10, norm: 'none' }), /inputShape/);
      assert.throws(() => nk.buildCNN({ inputShape: [8, 8, 1], numClasses: 10, norm: 'none', widths: [] }), /widths/);
      assert.throws(() => nk.buildCNN({ inputShape: [8, 8, 1], numClasses: 1, norm: 'none' }), /numClasses/);
    });
  });
});
