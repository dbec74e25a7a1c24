/**
 * Image-classification experiments on Fashion-MNIST with the small CNN / ResNet: bn-speedup, micro-batch,
 * bn-only, adamp.
 */
import * as tf from '@tensorflow/tfjs-core';
import { AdamP } from '../../optimizers/adamp.js';
import { SGDP } from '../../optimizers/sgdp.js';
import type { CheckSpec, Experiment, PlotSpec, RunContext, RunOutput } from '../experiment.js';
import { seededRandom } from '../rng.js';
import { linearDecay, type TrainHooks } from '../train.js';
import { CHANCE_ACCURACY, missingNorms, modelSeed, runClassifier } from './common.js';

const CLASSIFIER_PLOTS: PlotSpec[] = [
  { curve: 'train loss', title: 'Training loss', x: 'step', yTitle: 'cross-entropy', logY: true },
  { curve: 'test accuracy', title: 'Test accuracy', x: 'step', yTitle: 'accuracy' },
];

const DATA = (quick: boolean) => (quick
  ? 'Fashion-MNIST (embedded 3,000-image training subset; 1,000 test images), images average-pooled to 14x14'
  : 'Fashion-MNIST at 28x28 (the full set when installed, else the embedded subset)');

/** The first evaluated step at which test accuracy reached `target`, or null when it never did (censored). */
function stepsToTarget(output: RunOutput, target: number): number | null {
  const hit = output.curves['test accuracy'].find((p) => p.value >= target);
  return hit ? hit.step : null;
}

/** Learning rates of bn-speedup's sweep, per variant. */
const SPEEDUP_RATES = { bn: [0.1, 0.3], none: [0.01, 0.03] };

function speedupSize(quick: boolean) {
  return quick ? { steps: 200, evalEvery: 10, target: 0.4 } : { steps: 300, evalEvery: 20, target: 0.5 };
}

export const bnSpeedup: Experiment = {
  id: 'bn-speedup',
  title: 'Batch Normalization speeds up training',
  claim: 'BN reaches a given accuracy in far fewer training steps (14x fewer on an Inception ImageNet model), in part because it allows higher learning rates.',
  papers: ['Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift", ICML 2015'],
  methodPages: ['docs/batch-norm.md'],
  metric: 'steps until test accuracy first reaches the target (evaluated every few steps; a run that never reaches it is censored: "not reached by step N"), as a ratio no-norm / BN; final test accuracy (mean of the last 3 evaluations)',
  missing: async () => missingNorms(['batch']),
  plan: (quick) => {
    const { steps, evalEvery, target } = speedupSize(quick);
    const variants = [
      ...SPEEDUP_RATES.bn.map((lr) => ({ id: `bn-lr${lr}`, label: `BN, lr ${lr}` })),
      ...SPEEDUP_RATES.none.map((lr) => ({ id: `none-lr${lr}`, label: `no norm, lr ${lr}` })),
    ];
    const bn = SPEEDUP_RATES.bn.map((lr) => `bn-lr${lr}`);
    const none = SPEEDUP_RATES.none.map((lr) => `none-lr${lr}`);
    return {
      variants,
      steps,
      seeds: 5,
      setup: `${DATA(quick)}; a plain 10-conv network (3x3 convs, widths 8 then 16, one stride-2 conv between; no residuals) with BN after every conv vs the same network without normalization (convs with biases); SGD momentum 0.9 at a constant learning rate, each variant at its own best rate from a sweep (BN ${SPEEDUP_RATES.bn.join(', ')}; no norm ${SPEEDUP_RATES.none.join(', ')}; picked by the median over seeds of the check's metric); batch 32; ${steps} steps; target test accuracy ${target}, evaluated every ${evalEvery} steps.`,
      regime: 'The paper: Inception on ImageNet, BN at 5x-30x the baseline learning rate, 14x fewer steps to the baseline\'s accuracy. Here: a small plain conv net where, as in the paper, the unnormalized net needs a small learning rate; the ratio is measured to a modest target within a short run, so it is a lower bound whenever the unnormalized runs do not reach it.',
      checks: [
        { description: 'BN reaches the target accuracy in at least 2x fewer steps than no normalization (each at its best learning rate)', metric: 'steps to target', better: 'lower', kind: 'better', margin: 2, scale: 'ratio', censoredAt: steps, paired: true, variantA: bn, variantB: none },
        { description: 'BN ends with a higher test accuracy than no normalization (each at its best learning rate)', metric: 'final test accuracy', failedAtOrBelow: CHANCE_ACCURACY, better: 'higher', kind: 'better', margin: 0.01, paired: true, variantA: bn, variantB: none },
      ],
      secondsPerStep: Object.fromEntries(variants.map((v) => [v.id, v.id.startsWith('bn') ? (quick ? 0.04 : 0.147) : (quick ? 0.029 : 0.122)])),
    };
  },
  run: async (variant, seed, ctx) => {
    const { steps, evalEvery, target } = speedupSize(ctx.quick);
    const lr = Number(variant.id.split('-lr')[1]);
    const output = await runClassifier({
      cnn: { norm: variant.id.startsWith('bn') ? 'batch' : 'none', widths: [8, 16], residual: false, extraConvsPerStage: 4 },
      steps, batchSize: 32, optimizer: () => tf.train.momentum(lr, 0.9), evalEvery, finalEvals: 3,
    }, seed, ctx);
    output.metrics['steps to target'] = stepsToTarget(output, target);
    return output;
  },
  plots: CLASSIFIER_PLOTS,
};

/** Micro-batch sizes per tier, and the training images (2 epochs over them). */
function microSize(quick: boolean) {
  return quick ? { batches: [2], images: 1500, epochs: 2 } : { batches: [2, 4], images: 3000, epochs: 2 };
}

const MICRO_NORMS = [
  { id: 'bn', label: 'BN', norm: 'batch', ws: false },
  { id: 'gn-ws', label: 'GN + WS', norm: 'group', ws: true },
  { id: 'bcn-ws', label: 'BCN + WS', norm: 'bcn', ws: true },
];

export const microBatch: Experiment = {
  id: 'micro-batch',
  title: 'Micro-batch training: BN degrades, GN+WS and BCN+WS hold',
  claim: 'With micro-batches (1-2 images per GPU in the paper) BN degrades, while WS + GN and WS + BCN keep training well (the paper: they match or beat large-batch BN).',
  papers: [
    'Qiao, Wang, Liu, Shen & Yuille, "Micro-Batch Training with Batch-Channel Normalization and Weight Standardization", 2019',
    'Wu & He, "Group Normalization", ECCV 2018',
  ],
  methodPages: ['docs/batch-channel-norm.md', 'docs/weight-standardization.md', 'docs/group-norm.md'],
  metric: 'final test accuracy (mean of the last 3 evaluations, after the learning rate has decayed) after 2 epochs',
  missing: async () => missingNorms(['batch', 'group', 'bcn', 'weight-standardization']),
  plan: (quick) => {
    const { batches, images, epochs } = microSize(quick);
    const variants = batches.flatMap((b) => MICRO_NORMS.map((n) => ({ id: `${n.id}-b${b}`, label: `${n.label}, batch ${b}` })));
    return {
      variants,
      steps: Math.max(...batches.map((b) => (epochs * images) / b)),
      variantSteps: Object.fromEntries(variants.map((v) => [v.id, (epochs * images) / Number(v.id.split('-b')[1])])),
      seeds: 5,
      setup: `${DATA(quick)}, a class-balanced training subset of ${images} images; ResNet (widths 8, 16) with the norm after every conv (GN and BCN with 4 groups, BCN in its batch-statistics mode; WS on every conv for GN and BCN); ${batches.join(' and ')} examples per step; ${epochs} epochs; SGD momentum 0.9, learning rate 0.005 x batch decayed linearly to 0.`,
      regime: `The paper: ImageNet and COCO with 1-2 images per GPU, full schedules. Here: ${epochs} epochs on a small subset at batch ${batches.join(' and ')}, with the decayed learning rate that the trial runs showed the effect needs; the large-batch BN reference is left out (at equal epochs it gets far fewer steps, which in short runs measures the step count, not the normalization).`,
      checks: batches.flatMap((b) => [
        { description: `GN + WS beats BN at batch ${b}`, metric: 'final test accuracy', failedAtOrBelow: CHANCE_ACCURACY, better: 'higher' as const, kind: 'better' as const, margin: 0.01, paired: true, variantA: `gn-ws-b${b}`, variantB: `bn-b${b}` },
        { description: `BCN + WS beats BN at batch ${b}`, metric: 'final test accuracy', failedAtOrBelow: CHANCE_ACCURACY, better: 'higher' as const, kind: 'better' as const, margin: 0.01, paired: true, variantA: `bcn-ws-b${b}`, variantB: `bn-b${b}` },
      ]),
      secondsPerStep: quick
        ? ({ 'bn-b2': 0.0048, 'gn-ws-b2': 0.0093, 'bcn-ws-b2': 0.0126 } as Record<string, number>)
        : { 'bn-b2': 0.0116, 'gn-ws-b2': 0.0188, 'bcn-ws-b2': 0.0264, 'bn-b4': 0.0195, 'gn-ws-b4': 0.0247, 'bcn-ws-b4': 0.0325 },
    };
  },
  run: async (variant, seed, ctx) => {
    const { images, epochs } = microSize(ctx.quick);
    const batch = Number(variant.id.split('-b')[1]);
    const n = MICRO_NORMS.find((m) => variant.id.startsWith(`${m.id}-b`));
    if (n === undefined) throw new Error(`micro-batch: unknown variant ${variant.id}`);
    const steps = (epochs * images) / batch;
    const lr = 0.005 * batch;
    return runClassifier({
      cnn: { norm: n.norm, widths: [8, 16], convWrapper: n.ws ? 'weight-standardization' : undefined },
      steps, batchSize: batch, trainImages: images, optimizer: () => tf.train.momentum(lr, 0.9), learningRate: linearDecay(lr, steps),
      evalEvery: Math.max(1, Math.floor(steps / 20)), finalEvals: 3,
    }, seed, ctx);
  },
  plots: CLASSIFIER_PLOTS,
};

export const bnOnly: Experiment = {
  id: 'bn-only',
  title: 'Training only BatchNorm',
  claim: 'Training only BN\'s gamma and beta on frozen random weights reaches accuracy far above training the same number of randomly chosen other parameters.',
  papers: ['Frankle, Schwab & Morcos, "Training BatchNorm and Only BatchNorm: On the Expressive Power of Random Features in CNNs", ICLR 2021'],
  methodPages: ['docs/batch-norm.md'],
  metric: 'final test accuracy (mean of the last 3 evaluations)',
  missing: async () => missingNorms(['batch']),
  plan: (quick) => {
    const steps = quick ? 150 : 3000;
    return {
      variants: [{ id: 'bn-affine', label: 'only BN gamma, beta' }, { id: 'random-k', label: 'as many random conv/dense weights' }],
      steps,
      seeds: 5,
      regime: 'The paper: ResNets of depth 14 to 866 on CIFAR-10 and ImageNet; the gap between BN-only and as many random parameters grows with depth and width. Here: a small, shallow ResNet where both arms train a few hundred parameters; the effect needs the long tier\'s longer runs, and depth remains untested at this scale.',
      setup: `${DATA(quick)}; ResNet (widths 8, 16) with BN, kernels frozen at their seeded He init; either only BN's gamma and beta are trained, or the same number K of kernel entries chosen at random (seeded) among all conv and dense kernels (BN's gamma, beta frozen at 1, 0); Adam, learning rate 0.01; batch 32; ${steps} steps.`,
      checks: [
        { description: 'Training only BN\'s affine parameters beats training as many random other parameters', metric: 'final test accuracy', failedAtOrBelow: CHANCE_ACCURACY, better: 'higher', kind: 'better', margin: 0.02, paired: true, variantA: 'bn-affine', variantB: 'random-k' },
      ],
      secondsPerStep: quick ? 0.03 : 0.075,
    };
  },
  run: async (variant, seed, ctx) => {
    const steps = bnOnly.plan(ctx.quick).steps;
    const normVars = (cnn: { normLayers: { trainableWeights: { read: () => tf.Tensor }[] }[] }) =>
      cnn.normLayers.flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
    if (variant.id === 'bn-affine') {
      return runClassifier({
        cnn: { norm: 'batch', widths: [8, 16] }, steps, batchSize: 32, optimizer: () => tf.train.adam(0.01), evalEvery: Math.max(1, steps / 10), finalEvals: 3,
        vars: normVars,
      }, seed, ctx);
    }
    return runClassifier({
      cnn: { norm: 'batch', widths: [8, 16] }, steps, batchSize: 32, optimizer: () => tf.train.adam(0.01), evalEvery: Math.max(1, steps / 10), finalEvals: 3,
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
  tier: 'long',
};

const SCALE_INVARIANT_PLOTS: PlotSpec[] = [
  ...CLASSIFIER_PLOTS,
  { curve: 'kernel norm', title: 'Norm of the scale-invariant conv kernels', x: 'step', yTitle: '||w||' },
  { curve: 'effective step size', title: 'Effective step size ||Δw|| / ||w||', x: 'step', yTitle: 'relative step', logY: true },
];

/** The projection's mechanism, as checks of `projected` against `plain`: slower norm growth, larger late steps. */
function mechanismChecks(projected: string, projectedLabel: string, plain: string, plainLabel: string): CheckSpec[] {
  return [
    { description: `${projectedLabel} grows the scale-invariant kernels' norm less than ${plainLabel}`, metric: 'kernel norm growth', better: 'lower', kind: 'better', margin: 0, paired: true, variantA: projected, variantB: plain },
    { description: `${projectedLabel} keeps a larger effective step size late in training`, metric: 'late effective step size', better: 'higher', kind: 'better', margin: 0, paired: true, variantA: projected, variantB: plain },
  ];
}

/** ||w|| over every conv kernel followed by BN (scale-invariant), as one flat vector. */
function kernelNorm(kernels: tf.Variable[]): number {
  return tf.tidy(() => Math.sqrt(kernels.reduce((s, k) => s + (tf.sum(tf.square(k)).dataSync()[0]), 0)));
}

export const adamp: Experiment = {
  id: 'adamp',
  title: 'AdamP keeps the effective step size of scale-invariant weights',
  claim: 'With momentum optimizers, scale-invariant weights (followed by BN) grow in norm, which prematurely decays their effective step size; AdamP removes the radial component of the update, slowing the norm growth, and gives uniform gains.',
  papers: ['Heo, Chun, Oh, Han, Yun, Kim, Uh & Ha, "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights", ICLR 2021'],
  methodPages: ['docs/adamp-sgdp.md'],
  metric: 'growth of the conv-kernel norm ||w_T|| / ||w_0||, mean effective step size ||w_t - w_{t-1}|| / ||w_{t-1}|| over the last quarter of training, final test accuracy',
  missing: async () => missingNorms(['batch', 'adamp']),
  plan: (quick) => {
    const steps = quick ? 150 : 600;
    return {
      variants: [{ id: 'adam', label: 'Adam' }, { id: 'adamp', label: 'AdamP' }],
      steps,
      seeds: 5,
      secondsPerStep: quick ? 0.022 : 0.075,
      regime: 'The paper: full ImageNet schedules (ResNet, cosine decay, weight decay), where the norm growth of scale-invariant weights under Adam shrinks their effective step and AdamP\'s gains are +0.5-1 %. Here: a short run without weight decay, which tests the mechanism (norm growth, effective step) but has no power for the accuracy gain of a full schedule.',
      setup: `${DATA(quick)}; ResNet (widths 8, 16) with BN after every conv (so every conv kernel is scale-invariant); Adam vs AdamP (delta 0.1, wd ratio 0.1), learning rate 0.003, no weight decay; batch 32; ${steps} steps; kernel norms measured after every step.`,
      checks: [
        ...mechanismChecks('adamp', 'AdamP', 'adam', 'Adam'),
        { description: 'AdamP\'s test accuracy is within 0.01 of Adam\'s or better', metric: 'final test accuracy', failedAtOrBelow: CHANCE_ACCURACY, better: 'higher', kind: 'no-worse', margin: 0.01, paired: true, variantA: 'adamp', variantB: 'adam' },
      ],
    };
  },
  run: async (variant, seed, ctx) => {
    const steps = adamp.plan(ctx.quick).steps;
    return runScaleInvariant(steps, () => (variant.id === 'adamp' ? new AdamP({ learningRate: 0.003, delta: 0.1, wdRatio: 0.1 }) : tf.train.adam(0.003)), seed, ctx);
  },
  plots: SCALE_INVARIANT_PLOTS,
};

/**
 * Trains the BN ResNet (widths 8, 16; every conv kernel followed by BN, so scale-invariant) with `optimizer`,
 * measuring after every step the norm of the conv kernels and the effective step ||w_t - w_{t-1}|| / ||w_{t-1}||.
 */
function runScaleInvariant(
  steps: number, optimizer: () => tf.Optimizer, seed: number, ctx: RunContext,
  schedule?: Pick<TrainHooks, 'learningRate' | 'transformGradients'>,
): Promise<RunOutput> {
  return runClassifier({
    cnn: { norm: 'batch', widths: [8, 16] }, steps, batchSize: 32, evalEvery: Math.max(1, steps / 10), finalEvals: 3,
    optimizer, learningRate: schedule?.learningRate, transformGradients: schedule?.transformGradients,
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
}

/** SGD vs SGDP over a full schedule: steps per tier, base learning rate and weight decay. */
function sgdpSize(quick: boolean) {
  return { steps: quick ? 150 : 3000, learningRate: 0.1, weightDecay: 1e-4 };
}

export const sgdp: Experiment = {
  id: 'sgdp',
  title: 'SGDP vs SGD over a full schedule, with weight decay',
  claim: 'With momentum SGD, scale-invariant weights (followed by BN) grow in norm, which prematurely decays their effective step size; SGDP removes the radial component of the update, slowing the norm growth, and improves accuracy over a full training schedule.',
  papers: ['Heo, Chun, Oh, Han, Yun, Kim, Uh & Ha, "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights", ICLR 2021'],
  methodPages: ['docs/adamp-sgdp.md'],
  metric: 'growth of the conv-kernel norm ||w_T|| / ||w_0||, mean effective step size over the last quarter of training, final test accuracy',
  missing: async () => missingNorms(['batch']),
  plan: (quick) => {
    const { steps, learningRate, weightDecay } = sgdpSize(quick);
    return {
      variants: [{ id: 'sgd', label: 'SGD' }, { id: 'sgdp', label: 'SGDP' }],
      steps,
      seeds: 5,
      regime: 'The paper: ImageNet ResNets over 100 epochs with SGD momentum 0.9, weight decay 1e-4 and a decayed learning rate, where SGDP gains about +0.4-0.8 % top-1. Here: the same optimizer settings on a small BN ResNet over a full decayed schedule (the long tier).',
      setup: `${DATA(quick)}; ResNet (widths 8, 16) with BN after every conv (every conv kernel scale-invariant); momentum 0.9, learning rate ${learningRate} decayed linearly to 0, weight decay ${weightDecay}; SGD (tfjs momentum, weight decay as an L2 term in the gradient, as PyTorch's SGD) vs SGDP (delta 0.1, wd ratio 0.1, its decoupled weight decay as in the official code); batch 32; ${steps} steps; kernel norms measured after every step.`,
      checks: [
        ...mechanismChecks('sgdp', 'SGDP', 'sgd', 'SGD'),
        { description: 'SGDP ends with a higher test accuracy than SGD', metric: 'final test accuracy', failedAtOrBelow: CHANCE_ACCURACY, better: 'higher', kind: 'better', margin: 0, paired: true, variantA: 'sgdp', variantB: 'sgd' },
      ],
      secondsPerStep: quick ? 0.022 : 0.075,
    };
  },
  run: async (variant, seed, ctx) => {
    const { steps, learningRate, weightDecay } = sgdpSize(ctx.quick);
    if (variant.id === 'sgdp') {
      return runScaleInvariant(steps, () => new SGDP({ learningRate, momentum: 0.9, weightDecay, delta: 0.1, wdRatio: 0.1 }), seed, ctx, { learningRate: linearDecay(learningRate, steps) });
    }
    // g + wd * w: weight decay as an L2 gradient term (tfjs's momentum optimizer has none).
    const l2 = (grads: tf.NamedTensorMap, vars: tf.Variable[]) => {
      const out: tf.NamedTensorMap = {};
      for (const v of vars) if (grads[v.name] !== undefined) out[v.name] = tf.add(grads[v.name], tf.mul(v, weightDecay));
      return out;
    };
    return runScaleInvariant(steps, () => tf.train.momentum(learningRate, 0.9), seed, ctx, { learningRate: linearDecay(learningRate, steps), transformGradients: l2 });
  },
  plots: SCALE_INVARIANT_PLOTS,
  tier: 'long',
};
