import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/node.js';
import { forEachBackend } from '../helpers/backends.js';
import { randn } from '../helpers/numeric.js';

/** Bit-exact comparison of two float32 tensors. */
function assertBitEqual(a: tf.Tensor, b: tf.Tensor, what: string): void {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const x = new Uint32Array((a.dataSync() as Float32Array).slice().buffer);
  const y = new Uint32Array((b.dataSync() as Float32Array).slice().buffer);
  assert.deepEqual(x, y, `${what}: bits differ`);
}

forEachBackend(() => {
  describe('io.fileSystem', () => {
    let dir = '';
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'normkit-io-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('round-trips a trained model with normkit layers bit for bit (weights, config, outputs)', async () => {
      const input = tfl.input({ shape: [6] });
      const h = tfl.layers.dense({ units: 8 }).apply(input) as tfl.SymbolicTensor;
      const n = new nk.LayerNormalization({ axis: -1, convention: 'pytorch' }).apply(h) as tfl.SymbolicTensor;
      const out = tfl.layers.dense({ units: 2 }).apply(n) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: input, outputs: out });
      model.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
      const xs = tf.tensor(randn(60, 1), [10, 6]);
      const ys = tf.tensor(randn(20, 2), [10, 2]);
      await model.fit(xs, ys, { epochs: 2, verbose: 0 });

      const target = join(dir, 'ln-model');
      await model.save(nk.io.fileSystem(target));
      const loaded = await tfl.loadLayersModel(nk.io.fileSystem(join(target, 'model.json')));

      assert.deepEqual(loaded.getConfig(), model.getConfig(), 'config');
      assert.equal(loaded.weights.length, model.weights.length);
      const w0 = model.getWeights();
      const w1 = loaded.getWeights();
      w0.forEach((w, i) => assertBitEqual(w1[i], w, `weight ${model.weights[i].name}`));
      const y0 = model.predict(xs) as tf.Tensor;
      const y1 = loaded.predict(xs) as tf.Tensor;
      assertBitEqual(y1, y0, 'outputs');
      assert.ok(loaded.layers[2] instanceof nk.LayerNormalization, 'normkit layer class restored');
      tf.dispose([xs, ys, y0, y1]);
      model.dispose();
      loaded.dispose();
    });

    it('loads from the directory path too', async () => {
      const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 3, inputShape: [2] }), new nk.LayerNormalization()] });
      await model.save(nk.io.fileSystem(join(dir, 'by-dir')));
      const loaded = await tfl.loadLayersModel(nk.io.fileSystem(join(dir, 'by-dir')));
      assert.equal(loaded.layers.length, 2);
      model.dispose();
      loaded.dispose();
    });

    it('names the file when model.json is missing', async () => {
      const missing = join(dir, 'nowhere', 'model.json');
      await assert.rejects(tfl.loadLayersModel(nk.io.fileSystem(missing)), (e: Error) => e.message.includes(missing) && e.message.includes('ENOENT'));
    });

    it('names the file when model.json is not JSON', async () => {
      const bad = join(dir, 'bad');
      const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 1, inputShape: [1] })] });
      await model.save(nk.io.fileSystem(bad));
      writeFileSync(join(bad, 'model.json'), '{"modelTopology": ');
      await assert.rejects(tfl.loadLayersModel(nk.io.fileSystem(join(bad, 'model.json'))), (e: Error) => e.message.includes(join(bad, 'model.json')) && /not valid JSON/.test(e.message));
      model.dispose();
    });

    it('names the weights file when it is truncated', async () => {
      const trunc = join(dir, 'trunc');
      const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 4, inputShape: [3] })] });
      await model.save(nk.io.fileSystem(trunc));
      const bin = join(trunc, 'weights.bin');
      const full = readFileSync(bin).byteLength;
      assert.equal(full, (3 * 4 + 4) * 4, 'weights.bin holds kernel and bias as float32');
      truncateSync(bin, full - 4);
      await assert.rejects(tfl.loadLayersModel(nk.io.fileSystem(trunc)), (e: Error) => e.message.includes(bin) && /truncated/.test(e.message));
      model.dispose();
    });

    it('rejects an empty path', () => {
      assert.throws(() => nk.io.fileSystem(''), /'path'/);
    });
  });
});
