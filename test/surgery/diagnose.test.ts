import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, randn } from '../helpers/numeric.js';

const N = 8;
const EPS = 1e-3;

/** input [5] -> fc1 (linear) -> bn (normkit) -> relu -> fc2 -> ln -> out. */
function denseModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [5] });
  let h = tfl.layers.dense({ units: 4, name: 'fc1', kernelInitializer: tfl.initializers.randomNormal({ seed: 1, mean: 0, stddev: 1 }) }).apply(input) as tfl.SymbolicTensor;
  h = new nk.BatchNormalization({ name: 'bn' }).apply(h) as tfl.SymbolicTensor;
  h = tfl.layers.activation({ activation: 'relu' }).apply(h) as tfl.SymbolicTensor;
  h = tfl.layers.dense({ units: 6, name: 'fc2', kernelInitializer: tfl.initializers.randomNormal({ seed: 2, mean: 0, stddev: 1 }) }).apply(h) as tfl.SymbolicTensor;
  h = new nk.LayerNormalization({ name: 'ln' }).apply(h) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 3, name: 'out' }).apply(h) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/** float64 pre-BN activations h = x W + b and their per-channel biased batch mean and variance. */
function fc1Stats(model: tfl.LayersModel, xv: Float32Array): { h: Float64Array; mean: number[]; variance: number[] } {
  const [w, b] = model.getLayer('fc1').getWeights().map(f64);
  const h = new Float64Array(N * 4);
  for (let n = 0; n < N; n++) for (let j = 0; j < 4; j++) {
    let s = b[j];
    for (let i = 0; i < 5; i++) s += xv[n * 5 + i] * w[i * 4 + j];
    h[n * 4 + j] = s;
  }
  const mean = [0, 1, 2, 3].map((j) => Array.from({ length: N }, (_, n) => h[n * 4 + j]).reduce((a, v) => a + v, 0) / N);
  const variance = [0, 1, 2, 3].map((j) => Array.from({ length: N }, (_, n) => (h[n * 4 + j] - mean[j]) ** 2).reduce((a, v) => a + v, 0) / N);
  return { h, mean, variance };
}

const byName = (r: nk.NormDiagnosis[], name: string) => r.find((d) => d.layer === name)!;

forEachBackend(() => {
  describe('diagnoseNorms', () => {
    const xv = randn(N * 5, 3, 3, 2);

    it('reports BatchNorm drift and train/eval gap against a float64 computation, and LayerNorm facts', () => {
      const model = denseModel();
      const x = tf.tensor(xv, [N, 5]);
      const report = nk.diagnoseNorms(model, x);
      assert.deepEqual(report.map((d) => d.layer), ['bn', 'ln']);
      const bn = byName(report, 'bn');
      const { h, mean, variance } = fc1Stats(model, xv);
      // Fresh moving statistics are 0 and 1; gamma 1, beta 0.
      const drift = Math.max(...mean.map((m, j) => Math.abs(0 - m) / Math.sqrt(variance[j] + EPS)));
      const ratio = Math.max(...variance.map((v) => Math.max((1 + EPS) / (v + EPS), (v + EPS) / (1 + EPS))));
      let num = 0;
      let den = 0;
      for (let n = 0; n < N; n++) for (let j = 0; j < 4; j++) {
        const train = (h[n * 4 + j] - mean[j]) / Math.sqrt(variance[j] + EPS);
        const evalY = h[n * 4 + j] / Math.sqrt(1 + EPS);
        num += (train - evalY) ** 2;
        den += evalY ** 2;
      }
      assertClose([bn.meanDrift!, bn.varianceRatio!, bn.trainEvalGap], [drift, ratio, Math.sqrt(num / den)], { rtol: 1e-4 }, 'bn drift, ratio, gap');
      assert.equal(bn.elementsPerStatistic, N);
      assert.equal(bn.updatesInTraining, true);
      assert.equal(bn.frozenButUpdating, false);
      assert.equal(bn.foldableInto, 'fc1');
      assert.equal(bn.deadGamma, 0);
      assert.ok(bn.warnings.some((w) => w.includes('moving mean')) && bn.warnings.some((w) => w.includes('only 8 elements')));
      const ln = byName(report, 'ln');
      assert.equal(ln.elementsPerStatistic, 6);
      assert.equal(ln.trainEvalGap, 0);
      assert.equal(ln.updatesInTraining, false);
      assert.equal(ln.meanDrift, null);
      assert.equal(ln.foldableInto, null);
      assert.equal(ln.varianceUnderflow, 0);
      // The training-mode probe must not have moved the moving statistics.
      assert.deepEqual(Array.from(model.getLayer('bn').getWeights()[2].dataSync()), [0, 0, 0, 0]);
      assert.deepEqual(Array.from(model.getLayer('bn').getWeights()[3].dataSync()), [1, 1, 1, 1]);
      x.dispose();
      model.dispose();
    });

    it('finds no drift once the moving statistics equal the batch statistics, and counts dead gammas', () => {
      const model = denseModel();
      const { mean, variance } = fc1Stats(model, xv);
      const bnLayer = model.getLayer('bn');
      bnLayer.setWeights([tf.tensor([0, 1, 1e-5, 2]), tf.zeros([4]), tf.tensor(mean), tf.tensor(variance)]);
      const x = tf.tensor(xv, [N, 5]);
      const bn = byName(nk.diagnoseNorms(model, x), 'bn');
      assert.ok(bn.meanDrift! < 1e-4, `drift ${bn.meanDrift}`);
      assert.ok(bn.varianceRatio! < 1 + 1e-4, `ratio ${bn.varianceRatio}`);
      assert.ok(bn.trainEvalGap < 1e-4, `gap ${bn.trainEvalGap}`);
      assert.equal(bn.deadGamma, 0.5);
      assert.ok(bn.warnings.some((w) => w.includes('dead')));
      x.dispose();
      model.dispose();
    });

    it('flags variance underflow on constant inputs', () => {
      const input = tfl.input({ shape: [4] });
      const h = tfl.layers.dense({ units: 6, kernelInitializer: 'zeros', biasInitializer: 'zeros' }).apply(input) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: input, outputs: new nk.LayerNormalization({ name: 'ln' }).apply(h) as tfl.SymbolicTensor });
      const x = tf.ones([3, 4]);
      const ln = nk.diagnoseNorms(model, x)[0];
      assert.equal(ln.varianceUnderflow, 1);
      assert.ok(ln.warnings.some((w) => w.includes('below epsilon')));
      x.dispose();
      model.dispose();
    });

    it("flags tfjs's own BatchNormalization when frozen but still updating, not normkit's", () => {
      const input = tfl.input({ shape: [3] });
      const a = tfl.layers.batchNormalization({ name: 'tfjs_bn' });
      const b = new nk.BatchNormalization({ name: 'nk_bn' });
      const out = b.apply(a.apply(input)) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: input, outputs: out });
      a.trainable = false;
      b.trainable = false;
      const x = tf.tensor(randn(12, 5, 2, 3), [4, 3]);
      const report = nk.diagnoseNorms(model, x);
      assert.equal(byName(report, 'tfjs_bn').frozenButUpdating, true);
      assert.ok(byName(report, 'tfjs_bn').warnings.some((w) => w.includes('trainable = false')));
      assert.equal(byName(report, 'nk_bn').frozenButUpdating, false);
      assert.equal(byName(report, 'nk_bn').trainEvalGap, 0);
      // Restored after the probe.
      assert.deepEqual(Array.from(a.getWeights()[2].dataSync()), [0, 0, 0]);
      x.dispose();
      model.dispose();
    });

    it('counts elements per statistic for conv BatchNorm (N*H*W) and GroupNorm (H*W*C/G)', () => {
      const input = tfl.input({ shape: [4, 4, 3] });
      let h = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv' }).apply(input) as tfl.SymbolicTensor;
      h = new nk.BatchNormalization({ name: 'bn' }).apply(h) as tfl.SymbolicTensor;
      h = nk.createNorm('group', { groups: 2, name: 'gn' }).apply(h) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: input, outputs: h });
      const x = tf.tensor(randn(2 * 48, 6), [2, 4, 4, 3]);
      const report = nk.diagnoseNorms(model, x);
      assert.equal(byName(report, 'bn').elementsPerStatistic, 2 * 4 * 4);
      assert.equal(byName(report, 'bn').foldableInto, 'conv');
      assert.equal(byName(report, 'gn').elementsPerStatistic, 4 * 4 * 2);
      assert.equal(byName(report, 'gn').trainEvalGap, 0);
      x.dispose();
      model.dispose();
    });

    it('works on a Transformer LM (every norm listed, no gap) and leaks no tensors', async () => {
      const model = nk.buildTransformerLM({ vocabSize: 5, seqLen: 4, dModel: 8, heads: 2, layers: 1, placement: 'peri', seed: 1 });
      const tokens = tf.tensor([[0, 1, 2, 3]], [1, 4], 'int32');
      nk.diagnoseNorms(model, tokens);
      await assertNoLeak(() => nk.diagnoseNorms(model, tokens), 'diagnoseNorms');
      const report = nk.diagnoseNorms(model, tokens);
      assert.equal(report.length, 5);
      assert.ok(report.every((d) => d.trainEvalGap === 0 && d.elementsPerStatistic === 8 && d.className === 'LayerNormalization'));
      tokens.dispose();
      model.dispose();
    });

    it('rejects bad arguments', () => {
      const model = denseModel();
      assertThrowsMentioning(() => nk.diagnoseNorms({} as never, tf.zeros([1, 5])), ["'model'"]);
      assertThrowsMentioning(() => nk.diagnoseNorms(model, [] as never), ["'batch'", '1 tensor']);
      assertThrowsMentioning(() => nk.diagnoseNorms(model, tf.zeros([1, 5]), { gapTolerance: -1 }), ["'gapTolerance'"]);
      assertThrowsMentioning(() => nk.diagnoseNorms(model, tf.zeros([1, 5]), { gap: 1 } as never), ["'gap'"]);
      model.dispose();
    });
  });
});
