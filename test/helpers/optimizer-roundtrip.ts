/**
 * Optimizer state through a saved model: fit, save with `includeOptimizer`, load, then one more epoch on both
 * models must give the same weights (class, config, iteration count and slots all restored).
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { assertClose, f64, randn } from './numeric.js';

export async function assertOptimizerResumes(make: () => tf.Optimizer): Promise<void> {
  const model = tfl.sequential();
  model.add(tfl.layers.dense({ units: 3, inputShape: [4], activation: 'tanh', kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }));
  model.add(tfl.layers.dense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }));
  model.compile({ optimizer: make(), loss: 'meanSquaredError' });
  const xs = tf.tensor(randn(32, 80), [8, 4]);
  const ys = tf.tensor(randn(8, 81), [8, 1]);
  await model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0, shuffle: false });
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }), { includeOptimizer: true });
  const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts as tf.io.ModelArtifacts));
  assert.equal(loaded.optimizer.getClassName(), model.optimizer.getClassName());
  assert.deepEqual(loaded.optimizer.getConfig(), model.optimizer.getConfig());
  assert.equal(loaded.optimizer.iterations, model.optimizer.iterations);
  await model.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0, shuffle: false });
  await loaded.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0, shuffle: false });
  const a = model.getWeights();
  const b = loaded.getWeights();
  a.forEach((w, i) => assertClose(f64(b[i]), f64(w), { rtol: 1e-6, atol: 1e-7 }, `weight ${i} after resumed training`));
  tf.dispose([xs, ys]);
  model.optimizer.dispose();
  loaded.optimizer.dispose();
  model.dispose();
  loaded.dispose();
}
