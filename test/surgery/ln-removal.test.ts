import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

const D = 6;

/** float64 per-row LN pieces: centered rows and sqrt(var + eps). */
function rows(x: ArrayLike<number>, eps: number): { centered: Float64Array; std: number[] } {
  const n = x.length / D;
  const centered = new Float64Array(x.length);
  const std: number[] = [];
  for (let r = 0; r < n; r++) {
    let m = 0;
    for (let j = 0; j < D; j++) m += x[r * D + j];
    m /= D;
    let v = 0;
    for (let j = 0; j < D; j++) v += (x[r * D + j] - m) ** 2;
    std.push(Math.sqrt(v / D + eps));
    for (let j = 0; j < D; j++) centered[r * D + j] = x[r * D + j] - m;
  }
  return { centered, std };
}

function affine(y: Float64Array, gamma: ArrayLike<number>, beta: ArrayLike<number>): Float64Array {
  return y.map((v, i) => v * gamma[i % D] + beta[i % D]);
}

forEachBackend(() => {
  describe('FakeLayerNormalization', () => {
    const xv = randn(4 * D, 1, 3, 2);
    const gv = randn(D, 2, 1, 0.3);
    const bv = randn(D, 3);

    function layerWithWeights(): nk.FakeLayerNormalization {
      const layer = new nk.FakeLayerNormalization({ momentum: 0.75 });
      layer.build([null, D]);
      layer.setWeights([tf.tensor(gv), tf.tensor(bv), tf.tensor([-1]), tf.tensor([1])]);
      return layer;
    }

    it('is LayerNorm in real mode and tracks the mean per-token std with an EMA in training calls only', () => {
      const layer = layerWithWeights();
      const { centered, std } = rows(xv, 1e-5);
      const expected = affine(centered.map((v, i) => v / std[Math.floor(i / D)]), gv, bv);
      tf.tidy(() => {
        const x = tf.tensor(xv, [4, D]);
        assertClose(f64(layer.apply(x) as tf.Tensor), expected, { atol: 1e-5, rtol: 1e-5 }, 'real mode');
        assert.equal(layer.currentStdEstimate(), -1, 'inference calls do not update');
        layer.apply(x, { training: true });
        const batchStd = std.reduce((a, b) => a + b, 0) / std.length;
        assertClose([layer.currentStdEstimate()], [batchStd], { rtol: 1e-5 }, 'first estimate');
        const x2v = randn(4 * D, 4, 0, 5);
        const std2 = rows(x2v, 1e-5).std;
        layer.apply(tf.tensor(x2v, [4, D]), { training: true });
        assertClose([layer.currentStdEstimate()], [0.75 * batchStd + 0.25 * (std2.reduce((a, b) => a + b, 0) / 4)], { rtol: 1e-5 }, 'EMA');
      });
    });

    it('holds on a large common offset (mean 1e4, std 1e-2) and on constant rows, in both modes', () => {
      const layer = new nk.FakeLayerNormalization({ scale: false, center: false, epsilon: 1e-5 });
      layer.build([null, D]);
      const xv = randn(4 * D, 12, 1e4, 1e-2);
      for (let j = 0; j < D; j++) xv[3 * D + j] = 7.25; // a constant row
      const { centered, std } = rows(xv, 1e-5);
      tf.tidy(() => {
        const x = tf.tensor(xv, [4, D]);
        assertClose(f64(layer.apply(x, { training: true }) as tf.Tensor), centered.map((v, i) => v / std[Math.floor(i / D)]), { atol: 1e-3, rtol: 1e-3 }, 'real mode');
        const c = std.reduce((a, b) => a + b, 0) / 4;
        assertClose([layer.currentStdEstimate()], [c], { rtol: 1e-3 }, 'estimate');
        layer.switchToFake();
        assertClose(f64(layer.apply(x) as tf.Tensor), centered.map((v) => v / c), { atol: 1e-3, rtol: 1e-3 }, 'fake mode');
      });
    });

    it('divides by the frozen constant in fake mode, and its gradient matches finite differences', () => {
      const layer = layerWithWeights();
      tf.tidy(() => {
        layer.apply(tf.tensor(xv, [4, D]), { training: true });
      });
      layer.switchToFake();
      const c = layer.frozenStd();
      assert.equal(layer.fake, true);
      const { centered } = rows(xv, 1e-5);
      tf.tidy(() => {
        const x = tf.tensor(xv, [4, D]);
        assertClose(f64(layer.apply(x) as tf.Tensor), affine(centered.map((v) => v / c), gv, bv), { atol: 1e-5, rtol: 1e-5 }, 'fake mode');
        // Training calls in fake mode leave the constant alone.
        layer.apply(x, { training: true });
        assert.equal(layer.frozenStd(), c);
        const dy = randn(4 * D, 9);
        const loss = (v: Float64Array) => affine(rows(v, 1e-5).centered.map((u) => u / c), gv, bv).reduce((s, y, i) => s + y * dy[i], 0);
        const fd = finiteDifference(loss, Float64Array.from(xv));
        const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(layer.apply(t) as tf.Tensor, tf.tensor(dy, [4, D]))))(x);
        assertClose(f64(dx), fd, { atol: 1e-4, rtol: 1e-4 }, 'dx');
      });
    });

    it('with firstPosition, gives position 0 its own estimate and constant until merged (float64)', () => {
      const layer = new nk.FakeLayerNormalization({ momentum: 0.5, firstPosition: true, scale: false, center: false });
      layer.build([null, 3, D]);
      const xv = randn(2 * 3 * D, 30, 1, 3);
      const { centered, std } = rows(xv, 1e-5); // rows in order (b, t)
      const firstStd = (std[0] + std[3]) / 2;
      const restStd = (std[1] + std[2] + std[4] + std[5]) / 4;
      tf.tidy(() => {
        const x = tf.tensor(xv, [2, 3, D]);
        layer.apply(x, { training: true });
        assertClose([layer.currentFirstStdEstimate(), layer.currentStdEstimate()], [firstStd, restStd], { rtol: 1e-5 }, 'estimates');
        layer.switchToFake();
        const divisor = (i: number) => (Math.floor(i / D) % 3 === 0 ? firstStd : restStd);
        assertClose(f64(layer.apply(x) as tf.Tensor), centered.map((v, i) => v / divisor(i)), { atol: 1e-5, rtol: 1e-5 }, 'fake, separate');
        layer.mergeFirstPosition();
        assert.equal(layer.frozenFirstStd(), layer.frozenStd());
        assertClose(f64(layer.apply(x) as tf.Tensor), centered.map((v) => v / restStd), { atol: 1e-5, rtol: 1e-5 }, 'fake, merged');
      });
      const config = layer.getConfig();
      assert.equal(config.firstMerged, true);
      assert.deepEqual(nk.FakeLayerNormalization.fromConfig(nk.FakeLayerNormalization, config).getConfig(), config);
      assertThrowsMentioning(() => new nk.FakeLayerNormalization({ firstPosition: true }).build([null, D]), ["'firstPosition'"]);
    });

    it('refuses to switch before any estimate, and rejects bad arguments', () => {
      const layer = layerWithWeights();
      assertThrowsMentioning(() => layer.switchToFake(), ["'std_estimate'", '-1']);
      assertThrowsMentioning(() => new nk.FakeLayerNormalization({ momentum: 2 }), ["'momentum'"]);
      assertThrowsMentioning(() => new nk.FakeLayerNormalization({ fake: 1 as never }), ["'fake'"]);
    });

  });

  describe('LayerNorm removal on a Pre-LN Transformer', () => {
    const cfg = { vocabSize: 6, seqLen: 5, dModel: 8, heads: 2, layers: 2, mlpRatio: 2, placement: 'pre' as const, seed: 3 };
    const xs = () => tf.tensor([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [1, 1, 2, 2, 3]], [3, 5], 'int32');
    const ys = () => tf.oneHot(tf.tensor([[1, 2, 3, 4, 5], [3, 2, 1, 0, 5], [1, 2, 2, 3, 3]], [3, 5], 'int32'), 6);

    it('replaceLayerNormWithFake keeps the outputs, splits the attention norms, and the schedule follows the reference order', async () => {
      const model = nk.buildTransformerLM(cfg);
      const fake = await nk.replaceLayerNormWithFake(model);
      assert.equal(fake.layers.filter((l) => l instanceof nk.LayerNormalization).length, 0);
      const fakes = fake.layers.filter((l) => l instanceof nk.FakeLayerNormalization) as nk.FakeLayerNormalization[];
      assert.deepEqual(fakes.map((l) => l.name).sort(), ['block0_attn_norm_qk', 'block0_attn_norm_v', 'block0_mlp_norm', 'block1_attn_norm_qk', 'block1_attn_norm_v', 'block1_mlp_norm', 'final_norm']);
      assert.ok(fakes.every((l) => l.firstPosition));
      // Both copies carry the original gain and bias; the attention reads [qk copy, v copy].
      const original = model.getLayer('block1_attn_norm').getWeights().map(f64);
      for (const copy of ['block1_attn_norm_qk', 'block1_attn_norm_v']) {
        fake.getLayer(copy).getWeights().slice(0, 2).forEach((w, i) => assert.deepEqual(Array.from(f64(w)), Array.from(original[i])));
      }
      assert.deepEqual((fake.getLayer('block0_attn').input as tfl.SymbolicTensor[]).map((t) => t.sourceLayer.name), ['block0_attn_norm_qk', 'block0_attn_norm_v']);
      // Same math; LayerNormalization may take the fused kernel, so equality is to float32 rounding.
      tf.tidy(() => assertClose(f64(fake.predict(xs()) as tf.Tensor), f64(model.predict(xs()) as tf.Tensor), { atol: 1e-5, rtol: 1e-5 }, 'logits'));
      const schedule = nk.lnRemovalSchedule(fake, { start: 2, gapMLP: 1, gapAttn: 2, gapFinal: 3 });
      const names = fakes.map((l) => l.name);
      assert.deepEqual(schedule, [
        { step: 2, layer: 'block0_mlp_norm', action: 'fake' },
        { step: 3, layer: 'block1_mlp_norm', action: 'fake' },
        { step: 4, layer: 'block0_attn_norm_qk', action: 'fake' },
        { step: 6, layer: 'block1_attn_norm_qk', action: 'fake' },
        { step: 8, layer: 'block0_attn_norm_v', action: 'fake' },
        { step: 10, layer: 'block1_attn_norm_v', action: 'fake' },
        { step: 13, layer: 'final_norm', action: 'fake' },
        ...['block0_mlp_norm', 'block1_mlp_norm', 'block0_attn_norm_qk', 'block1_attn_norm_qk', 'block0_attn_norm_v', 'block1_attn_norm_v', 'final_norm']
          .filter((n) => names.includes(n))
          .map((layer) => ({ step: 16, layer, action: 'mergeFirst' })),
      ]);
      const plain = await nk.replaceLayerNormWithFake(model, { firstPosition: false, splitAttention: false });
      assert.deepEqual(nk.lnRemovalSchedule(plain, { start: 2, gapMLP: 1, gapAttn: 2, gapFinal: 3 }), [
        { step: 2, layer: 'block0_mlp_norm', action: 'fake' },
        { step: 3, layer: 'block1_mlp_norm', action: 'fake' },
        { step: 4, layer: 'block0_attn_norm', action: 'fake' },
        { step: 6, layer: 'block1_attn_norm', action: 'fake' },
        { step: 9, layer: 'final_norm', action: 'fake' },
      ]);
      plain.dispose();
      assertThrowsMentioning(() => nk.lnRemovalSchedule(model), ["'model'", 'FakeLayerNormalization']);
      await assert.rejects(nk.replaceLayerNormWithFake(nk.buildTransformerLM({ ...cfg, placement: 'none' })), /LayerNormalization/);
      model.dispose();
      fake.dispose();
    });

    it('fine-tunes with the removal callback until no layer normalizes, without leaking', async () => {
      const model = nk.buildTransformerLM(cfg);
      model.compile({ optimizer: tf.train.adam(1e-2), loss: nk.lmCrossEntropy });
      const [x, y] = [xs(), ys()];
      await model.fit(x, y, { epochs: 20, verbose: 0 });
      const fake = await nk.replaceLayerNormWithFake(model);
      fake.compile({ optimizer: tf.train.adam(3e-3), loss: nk.lmCrossEntropy });
      const schedule = nk.lnRemovalSchedule(fake, { start: 1, gapMLP: 1, gapAttn: 1, gapFinal: 1 });
      await fake.fit(x, y, { epochs: 1, verbose: 0, callbacks: [nk.lnRemovalCallback(fake, schedule)] });
      const before = tf.memory().numTensors;
      const h = await fake.fit(x, y, { epochs: 8, verbose: 0, callbacks: [nk.lnRemovalCallback(fake, schedule, 1)] });
      assert.equal(tf.memory().numTensors, before, 'fit with removal leaked');
      const norms = fake.layers.filter((l) => l instanceof nk.FakeLayerNormalization) as nk.FakeLayerNormalization[];
      assert.ok(norms.every((l) => l.fake && l.firstMerged && l.frozenStd() > 0), 'every LN switched and merged');
      assert.ok((h.history.loss as number[]).every(Number.isFinite));
      await assertNoLeak(() => (fake.predict(x) as tf.Tensor).dispose(), 'predict');
      tf.dispose([x, y]);
      model.dispose();
      fake.dispose();
    });
  });
});

runLayerTest(nk.FakeLayerNormalization, { make: () => new nk.FakeLayerNormalization(), inputShape: [3, 4], trainable: 2, nonTrainable: 2,
  weights: [['gamma', [4]], ['beta', [4]], ['std_estimate', [1]], ['fake_std', [1]]],
  // fake_std is written only when the estimate is frozen.
  state: ['std_estimate'], supportsMasking: true });
runLayerTest(nk.FakeLayerNormalization, { label: 'fake mode, no beta', make: () => new nk.FakeLayerNormalization({ momentum: 0.5, epsilon: 1e-4, fake: true, center: false }), inputShape: [3, 4],
  trainable: 1, nonTrainable: 2, weights: [['gamma', [4]], ['std_estimate', [1]], ['fake_std', [1]]],
  // In fake mode the layer divides by the frozen fake_std and no longer estimates.
  state: [], supportsMasking: true });
