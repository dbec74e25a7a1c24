/**
 * Tiny lab experiments for the executor tests: importable by worker processes (`experimentModules`), so the
 * pool and the queue run the same experiments as the in-process runner. A run takes a second or so.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
// Registers every normalization method, as a user's experiment module would through normkit's root.
import '../../src/index.js';
import type { Experiment, RunOutput } from '../../src/lab/experiment.js';
import { runClassifier } from '../../src/lab/experiments/common.js';
import { EMBEDDED_FASHION_MNIST_DIR, loadFashionMnist } from '../../src/lab/data/fashion-mnist.js';
import { writeIdxFile } from '../../src/lab/data/idx.js';

/** This module's path, for `experimentModules` and `--module`. */
export const MODULE = new URL(import.meta.url).pathname;

/** A tiny copy of the embedded data (64 training, 32 test images) so a lab run takes seconds. */
export function tinyData(): string {
  const dir = mkdtempSync(join(tmpdir(), 'normkit-tiny-'));
  for (const [split, prefix, n] of [['train', 'train', 64], ['test', 't10k', 32]] as const) {
    const set = loadFashionMnist(EMBEDDED_FASHION_MNIST_DIR, split, n);
    writeIdxFile(join(dir, `${prefix}-images-idx3-ubyte.gz`), [n, 28, 28], Uint8Array.from(set.images, (v) => Math.round(v * 255)));
    writeIdxFile(join(dir, `${prefix}-labels-idx1-ubyte`), [n], Uint8Array.from(set.labels));
  }
  return dir;
}

/** The CNN with LayerNorm vs no norm, `steps` steps of batch 8 (a real training run at toy size). */
function tinyCNN(id: string, steps: number): Experiment {
  return {
    id,
    title: 'Tiny',
    claim: 'LayerNorm beats no normalization (not expected to be decided in a few steps)',
    papers: ['Ba, Kiros & Hinton 2016'],
    methodPages: ['docs/layer-norm.md'],
    metric: 'final test accuracy',
    missing: async () => [],
    plan: () => ({
      variants: [{ id: 'ln', label: 'LN' }, { id: 'none', label: 'none' }],
      steps,
      setup: 'toy',
      checks: [{ description: 'LN beats none', metric: 'final test accuracy', better: 'higher', kind: 'better', margin: 0.01, variantA: 'ln', variantB: 'none' }],
    }),
    run: async (variant, seed, ctx) => runClassifier({
      cnn: { norm: variant.id === 'ln' ? 'layer' : 'none', widths: [4, 8] }, steps, batchSize: 8, optimizer: () => tf.train.sgd(0.05), evalEvery: 2,
    }, seed, ctx),
    plots: [{ curve: 'train loss', title: 'Training loss', x: 'step', yTitle: 'loss' }],
  };
}

/** 4 steps: the end-to-end test's size. */
export const tiny = tinyCNN('tiny', 4);
/** 30 steps: long enough to kill a worker mid-run. */
export const tinyLong = tinyCNN('tiny-long', 30);

/**
 * A run that kills its own process: variant 'once' only on its first attempt (a marker file in
 * NORMKIT_TEST_CRASH_DIR remembers it), variant 'always' on every attempt; variant 'fine' never.
 */
export const crashing: Experiment = {
  ...tiny,
  id: 'crashing',
  plan: () => ({ ...tiny.plan(true), variants: [{ id: 'fine', label: 'fine' }, { id: 'once', label: 'once' }, { id: 'always', label: 'always' }], checks: [] }),
  run: async (variant, seed, ctx): Promise<RunOutput> => {
    const dir = process.env.NORMKIT_TEST_CRASH_DIR ?? tmpdir();
    const marker = join(dir, `crashed-${seed}`);
    if (variant.id === 'always' || (variant.id === 'once' && !existsSync(marker))) {
      writeFileSync(marker, 'x');
      process.kill(process.pid, 'SIGKILL');
    }
    ctx.onStep(1, 1);
    return { metrics: { score: seed }, curves: { loss: [{ step: 1, value: 1 }] } };
  },
};

/** The experiments worker processes find in this module. */
export const experiments: Experiment[] = [tiny, tinyLong, crashing];

/** A run's output without wall-clock times (the only part that may differ between two executions). */
export function withoutTimes(output: RunOutput): RunOutput {
  return {
    metrics: Object.fromEntries(Object.entries(output.metrics).filter(([k]) => !k.includes('seconds'))),
    curves: Object.fromEntries(Object.entries(output.curves).map(([k, points]) => [k, points.map(({ step, value }) => ({ step, value }))])),
  };
}
