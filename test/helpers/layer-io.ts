/**
 * Layer serialization helpers for tests: the one save/load round trip through memory (layer-roundtrip.ts
 * builds on it), and hand-written Keras-style model.json artifacts (snake_case keys, as Keras and the tfjs
 * converter write them).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/**
 * Saves `model` into memory with tf.io.withSaveHandler (with `saveConfig`, e.g. `{ includeOptimizer: true }`)
 * and loads it back with tf.io.fromMemory.
 */
export async function saveAndLoad(model: tfl.LayersModel, saveConfig?: tf.io.SaveConfig): Promise<tfl.LayersModel> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
    saveConfig,
  );
  if (saved === undefined) throw new Error('save handler was not called');
  return tfl.loadLayersModel(tf.io.fromMemory(saved));
}

/** One weight of a hand-written model: its full name (e.g. 'group_normalization/gamma') and values. */
export interface NamedWeight {
  name: string;
  shape: number[];
  values: ArrayLike<number>;
}

/**
 * Artifacts of a Keras Sequential model holding one layer of `className` with the (snake_case) `config`,
 * on input `batchInputShape`, with float32 `weights` packed as Keras/tfjs would write them.
 */
export function kerasSequentialArtifacts(className: string, config: Record<string, unknown>, batchInputShape: Array<number | null>, weights: NamedWeight[]): tf.io.ModelArtifacts {
  const layer = { class_name: className, config: { trainable: true, dtype: 'float32', batch_input_shape: batchInputShape, ...config } };
  const modelTopology = {
    class_name: 'Sequential',
    config: { name: 'sequential', layers: [layer] },
    keras_version: '2.15.0',
    backend: 'tensorflow',
  };
  const total = weights.reduce((n, w) => n + w.values.length, 0);
  const data = new Float32Array(total);
  let offset = 0;
  for (const w of weights) {
    data.set(Array.from(w.values), offset);
    offset += w.values.length;
  }
  return {
    modelTopology,
    weightSpecs: weights.map((w) => ({ name: w.name, shape: w.shape, dtype: 'float32' as const })),
    weightData: data.buffer,
  };
}

/** Keras-style serialized initializers/regularizers as they appear in a Keras 2 model.json. */
export const KERAS_AFFINE_CONFIG = {
  center: true,
  scale: true,
  beta_initializer: { class_name: 'Zeros', config: {} },
  gamma_initializer: { class_name: 'Ones', config: {} },
  beta_regularizer: null,
  gamma_regularizer: null,
  beta_constraint: null,
  gamma_constraint: null,
};
