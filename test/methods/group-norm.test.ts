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

/**
 * The float64 reference view of group normalization: the channel axis (last) of `shape` is split into
 * [G, C/G] (a row-major view, so flat indices are unchanged); each slice is one (n, g) pair, reduced over
 * every axis but the batch axis and the group axis; gamma/beta index the channel g * C/G + j.
 */
function groupedView(shape: number[], groups: number): { shape: number[]; axes: number[]; paramAxes: number[] } {
  const c = shape[shape.length - 1];
  const grouped = [...shape.slice(0, -1), groups, c / groups];
  const g = grouped.length - 2;
  const axes = grouped.map((_, i) => i).filter((i) => i !== 0 && i !== g);
  return { shape: grouped, axes, paramAxes: [g, g + 1] };
}

function refGroupNorm(x: ArrayLike<number>, shape: number[], groups: number, eps: number, gamma?: ArrayLike<number>, beta?: ArrayLike<number>) {
  const v = groupedView(shape, groups);
  return refNormalize(x, v.shape, v.axes, eps, { gamma, beta, paramAxes: v.paramAxes });
}

function refGroupNormBackward(x: ArrayLike<number>, dy: ArrayLike<number>, shape: number[], groups: number, eps: number, gamma?: ArrayLike<number>) {
  const v = groupedView(shape, groups);
  return refNormalizeBackward(x, dy, v.shape, v.axes, eps, { gamma, paramAxes: v.paramAxes });
}

describe('groupNorm float64 reference', () => {
  it('its grouped view puts contiguous channel blocks of every position of a sample in one slice', () => {
    // [N=1, H=2, C=4], G=2: channels {0,1} and {2,3} of both positions; flat indices 0,1,4,5 and 2,3,6,7.
    const x = [1, 2, 10, 20, 3, 4, 30, 40];
    const y = refGroupNorm(x, [1, 2, 4], 2, 0).y;
    const expectBlock = (vals: number[]) => {
      const m = vals.reduce((a, b) => a + b) / vals.length;
      const s = Math.sqrt(vals.reduce((a, b) => a + (b - m) ** 2, 0) / vals.length);
      return vals.map((v) => (v - m) / s);
    };
    const a = expectBlock([1, 2, 3, 4]);
    const b = expectBlock([10, 20, 30, 40]);
    assertClose(y, [a[0], a[1], b[0], b[1], a[2], a[3], b[2], b[3]], { atol: 1e-12 }, 'y');
  });
});

forEachBackend(() => {
  describe('groupNorm op', () => {
    const cases: Array<{ shape: number[]; groups: number }> = [
      { shape: [2, 3, 3, 8], groups: 4 },
      { shape: [3, 6], groups: 2 },
      { shape: [2, 5, 6], groups: 1 },
      { shape: [2, 2, 2, 4], groups: 4 },
      { shape: [2, 4, 6], groups: -1 },
    ];
    for (const { shape, groups } of cases) {
      const g = groups === -1 ? shape[shape.length - 1] : groups;
      const c = shape[shape.length - 1];
      it(`forward matches float64 reference, shape [${shape}] groups ${groups}`, () => {
        const xv = randn(size(shape), 10);
        const gv = randn(c, 11, 1, 0.5);
        const bv = randn(c, 12);
        const expected = refGroupNorm(xv, shape, g, 1e-5, gv, bv).y;
        tf.tidy(() => {
          const y = nk.groupNorm(tf.tensor(xv, shape), { groups, gamma: tf.tensor(gv, [c]), beta: tf.tensor(bv, [c]) });
          assert.deepEqual(y.shape, shape);
          assertClose(f64(y), expected, { atol: 2e-5, rtol: 2e-5 }, 'y');
        });
      });

      it(`gradients match float64 reference, shape [${shape}] groups ${groups}`, () => {
        const xv = randn(size(shape), 20);
        const dyv = randn(size(shape), 21);
        const gv = randn(c, 22, 1, 0.5);
        const ref = refGroupNormBackward(xv, dyv, shape, g, 1e-5, gv);
        tf.tidy(() => {
          const dy = tf.tensor(dyv, shape);
          const grads = tf.grads((x: tf.Tensor, ga: tf.Tensor, be: tf.Tensor) => tf.sum(tf.mul(nk.groupNorm(x, { groups, gamma: ga, beta: be }), dy)));
          const [dx, dg, db] = grads([tf.tensor(xv, shape), tf.tensor(gv, [c]), tf.zeros([c])]);
          assertClose(f64(dx), ref.dx, { atol: 1e-4, rtol: 1e-4 }, 'dx');
          assertClose(f64(dg), ref.dgamma, { atol: 1e-4, rtol: 1e-4 }, 'dgamma');
          assertClose(f64(db), ref.dbeta, { atol: 1e-4, rtol: 1e-4 }, 'dbeta');
        });
      });
    }

    it('normalizes channels-first input with axis 1 like channels-last input', () => {
      const shape = [2, 4, 3]; // [N, C, L]
      const xv = randn(size(shape), 15);
      // The same data laid out channels last: [N, L, C].
      const xt = new Float32Array(xv.length);
      for (let n = 0; n < 2; n++) for (let ch = 0; ch < 4; ch++) for (let l = 0; l < 3; l++) xt[n * 12 + l * 4 + ch] = xv[n * 12 + ch * 3 + l];
      const ref = refGroupNorm(xt, [2, 3, 4], 2, 1e-5).y;
      tf.tidy(() => {
        const y = f64(tf.transpose(nk.groupNorm(tf.tensor(xv, shape), { groups: 2, axis: 1 }), [0, 2, 1]));
        assertClose(y, ref, { atol: 2e-5, rtol: 2e-5 }, 'y');
      });
    });

    it('gradient matches finite differences of the op itself', () => {
      assertGradMatchesFiniteDifferences((x) => nk.groupNorm(x, { groups: 2, epsilon: 1e-2 }), [2, 3, 4], randn(24, 30), randn(24, 31));
    });

    it('is exact on a large common offset (mean 1e4, std 1e-2)', () => {
      const shape = [2, 8, 8, 4];
      const xv = randn(size(shape), 40, 1e4, 1e-2);
      const dyv = randn(size(shape), 41);
      const expected = { y: refGroupNorm(xv, shape, 2, 1e-5).y, dx: refGroupNormBackward(xv, dyv, shape, 2, 1e-5).dx };
      assertForwardAndGradient((x) => nk.groupNorm(x, { groups: 2 }), shape, xv, dyv, expected, { y: { atol: 1e-4, rtol: 1e-4 }, dx: { atol: 1e-2, rtol: 1e-3 } });
    });

    it('maps constant groups to beta, with finite gradients', () => {
      const shape = [2, 3, 4];
      const xv = new Float32Array(24).fill(7.25);
      const bv = randn(4, 50);
      const dyv = randn(24, 51);
      tf.tidy(() => {
        const y = nk.groupNorm(tf.tensor(xv, shape), { groups: 2, beta: tf.tensor(bv, [4]) });
        assertClose(f64(y), new Float64Array(24).map((_, i) => bv[i % 4]), { atol: 1e-6 }, 'y');
        const dx = f64(tf.grad((x: tf.Tensor) => tf.sum(tf.mul(nk.groupNorm(x, { groups: 2 }), tf.tensor(dyv, shape))))(tf.tensor(xv, shape)));
        assert.ok(dx.every(Number.isFinite), 'finite gradient');
        assertClose(dx, refGroupNormBackward(xv, dyv, shape, 2, 1e-5).dx, { atol: 1e-2, rtol: 1e-4 }, 'dx');
      });
    });

    it('holds on magnitudes from 1e-20 to 1e15', () => {
      for (const scale of [1e-20, 1e-10, 1e-3, 1, 1e6, 1e15]) {
        const shape = [2, 4, 8];
        const xv = randn(size(shape), 60).map((v) => v * scale);
        const expected = refGroupNorm(xv, shape, 2, 1e-5).y;
        tf.tidy(() => assertClose(f64(nk.groupNorm(tf.tensor(xv, shape), { groups: 2 })), expected, { atol: 1e-25, rtol: 1e-4 }, `y at scale ${scale}`));
      }
    });

    it('handles groups of one element (output is beta, gradient is zero)', () => {
      tf.tidy(() => {
        const x = tf.tensor([[3, -1], [1e6, 2]]);
        const y = nk.groupNorm(x, { groups: 2, beta: tf.tensor([0.5, -1]) });
        assertClose(f64(y), [0.5, -1, 0.5, -1], { atol: 1e-6 }, 'y');
        const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(nk.groupNorm(v, { groups: -1 }), tf.tensor([[1, 2], [3, 4]]))))(x);
        assertClose(f64(dx), [0, 0, 0, 0], { atol: 1e-6 }, 'dx');
      });
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3, 6]);
      assertThrowsMentioning(() => nk.groupNorm(x, { groups: 4 }), ['groupNorm', "'groups'", 'divisor of the 6 channels', '4']);
      assertThrowsMentioning(() => nk.groupNorm(x, { groups: 12 }), ["'groups'", '12']);
      assertThrowsMentioning(() => nk.groupNorm(x, { groups: 0 }), ["'groups'", '>= 1']);
      assertThrowsMentioning(() => nk.groupNorm(x, { groups: 1.5 }), ["'groups'"]);
      assertThrowsMentioning(() => nk.groupNorm(x, {} as never), ["'groups'"]);
      assertThrowsMentioning(() => nk.groupNorm(x, undefined as never), ["'groups'"]);
      assertThrowsMentioning(() => nk.groupNorm(tf.zeros([6]), { groups: 2 }), ["'x'", 'rank >= 2']);
      assertThrowsMentioning(() => nk.groupNorm(tf.zeros([2, 6], 'int32'), { groups: 2 }), ["'x'", 'float32']);
      assertThrowsMentioning(() => nk.groupNorm(x, { groups: 2, axis: 0 }), ["'axis'", 'batch']);
      assertThrowsMentioning(() => nk.groupNorm(x, { groups: 2, axis: 3 }), ["'axis'", '3']);
      assertThrowsMentioning(() => nk.groupNorm(x, { groups: 2, axis: [1, 2] as never }), ["'axis'", 'one integer']);
      assertThrowsMentioning(() => nk.groupNorm(x, { groups: 2, gamma: tf.ones([3]) }), ["'gamma'", '[6]', '[3]']);
      assertThrowsMentioning(() => nk.groupNorm(x, { groups: 2, beta: tf.ones([6, 1]) }), ["'beta'", '[6]']);
      assertThrowsMentioning(() => nk.groupNorm(x, { groups: 2, epsilon: 0 }), ["'epsilon'", '> 0']);
      assertThrowsMentioning(() => nk.groupNorm(x, { groups: 2, epsilion: 1 } as never), ["'epsilion'"]);
      x.dispose();
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(24, 70), [2, 3, 4]);
      const g = tf.ones([4]);
      await assertOpNoLeak((a, b) => nk.groupNorm(a, { groups: 2, gamma: b }), x, g);
      x.dispose();
      g.dispose();
    });
  });
});

forEachBackend(() => {
  describe('GroupNormalization layer', () => {
    it('works in a functional tf.model', () => {
      const input = tfl.input({ shape: [3, 4] });
      const output = new nk.GroupNormalization({ groups: 2 }).apply(input) as tfl.SymbolicTensor;
      assert.deepEqual(output.shape, [null, ...[3, 4]]);
      const model = tfl.model({ inputs: input, outputs: output });
      const xv = randn(24, 95);
      tf.tidy(() => assertClose(f64(model.predict(tf.tensor(xv, [2, 3, 4])) as tf.Tensor), refGroupNorm(xv, [2, 3, 4], 2, 1e-3).y, { atol: 2e-5, rtol: 2e-5 }, 'y'));
      model.dispose();
    });

    it('uses Keras defaults and weight names, matches the reference, and trains in model.fit without leaking', async () => {
      const model = tfl.sequential();
      model.add(tfl.layers.dense({ units: 8, inputShape: [4, 4, 2] }));
      model.add(new nk.GroupNormalization({ groups: 4 }));
      model.add(tfl.layers.flatten());
      model.add(tfl.layers.dense({ units: 1 }));
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      const gn = model.layers[1] as nk.GroupNormalization;
      assert.deepEqual(gn.weights.map((w) => w.originalName.split('/').pop()), ['gamma', 'beta']);
      assert.equal(gn.epsilon, 1e-3);
      assert.equal(new nk.GroupNormalization().groups, 32);
      const gv = randn(8, 82, 1, 0.5);
      const bv = randn(8, 83);
      gn.setWeights([tf.tensor(gv, [8]), tf.tensor(bv, [8])]);
      const shape = [2, 4, 4, 8];
      const hv = randn(size(shape), 84);
      const h = tf.tensor(hv, shape);
      await assertNoLeak(() => (gn.apply(h) as tf.Tensor).dispose(), 'layer call');
      tf.tidy(() => assertClose(f64(gn.apply(h) as tf.Tensor), refGroupNorm(hv, shape, 4, 1e-3, gv, bv).y, { atol: 2e-5, rtol: 2e-5 }, 'y'));
      const xs = tf.tensor(randn(4 * 32, 80), [4, 4, 4, 2]);
      const ys = tf.tensor(randn(4, 81), [4, 1]);
      await assertModelFitWithoutLeak(model, xs, ys, { batchSize: 2 });
      tf.dispose([xs, ys, h]);
      model.dispose();
    });

    it("takes PyTorch's epsilon with the 'pytorch' convention", () => {
      assert.equal(new nk.GroupNormalization({ groups: -1, convention: 'pytorch' }).epsilon, 1e-5);
    });

    const aliasCases: Array<{ className: string; groups: number; resolved: number }> = [
      { className: 'Addons>GroupNormalization', groups: 2, resolved: 2 },
      { className: 'GroupNormalization', groups: -1, resolved: 4 },
      { className: 'GroupNormalization', groups: 1, resolved: 1 },
    ];
    for (const { className, groups, resolved } of aliasCases) {
      it(`loads a Keras model.json with ${className} (groups ${groups})`, async () => {
        const gv = randn(4, 88, 1, 0.5);
        const bv = randn(4, 89);
        const config = { name: 'group_normalization', groups, axis: -1, epsilon: 0.001, ...KERAS_AFFINE_CONFIG };
        const artifacts = kerasSequentialArtifacts(className, config, [null, 3, 3, 4], [
          { name: 'group_normalization/gamma', shape: [4], values: gv },
          { name: 'group_normalization/beta', shape: [4], values: bv },
        ]);
        const model = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
        assert.ok(model.layers[0] instanceof nk.GroupNormalization);
        const shape = [2, 3, 3, 4];
        const xv = randn(size(shape), 90);
        tf.tidy(() => {
          const y = model.predict(tf.tensor(xv, shape)) as tf.Tensor;
          assertClose(f64(y), refGroupNorm(xv, shape, resolved, 1e-3, gv, bv).y, { atol: 2e-5, rtol: 2e-5 }, 'y');
        });
        model.dispose();
      });
    }

    it('takes the TensorFlow Addons default of 2 groups when an Addons config omits groups', async () => {
      const config = { name: 'gn', axis: -1, epsilon: 0.001, ...KERAS_AFFINE_CONFIG, center: false, scale: false };
      const model = await tfl.loadLayersModel(tf.io.fromMemory(kerasSequentialArtifacts('Addons>GroupNormalization', config, [null, 2, 4], [])));
      assert.equal((model.layers[0] as nk.GroupNormalization).groups, 2);
      model.dispose();
    });

    it('is what the registry builds for "group"', () => {
      const layer = nk.createNorm('gn', { groups: 8 });
      assert.ok(layer instanceof nk.GroupNormalization);
      assert.equal((layer as nk.GroupNormalization).groups, 8);
    });

    it('rejects bad arguments when constructed or built', () => {
      assertThrowsMentioning(() => new nk.GroupNormalization({ groups: 0 }), ['GroupNormalization', "'groups'", '-1']);
      assertThrowsMentioning(() => new nk.GroupNormalization({ groups: 2, axis: 0 }), ["'axis'", 'batch']);
      assertThrowsMentioning(() => new nk.GroupNormalization({ epsilon: -1 }), ["'epsilon'"]);
      assertThrowsMentioning(() => new nk.GroupNormalization({ groups: 3 }).build([null, 4, 8]), ["'groups'", 'divisor of the 8 channels']);
      assertThrowsMentioning(() => new nk.GroupNormalization().build([null, 4, 16]), ["'groups'", '32']);
      assertThrowsMentioning(() => new nk.GroupNormalization({ groups: 1 }).build([null, null]), ["'inputShape'", 'channel']);
    });
  });
});

runLayerTest(nk.GroupNormalization, { make: () => new nk.GroupNormalization({ groups: 2, epsilon: 1e-4 }), inputShape: [3, 4], trainable: 2, nonTrainable: 0,
  weights: [['gamma', [4]], ['beta', [4]]], supportsMasking: true });
runLayerTest(nk.GroupNormalization, { label: 'groups -1, pytorch convention', make: () => new nk.GroupNormalization({ groups: -1, convention: 'pytorch', gammaInitializer: 'glorotUniform', center: false }),
  inputShape: [3, 4], trainable: 1, nonTrainable: 0, weights: [['gamma', [4]]], supportsMasking: true });
