/**
 * Layer and model checks shared by tests: the config round trip (runLayerTest's), model.fit steps that must
 * leave the tensor count unchanged, and a model's train-then-reload check.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { saveAndLoad } from './layer-io.js';
import { assertNoLeak } from './numeric.js';

/** A registered layer class: its constructor and static `className`. */
export type LayerCtor = tf.serialization.SerializableConstructor<tfl.layers.Layer> & { className: string };

/**
 * Asserts `cls.fromConfig(cls, from)` (default `layer.getConfig()`; e.g. its JSON copy) has the same config as
 * `layer`; returns the copy.
 */
export function assertConfigRoundTrip<L extends tfl.layers.Layer>(cls: LayerCtor, layer: L, from?: tf.serialization.ConfigDict): L {
  const config = layer.getConfig();
  const copy = (cls as unknown as { fromConfig: (c: LayerCtor, cfg: tf.serialization.ConfigDict) => L }).fromConfig(cls, from ?? config);
  assert.deepEqual(copy.getConfig(), config, 'fromConfig(getConfig()) changed the config');
  assert.equal(copy.getClassName(), cls.className);
  return copy;
}

/**
 * Trains `layer` between two dense layers for one warm-up epoch, then asserts that two more epochs of
 * model.fit leave tf.memory().numTensors unchanged and give a finite loss. Returns the trained model's
 * final loss. `inputShape` excludes the batch axis; the last axis is the features.
 */
export async function assertFitWithoutLeak(layer: tfl.layers.Layer, inputShape: number[], seedData: { xs: tf.Tensor; ys: tf.Tensor }): Promise<number> {
  const model = tfl.sequential();
  model.add(tfl.layers.dense({ units: inputShape[inputShape.length - 1], inputShape }));
  model.add(layer);
  model.add(tfl.layers.dense({ units: 1 }));
  model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
  const loss = await assertModelFitWithoutLeak(model, seedData.xs, seedData.ys);
  model.dispose();
  return loss;
}

/**
 * Fits the compiled `model` one warm-up epoch (batches of `warmupBatchSize`), then asserts that two more
 * epochs (batches of `batchSize`) leave tf.memory().numTensors unchanged and end on a finite loss, which it
 * returns.
 */
export async function assertModelFitWithoutLeak(
  model: tfl.LayersModel,
  xs: tf.Tensor | tf.Tensor[],
  ys: tf.Tensor,
  { warmupBatchSize = 4, batchSize = 4, shuffle }: { warmupBatchSize?: number; batchSize?: number; shuffle?: boolean } = {},
): Promise<number> {
  const order = shuffle === undefined ? {} : { shuffle };
  await model.fit(xs, ys, { epochs: 1, batchSize: warmupBatchSize, verbose: 0, ...order });
  const before = tf.memory().numTensors;
  const h = await model.fit(xs, ys, { epochs: 2, batchSize, verbose: 0, ...order });
  assert.equal(tf.memory().numTensors, before, 'model.fit leaked tensors');
  const loss = h.history.loss[1] as number;
  assert.ok(Number.isFinite(loss), `finite loss, got ${loss}`);
  return loss;
}

/**
 * For a compiled model: assertModelFitWithoutLeak with tfjs's default batch size (32) and shuffling, then a
 * save/load through memory (saveAndLoad) that must predict exactly the same on `xs`, and a predict that
 * leaks nothing. Returns the loaded model (the caller disposes it).
 */
export async function assertModelTrainsAndReloads(model: tfl.LayersModel, xs: tf.Tensor, ys: tf.Tensor): Promise<tfl.LayersModel> {
  await assertModelFitWithoutLeak(model, xs, ys, { warmupBatchSize: 32, batchSize: 32 });
  const loaded = await saveAndLoad(model);
  tf.tidy(() => assert.deepEqual(Array.from((loaded.predict(xs) as tf.Tensor).dataSync()), Array.from((model.predict(xs) as tf.Tensor).dataSync())));
  await assertNoLeak(() => (model.predict(xs) as tf.Tensor).dispose(), 'predict');
  return loaded;
}
