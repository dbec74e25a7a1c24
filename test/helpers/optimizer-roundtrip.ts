/**
 * Optimizer checks shared by the optimizer tests: state through a saved model (assertOptimizerResumes) and
 * training a tiny regression model (assertFitLowersLoss).
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { saveAndLoad } from './layer-io.js';
import { assertClose, assertNoLeak, f64, randn } from './numeric.js';

/**
 * Optimizer state through a saved model: fit, save with `includeOptimizer`, load, then one more epoch on both
 * models must give the same weights (class, config, iteration count and slots all restored).
 */
export async function assertOptimizerResumes(make: () => tf.Optimizer): Promise<void> {
  const model = tfl.sequential();
  model.add(tfl.layers.dense({ units: 3, inputShape: [4], activation: 'tanh', kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }));
  model.add(tfl.layers.dense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }));
  model.compile({ optimizer: make(), loss: 'meanSquaredError' });
  const xs = tf.tensor(randn(32, 80), [8, 4]);
  const ys = tf.tensor(randn(8, 81), [8, 1]);
  await model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0, shuffle: false });
  const loaded = await saveAndLoad(model, { includeOptimizer: true });
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

/**
 * Compiles `model` (4 inputs, 1 output) with `optimizer` and MSE, fits the linear
 * target y = x . [0.5, -1, 2, 0.1] on 16 samples randn(seed) for one epoch, then asserts that 30 more
 * epochs (batches of 8, no shuffle) leave tf.memory().numTensors unchanged and end below half the first
 * loss; with `minimizeStep` also that one optimizer.minimize step leaks nothing. Disposes the model and
 * the optimizer.
 */
export async function assertFitLowersLoss(model: tfl.LayersModel, optimizer: tf.Optimizer, seed: number, { minimizeStep = true }: { minimizeStep?: boolean } = {}): Promise<void> {
  model.compile({ optimizer, loss: 'meanSquaredError' });
  const xs = tf.tensor(randn(64, seed), [16, 4]);
  const ys = tf.tidy(() => tf.sum(tf.mul(xs, tf.tensor([[0.5, -1, 2, 0.1]])), 1, true));
  const h0 = await model.fit(xs, ys, { epochs: 1, batchSize: 8, verbose: 0, shuffle: false });
  const before = tf.memory().numTensors;
  const h = await model.fit(xs, ys, { epochs: 30, batchSize: 8, verbose: 0, shuffle: false });
  assert.equal(tf.memory().numTensors, before, 'model.fit leaked tensors');
  const last = h.history.loss[h.history.loss.length - 1] as number;
  assert.ok(last < (h0.history.loss[0] as number) * 0.5, `loss ${h0.history.loss[0]} -> ${last}`);
  if (minimizeStep) await assertNoLeak(() => optimizer.minimize(() => tf.losses.meanSquaredError(ys, model.predict(xs) as tf.Tensor) as tf.Scalar), 'minimize step');
  tf.dispose([xs, ys]);
  model.dispose();
  optimizer.dispose();
}
