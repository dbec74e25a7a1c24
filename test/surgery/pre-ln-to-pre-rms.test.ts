import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, f64, randn } from '../helpers/numeric.js';
import { referenceLM, type Weights } from '../models/transformer-reference.js';

const SMALL = { vocabSize: 9, seqLen: 6, dModel: 16, heads: 2, layers: 3, mlpRatio: 2 };
const TOKENS = [
  [1, 4, 2, 8, 0, 5],
  [3, 3, 7, 1, 2, 6],
];

/** Random weights (gains near 1, non-zero betas and biases, embeddings with a large common offset). */
function randomize(model: tfl.LayersModel, seed: number): void {
  model.weights.forEach((w, i) => {
    const n = w.shape.reduce((a: number, b) => a * (b as number), 1);
    const name = w.originalName;
    const values = /gamma$/.test(name) ? randn(n, seed + i, 1, 0.3) : /embeddings$/.test(name) ? randn(n, seed + i, 2, 0.5) : randn(n, seed + i, 0, 0.3);
    tf.tidy(() => {
      w.write(tf.tensor(values, w.shape as number[]));
    });
  });
}

function weightsOf(model: tfl.LayersModel): Weights {
  return new Map(model.weights.map((w) => [w.originalName, { values: f64(w.read()), shape: w.shape as number[] }]));
}

const refCfg = (norm: 'layer' | 'rms') => ({ vocabSize: SMALL.vocabSize, dModel: SMALL.dModel, heads: SMALL.heads, layers: SMALL.layers, placement: 'pre' as const, norm, epsilon: 1e-5, activation: 'gelu' as const });

forEachBackend(() => {
  describe('preLNToPreRMS', () => {
    it('gives a Pre-RMSNorm model with no LayerNorm whose outputs equal the Pre-LN model within 1e-5', async () => {
      const model = nk.buildTransformerLM({ ...SMALL, placement: 'pre', norm: 'layer', seed: 1 });
      randomize(model, 10);
      const converted = await nk.preLNToPreRMS(model);
      assert.equal(converted.layers.filter((l) => l instanceof nk.LayerNormalization).length, 0);
      const rms = converted.layers.filter((l) => l instanceof nk.RMSNormalization) as nk.RMSNormalization[];
      assert.equal(rms.length, 2 * SMALL.layers + 1);
      assert.ok(rms.every((l) => l.epsilon === 1e-5 && !l.scale && !l.center && l.weights.length === 0));
      tf.tidy(() => {
        const x = tf.tensor(TOKENS, [2, 6], 'int32');
        assertClose(f64(converted.predict(x) as tf.Tensor), f64(model.predict(x) as tf.Tensor), { atol: 1e-5, rtol: 1e-5 }, 'logits');
      });
      model.dispose();
      converted.dispose();
    });

    it('is exact in float64: the reference Pre-RMSNorm model on the new weights equals the reference Pre-LN model', async () => {
      const model = nk.buildTransformerLM({ ...SMALL, placement: 'pre', norm: 'layer', seed: 2 });
      randomize(model, 20);
      const converted = await nk.preLNToPreRMS(model);
      const before = referenceLM(weightsOf(model), refCfg('layer'), TOKENS);
      const after = referenceLM(weightsOf(converted), refCfg('rms'), TOKENS);
      // The new weights are float32 roundings of the folded values, so float64 agreement is to ~1e-6.
      assertClose(after, before, { atol: 2e-6, rtol: 2e-6 }, 'float64 logits');
      model.dispose();
      converted.dispose();
    });

    it('makes every write to the residual stream zero-mean over the features', async () => {
      const model = nk.buildTransformerLM({ ...SMALL, placement: 'pre', norm: 'layer', seed: 3 });
      randomize(model, 30);
      const converted = await nk.preLNToPreRMS(model);
      const streams = converted.layers.filter((l) => l instanceof nk.ResidualAdd || l instanceof nk.TokenPositionEmbedding);
      const probe = tfl.model({ inputs: converted.inputs, outputs: streams.map((l) => l.output as tfl.SymbolicTensor) });
      tf.tidy(() => {
        const outs = probe.predict(tf.tensor(TOKENS, [2, 6], 'int32')) as tf.Tensor[];
        for (const [i, o] of outs.entries()) {
          const mean = f64(tf.mean(o, -1));
          const scale = f64(tf.sqrt(tf.mean(tf.square(o), -1)));
          assertClose(mean.map((m, j) => m / scale[j]), new Float64Array(mean.length), { atol: 1e-5 }, `mean of ${streams[i].name}`);
        }
      });
      model.dispose();
      converted.dispose();
    });

    it('saves and loads the converted model, and leaves no tensors behind', async () => {
      const model = nk.buildTransformerLM({ ...SMALL, layers: 1, placement: 'pre', seed: 4 });
      await nk.preLNToPreRMS(model).then((m) => m.dispose());
      let converted: tfl.LayersModel | undefined;
      await assertNoLeak(async () => {
        converted = await nk.preLNToPreRMS(model);
        converted.dispose();
      }, 'conversion');
      converted = await nk.preLNToPreRMS(model);
      let artifacts: tf.io.ModelArtifacts | undefined;
      await converted.save(tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }));
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
      tf.tidy(() => {
        const x = tf.tensor(TOKENS, [2, 6], 'int32');
        assert.deepEqual(Array.from((loaded.predict(x) as tf.Tensor).dataSync()), Array.from((converted!.predict(x) as tf.Tensor).dataSync()));
      });
      model.dispose();
      converted.dispose();
      loaded.dispose();
    });

    it('refuses models that are not Pre-LN, naming the reason', async () => {
      for (const placement of ['post', 'peri', 'normformer', 'none'] as const) {
        const model = nk.buildTransformerLM({ ...SMALL, layers: 1, placement, seed: 5 });
        await assert.rejects(nk.preLNToPreRMS(model), (e: Error) => e instanceof nk.NormkitError && e.message.includes('Pre-LN') && e.message.includes("'model'"));
        model.dispose();
      }
      const rmsModel = nk.buildTransformerLM({ ...SMALL, layers: 1, placement: 'pre', norm: 'rms', seed: 6 });
      await assert.rejects(nk.preLNToPreRMS(rmsModel), /without LayerNormalization/);
      rmsModel.dispose();
      await assert.rejects(nk.preLNToPreRMS({} as never), /LayersModel/);
    });
  });
});
