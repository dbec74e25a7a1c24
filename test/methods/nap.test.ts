import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { refNormalize } from '../helpers/reference.js';
import { kernelOf } from '../helpers/kernel-wrappers.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

function weightNamed(layer: tfl.layers.Layer, suffix: string): tf.Variable {
  const w = layer.weights.find((x) => x.originalName.endsWith(suffix));
  assert.ok(w, `a weight named ${suffix}`);
  return w.read() as tf.Variable;
}

/** Float64 NaP forward for a Dense [4, 3] layer: act(gamma * LN(x W + b) + beta) over the last axis. */
function refForward(xv: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>, act: (v: number) => number): Float64Array {
  const t = new Float64Array(6);
  for (let n = 0; n < 2; n++) for (let o = 0; o < 3; o++) {
    let s = b[o];
    for (let i = 0; i < 4; i++) s += xv[n * 4 + i] * w[i * 3 + o];
    t[n * 3 + o] = s;
  }
  return refNormalize(t, [2, 3], [1], 1e-5, { gamma, beta }).y.map(act);
}

const norm = (...vs: tf.Tensor[]) => Math.sqrt(vs.reduce((s, v) => s + f64(v).reduce((a, x) => a + x * x, 0), 0));

forEachBackend(() => {
  describe('NormalizeAndProject', () => {
    it('Dense: act(LN(x W + b)) matches float64, and is invariant to scaling (W, b)', () => {
      const layer = new nk.NormalizeAndProject({ layer: tfl.layers.dense({ units: 3, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 13 }) }) });
      const xv = randn(8, 1);
      const x = tf.tensor(xv, [2, 4]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      const gamma = randn(3, 2, 1, 0.3);
      const beta = randn(3, 3);
      const bias = randn(3, 4);
      weightNamed(layer, '/gamma').assign(tf.tensor(gamma));
      weightNamed(layer, '/beta').assign(tf.tensor(beta));
      weightNamed(layer.layer, '/bias').assign(tf.tensor(bias));
      const w = f64(kernelOf(layer.layer).read());
      const y = layer.apply(x) as tf.Tensor;
      assertClose(f64(y), refForward(xv, w, bias, gamma, beta, (v) => Math.max(v, 0)), { atol: 1e-5, rtol: 1e-4 }, 'output');
      tf.tidy(() => {
        kernelOf(layer.layer).write(tf.mul(kernelOf(layer.layer).read(), 3));
        weightNamed(layer.layer, '/bias').assign(tf.mul(weightNamed(layer.layer, '/bias'), 3));
      });
      const y3 = layer.apply(x) as tf.Tensor;
      assertClose(f64(y3), refForward(xv, w.map((v) => 3 * v), bias.map((v) => 3 * v), gamma, beta, (v) => Math.max(v, 0)), { atol: 1e-5, rtol: 1e-4 }, 'output after scaling (W, b) by 3');
      // Invariant up to the LayerNorm's epsilon (eps / var of the pre-activations).
      assertClose(f64(y3), f64(y), { atol: 2e-3, rtol: 2e-3 }, 'invariance to scaling (W, b)');
      tf.dispose([x, y, y3]);
      layer.dispose();
    });

    it('Conv2D: LayerNorm over the channels of each position matches float64', () => {
      const layer = new nk.NormalizeAndProject({ layer: tfl.layers.conv2d({ filters: 3, kernelSize: 2, useBias: false }) });
      const x = tf.tensor(randn(2 * 16 * 2, 5), [2, 4, 4, 2]);
      const y = layer.apply(x) as tf.Tensor;
      const plain = tfl.layers.conv2d({ filters: 3, kernelSize: 2, useBias: false });
      tf.dispose(plain.apply(x) as tf.Tensor);
      plain.setWeights([kernelOf(layer.layer).read()]);
      const t = plain.apply(x) as tf.Tensor;
      assertClose(f64(y), refNormalize(f64(t), t.shape, [3], 1e-5).y, { atol: 1e-4, rtol: 1e-4 }, 'output');
      tf.dispose([x, y, t]);
      plain.dispose();
      layer.dispose();
    });

    it('Dense: gradients w.r.t. W, b, gamma, beta match finite differences of the float64 forward', () => {
      const layer = new nk.NormalizeAndProject({ layer: tfl.layers.dense({ units: 3, activation: 'tanh' }), epsilon: 1e-5 });
      const xv = randn(8, 6);
      const dyv = randn(6, 7);
      const x = tf.tensor(xv, [2, 4]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      const w = f64(kernelOf(layer.layer).read());
      const b = Float64Array.from(randn(3, 8));
      weightNamed(layer.layer, '/bias').assign(tf.tensor(Float32Array.from(b)));
      const g = Float64Array.from([1, 1, 1]);
      const be = Float64Array.from([0, 0, 0]);
      const loss = (wv: ArrayLike<number>, bv: ArrayLike<number>, gv: ArrayLike<number>, bev: ArrayLike<number>) =>
        refForward(xv, wv, bv, gv, bev, Math.tanh).reduce((s, y, i) => s + y * dyv[i], 0);
      const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, tf.tensor(dyv, [2, 3]))) as tf.Scalar);
      const find = (suffix: string) => f64(grads[Object.keys(grads).find((n) => n.endsWith(suffix)) as string]);
      const tol = { atol: 1e-3, rtol: 1e-3 };
      assertClose(find('kernel'), finiteDifference((p) => loss(p, b, g, be), w), tol, 'dW');
      assertClose(find('/bias'), finiteDifference((p) => loss(w, p, g, be), b), tol, 'db');
      assertClose(find('/gamma'), finiteDifference((p) => loss(w, b, p, be), g), tol, 'dgamma');
      assertClose(find('/beta'), finiteDifference((p) => loss(w, b, g, p), be), tol, 'dbeta');
      tf.dispose([x, value, ...Object.values(grads)]);
      layer.dispose();
    });

    it('project() rescales (W, b) to the build-time norm without changing the output', () => {
      const layer = new nk.NormalizeAndProject({ layer: tfl.layers.dense({ units: 3 }) });
      const x = tf.tensor(randn(8, 9), [2, 4]);
      tf.dispose(layer.apply(x) as tf.Tensor);
      weightNamed(layer.layer, '/bias').assign(tf.tensor(randn(3, 10)));
      const rho = norm(kernelOf(layer.layer).read(), weightNamed(layer.layer, '/bias'));
      weightNamed(layer, 'target_norm').assign(tf.scalar(rho));
      const w0 = f64(kernelOf(layer.layer).read());
      const y0 = layer.apply(x) as tf.Tensor;
      tf.tidy(() => {
        kernelOf(layer.layer).write(tf.mul(kernelOf(layer.layer).read(), 2.5));
        weightNamed(layer.layer, '/bias').assign(tf.mul(weightNamed(layer.layer, '/bias'), 2.5));
      });
      layer.project();
      assertClose([norm(kernelOf(layer.layer).read(), weightNamed(layer.layer, '/bias'))], [rho], { rtol: 1e-5 }, '||(W, b)||');
      assertClose(f64(kernelOf(layer.layer).read()), w0, { rtol: 1e-5, atol: 1e-7 }, 'W back on the sphere');
      const y1 = layer.apply(x) as tf.Tensor;
      assertClose(f64(y1), f64(y0), { atol: 1e-5, rtol: 1e-4 }, 'output');
      const fixed = new nk.NormalizeAndProject({ layer: tfl.layers.dense({ units: 3 }), targetNorm: 2 });
      tf.dispose(fixed.apply(x) as tf.Tensor);
      fixed.project();
      assertClose([norm(...fixed.layer.weights.map((v) => v.read()))], [2], { rtol: 1e-5 }, 'explicit target');
      tf.dispose([x, y0, y1]);
      layer.dispose();
      fixed.dispose();
    });

    it('napCallback keeps ||(W, b)|| fixed through model.fit; the loss goes down; no leak', async () => {
      const model = tfl.sequential();
      const nap = new nk.NormalizeAndProject({ layer: tfl.layers.dense({ units: 8, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 9 }) }), inputShape: [4] });
      model.add(nap);
      model.add(tfl.layers.dense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: 10 }) }));
      model.compile({ optimizer: tf.train.adam(0.05), loss: 'meanSquaredError' });
      const rho = f64(weightNamed(nap, 'target_norm'))[0];
      const xs = tf.tensor(randn(64, 11), [16, 4]);
      const ys = tf.tidy(() => tf.sum(tf.mul(xs, tf.tensor([[0.5, -1, 2, 0.1]])), 1, true));
      const callbacks = [nk.napCallback(model)];
      const h0 = await model.fit(xs, ys, { epochs: 1, batchSize: 8, verbose: 0, shuffle: false, callbacks });
      const before = tf.memory().numTensors;
      const h = await model.fit(xs, ys, { epochs: 20, batchSize: 8, verbose: 0, shuffle: false, callbacks });
      assert.equal(tf.memory().numTensors, before, 'model.fit leaked tensors');
      assertClose([norm(...nap.layer.weights.map((v) => v.read()))], [rho], { rtol: 1e-5 }, '||(W, b)|| after fit');
      const last = h.history.loss[h.history.loss.length - 1] as number;
      assert.ok(last < (h0.history.loss[0] as number) * 0.7, `loss ${h0.history.loss[0]} -> ${last}`);
      await assertNoLeak(() => nk.projectNAP(model), 'projectNAP');
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it('rejects bad arguments and is in the registry', () => {
      assertThrowsMentioning(() => new nk.NormalizeAndProject({ layer: tfl.layers.dense({ units: 2 }), targetNorm: 0 }), ['NormalizeAndProject', "'targetNorm'", '> 0']);
      assertThrowsMentioning(() => new nk.NormalizeAndProject({ layer: tfl.layers.dense({ units: 2 }), scale: 1 as never }), ["'scale'", 'boolean']);
      assertThrowsMentioning(() => new nk.NormalizeAndProject({ layer: tfl.layers.flatten() }), ["'layer'", 'Flatten']);
      const bad = new nk.NormalizeAndProject({ layer: tfl.layers.dense({ units: 2 }), axis: 0 });
      assertThrowsMentioning(() => bad.apply(tf.zeros([1, 3])), ["'axis'", 'batch']);
      assertThrowsMentioning(() => nk.projectNAP(42 as never), ['projectNAP', "'model'"]);
      assertThrowsMentioning(() => nk.napCallback({} as never), ['napCallback', "'model'"]);
      assert.ok(nk.createNorm('nap', { layer: tfl.layers.dense({ units: 2 }) }) instanceof nk.NormalizeAndProject);
      assert.equal(nk.listNorms().find((e) => e.name === 'nap')?.kind, 'weight');
    });
  });
});

runLayerTest(nk.NormalizeAndProject, { make: () => new nk.NormalizeAndProject({ layer: tfl.layers.dense({ units: 3 }) }), inputShape: [4], trainable: 4, nonTrainable: 1,
  weights: [['kernel', [4, 3]], ['bias', [3]], ['gamma', [3]], ['beta', [3]], ['target_norm', []]],
  // target_norm is the norm rho fixed at build time, not a running statistic.
  state: [], supportsMasking: false });
runLayerTest(nk.NormalizeAndProject, { label: 'Conv2D, three axes, no beta, fixed target norm',
  make: () => new nk.NormalizeAndProject({ layer: tfl.layers.conv2d({ filters: 3, kernelSize: 2, activation: 'relu' }), axis: [-3, -2, -1], epsilon: 1e-3, center: false, targetNorm: 1.5 }),
  inputShape: [4, 4, 2], trainable: 3, nonTrainable: 1, weights: [['kernel', [2, 2, 2, 3]], ['bias', [3]], ['gamma', [3, 3, 3]], ['target_norm', []]], state: [], supportsMasking: false });
