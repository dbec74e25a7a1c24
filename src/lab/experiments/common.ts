/**
 * Shared pieces of the lab's experiments: requirement checks (so an experiment whose methods are not in normkit
 * yet is listed as pending), the image and text data at the suite's size, and one classifier / language-model
 * run with its curves and metrics.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { listNorms } from '../../core/registry.js';
import { buildCNN, type CNN, type CNNOptions } from '../../models/cnn.js';
import { buildTransformerLM, type TransformerLMConfig } from '../../models/transformer.js';
import { poolImages, subsetImages, type ImageSet } from '../data/fashion-mnist.js';
import { unigramCrossEntropy } from '../data/text.js';
import type { RunContext, RunOutput } from '../experiment.js';
import { deriveSeed } from '../rng.js';
import { heldOutWindows, trainClassifier, trainLanguageModel, trainableVariables, type CurvePoint, type TrainHooks, type TrainResult } from '../train.js';

/** Registry names (or aliases) among `names` that are not registered yet, as "registry 'x'" strings. */
export function missingNorms(names: readonly string[]): string[] {
  const known = new Set(listNorms().flatMap((n) => [n.name, ...(n.aliases ?? [])]));
  return names.filter((n) => !known.has(n)).map((n) => `registry '${n}'`);
}

/** A seed for model initializers derived from the run's seed (non-negative 31-bit). */
export function modelSeed(seed: number, salt: string): number {
  return deriveSeed(seed, salt) % 2147483647;
}

/** Train and test images at the suite's size: 14x14 (2x2 average-pooled) in quick mode, 28x28 otherwise. */
export function suiteImages(ctx: RunContext): { train: ImageSet; test: ImageSet } {
  const { train, test } = ctx.images();
  return ctx.quick ? { train: poolImages(train, 2), test: poolImages(test, 2) } : { train, test };
}

/** The first `n / classes` images of each class (in file order): a smaller set with the same class balance. */
export function balancedSubset(set: ImageSet, n: number): ImageSet {
  if (n >= set.n) return set;
  const per = Math.floor(n / set.numClasses);
  const taken = new Array<number>(set.numClasses).fill(0);
  const indices: number[] = [];
  for (let i = 0; i < set.n && indices.length < per * set.numClasses; i++) {
    if (taken[set.labels[i]] < per) {
      taken[set.labels[i]]++;
      indices.push(i);
    }
  }
  return subsetImages(set, indices);
}

/**
 * Curves and metrics of a classifier run (accuracy in [0, 1]). A diverged run has no final accuracy (null): the
 * checks count it as failed instead of averaging its chance-level accuracy with the runs that trained.
 */
export function classifierOutput(result: TrainResult, extra: Record<string, number | null> = {}): RunOutput {
  return {
    metrics: { 'final test accuracy': Number.isFinite(result.final) ? result.final : null, diverged: result.diverged ? 1 : 0, ...extra },
    curves: { 'train loss': result.loss, 'test accuracy': result.evals },
  };
}

/**
 * A classifier whose final test accuracy is at most this learned nothing and failed to train: Fashion-MNIST has
 * 10 balanced classes, so chance is 0.1, and 0.02 above it allows for a test set's sampling. Accuracy checks count
 * such runs as failed (an outcome, like a diverged run), never as values.
 */
export const CHANCE_ACCURACY = 0.12;

/** Options of {@link runClassifier}. */
export interface ClassifierRun extends TrainHooks {
  cnn: Omit<CNNOptions, 'inputShape' | 'numClasses' | 'seed'>;
  steps: number;
  batchSize: number;
  optimizer: () => tf.Optimizer;
  evalEvery: number;
  /** Chooses the trained variables (default: all trainable weights). */
  vars?: (cnn: CNN) => tf.Variable[];
  /** Train on a class-balanced subset of this many images (default: all of the suite's training images). */
  trainImages?: number;
  /** Builds per-run hooks from the model (e.g. gradient masks, weight-norm probes); disposed after the run. */
  hooks?: (cnn: CNN) => TrainHooks & { dispose?: () => void; metrics?: () => Record<string, number | null>; curves?: Record<string, CurvePoint[]> };
}

/** Builds the CNN, trains it on the suite's images, disposes model and optimizer, returns curves and metrics. */
export async function runClassifier(run: ClassifierRun, seed: number, ctx: RunContext): Promise<RunOutput> {
  const images = suiteImages(ctx);
  const test = images.test;
  const train = run.trainImages !== undefined ? balancedSubset(images.train, run.trainImages) : images.train;
  const cnn = buildCNN({ ...run.cnn, inputShape: [train.height, train.width, 1], numClasses: train.numClasses, seed: modelSeed(seed, 'cnn') });
  const optimizer = run.optimizer();
  const hooks = run.hooks?.(cnn);
  try {
    const result = await trainClassifier({
      model: cnn.model, train, test, steps: run.steps, batchSize: run.batchSize, optimizer, seed, evalEvery: run.evalEvery,
      vars: run.vars?.(cnn), onStep: ctx.onStep, shouldStop: ctx.shouldStop,
      learningRate: run.learningRate, scheduleOn: run.scheduleOn, finalEvals: run.finalEvals,
      transformGradients: hooks?.transformGradients ?? run.transformGradients, afterStep: hooks?.afterStep ?? run.afterStep,
    });
    const output = classifierOutput(result, hooks?.metrics?.() ?? {});
    Object.assign(output.curves, hooks?.curves ?? {});
    return output;
  } finally {
    hooks?.dispose?.();
    optimizer.dispose();
    cnn.model.dispose();
  }
}

/** Options of {@link runLanguageModel}. */
export interface LMRun extends TrainHooks {
  model: Omit<TransformerLMConfig, 'vocabSize' | 'seqLen' | 'seed'>;
  steps: number;
  batchSize: number;
  length: number;
  optimizer: () => tf.Optimizer;
  evalEvery: number;
  /** Called after each step with the model (e.g. nGPT's weight projection). */
  afterStepWithModel?: (model: tfl.LayersModel) => void;
}

/** Held-out loss must end at least this far (nats/char) below the unigram cross-entropy for a run to count as trained. */
export const UNIGRAM_MARGIN = 0.1;

/**
 * A language-model run's outcome: 'diverged' (non-finite or exploding loss), 'failed to train' (ended on the
 * unigram plateau: final held-out loss within {@link UNIGRAM_MARGIN} of the unigram cross-entropy, or above it),
 * else 'trained'.
 */
export function lmOutcome(result: Pick<TrainResult, 'diverged' | 'final'>, unigram: number): 'trained' | 'failed to train' | 'diverged' {
  if (result.diverged || !Number.isFinite(result.final)) return 'diverged';
  return result.final > unigram - UNIGRAM_MARGIN ? 'failed to train' : 'trained';
}

/** Builds the Transformer LM, trains it on the char corpus, disposes it, returns curves and metrics. */
export async function runLanguageModel(run: LMRun, seed: number, ctx: RunContext): Promise<RunOutput> {
  const corpus = ctx.text();
  const model = buildTransformerLM({ ...run.model, vocabSize: corpus.vocab.length, seqLen: run.length, seed: modelSeed(seed, 'lm') });
  const optimizer = run.optimizer();
  try {
    const result = await trainLanguageModel({
      forward: (ids, training) => model.apply(ids, { training }) as tf.Tensor3D,
      vars: trainableVariables(model), vocabSize: corpus.vocab.length, trainIds: corpus.train, validIds: corpus.valid,
      steps: run.steps, batchSize: run.batchSize, length: run.length, optimizer, seed, evalEvery: run.evalEvery,
      onStep: ctx.onStep, shouldStop: ctx.shouldStop, learningRate: run.learningRate, finalEvals: run.finalEvals,
      afterStep: run.afterStepWithModel ? () => run.afterStepWithModel?.(model) : undefined,
    });
    const steps = result.loss.length;
    // The unigram level on the same held-out characters the model is evaluated on.
    const unigram = unigramCrossEntropy(corpus, heldOutWindows(corpus.valid, 16, run.length).targets);
    const outcome = lmOutcome(result, unigram);
    return {
      metrics: {
        // Only a run that trained has a final loss; the other two outcomes are counted, never averaged.
        'final held-out loss': outcome === 'trained' ? result.final : null,
        diverged: outcome === 'diverged' ? 1 : 0,
        'failed to train': outcome === 'failed to train' ? 1 : 0,
        'unigram cross-entropy': unigram,
        'seconds per step': steps > 0 ? result.wallSeconds / steps : null,
      },
      curves: { 'train loss': result.loss, 'held-out loss': result.evals },
    };
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}
