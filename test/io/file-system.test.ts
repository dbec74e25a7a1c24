import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, truncateSync, readdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/node.js';
import { forEachBackend } from '../helpers/backends.js';
import { randn } from '../helpers/numeric.js';
import { fileSystemOps } from '../../src/io/file-system.js';

/** The weights file names a saved model JSON lists. */
function weightsPaths(modelPath: string): string[] {
  const json = JSON.parse(readFileSync(modelPath, 'utf8')) as { weightsManifest: Array<{ paths: string[] }> };
  return json.weightsManifest.flatMap((g) => g.paths);
}

/** A small model whose weights are all `value` (so two models are told apart by their weights). */
function constantModel(value: number): tfl.LayersModel {
  const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 3, inputShape: [2] }), new nk.LayerNormalization()] });
  model.setWeights(model.getWeights().map((w) => tf.fill(w.shape, value)));
  return model;
}

/** Asserts a model loaded from `path` has every weight equal to `value`. */
async function assertLoadsConstant(path: string, value: number, what: string): Promise<void> {
  const loaded = await tfl.loadLayersModel(nk.io.fileSystem(path));
  for (const w of loaded.getWeights()) assert.ok((w.dataSync() as Float32Array).every((v) => v === value), `${what}: weights are ${value}`);
  loaded.dispose();
}

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
      const bin = join(trunc, weightsPaths(join(trunc, 'model.json'))[0]);
      const full = readFileSync(bin).byteLength;
      assert.equal(full, (3 * 4 + 4) * 4, 'the weights file holds kernel and bias as float32');
      truncateSync(bin, full - 4);
      await assert.rejects(tfl.loadLayersModel(nk.io.fileSystem(trunc)), (e: Error) => e.message.includes(bin) && /truncated/.test(e.message));
      model.dispose();
    });

    it('rejects an empty path', () => {
      assert.throws(() => nk.io.fileSystem(''), /'path'/);
    });

    describe('atomic saves', () => {
      type Ops = typeof fileSystemOps;
      const original: Ops = { ...fileSystemOps };
      after(() => Object.assign(fileSystemOps, original));

      /** Snapshot of a folder's files and their bytes. */
      function snapshot(folder: string): Map<string, string> {
        return new Map(readdirSync(folder).map((f) => [f, readFileSync(join(folder, f)).toString('base64')]));
      }

      it('two models saved under different names in one folder keep their own weights', async () => {
        const folder = join(dir, 'ckpt');
        const a = constantModel(1);
        const b = constantModel(2);
        await a.save(nk.io.fileSystem(join(folder, 'epoch1.json')));
        await b.save(nk.io.fileSystem(join(folder, 'epoch2.json')));
        await assertLoadsConstant(join(folder, 'epoch1.json'), 1, 'epoch1');
        await assertLoadsConstant(join(folder, 'epoch2.json'), 2, 'epoch2');
        assert.match(weightsPaths(join(folder, 'epoch1.json'))[0], /^epoch1\.weights\.[0-9a-f]{16}\.bin$/);
        a.dispose();
        b.dispose();
      });

      it('saving again under one name replaces the model and leaves exactly one weights file for it', async () => {
        const folder = join(dir, 'resave');
        const a = constantModel(3);
        const b = constantModel(4);
        await a.save(nk.io.fileSystem(folder));
        await b.save(nk.io.fileSystem(folder));
        await b.save(nk.io.fileSystem(folder));
        await assertLoadsConstant(folder, 4, 'resaved');
        assert.deepEqual(readdirSync(folder).sort(), ['model.json', weightsPaths(join(folder, 'model.json'))[0]].sort());
        a.dispose();
        b.dispose();
      });

      it('still loads a model whose JSON names a shared weights.bin', async () => {
        const folder = join(dir, 'old-format');
        const a = constantModel(5);
        await a.save(nk.io.fileSystem(folder));
        const modelPath = join(folder, 'model.json');
        renameSync(join(folder, weightsPaths(modelPath)[0]), join(folder, 'weights.bin'));
        const json = JSON.parse(readFileSync(modelPath, 'utf8')) as { weightsManifest: Array<{ paths: string[] }> };
        json.weightsManifest[0].paths = ['weights.bin'];
        writeFileSync(modelPath, JSON.stringify(json));
        await assertLoadsConstant(folder, 5, 'weights.bin');
        a.dispose();
      });

      // Each step of a save, made to fail in turn while a previous model sits at the same path.
      const steps: Array<[string, (fail: Error) => void, RegExp]> = [
        ['creating the folder', (fail) => (fileSystemOps.mkdir = () => Promise.reject(fail)), /creating the folder/],
        ['writing the weights', (fail) => (fileSystemOps.open = () => Promise.reject(fail)), /writing the weights/],
        [
          'flushing the model JSON',
          (fail) => {
            let n = 0;
            fileSystemOps.open = async (p) => {
              const h = await original.open(p);
              if (++n === 2) h.sync = () => Promise.reject(fail);
              return h;
            };
          },
          /writing the model JSON/,
        ],
        ['renaming the weights', (fail) => (fileSystemOps.rename = () => Promise.reject(fail)), /renaming the weights/],
        [
          'renaming the model JSON',
          (fail) => {
            let n = 0;
            fileSystemOps.rename = (from, to) => (++n === 2 ? Promise.reject(fail) : original.rename(from, to));
          },
          /renaming the model JSON/,
        ],
      ];
      for (const [what, inject, message] of steps) {
        it(`a save failing at ${what} leaves the previous model loadable and unchanged`, async () => {
          const folder = join(dir, `fail-${what.replace(/ /g, '-')}`);
          const old = constantModel(6);
          await old.save(nk.io.fileSystem(folder));
          const before = snapshot(folder);
          const next = constantModel(7);
          const fail = Object.assign(new Error('injected'), { code: 'EACCES' });
          inject(fail);
          try {
            await assert.rejects(next.save(nk.io.fileSystem(folder)), (e: Error) => {
              assert.ok(e instanceof nk.NormkitError, `a NormkitError, got ${e.name}: ${e.message}`);
              assert.ok(e.message.includes(join(folder, 'model.json')), `names the file: ${e.message}`);
              assert.match(e.message, message);
              assert.match(e.message, /EACCES/);
              return true;
            });
          } finally {
            Object.assign(fileSystemOps, original);
          }
          assert.deepEqual(snapshot(folder), before, 'files unchanged, no temporary file left');
          await assertLoadsConstant(folder, 6, 'previous model');
          old.dispose();
          next.dispose();
        });
      }

      it('a model name too long for the file system fails labeled and leaves the folder as it was', async () => {
        const folder = join(dir, 'long');
        const old = constantModel(8);
        await old.save(nk.io.fileSystem(join(folder, 'a.json')));
        const before = snapshot(folder);
        const long = join(folder, `${'n'.repeat(300)}.json`);
        await assert.rejects(old.save(nk.io.fileSystem(long)), (e: Error) => e instanceof nk.NormkitError && /ENAMETOOLONG/.test(e.message) && e.message.includes(long));
        assert.deepEqual(snapshot(folder), before);
        await assertLoadsConstant(join(folder, 'a.json'), 8, 'other model');
        old.dispose();
      });

      it('a file where the folder should be fails labeled', async () => {
        const file = join(dir, 'a-file');
        writeFileSync(file, 'x');
        const model = constantModel(9);
        await assert.rejects(model.save(nk.io.fileSystem(join(file, 'sub'))), (e: Error) => e instanceof nk.NormkitError && /creating the folder/.test(e.message) && /ENOTDIR|EEXIST/.test(e.message));
        assert.equal(readFileSync(file, 'utf8'), 'x');
        model.dispose();
      });
    });
  });
});
