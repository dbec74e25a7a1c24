/**
 * Image-classification experiments on Fashion-MNIST with the small CNN / ResNet: bn-speedup, micro-batch,
 * bn-only, adamp.
 */
import * as tf from '@tensorflow/tfjs-core';
import { AdamP } from '../../optimizers/adamp.js';
import type { Experiment, PlotSpec, RunOutput } from '../experiment.js';
import { seededRandom } from '../rng.js';
import { missingNorms, modelSeed, runClassifier } from './common.js';

const CLASSIFIER_PLOTS: PlotSpec[] = [
  { curve: 'train loss', title: 'Training loss', x: 'step', yTitle: 'cross-entropy', logY: true },
  { curve: 'test accuracy', title: 'Test accuracy', x: 'step', yTitle: 'accuracy' },
];

const DATA = (quick: boolean) => (quick
  ? 'Fashion-MNIST (embedded 3,000-image training subset; 1,000 test images), images average-pooled to 14x14'
  : 'Fashion-MNIST at 28x28 (the full set when installed, else the embedded subset)');

/** Steps-to-target metric with runs that never reach the target censored at `steps + evalEvery`. */
function stepsToTarget(output: RunOutput, target: number, censorAt: number): number {
  const hit = output.curves['test accuracy'].find((p) => p.value >= target);
  return hit ? hit.step : censorAt;
}

export const bnSpeedup: Experiment = {
  id: 'bn-speedup',
  title: 'Batch Normalization speeds up training',
  claim: 'BN reaches a given accuracy in far fewer training steps (14x fewer on an Inception ImageNet model); the paper also trains BN at higher learning rates, which this experiment does not test.',
  papers: ['Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift", ICML 2015'],
  methodPages: ['shared/methods/batch-norm.md'],
  metric: 'steps until test accuracy first reaches the target (evaluated every few steps; runs that never reach it count as steps + one evaluation interval), and final test accuracy',
  missing: async () => missingNorms(['batch']),
  plan: (quick) => {
    const steps = quick ? 150 : 1500;
    const evalEvery = quick ? 10 : 50;
    return {
      variants: [{ id: 'bn', label: 'BN' }, { id: 'none', label: 'no normalization' }],
      steps,
      setup: `${DATA(quick)}; ResNet (widths 8, 16; one basic block per stage) with BN after every conv vs the same network without normalization (convs with biases); SGD momentum 0.9, learning rate ${quick ? 0.1 : 0.1} for both; batch 32; ${steps} steps; target test accuracy ${quick ? '0.60' : '0.85'}, evaluated every ${evalEvery} steps.`,
      checks: [
        { description: 'BN reaches the target accuracy in fewer steps than no normalization', metric: 'steps to target', better: 'lower', kind: 'better', margin: evalEvery, variantA: 'bn', variantB: 'none' },
        { description: 'BN ends with a higher test accuracy than no normalization', metric: 'final test accuracy', better: 'higher', kind: 'better', margin: 0.01, variantA: 'bn', variantB: 'none' },
      ],
    };
  },
  run: async (variant, seed, ctx) => {
    const plan = bnSpeedup.plan(ctx.quick);
    const evalEvery = ctx.quick ? 10 : 50;
    const target = ctx.quick ? 0.6 : 0.85;
    const output = await runClassifier({
      cnn: { norm: variant.id === 'bn' ? 'batch' : 'none', widths: [8, 16] },
      steps: plan.steps, batchSize: 32, optimizer: () => tf.train.momentum(0.1, 0.9), evalEvery,
    }, seed, ctx);
    output.metrics['steps to target'] = stepsToTarget(output, target, plan.steps + evalEvery);
    return output;
  },
  plots: CLASSIFIER_PLOTS,
};

export const microBatch: Experiment = {
  id: 'micro-batch',
  title: 'Micro-batch training: BN degrades, GN+WS and BCN+WS hold',
  claim: 'With micro-batches (here 4 examples per step) BN degrades, while WS + GN and WS + BCN keep training well (the paper: they match or beat large-batch BN).',
  papers: [
    'Qiao, Wang, Liu, Shen & Yuille, "Micro-Batch Training with Batch-Channel Normalization and Weight Standardization", 2019',
    'Wu & He, "Group Normalization", ECCV 2018',
  ],
  methodPages: ['shared/methods/batch-channel-norm.md', 'shared/methods/weight-standardization.md', 'shared/methods/group-norm.md'],
  metric: 'final test accuracy after the same number of training examples',
  missing: async () => missingNorms(['batch', 'group', 'bcn', 'weight-standardization']),
  plan: (quick) => {
    const examples = quick ? 1600 : 32000;
    return {
      variants: [
        { id: 'bn-b4', label: 'BN, batch 4' },
        { id: 'gn-ws-b4', label: 'GN + WS, batch 4' },
        { id: 'bcn-ws-b4', label: 'BCN + WS, batch 4' },
      ],
      steps: examples / 4,
      setup: `${DATA(quick)}; ResNet (widths 8, 16) with the norm after every conv (GN and BCN with 4 groups, BCN in its batch-statistics mode; WS on every conv for GN and BCN); 4 examples per step; SGD momentum 0.9, learning rate 0.02; ${examples / 4} steps. (A large-batch BN reference at equal examples would get 8x fewer steps, which in runs this short measures the step count, not the normalization; it is left out.)`,
      checks: [
        { description: 'GN + WS at batch 4 beats BN at batch 4', metric: 'final test accuracy', better: 'higher', kind: 'better', margin: 0.01, variantA: 'gn-ws-b4', variantB: 'bn-b4' },
        { description: 'BCN + WS at batch 4 beats BN at batch 4', metric: 'final test accuracy', better: 'higher', kind: 'better', margin: 0.01, variantA: 'bcn-ws-b4', variantB: 'bn-b4' },
      ],
    };
  },
  run: async (variant, seed, ctx) => {
    const examples = ctx.quick ? 1600 : 32000;
    const batch = 4;
    const norm = variant.id.startsWith('gn') ? 'group' : variant.id.startsWith('bcn') ? 'bcn' : 'batch';
    const steps = examples / batch;
    return runClassifier({
      cnn: { norm, widths: [8, 16], convWrapper: variant.id.includes('-ws-') ? 'weight-standardization' : undefined },
      steps, batchSize: batch, optimizer: () => tf.train.momentum(0.005 * batch, 0.9), evalEvery: Math.max(1, Math.floor(steps / 10)),
    }, seed, ctx);
  },
  plots: CLASSIFIER_PLOTS,
};

export const bnOnly: Experiment = {
  id: 'bn-only',
  title: 'Training only BatchNorm',
  claim: 'Training only BN\'s gamma and beta on frozen random weights reaches accuracy far above training the same number of randomly chosen other parameters.',
  papers: ['Frankle, Schwab & Morcos, "Training BatchNorm and Only BatchNorm: On the Expressive Power of Random Features in CNNs", ICLR 2021'],
  methodPages: ['shared/methods/bn-only-training.md'],
  metric: 'final test accuracy',
  missing: async () => missingNorms(['batch']),
  plan: (quick) => {
    const steps = quick ? 150 : 1500;
    return {
      variants: [{ id: 'bn-affine', label: 'only BN gamma, beta' }, { id: 'random-k', label: 'as many random conv/dense weights' }],
      steps,
      setup: `${DATA(quick)}; ResNet (widths 8, 16) with BN, kernels frozen at their seeded He init; either only BN's gamma and beta are trained, or the same number K of kernel entries chosen at random (seeded) among all conv and dense kernels (BN's gamma, beta frozen at 1, 0); Adam, learning rate 0.01; batch 32; ${steps} steps.`,
      checks: [
        { description: 'Training only BN\'s affine parameters beats training as many random other parameters', metric: 'final test accuracy', better: 'higher', kind: 'better', margin: 0.02, variantA: 'bn-affine', variantB: 'random-k' },
      ],
    };
  },
  run: async (variant, seed, ctx) => {
    const steps = bnOnly.plan(ctx.quick).steps;
    const normVars = (cnn: { normLayers: { trainableWeights: { read: () => tf.Tensor }[] }[] }) =>
      cnn.normLayers.flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
    if (variant.id === 'bn-affine') {
      return runClassifier({
        cnn: { norm: 'batch', widths: [8, 16] }, steps, batchSize: 32, optimizer: () => tf.train.adam(0.01), evalEvery: Math.max(1, steps / 10),
        vars: normVars,
      }, seed, ctx);
    }
    return runClassifier({
      cnn: { norm: 'batch', widths: [8, 16] }, steps, batchSize: 32, optimizer: () => tf.train.adam(0.01), evalEvery: Math.max(1, steps / 10),
      vars: (cnn) => [...cnn.convLayers, cnn.head].map((l) => l.trainableWeights[0].read() as tf.Variable),
      hooks: (cnn) => {
        // K = number of BN affine parameters; pick K kernel entries uniformly at random (seeded), mask the rest.
        const k = normVars(cnn).reduce((s, v) => s + v.size, 0);
        const kernels = [...cnn.convLayers, cnn.head].map((l) => l.trainableWeights[0].read() as tf.Variable);
        const total = kernels.reduce((s, v) => s + v.size, 0);
        const chosen = new Uint8Array(total);
        const random = seededRandom(modelSeed(seed, 'mask'));
        for (let picked = 0; picked < k;) {
          const i = Math.floor(random() * total);
          if (!chosen[i]) {
            chosen[i] = 1;
            picked++;
          }
        }
        let offset = 0;
        const masks = new Map<string, tf.Tensor>();
        for (const v of kernels) {
          masks.set(v.name, tf.tensor(Float32Array.from(chosen.subarray(offset, offset + v.size)), v.shape));
          offset += v.size;
        }
        return {
          transformGradients: (grads) => {
            const out: tf.NamedTensorMap = {};
            for (const [name, g] of Object.entries(grads)) out[name] = tf.mul(g, masks.get(name) ?? tf.scalar(0));
            return out;
          },
          dispose: () => tf.dispose([...masks.values()]),
          metrics: () => ({ 'trained parameters': k }),
        };
      },
    }, seed, ctx);
  },
  plots: CLASSIFIER_PLOTS,
};

/** ||w|| over every conv kernel followed by BN (scale-invariant), as one flat vector. */
function kernelNorm(kernels: tf.Variable[]): number {
  return tf.tidy(() => Math.sqrt(kernels.reduce((s, k) => s + (tf.sum(tf.square(k)).dataSync()[0]), 0)));
}

export const adamp: Experiment = {
  id: 'adamp',
  title: 'AdamP keeps the effective step size of scale-invariant weights',
  claim: 'With momentum optimizers, scale-invariant weights (followed by BN) grow in norm, which prematurely decays their effective step size; AdamP removes the radial component of the update, slowing the norm growth, and gives uniform gains.',
  papers: ['Heo, Chun, Oh, Han, Yun, Kim, Uh & Ha, "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights", ICLR 2021'],
  methodPages: ['shared/methods/adamp-sgdp.md'],
  metric: 'growth of the conv-kernel norm ||w_T|| / ||w_0||, mean effective step size ||w_t - w_{t-1}|| / ||w_{t-1}|| over the last quarter of training, final test accuracy',
  missing: async () => missingNorms(['batch', 'adamp']),
  plan: (quick) => {
    const steps = quick ? 150 : 1500;
    return {
      variants: [{ id: 'adam', label: 'Adam' }, { id: 'adamp', label: 'AdamP' }],
      steps,
      setup: `${DATA(quick)}; ResNet (widths 8, 16) with BN after every conv (so every conv kernel is scale-invariant); Adam vs AdamP (delta 0.1, wd ratio 0.1), learning rate 0.003, no weight decay; batch 32; ${steps} steps; kernel norms measured after every step.`,
      checks: [
        { description: 'AdamP grows the scale-invariant kernels\' norm less than Adam', metric: 'kernel norm growth', better: 'lower', kind: 'better', margin: 0, variantA: 'adamp', variantB: 'adam' },
        { description: 'AdamP keeps a larger effective step size late in training', metric: 'late effective step size', better: 'higher', kind: 'better', margin: 0, variantA: 'adamp', variantB: 'adam' },
        { description: 'AdamP\'s test accuracy is within 0.01 of Adam\'s or better', metric: 'final test accuracy', better: 'higher', kind: 'no-worse', margin: 0.01, variantA: 'adamp', variantB: 'adam' },
      ],
    };
  },
  run: async (variant, seed, ctx) => {
    const steps = adamp.plan(ctx.quick).steps;
    return runClassifier({
      cnn: { norm: 'batch', widths: [8, 16] }, steps, batchSize: 32, evalEvery: Math.max(1, steps / 10),
      optimizer: () => (variant.id === 'adamp' ? new AdamP({ learningRate: 0.003, delta: 0.1, wdRatio: 0.1 }) : tf.train.adam(0.003)),
      hooks: (cnn) => {
        const kernels = cnn.convLayers.map((l) => l.trainableWeights[0].read() as tf.Variable);
        const initial = kernelNorm(kernels);
        let previous = tf.tidy(() => kernels.map((k) => tf.clone(k)));
        let previousNorm = initial;
        const effective: { step: number; value: number }[] = [];
        const norms: { step: number; value: number }[] = [{ step: 0, value: initial }];
        return {
          afterStep: (step) => {
            const delta = tf.tidy(() => Math.sqrt(kernels.reduce((s, k, i) => s + tf.sum(tf.square(tf.sub(k, previous[i]))).dataSync()[0], 0)));
            const norm = kernelNorm(kernels);
            effective.push({ step, value: delta / previousNorm });
            norms.push({ step, value: norm });
            tf.dispose(previous);
            previous = tf.tidy(() => kernels.map((k) => tf.clone(k)));
            previousNorm = norm;
          },
          dispose: () => tf.dispose(previous),
          metrics: () => {
            const late = effective.slice(Math.floor(effective.length * 0.75));
            return {
              'kernel norm growth': norms[norms.length - 1].value / initial,
              'late effective step size': late.length ? late.reduce((s, p) => s + p.value, 0) / late.length : null,
            };
          },
          curves: { 'effective step size': effective, 'kernel norm': norms },
        };
      },
    }, seed, ctx);
  },
  plots: [
    ...CLASSIFIER_PLOTS,
    { curve: 'kernel norm', title: 'Norm of the scale-invariant conv kernels', x: 'step', yTitle: '||w||' },
    { curve: 'effective step size', title: 'Effective step size ||Δw|| / ||w||', x: 'step', yTitle: 'relative step', logY: true },
  ],
};
