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
import { poolImages, type ImageSet } from '../data/fashion-mnist.js';
import type { RunContext, RunOutput } from '../experiment.js';
import { deriveSeed } from '../rng.js';
import { trainClassifier, trainLanguageModel, trainableVariables, type CurvePoint, type TrainHooks, type TrainResult } from '../train.js';

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

/** Curves and metrics of a classifier run (accuracy in [0, 1]). */
export function classifierOutput(result: TrainResult, extra: Record<string, number | null> = {}): RunOutput {
  return {
    metrics: { 'final test accuracy': Number.isFinite(result.final) ? result.final : null, diverged: result.diverged ? 1 : 0, ...extra },
    curves: { 'train loss': result.loss, 'test accuracy': result.evals },
  };
}

/** Options of {@link runClassifier}. */
export interface ClassifierRun extends TrainHooks {
  cnn: Omit<CNNOptions, 'inputShape' | 'numClasses' | 'seed'>;
  steps: number;
  batchSize: number;
  optimizer: () => tf.Optimizer;
  evalEvery: number;
  /** Chooses the trained variables (default: all trainable weights). */
  vars?: (cnn: CNN) => tf.Variable[];
  /** Builds per-run hooks from the model (e.g. gradient masks, weight-norm probes); disposed after the run. */
  hooks?: (cnn: CNN) => TrainHooks & { dispose?: () => void; metrics?: () => Record<string, number | null>; curves?: Record<string, CurvePoint[]> };
}

/** Builds the CNN, trains it on the suite's images, disposes model and optimizer, returns curves and metrics. */
export async function runClassifier(run: ClassifierRun, seed: number, ctx: RunContext): Promise<RunOutput> {
  const { train, test } = suiteImages(ctx);
  const cnn = buildCNN({ ...run.cnn, inputShape: [train.height, train.width, 1], numClasses: train.numClasses, seed: modelSeed(seed, 'cnn') });
  const optimizer = run.optimizer();
  const hooks = run.hooks?.(cnn);
  try {
    const result = await trainClassifier({
      model: cnn.model, train, test, steps: run.steps, batchSize: run.batchSize, optimizer, seed, evalEvery: run.evalEvery,
      vars: run.vars?.(cnn), onStep: ctx.onStep, shouldStop: ctx.shouldStop,
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
      onStep: ctx.onStep, shouldStop: ctx.shouldStop,
      afterStep: run.afterStepWithModel ? () => run.afterStepWithModel?.(model) : undefined,
    });
    const steps = result.loss.length;
    return {
      metrics: {
        'final held-out loss': Number.isFinite(result.final) ? result.final : null,
        diverged: result.diverged ? 1 : 0,
        'seconds per step': steps > 0 ? result.wallSeconds / steps : null,
      },
      curves: { 'train loss': result.loss, 'held-out loss': result.evals },
    };
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}
