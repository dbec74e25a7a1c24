import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertModelTrainsAndReloads } from '../helpers/layer-roundtrip.js';
import { populationStd } from '../helpers/stats.js';
import { assertClose, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

const relu = (v: number) => Math.max(v, 0);

/** float64 y = x W for one row x and W [n, m]. */
function matvec(x: ArrayLike<number>, w: ArrayLike<number>, m: number): Float64Array {
  const y = new Float64Array(m);
  for (let j = 0; j < m; j++) for (let i = 0; i < x.length; i++) y[j] += x[i] * w[i * m + j];
  return y;
}

/** A functional model around one dense residual block. */
function blockModel(mode: 'fixup' | 'skipinit', inUnits: number, units: number): tfl.LayersModel {
  const input = tfl.input({ shape: [inUnits] });
  const out = nk.residualBlock(input, { mode, kind: 'dense', units, branches: 4, name: 'b', seed: 1 });
  return tfl.model({ inputs: input, outputs: out });
}

forEachBackend(() => {
  describe('ScalarAffine', () => {
    it('computes g*x or x+b with one scalar, with the right gradients', () => {
      const gain = new nk.ScalarAffine({ mode: 'gain', initValue: 0.5 });
      const bias = new nk.ScalarAffine({ mode: 'bias', initValue: -2 });
      const xv = randn(6, 1);
      tf.tidy(() => {
        const x = tf.tensor(xv, [2, 3]);
        assertClose(f64(gain.apply(x) as tf.Tensor), Array.from(xv, (v) => 0.5 * v), { rtol: 1e-6 }, 'gain');
        assertClose(f64(bias.apply(x) as tf.Tensor), Array.from(xv, (v) => v - 2), { rtol: 1e-6, atol: 1e-6 }, 'bias');
        const g = gain.trainableWeights[0].read() as tf.Variable;
        const { grads } = tf.variableGrads(() => tf.sum(tf.square(gain.apply(x) as tf.Tensor)) as tf.Scalar, [g]);
        // d/dg sum((g x)^2) = 2 g sum(x^2)
        assertClose(f64(grads[g.name]), [2 * 0.5 * xv.reduce((s, v) => s + v * v, 0)], { rtol: 1e-5 }, 'dgain');
        tf.dispose(Object.values(grads));
      });
      assertThrowsMentioning(() => new nk.ScalarAffine({ mode: 'scale' as never }), ["'mode'", 'scale']);
    });
  });

  describe('Fixup', () => {
    it('fixupInitializer has std sqrt(2 / fan_out) * L^(-1/(2m-2))', () => {
      tf.tidy(() => {
        const w = nk.fixupInitializer([3, 3, 16, 32], 9, 2, 1).apply([3, 3, 16, 32]);
        assertClose([populationStd(w.dataSync())], [Math.sqrt(2 / (9 * 32)) / 3], { rtol: 0.05 }, 'basic block, L = 9');
        const w3 = nk.fixupInitializer([64, 64], 16, 3, 2).apply([64, 64]);
        assertClose([populationStd(w3.dataSync())], [Math.sqrt(2 / 64) * 16 ** -0.25], { rtol: 0.05 }, 'bottleneck, L = 16');
      });
    });

    it('a dense Fixup block matches the float64 formula with random parameters, and its gradients match finite differences', () => {
      const model = blockModel('fixup', 4, 6);
      const named = new Map<string, Float64Array>();
      model.weights.forEach((w, i) => {
        const n = w.shape.reduce((a: number, b) => a * (b as number), 1);
        const v = randn(n, 10 + i, 0, 0.5);
        tf.tidy(() => {
          w.write(tf.tensor(v, w.shape as number[]));
        });
        named.set(w.originalName, Float64Array.from(v));
      });
      const get = (n: string) => named.get(n)!;
      const ref = (x: ArrayLike<number>, p: (n: string) => Float64Array) => {
        const b1a = p('b_bias1a/bias')[0];
        const xb = Array.from(x, (v) => v + b1a);
        const h = Array.from(matvec(xb, p('b_conv1/kernel'), 6), (v) => relu(v + p('b_bias1b/bias')[0]) + p('b_bias2a/bias')[0]);
        const f = matvec(h, p('b_conv2/kernel'), 6);
        const s = matvec(xb, p('b_shortcut/kernel'), 6);
        return Array.from(f, (v, j) => relu(v * p('b_scale/gain')[0] + p('b_bias2b/bias')[0] + s[j]));
      };
      const xv = randn(3 * 4, 20);
      const expected = [0, 1, 2].flatMap((r) => ref(xv.slice(r * 4, r * 4 + 4), get));
      tf.tidy(() => assertClose(f64(model.predict(tf.tensor(xv, [3, 4])) as tf.Tensor), expected, { atol: 1e-5, rtol: 1e-5 }, 'block'));
      // Gradient of sum(y * r) w.r.t. the scalar multiplier and one conv2 entry.
      const r = randn(18, 21);
      const loss = (p: (n: string) => Float64Array) => [0, 1, 2].flatMap((row) => ref(xv.slice(row * 4, row * 4 + 4), p)).reduce((s, v, i) => s + v * r[i], 0);
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(model.apply(tf.tensor(xv, [3, 4])) as tf.Tensor, tf.tensor(r, [3, 6]))) as tf.Scalar, vars);
      for (const [name, index] of [['b_scale/gain', 0], ['b_conv2/kernel', 7], ['b_bias1a/bias', 0]] as const) {
        const lv = model.trainableWeights.find((w) => w.originalName === name)!;
        const fd = finiteDifference((v) => loss((n) => (n === name ? Float64Array.from(get(n), (u, k) => (k === index ? v[0] : u)) : get(n))), Float64Array.from([get(name)[index]]), 1e-6);
        assertClose([f64(grads[(lv.read() as tf.Variable).name])[index]], fd, { atol: 1e-3, rtol: 1e-3 }, `d/d ${name}`);
      }
      tf.dispose([value, ...Object.values(grads)]);
      model.dispose();
    });

    it('a Fixup ResNet starts with zero logits and zero last-layer branches, yet every branch gets a gradient', () => {
      const model = nk.buildFixupResNet({ inputShape: [8, 8, 3], classes: 5, stages: [{ units: 8, blocks: 2 }, { units: 16, blocks: 1 }], mode: 'fixup', seed: 1 });
      const x = tf.tensor(randn(2 * 64 * 3, 30), [2, 8, 8, 3]);
      tf.tidy(() => assert.ok(f64(model.predict(x) as tf.Tensor).every((v) => v === 0), 'logits are 0'));
      const conv2 = model.weights.filter((w) => /_conv2\/kernel$/.test(w.originalName));
      assert.equal(conv2.length, 3);
      assert.ok(conv2.every((w) => f64(w.read()).every((v) => v === 0)));
      const conv1 = model.weights.find((w) => w.originalName === 'stage0_block0_conv1/kernel')!;
      assertClose([populationStd(conv1.read().dataSync())], [Math.sqrt(2 / (9 * 8)) / Math.sqrt(3)], { rtol: 0.15 }, 'conv1 std, L = 3');
      const y = tf.oneHot(tf.tensor([1, 3], [2], 'int32'), 5);
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const { grads, value } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar, vars);
      const norm = (n: string) => f64(grads[(model.trainableWeights.find((w) => w.originalName === n)!.read() as tf.Variable).name]).reduce((s, v) => s + v * v, 0);
      assert.ok(norm('classifier/kernel') > 0, 'classifier gets a gradient');
      // With a zero classifier, branch weights get gradient from the second step on: take one SGD step first.
      tf.train.sgd(0.1).applyGradients(grads);
      const second = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar, vars);
      for (const w of conv2) assert.ok(f64(second.grads[(w.read() as tf.Variable).name]).some((v) => v !== 0), `${w.originalName} gets a gradient`);
      tf.dispose([x, y, value, ...Object.values(grads), second.value, ...Object.values(second.grads)]);
      model.dispose();
    });
  });

  describe('SkipInit', () => {
    it('each block is the identity at init (branch gain 0) and the gain gets a gradient', () => {
      const model = blockModel('skipinit', 6, 6);
      const xv = randn(18, 40).map(Math.abs); // post-ReLU inputs, as inside a ResNet
      tf.tidy(() => {
        const x = tf.tensor(xv, [3, 6]);
        assert.deepEqual(Array.from((model.predict(x) as tf.Tensor).dataSync()), Array.from(x.dataSync()));
        const g = model.trainableWeights.find((w) => w.originalName === 'b_skip_gain/gain')!.read() as tf.Variable;
        const { grads } = tf.variableGrads(() => tf.sum(tf.square(model.apply(x) as tf.Tensor)) as tf.Scalar, [g]);
        assert.ok(Math.abs(f64(grads[g.name])[0]) > 0);
      });
      model.dispose();
    });
  });

  describe('buildFixupResNet', () => {
    for (const mode of ['fixup', 'skipinit'] as const) {
      it(`${mode}: trains with model.fit without leaking, and saves/loads`, async () => {
        const model = nk.buildFixupResNet({ inputShape: [6, 6, 2], classes: 3, stages: [{ units: 4, blocks: 1 }, { units: 8, blocks: 1 }], mode, seed: 2 });
        // The classifier outputs logits.
        model.compile({ optimizer: tf.train.sgd(0.05), loss: (yt: tf.Tensor, yp: tf.Tensor) => tf.losses.softmaxCrossEntropy(yt, yp) });
        const xs = tf.tensor(randn(4 * 72, 50), [4, 6, 6, 2]);
        const ys = tf.oneHot(tf.tensor([0, 1, 2, 1], [4], 'int32'), 3);
        const loaded = await assertModelTrainsAndReloads(model, xs, ys);
        tf.dispose([xs, ys]);
        model.dispose();
        loaded.dispose();
      });
    }

    it('rejects bad configs', () => {
      assertThrowsMentioning(() => nk.buildFixupResNet({ inputShape: [4, 4], classes: 2, stages: [{ units: 2, blocks: 1 }], mode: 'fixup' }), ["'inputShape'"]);
      assertThrowsMentioning(() => nk.buildFixupResNet({ inputShape: [4], classes: 2, stages: [], mode: 'fixup' }), ["'stages'"]);
      assertThrowsMentioning(() => nk.buildFixupResNet({ inputShape: [4], classes: 2, stages: [{ units: 2, blocks: 1 }], mode: 'bn' as never }), ["'mode'"]);
      const input = tfl.input({ shape: [3] });
      assertThrowsMentioning(() => nk.residualBlock(input, { mode: 'fixup', kind: 'dense', units: 3, stride: 2, branches: 1, name: 'x' }), ["'stride'"]);
    });
  });
});
for (const [mode, initValue] of [['gain', 0.5], ['bias', -2]] as const) {
  runLayerTest(nk.ScalarAffine, { label: mode, make: () => new nk.ScalarAffine({ mode, initValue }), inputShape: [3, 4], trainable: 1, nonTrainable: 0,
    weights: [[mode, []]], supportsMasking: false });
}
