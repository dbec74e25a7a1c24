/**
 * The lab's training loops: seeded mini-batch SGD-style training of a classifier or a language model with an
 * explicit gradient step (so experiments can choose the trained variables, transform gradients, and measure
 * every step), with divergence detection and cooperative stopping (Ctrl-C).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { seededPermutation, seededRandom, deriveSeed } from './rng.js';
import type { ImageSet } from './data/fashion-mnist.js';
import { sampleWindows } from './data/text.js';

/** Thrown by a training loop when the user asked to stop (Ctrl-C); the runner keeps finished runs. */
export class LabInterrupted extends Error {
  constructor() {
    super('interrupted');
    this.name = 'LabInterrupted';
  }
}

/** One point of a curve. */
export interface CurvePoint {
  step: number;
  value: number;
  /** Seconds since the start of training (for plots against wall time). */
  seconds?: number;
}

/** Hooks shared by both loops. */
export interface TrainHooks {
  /** Called after every step with its loss (for the progress display). */
  onStep?: (step: number, loss: number) => void;
  /** Polled before every step; when it returns true the loop throws {@link LabInterrupted}. */
  shouldStop?: () => boolean;
  /** Rewrites the gradients before they are applied (e.g. adaptive gradient clipping); owns nothing it returns. */
  transformGradients?: (grads: tf.NamedTensorMap, vars: tf.Variable[]) => tf.NamedTensorMap;
  /** Called after each applied step (e.g. to measure the weights); runs outside the gradient tape. */
  afterStep?: (step: number) => void;
  /** Learning rate of each step (1-based), set before the step on `scheduleOn` (e.g. {@link linearDecay}). */
  learningRate?: (step: number) => number;
  /** The optimizer whose rate `learningRate` sets (default: the training optimizer; the inner one of a wrapper). */
  scheduleOn?: tf.Optimizer;
  /**
   * The run's final value is the mean of this many last evaluations (default 1): with a decayed learning rate the
   * last evaluations measure the same converged model, and their mean is less noisy than one of them.
   */
  finalEvals?: number;
}

/**
 * Sets an optimizer's learning rate: through `setLearningRate` where tfjs has it (SGD, momentum keep the rate as a
 * tensor), else the `learningRate` field that Adam-style optimizers read at every step.
 */
export function setLearningRate(optimizer: tf.Optimizer, rate: number): void {
  const o = optimizer as unknown as { setLearningRate?: (r: number) => void; learningRate?: number };
  if (typeof o.setLearningRate === 'function') o.setLearningRate(rate);
  else o.learningRate = rate;
}

/**
 * A learning rate decayed linearly from `base` at step 1 to `base / steps` at the last step, after an optional
 * linear warm-up over the first `warmup` steps: lr(t) = base * min(1, t / warmup) * (1 - (t - 1) / steps)
 * (the min factor is 1 without warm-up).
 * @example trainClassifier({ ..., learningRate: linearDecay(0.1, 1500) })
 * @example trainLanguageModel({ ..., learningRate: linearDecay(0.01, 300, 30) })
 */
export function linearDecay(base: number, steps: number, warmup = 0): (step: number) => number {
  return (step) => base * (warmup > 0 ? Math.min(1, step / warmup) : 1) * (1 - (step - 1) / steps);
}

/** Mean of the last `k` evaluations' values (NaN when there are none). */
export function meanOfLast(evals: readonly CurvePoint[], k: number): number {
  const tail = evals.slice(-Math.max(1, k));
  return tail.length === 0 ? NaN : tail.reduce((s, p) => s + p.value, 0) / tail.length;
}

/** What a training loop reports. */
export interface TrainResult {
  loss: CurvePoint[];
  /** Test accuracy (classifier) or held-out loss (language model) at each evaluation. */
  evals: CurvePoint[];
  /**
   * The mean of the last `finalEvals` evaluations: test accuracy or held-out loss; NaN after a divergence (a
   * diverged run is an outcome, not a value to average).
   */
  final: number;
  diverged: boolean;
  /** Step at which the loss became non-finite or exceeded `divergeLoss`, else null. */
  divergedAt: number | null;
  wallSeconds: number;
}

/** Lets pending events (Ctrl-C's signal handler, timers) run: the training loops are otherwise synchronous. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The variables of a model's trainable weights. */
export function trainableVariables(model: tfl.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}

function applyStep(
  lossFn: () => tf.Scalar,
  vars: tf.Variable[],
  optimizer: tf.Optimizer,
  transform: TrainHooks['transformGradients'],
): number {
  const { value, grads } = tf.variableGrads(lossFn, vars);
  const used = transform ? transform(grads, vars) : grads;
  optimizer.applyGradients(used);
  const loss = value.dataSync()[0];
  tf.dispose([value, grads]);
  if (used !== grads) tf.dispose(used);
  return loss;
}

/** Options of {@link trainClassifier}. */
export interface ClassifierTrainOptions extends TrainHooks {
  model: tfl.LayersModel;
  train: ImageSet;
  test: ImageSet;
  steps: number;
  batchSize: number;
  optimizer: tf.Optimizer;
  seed: number;
  /** Variables to train (default: all trainable weights). */
  vars?: tf.Variable[];
  /** Evaluate test accuracy every this many steps (and at the end). */
  evalEvery: number;
  /** Loss above which (or non-finite) the run counts as diverged and stops (default 1e3). */
  divergeLoss?: number;
}

function imageBatch(set: ImageSet, indices: ArrayLike<number>, start: number, count: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const size = set.height * set.width;
  const xs = new Float32Array(count * size);
  const ys = new Int32Array(count);
  for (let k = 0; k < count; k++) {
    const i = indices[(start + k) % indices.length];
    xs.set(set.images.subarray(i * size, (i + 1) * size), k * size);
    ys[k] = set.labels[i];
  }
  return tf.tidy(() => ({
    x: tf.tensor4d(xs, [count, set.height, set.width, 1]),
    y: tf.oneHot(tf.tensor1d(ys, 'int32'), set.numClasses) as tf.Tensor2D,
  }));
}

/** Accuracy of `model` (inference mode) on `set`, in batches of `batchSize`. */
export function evaluateAccuracy(model: tfl.LayersModel, set: ImageSet, batchSize = 250): number {
  let correct = 0;
  const identity = Int32Array.from({ length: set.n }, (_, i) => i);
  for (let start = 0; start < set.n; start += batchSize) {
    const count = Math.min(batchSize, set.n - start);
    const { x, y } = imageBatch(set, identity, start, count);
    const hits = tf.tidy(() => {
      const logits = model.apply(x, { training: false }) as tf.Tensor;
      return tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), tf.argMax(y, -1)), 'int32'));
    });
    correct += hits.dataSync()[0];
    tf.dispose([x, y, hits]);
  }
  return correct / set.n;
}

/**
 * Trains a classifier with softmax cross-entropy on seeded, reshuffled-every-epoch mini-batches; evaluates test
 * accuracy every `evalEvery` steps. Stops early when the loss diverges, and then evaluates the diverged model once
 * more for its curve (the run's `final` is then NaN: diverged is an outcome).
 */
export async function trainClassifier(o: ClassifierTrainOptions): Promise<TrainResult> {
  const vars = o.vars ?? trainableVariables(o.model);
  const divergeLoss = o.divergeLoss ?? 1e3;
  const started = Date.now();
  const loss: CurvePoint[] = [];
  const evals: CurvePoint[] = [];
  let order = seededPermutation(o.train.n, deriveSeed(o.seed, 'epoch0'));
  let position = 0;
  let epoch = 0;
  let divergedAt: number | null = null;
  for (let step = 1; step <= o.steps; step++) {
    await yieldToEventLoop();
    if (o.shouldStop?.()) throw new LabInterrupted();
    if (position + o.batchSize > o.train.n) {
      epoch++;
      order = seededPermutation(o.train.n, deriveSeed(o.seed, `epoch${epoch}`));
      position = 0;
    }
    if (o.learningRate) setLearningRate(o.scheduleOn ?? o.optimizer, o.learningRate(step));
    const { x, y } = imageBatch(o.train, order, position, o.batchSize);
    position += o.batchSize;
    const value = applyStep(
      () => tf.losses.softmaxCrossEntropy(y, o.model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
      vars, o.optimizer, o.transformGradients,
    );
    tf.dispose([x, y]);
    const seconds = (Date.now() - started) / 1000;
    loss.push({ step, value, seconds });
    o.onStep?.(step, value);
    if (!Number.isFinite(value) || value > divergeLoss) {
      divergedAt = step;
      break;
    }
    o.afterStep?.(step);
    if (step % o.evalEvery === 0 || step === o.steps) {
      evals.push({ step, value: evaluateAccuracy(o.model, o.test), seconds: (Date.now() - started) / 1000 });
    }
  }
  // A diverged run's accuracy (usually chance) is drawn on its curve but is not its final value.
  if (divergedAt !== null) evals.push({ step: divergedAt, value: evaluateAccuracy(o.model, o.test), seconds: (Date.now() - started) / 1000 });
  const final = divergedAt !== null ? NaN : meanOfLast(evals, o.finalEvals ?? 1);
  return { loss, evals, final, diverged: divergedAt !== null, divergedAt, wallSeconds: (Date.now() - started) / 1000 };
}

/** Options of {@link trainLanguageModel}. */
export interface LMTrainOptions extends TrainHooks {
  /** Maps int32 ids `[batch, length]` to logits `[batch, length, vocab]`; `training` selects batch statistics. */
  forward: (ids: tf.Tensor2D, training: boolean) => tf.Tensor3D;
  vars: tf.Variable[];
  vocabSize: number;
  trainIds: Int32Array;
  validIds: Int32Array;
  steps: number;
  batchSize: number;
  length: number;
  optimizer: tf.Optimizer;
  seed: number;
  evalEvery: number;
  /** Number of held-out windows evaluated (default 16). */
  evalWindows?: number;
  divergeLoss?: number;
}

function lmLoss(forward: LMTrainOptions['forward'], inputs: Int32Array, targets: Int32Array, o: { batch: number; length: number; vocab: number }, training: boolean): tf.Scalar {
  const ids = tf.tensor2d(inputs, [o.batch, o.length], 'int32');
  const logits = forward(ids, training);
  const labels = tf.oneHot(tf.tensor1d(targets, 'int32'), o.vocab);
  return tf.losses.softmaxCrossEntropy(labels, tf.reshape(logits, [o.batch * o.length, o.vocab])) as tf.Scalar;
}

/** The fixed held-out windows every language-model run is evaluated on (the same for every run and variant). */
export function heldOutWindows(validIds: Int32Array, count: number, length: number): { inputs: Int32Array; targets: Int32Array } {
  return sampleWindows(validIds, count, length, seededRandom(12345));
}

/**
 * Trains a next-character model with cross-entropy on seeded random windows; every `evalEvery` steps evaluates the
 * mean loss on fixed held-out windows (the same windows for every run, so curves are comparable).
 */
export async function trainLanguageModel(o: LMTrainOptions): Promise<TrainResult> {
  const random = seededRandom(deriveSeed(o.seed, 'windows'));
  const divergeLoss = o.divergeLoss ?? 1e3;
  const started = Date.now();
  const loss: CurvePoint[] = [];
  const evals: CurvePoint[] = [];
  const evalCount = o.evalWindows ?? 16;
  const held = heldOutWindows(o.validIds, evalCount, o.length);
  let divergedAt: number | null = null;
  for (let step = 1; step <= o.steps; step++) {
    await yieldToEventLoop();
    if (o.shouldStop?.()) throw new LabInterrupted();
    if (o.learningRate) setLearningRate(o.scheduleOn ?? o.optimizer, o.learningRate(step));
    const { inputs, targets } = sampleWindows(o.trainIds, o.batchSize, o.length, random);
    const value = applyStep(
      () => lmLoss(o.forward, inputs, targets, { batch: o.batchSize, length: o.length, vocab: o.vocabSize }, true),
      o.vars, o.optimizer, o.transformGradients,
    );
    const seconds = (Date.now() - started) / 1000;
    loss.push({ step, value, seconds });
    o.onStep?.(step, value);
    if (!Number.isFinite(value) || value > divergeLoss) {
      divergedAt = step;
      break;
    }
    o.afterStep?.(step);
    if (step % o.evalEvery === 0 || step === o.steps) {
      const v = tf.tidy(() => lmLoss(o.forward, held.inputs, held.targets, { batch: evalCount, length: o.length, vocab: o.vocabSize }, false));
      const value = v.dataSync()[0];
      v.dispose();
      evals.push({ step, value, seconds: (Date.now() - started) / 1000 });
    }
  }
  const final = divergedAt !== null ? NaN : meanOfLast(evals, o.finalEvals ?? 1);
  return { loss, evals, final, diverged: divergedAt !== null, divergedAt, wallSeconds: (Date.now() - started) / 1000 };
}
