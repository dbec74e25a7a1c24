/**
 * Checks that a layer's running state lives in its weights: a model trained for some steps, saved and loaded,
 * takes the next training step exactly as the original does.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { saveAndLoad } from './layer-io.js';

/** One training step of `model` (forward and backward), returning tensors to compare (the caller's tidy frees them). */
export type TrainingStep = (model: tfl.LayersModel) => tf.Tensor[];

const values = (ts: tf.Tensor[]): number[][] => ts.map((t) => Array.from(t.dataSync()));

/**
 * Saves and loads `model`, asserts the loaded weights equal the saved ones, then runs `step` on both and asserts
 * that its results and every weight afterwards are equal, bit for bit. Disposes the loaded model.
 */
export async function assertNextStepAfterSaveLoad(model: tfl.LayersModel, step: TrainingStep): Promise<void> {
  const loaded = await saveAndLoad(model);
  try {
    assert.deepEqual(values(loaded.getWeights()), values(model.getWeights()), 'loaded weights');
    tf.tidy(() => assert.deepEqual(values(step(loaded)), values(step(model)), 'the next training step'));
    assert.deepEqual(values(loaded.getWeights()), values(model.getWeights()), 'weights after the next training step');
  } finally {
    loaded.dispose();
  }
}
