/**
 * The one layer-test harness every registered layer goes through (in the spirit of Keras's `run_layer_test`):
 * weight counts and names, output shape, config round trip, save/load, training and running state, masking,
 * and no leaked tensors, on every Node backend. Method tests add their numeric checks against references.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { forEachBackend } from './backends.js';
import { assertConfigRoundTrip, assertModelFitWithoutLeak, type LayerCtor } from './layer-roundtrip.js';
import { saveAndLoad } from './layer-io.js';
import { randn, rng } from './random.js';

/** What {@link runLayerTest} checks for one layer configuration. */
export interface LayerTestSpec {
  /** Builds a fresh, unbuilt layer of the class under test (called more than once). */
  make: () => tfl.layers.Layer;
  /** Input shape without the batch axis; a list of shapes for a layer called on several inputs. */
  inputShape: number[] | number[][];
  /**
   * `n` samples of every input (e.g. token ids, or a binary mask as second input); default standard normal
   * float32 values.
   */
  inputs?: (n: number, seed: number) => tf.Tensor[];
  /** Number of trainable weights once built. */
  trainable: number;
  /** Number of non-trainable weights once built. */
  nonTrainable: number;
  /** Every weight in `layer.weights` order: the last part of its name and its shape. */
  weights?: Array<[name: string, shape: number[]]>;
  /**
   * Non-trainable weights (by name) that training must move: the running state. Default: every non-trainable
   * weight. Inference must move no weight at all.
   */
  state?: string[];
  /** Weights (by name) the harness must not perturb: integers such as a task index. */
  exact?: string[];
  /** Trainable weights (by name) that a few SGD steps on a random target may leave unchanged. Default: none. */
  frozen?: string[];
  /** Whether the layer passes a Keras mask through (`supportsMasking`, computeMask returns the input mask). */
  supportsMasking: boolean;
  /** A label for the test name when a class is tested in more than one configuration. */
  label?: string;
}

const BATCH = 4;
const SAMPLES = 8;

const weightName = (w: tfl.LayerVariable): string => w.originalName.split('/').pop() as string;

function inputShapes(spec: LayerTestSpec): number[][] {
  return Array.isArray(spec.inputShape[0]) ? (spec.inputShape as number[][]) : [spec.inputShape as number[]];
}

/** `n` samples of every input: `spec.inputs`, or standard normal float32 values. */
function makeInputs(spec: LayerTestSpec, n: number, seed: number): tf.Tensor[] {
  if (spec.inputs) return spec.inputs(n, seed);
  return inputShapes(spec).map((shape, i) => {
    const full = [n, ...shape];
    return tf.tensor(randn(full.reduce((a, b) => a * b, 1), seed + i), full, 'float32');
  });
}

const one = (xs: tf.Tensor[]): tf.Tensor | tf.Tensor[] => (xs.length === 1 ? xs[0] : xs);

const values = (t: tf.Tensor): number[] => Array.from(t.dataSync());

/**
 * Moves every float32 weight away from its initial value (w (1 + 0.2 u) + 0.05 u', u, u' in [0, 1)), keeping
 * positive weights positive, so that a round trip that dropped a weight would change the outputs.
 */
function perturbedWeights(layer: tfl.layers.Layer, seed: number, exact: string[]): tf.Tensor[] {
  const u = rng(seed);
  return layer.weights.map((variable) => {
    const w = variable.read();
    const v = w.dataSync();
    if (w.dtype !== 'float32' || exact.includes(weightName(variable))) return tf.tensor(v, w.shape, w.dtype);
    return tf.tensor(Float32Array.from(v, (x) => x * (1 + 0.2 * u()) + 0.05 * u()), w.shape, 'float32');
  });
}

/** Symbolic inputs of the spec's shapes, with the dtypes of the sample `x`. */
function symbolicInputs(spec: LayerTestSpec, x: tf.Tensor[]): tfl.SymbolicTensor[] {
  return inputShapes(spec).map((shape, i) => tfl.input({ shape, dtype: x[i].dtype as 'float32' | 'int32' }));
}

/** A functional model of `layer` alone over the spec's inputs. */
function modelOf(layer: tfl.layers.Layer, spec: LayerTestSpec, x: tf.Tensor[]): tfl.LayersModel {
  const inputs = symbolicInputs(spec, x);
  const outputs = layer.apply(inputs.length === 1 ? inputs[0] : inputs) as tfl.SymbolicTensor;
  return tfl.model({ inputs, outputs });
}

function assertSameWeights(actual: tf.Tensor[], expected: tf.Tensor[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: number of weights`);
  expected.forEach((w, i) => {
    assert.deepEqual(actual[i].shape, w.shape, `${what}: weight ${i} shape`);
    assert.deepEqual(values(actual[i]), values(w), `${what}: weight ${i} values`);
  });
}

function snapshot(layer: tfl.layers.Layer): Map<string, number[]> {
  return new Map(layer.weights.map((w) => [w.name, values(w.read())]));
}

function changed(before: Map<string, number[]>, which: tfl.LayerVariable[]): string[] {
  return which.filter((w) => {
    const old = before.get(w.name) as number[];
    return values(w.read()).some((v, i) => v !== old[i]);
  }).map(weightName);
}

function predict(model: tfl.LayersModel, x: tf.Tensor[]): number[] {
  return tf.tidy(() => values(model.predict(one(x)) as tf.Tensor));
}

/** The checks of {@link runLayerTest} on the current backend. */
async function checkLayer(cls: LayerCtor, spec: LayerTestSpec): Promise<void> {
  const before = tf.memory().numTensors;
  const shapes = inputShapes(spec);
  const x = makeInputs(spec, BATCH, 11);

  // Build by calling it; class, weight counts, names and shapes.
  const layer = spec.make();
  assert.equal(layer.getClassName(), cls.className, 'class name');
  assert.ok(layer instanceof cls, `an instance of ${cls.className}`);
  const registered = tf.serialization.SerializationMap.getMap().classNameMap[cls.className];
  assert.ok(registered !== undefined && (registered[0] as unknown) === cls, `${cls.className} is registered for deserialization`);
  tf.dispose(layer.apply(one(x)) as tf.Tensor);
  assert.equal(layer.trainableWeights.length, spec.trainable, 'number of trainable weights');
  assert.equal(layer.nonTrainableWeights.length, spec.nonTrainable, 'number of non-trainable weights');
  if (spec.weights) {
    assert.deepEqual(layer.weights.map((w) => [weightName(w), w.shape]), spec.weights, 'weight names and shapes');
  }
  const weights = perturbedWeights(layer, 12, spec.exact ?? []);
  layer.setWeights(weights);

  // Output shape, concrete and symbolic, against computeOutputShape.
  const batchShapes = (n: number | null) => shapes.map((s) => [n, ...s]);
  const expected = (n: number | null) => layer.computeOutputShape(shapes.length === 1 ? batchShapes(n)[0] : batchShapes(n));
  const y = layer.apply(one(x), { training: false }) as tf.Tensor;
  assert.deepEqual(y.shape, expected(BATCH), 'output shape vs computeOutputShape');
  assert.ok(values(y).every(Number.isFinite), 'finite outputs');
  const symbolic = symbolicInputs(spec, x);
  const probe = spec.make();
  assert.deepEqual((probe.apply(symbolic.length === 1 ? symbolic[0] : symbolic) as tfl.SymbolicTensor).shape, expected(null), 'symbolic output shape');
  probe.dispose();

  // getConfig -> JSON -> fromConfig: the same config, and the same outputs once given the same weights.
  const config = layer.getConfig();
  assert.deepEqual(JSON.parse(JSON.stringify(config)), config, 'getConfig() is JSON-serialisable as is');
  const copy = assertConfigRoundTrip(cls, layer, JSON.parse(JSON.stringify(config)) as tf.serialization.ConfigDict);
  tf.dispose(copy.apply(one(x)) as tf.Tensor);
  copy.setWeights(weights);
  tf.tidy(() => assert.deepEqual(values(copy.apply(one(x), { training: false }) as tf.Tensor), values(y), 'outputs of the fromConfig copy'));
  copy.dispose();

  // Masking: a mask over the positions (every axis but the last) passes through unchanged, and calls given it
  // (some layers leave masked positions out of their statistics) keep the output shape and stay finite.
  assert.equal(layer.supportsMasking, spec.supportsMasking, 'supportsMasking');
  if (spec.supportsMasking && shapes.length === 1) {
    const mask = tf.tensor(Array.from({ length: x[0].size / (shapes[0][shapes[0].length - 1] ?? 1) }, (_, i) => (i % 3 === 0 ? 0 : 1)), x[0].shape.slice(0, -1), 'bool');
    const out = layer.computeMask(x[0], mask) as tf.Tensor;
    assert.deepEqual(values(out), values(mask), 'computeMask passes the mask through');
    for (const training of [true, false]) {
      tf.tidy(() => {
        const masked = layer.apply(x[0], { mask, training }) as tf.Tensor;
        assert.deepEqual(masked.shape, y.shape, `output shape with a mask (training ${training})`);
        assert.ok(values(masked).every(Number.isFinite), `finite outputs with a mask (training ${training})`);
      });
    }
    tf.dispose([mask, out]);
  }
  layer.dispose();

  // Save/load through tf.io in a model: identical weights, layer config and outputs.
  const model = modelOf(spec.make(), spec, x);
  const inModel = model.layers[model.layers.length - 1];
  inModel.setWeights(weights);
  const loaded = await saveAndLoad(model);
  const reloaded = loaded.layers[loaded.layers.length - 1];
  assert.equal(reloaded.getClassName(), cls.className, 'class after load');
  assert.ok(reloaded instanceof cls, 'an instance of the class after load');
  assert.deepEqual(reloaded.getConfig(), inModel.getConfig(), 'config after load');
  assertSameWeights(reloaded.getWeights(), inModel.getWeights(), 'after load');
  assert.deepEqual(predict(loaded, x), predict(model, x), 'outputs after load');
  loaded.dispose();

  // Inference moves no weight; training moves the trainable weights and the running state.
  const start = snapshot(inModel);
  tf.tidy(() => {
    model.predict(one(x));
    inModel.apply(one(x), { training: false });
  });
  assert.deepEqual(changed(start, inModel.weights), [], 'weights moved in inference');
  const xs = makeInputs(spec, SAMPLES, 13);
  const ys = tf.tensor(randn(SAMPLES * y.size / BATCH, 14), [SAMPLES, ...y.shape.slice(1)]);
  if (inModel.trainableWeights.length > 0) {
    model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    await assertModelFitWithoutLeak(model, one(xs), ys, { warmupBatchSize: BATCH, batchSize: BATCH });
  } else {
    // Nothing to fit (tfjs's optimizers refuse an empty variable list): training-mode calls move the state.
    tf.tidy(() => {
      inModel.apply(one(xs), { training: true });
    });
  }
  const trained = changed(start, inModel.trainableWeights);
  const mustTrain = inModel.trainableWeights.map(weightName).filter((n) => !(spec.frozen ?? []).includes(n));
  assert.deepEqual(mustTrain.filter((n) => !trained.includes(n)), [], 'trainable weights that training left unchanged');
  const state = spec.state ?? inModel.nonTrainableWeights.map(weightName);
  const moved = changed(start, inModel.nonTrainableWeights);
  assert.deepEqual(state.filter((n) => !moved.includes(n)), [], 'running state that training left unchanged');
  assert.deepEqual(moved.filter((n) => !state.includes(n)), [], 'non-trainable weights that training moved');
  assert.ok(predict(model, x).every(Number.isFinite), 'finite outputs after training');

  model.dispose();
  tf.dispose([...x, ...xs, ys, y, ...weights]);
  assert.equal(tf.memory().numTensors, before, 'tensors leaked by the layer test');
}

/**
 * Declares the layer test of `cls` on every Node backend: builds `spec.make()` on random inputs and checks
 * the weight counts (names and shapes when given), the output shape against computeOutputShape, the
 * getConfig → JSON → fromConfig round trip (same config, same outputs with the same weights), masking (the
 * mask passes through; masked calls keep the shape and stay finite), save/load of a model holding it through
 * tf.io (same config, weights and outputs), that inference moves no weight while model.fit moves the trainable
 * weights and the running state, and that nothing leaks. Weights are moved off their initial values first
 * (w (1 + 0.2 u) + 0.05 u'), so that a round trip that dropped one would change the outputs.
 *
 * @example
 * runLayerTest(nk.GroupNormalization, { make: () => new nk.GroupNormalization({ groups: 2 }), inputShape: [3, 4],
 *   trainable: 2, nonTrainable: 0, weights: [['gamma', [4]], ['beta', [4]]], supportsMasking: true });
 */
export function runLayerTest(cls: LayerCtor, spec: LayerTestSpec): void {
  describe(`runLayerTest ${cls.className}${spec.label ? ` (${spec.label})` : ''}`, () => {
    forEachBackend(() => {
      it('builds, round-trips, saves, loads and trains as a layer should, leaking nothing', () => checkLayer(cls, spec));
    });
  });
}
