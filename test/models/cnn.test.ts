import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, f64, randn } from '../helpers/numeric.js';

/** Norms whose layers take two inputs ([x, mask], [residual, shortcut]): they do not fit a plain conv stack. */
const TWO_INPUT_NORMS = new Set(['ibn-b', 'region-b']);

forEachBackend(() => {
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
