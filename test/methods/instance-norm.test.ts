import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, randn } from '../helpers/numeric.js';
import { assertForwardAndGradient, assertGradMatchesFiniteDifferences, assertOpNoLeak } from '../helpers/op-checks.js';
import { assertModelFitWithoutLeak } from '../helpers/layer-roundtrip.js';
import { refNormalize, refNormalizeBackward } from '../helpers/reference.js';
import { KERAS_AFFINE_CONFIG, kerasSequentialArtifacts } from '../helpers/layer-io.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
/** Instance statistics of channels-last input: every axis but batch (0) and channels (last). */
const spatial = (shape: number[]) => shape.map((_, i) => i).slice(1, -1);

describe('instanceNorm float64 reference', () => {
  it('normalizes each (n, c) over the spatial axes', () => {
    // [N=1, L=2, C=2]: channel 0 holds (1, 3), channel 1 holds (10, 10).
    const y = refNormalize([1, 10, 3, 10], [1, 2, 2], [1], 0.25).y;
    assertClose(y, [-1 / Math.sqrt(1.25), 0, 1 / Math.sqrt(1.25), 0], { atol: 1e-12 }, 'y');
  });
});

forEachBackend(() => {
  describe('instanceNorm op', () => {
    const shapes = [[2, 3, 4, 5], [3, 7, 2], [2, 2, 1, 3, 2]];
    for (const shape of shapes) {
      const c = shape[shape.length - 1];
      const axes = spatial(shape);
      const paramAxes = [shape.length - 1];
      it(`forward matches float64 reference, shape [${shape}]`, () => {
        const xv = randn(size(shape), 10);
        const gv = randn(c, 11, 1, 0.5);
        const bv = randn(c, 12);
        const expected = refNormalize(xv, shape, axes, 1e-5, { gamma: gv, beta: bv, paramAxes }).y;
        tf.tidy(() => {
          const y = nk.instanceNorm(tf.tensor(xv, shape), { gamma: tf.tensor(gv, [c]), beta: tf.tensor(bv, [c]) });
          assert.deepEqual(y.shape, shape);
          assertClose(f64(y), expected, { atol: 2e-5, rtol: 2e-5 }, 'y');
        });
      });

      it(`gradients match float64 reference, shape [${shape}]`, () => {
        const xv = randn(size(shape), 20);
        const dyv = randn(size(shape), 21);
        const gv = randn(c, 22, 1, 0.5);
        const ref = refNormalizeBackward(xv, dyv, shape, axes, 1e-5, { gamma: gv, paramAxes });
        tf.tidy(() => {
          const dy = tf.tensor(dyv, shape);
          const grads = tf.grads((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(nk.instanceNorm(x, { gamma: g, beta: b }), dy)));
          const [dx, dg, db] = grads([tf.tensor(xv, shape), tf.tensor(gv, [c]), tf.zeros([c])]);
          assertClose(f64(dx), ref.dx, { atol: 1e-4, rtol: 1e-4 }, 'dx');
          assertClose(f64(dg), ref.dgamma, { atol: 1e-4, rtol: 1e-4 }, 'dgamma');
          assertClose(f64(db), ref.dbeta, { atol: 1e-4, rtol: 1e-4 }, 'dbeta');
        });
      });
    }

    it('takes the channel axis from axis (channels first, axis 1)', () => {
      const shape = [2, 3, 4]; // [N, C, L]
      const xv = randn(size(shape), 14);
      const expected = refNormalize(xv, shape, [2], 1e-5).y;
      tf.tidy(() => assertClose(f64(nk.instanceNorm(tf.tensor(xv, shape), { axis: 1 })), expected, { atol: 2e-5, rtol: 2e-5 }, 'y'));
    });

    it('gradient matches finite differences of the op itself', () => {
      assertGradMatchesFiniteDifferences((x) => nk.instanceNorm(x, { epsilon: 1e-2 }), [2, 4, 3], randn(24, 30), randn(24, 31));
    });

    it('is exact on a large common offset (mean 1e4, std 1e-2)', () => {
      const shape = [2, 8, 8, 3];
      const xv = randn(size(shape), 40, 1e4, 1e-2);
      const dyv = randn(size(shape), 41);
      const expected = { y: refNormalize(xv, shape, [1, 2], 1e-5).y, dx: refNormalizeBackward(xv, dyv, shape, [1, 2], 1e-5).dx };
      assertForwardAndGradient((x) => nk.instanceNorm(x), shape, xv, dyv, expected, { y: { atol: 1e-4, rtol: 1e-4 }, dx: { atol: 1e-2, rtol: 1e-3 } });
    });

    it('maps constant channels to beta, with finite gradients', () => {
      const shape = [2, 5, 3];
      const xv = new Float32Array(30).fill(-3.5);
      const bv = randn(3, 50);
      const dyv = randn(30, 51);
      tf.tidy(() => {
        const y = nk.instanceNorm(tf.tensor(xv, shape), { beta: tf.tensor(bv, [3]) });
        assertClose(f64(y), new Float64Array(30).map((_, i) => bv[i % 3]), { atol: 1e-6 }, 'y');
        const dx = f64(tf.grad((x: tf.Tensor) => tf.sum(tf.mul(nk.instanceNorm(x), tf.tensor(dyv, shape))))(tf.tensor(xv, shape)));
        assert.ok(dx.every(Number.isFinite), 'finite gradient');
        assertClose(dx, refNormalizeBackward(xv, dyv, shape, [1], 1e-5).dx, { atol: 1e-2, rtol: 1e-4 }, 'dx');
      });
    });

    it('holds on magnitudes from 1e-20 to 1e15', () => {
      for (const scale of [1e-20, 1e-10, 1e-3, 1, 1e6, 1e15]) {
        const shape = [2, 16, 4];
        const xv = randn(size(shape), 60).map((v) => v * scale);
        const expected = refNormalize(xv, shape, [1], 1e-5).y;
        tf.tidy(() => assertClose(f64(nk.instanceNorm(tf.tensor(xv, shape))), expected, { atol: 1e-25, rtol: 1e-4 }, `y at scale ${scale}`));
      }
    });

    it('refuses a spatial size of 1 (the output would be beta whatever the input)', () => {
      const x = tf.zeros([2, 1, 1, 3]);
      assertThrowsMentioning(() => nk.instanceNorm(x), ['instanceNorm', "'x'", 'more than one spatial element', '[2, 1, 1, 3]']);
      x.dispose();
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3, 4]);
      assertThrowsMentioning(() => nk.instanceNorm(tf.zeros([2, 4])), ["'x'", 'rank >= 3']);
      assertThrowsMentioning(() => nk.instanceNorm(tf.zeros([2, 3, 4], 'int32')), ["'x'", 'float32', 'int32']);
      assertThrowsMentioning(() => nk.instanceNorm(x, { axis: 0 }), ["'axis'", 'batch']);
      assertThrowsMentioning(() => nk.instanceNorm(x, { axis: -4 }), ["'axis'", '-4']);
      assertThrowsMentioning(() => nk.instanceNorm(x, { gamma: tf.ones([3]) }), ["'gamma'", '[4]', '[3]']);
      assertThrowsMentioning(() => nk.instanceNorm(x, { beta: tf.ones([1, 4]) }), ["'beta'", '[4]']);
      assertThrowsMentioning(() => nk.instanceNorm(x, { epsilon: -1e-5 }), ["'epsilon'", '> 0']);
      assertThrowsMentioning(() => nk.instanceNorm(x, { groups: 2 } as never), ["'groups'"]);
      x.dispose();
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(24, 70), [2, 3, 4]);
      const g = tf.ones([4]);
      await assertOpNoLeak((a, b) => nk.instanceNorm(a, { gamma: b }), x, g);
      x.dispose();
      g.dispose();
    });
  });
});

forEachBackend(() => {
  describe('InstanceNormalization layer', () => {
    it('works in a functional tf.model', () => {
      const input = tfl.input({ shape: [3, 4] });
      const output = new nk.InstanceNormalization().apply(input) as tfl.SymbolicTensor;
      assert.deepEqual(output.shape, [null, ...[3, 4]]);
      const model = tfl.model({ inputs: input, outputs: output });
      const xv = randn(24, 95);
      tf.tidy(() => assertClose(f64(model.predict(tf.tensor(xv, [2, 3, 4])) as tf.Tensor), refNormalize(xv, [2, 3, 4], [1], 1e-3).y, { atol: 2e-5, rtol: 2e-5 }, 'y'));
      model.dispose();
    });

    it('uses Addons defaults and weight names, matches the reference, and trains in model.fit without leaking', async () => {
      const model = tfl.sequential();
      model.add(tfl.layers.dense({ units: 4, inputShape: [4, 4, 2] }));
      model.add(new nk.InstanceNormalization());
      model.add(tfl.layers.flatten());
      model.add(tfl.layers.dense({ units: 1 }));
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      const inorm = model.layers[1] as nk.InstanceNormalization;
      assert.deepEqual(inorm.weights.map((w) => w.originalName.split('/').pop()), ['gamma', 'beta']);
      assert.equal(inorm.epsilon, 1e-3);
      const gv = randn(4, 82, 1, 0.5);
      const bv = randn(4, 83);
      inorm.setWeights([tf.tensor(gv, [4]), tf.tensor(bv, [4])]);
      const shape = [2, 4, 4, 4];
      const hv = randn(size(shape), 84);
      const h = tf.tensor(hv, shape);
      await assertNoLeak(() => (inorm.apply(h) as tf.Tensor).dispose(), 'layer call');
      tf.tidy(() => assertClose(f64(inorm.apply(h) as tf.Tensor), refNormalize(hv, shape, [1, 2], 1e-3, { gamma: gv, beta: bv }).y, { atol: 2e-5, rtol: 2e-5 }, 'y'));
      const xs = tf.tensor(randn(4 * 32, 80), [4, 4, 4, 2]);
      const ys = tf.tensor(randn(4, 81), [4, 1]);
      await assertModelFitWithoutLeak(model, xs, ys, { batchSize: 2 });
      tf.dispose([xs, ys, h]);
      model.dispose();
    });

    it('has no affine and eps 1e-5 under the PyTorch convention (InstanceNorm2d defaults)', () => {
      const layer = new nk.InstanceNormalization({ convention: 'pytorch' });
      assert.equal(layer.epsilon, 1e-5);
      const xv = randn(30, 91);
      tf.tidy(() => {
        const y = layer.apply(tf.tensor(xv, [2, 5, 3])) as tf.Tensor;
        assert.equal(layer.weights.length, 0);
        assertClose(f64(y), refNormalize(xv, [2, 5, 3], [1], 1e-5).y, { atol: 2e-5, rtol: 2e-5 }, 'y');
      });
    });

    it('loads a TensorFlow Addons InstanceNormalization model.json (groups key ignored)', async () => {
      const gv = randn(4, 88, 1, 0.5);
      const bv = randn(4, 89);
      const config = { name: 'instance_normalization', groups: 4, axis: -1, epsilon: 0.001, ...KERAS_AFFINE_CONFIG };
      const artifacts = kerasSequentialArtifacts('Addons>InstanceNormalization', config, [null, 3, 3, 4], [
        { name: 'instance_normalization/gamma', shape: [4], values: gv },
        { name: 'instance_normalization/beta', shape: [4], values: bv },
      ]);
      const model = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
      assert.ok(model.layers[0] instanceof nk.InstanceNormalization);
      const shape = [2, 3, 3, 4];
      const xv = randn(size(shape), 90);
      tf.tidy(() => {
        const y = model.predict(tf.tensor(xv, shape)) as tf.Tensor;
        assertClose(f64(y), refNormalize(xv, shape, [1, 2], 1e-3, { gamma: gv, beta: bv }).y, { atol: 2e-5, rtol: 2e-5 }, 'y');
      });
      model.dispose();
    });

    it('is what the registry builds for "instance"', () => {
      const layer = nk.createNorm('instance', { epsilon: 1e-4 });
      assert.ok(layer instanceof nk.InstanceNormalization);
      assert.equal((layer as nk.InstanceNormalization).epsilon, 1e-4);
      assert.ok(nk.listNorms().some((e) => e.name === 'instance' && e.hasLayer));
    });

    it('rejects bad arguments and a spatial size of 1 when built', () => {
      assertThrowsMentioning(() => new nk.InstanceNormalization({ axis: 0 }), ['InstanceNormalization', "'axis'", 'batch']);
      assertThrowsMentioning(() => new nk.InstanceNormalization({ epsilon: 0 }), ["'epsilon'"]);
      assertThrowsMentioning(() => new nk.InstanceNormalization().build([null, 8]), ["'inputShape'", 'rank >= 3']);
      assertThrowsMentioning(() => new nk.InstanceNormalization().build([null, 1, 1, 8]), ["'x'", 'more than one spatial element']);
      const layer = new nk.InstanceNormalization();
      layer.build([null, null, 3]);
      const x = tf.zeros([2, 1, 3]);
      assertThrowsMentioning(() => layer.apply(x), ["'x'", 'more than one spatial element']);
      x.dispose();
    });
  });
});

runLayerTest(nk.InstanceNormalization, { make: () => new nk.InstanceNormalization({ epsilon: 1e-4 }), inputShape: [3, 3, 4], trainable: 2, nonTrainable: 0,
  weights: [['gamma', [4]], ['beta', [4]]], supportsMasking: true });
runLayerTest(nk.InstanceNormalization, { label: 'axis 1, pytorch convention', make: () => new nk.InstanceNormalization({ axis: 1, convention: 'pytorch', scale: true, gammaInitializer: 'glorotUniform' }),
  inputShape: [5, 3], trainable: 1, nonTrainable: 0, weights: [['gamma', [5]]], supportsMasking: true });
