/**
 * Character-level language-modelling experiments with the small decoder-only Transformer on KJV Genesis:
 * placement, ln-rms-dyt, powernorm.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ngptNormalizeWeights } from '../../methods/ngpt/normalize-weights.js';
import type { Placement } from '../../models/transformer.js';
import type { Experiment, PlotSpec } from '../experiment.js';
import { missingNorms, runLanguageModel } from './common.js';

const LM_PLOTS: PlotSpec[] = [
  { curve: 'train loss', title: 'Training loss', x: 'step', yTitle: 'cross-entropy (nats/char)', logY: true },
  { curve: 'held-out loss', title: 'Held-out loss', x: 'step', yTitle: 'cross-entropy (nats/char)' },
];

const CORPUS = 'character-level LM on the Book of Genesis (KJV, 197k characters, 60 symbols; last 10% held out)';

interface LmSize {
  layers: number;
  dModel: number;
  heads: number;
  length: number;
  batch: number;
  steps: number;
  evalEvery: number;
}

function lmSize(quick: boolean, deep = false): LmSize {
  return quick
    ? { layers: deep ? 6 : 4, dModel: 32, heads: 2, length: 32, batch: 16, steps: 60, evalEvery: 10 }
    : { layers: deep ? 12 : 6, dModel: 64, heads: 4, length: 64, batch: 32, steps: 1000, evalEvery: 50 };
}

function describeSize(s: LmSize): string {
  return `${s.layers} layers, d = ${s.dModel}, ${s.heads} heads, context ${s.length}, batch ${s.batch}, ${s.steps} steps`;
}

const PLACEMENTS: Array<{ id: Placement; label: string }> = [
  { id: 'post', label: 'Post-LN' },
  { id: 'pre', label: 'Pre-LN' },
  { id: 'peri', label: 'Peri-LN' },
  { id: 'deepnorm', label: 'DeepNorm' },
];

export const placement: Experiment = {
  id: 'placement',
  title: 'Where LayerNorm goes: Post-LN, Pre-LN, Peri-LN, DeepNorm at depth and a high learning rate',
  claim: 'Peri-LN (normalizing each sublayer\'s input and output) converges more stably than Pre-LN and Post-LN; DeepNorm (up-weighted residual + Post-LN) trains deep Transformers that Post-LN cannot.',
  papers: [
    'Kim et al., "Peri-LN: Revisiting Layer Normalization in the Transformer Architecture", ICML 2025',
    'Wang et al., "DeepNet: Scaling Transformers to 1,000 Layers", 2022',
  ],
  methodPages: ['shared/methods/peri-ln.md', 'shared/methods/deepnorm.md'],
  metric: 'final held-out loss (diverged runs fail), divergences',
  missing: async () => missingNorms(['layer']),
  plan: (quick) => {
    const s = lmSize(quick, true);
    return {
      variants: PLACEMENTS,
      steps: s.steps,
      setup: `${CORPUS}; decoder-only Transformer, ${describeSize(s)}; LayerNorm in each placement; Adam at a high learning rate ${quick ? '0.01' : '0.005'} with no warm-up; a run diverges when its loss is non-finite or above 1000.`,
      checks: [
        { description: 'Pre-LN ends with a lower held-out loss than Post-LN', metric: 'final held-out loss', better: 'lower', kind: 'better', margin: 0.02, variantA: 'pre', variantB: 'post' },
        { description: 'Peri-LN ends with a lower held-out loss than Post-LN', metric: 'final held-out loss', better: 'lower', kind: 'better', margin: 0.02, variantA: 'peri', variantB: 'post' },
        { description: 'Peri-LN ends with a lower held-out loss than Pre-LN', metric: 'final held-out loss', better: 'lower', kind: 'better', margin: 0, variantA: 'peri', variantB: 'pre' },
        { description: 'DeepNorm ends with a lower held-out loss than Post-LN', metric: 'final held-out loss', better: 'lower', kind: 'better', margin: 0.02, variantA: 'deepnorm', variantB: 'post' },
      ],
    };
  },
  run: async (variant, seed, ctx) => {
    const s = lmSize(ctx.quick, true);
    return runLanguageModel({
      model: { layers: s.layers, dModel: s.dModel, heads: s.heads, norm: 'layer', placement: variant.id as Placement },
      steps: s.steps, batchSize: s.batch, length: s.length, evalEvery: s.evalEvery,
      optimizer: () => tf.train.adam(ctx.quick ? 0.01 : 0.005),
    }, seed, ctx);
  },
  plots: LM_PLOTS,
};

export const lnRmsDyt: Experiment = {
  id: 'ln-rms-dyt',
  title: 'LayerNorm vs RMSNorm vs Dynamic Tanh vs nGPT in a char-level LM',
  claim: 'Pre-RMSNorm trains like Pre-LN at lower cost; Dynamic Tanh matches normalized Transformers without tuning; nGPT reaches the same loss in fewer steps.',
  papers: [
    'Jiang et al., "Pre-RMSNorm and Pre-CRMSNorm Transformers: Equivalent and Efficient Pre-LN Transformers", NeurIPS 2023',
    'Zhu, Chen, He, LeCun & Liu, "Transformers without Normalization", CVPR 2025',
    'Loshchilov, Hsieh, Sun & Ginsburg, "nGPT: Normalized Transformer with Representation Learning on the Hypersphere", ICLR 2025',
  ],
  methodPages: ['shared/methods/crms-norm.md', 'shared/methods/rms-norm.md', 'shared/methods/dynamic-tanh.md', 'shared/methods/ngpt.md'],
  metric: 'final held-out loss at equal steps; wall-clock seconds per step',
  missing: async () => missingNorms(['layer', 'rms', 'dyt']),
  plan: (quick) => {
    const s = lmSize(quick);
    return {
      variants: [
        { id: 'ln', label: 'Pre-LN' },
        { id: 'rms', label: 'Pre-RMSNorm' },
        { id: 'dyt', label: 'Pre-DyT' },
        { id: 'ngpt', label: 'nGPT' },
      ],
      steps: s.steps,
      setup: `${CORPUS}; decoder-only Transformer, ${describeSize(s)}; Pre-LN / Pre-RMSNorm / Pre-DyT (alpha init 0.5) / nGPT (weights projected to the sphere after every step); Adam, learning rate 0.003 (nGPT: 0.003, no weight decay). Wall time is measured on a shared machine and is noisy.`,
      checks: [
        { description: 'RMSNorm\'s held-out loss is within 0.05 of LayerNorm\'s', metric: 'final held-out loss', better: 'lower', kind: 'no-worse', margin: 0.05, variantA: 'rms', variantB: 'ln' },
        { description: 'DyT\'s held-out loss is within 0.05 of LayerNorm\'s', metric: 'final held-out loss', better: 'lower', kind: 'no-worse', margin: 0.05, variantA: 'dyt', variantB: 'ln' },
        { description: 'nGPT reaches a lower held-out loss than Pre-LN at equal steps', metric: 'final held-out loss', better: 'lower', kind: 'better', margin: 0, variantA: 'ngpt', variantB: 'ln' },
        { description: 'RMSNorm takes less wall time per step than LayerNorm', metric: 'seconds per step', better: 'lower', kind: 'better', margin: 0, variantA: 'rms', variantB: 'ln' },
      ],
    };
  },
  run: async (variant, seed, ctx) => {
    const s = lmSize(ctx.quick);
    const isNgpt = variant.id === 'ngpt';
    const norm = variant.id === 'ln' ? 'layer' : variant.id === 'rms' ? 'rms' : variant.id === 'dyt' ? 'dyt' : 'layer';
    return runLanguageModel({
      model: {
        layers: s.layers, dModel: s.dModel, heads: s.heads, norm, placement: isNgpt ? 'ngpt' : 'pre',
        ...(variant.id === 'dyt' ? { normConfig: { alphaInitValue: 0.5 } } : {}),
      },
      steps: s.steps, batchSize: s.batch, length: s.length, evalEvery: s.evalEvery,
      optimizer: () => tf.train.adam(0.003),
      afterStepWithModel: isNgpt ? (model) => ngptNormalizeWeights(model) : undefined,
    }, seed, ctx);
  },
  plots: [...LM_PLOTS, { curve: 'held-out loss', title: 'Held-out loss against wall time', x: 'seconds', yTitle: 'cross-entropy (nats/char)' }],
};

export const powerNorm: Experiment = {
  id: 'powernorm',
  title: 'PowerNorm vs BatchNorm vs LayerNorm in a Transformer',
  claim: 'Naive BN in Transformers is much worse than LN; PowerNorm (quadratic-mean statistics with running estimates in the backward) beats LN.',
  papers: ['Shen, Yao, Gholami, Mahoney & Keutzer, "PowerNorm: Rethinking Batch Normalization in Transformers", ICML 2020'],
  methodPages: ['shared/methods/power-norm.md', 'shared/methods/batch-norm.md'],
  metric: 'final held-out loss (inference mode: running statistics for BN and PN)',
  missing: async () => missingNorms(['power', 'batch', 'layer']),
  plan: (quick) => {
    const s = lmSize(quick);
    return {
      variants: [{ id: 'pn', label: 'PowerNorm' }, { id: 'bn', label: 'BatchNorm' }, { id: 'ln', label: 'LayerNorm' }],
      steps: s.steps,
      setup: `${CORPUS}; decoder-only Pre-norm Transformer, ${describeSize(s)}; the norm over the feature axis (BN and PN: statistics over batch and time per feature; BN momentum 0.9; PN warm-up ${Math.floor(s.steps / 4)} steps on batch statistics, then running statistics); Adam, learning rate 0.003.`,
      checks: [
        { description: 'BN ends with a higher held-out loss than LN', metric: 'final held-out loss', better: 'lower', kind: 'better', margin: 0.02, variantA: 'ln', variantB: 'bn' },
        { description: 'PowerNorm ends with a lower held-out loss than BN', metric: 'final held-out loss', better: 'lower', kind: 'better', margin: 0.02, variantA: 'pn', variantB: 'bn' },
        { description: 'PowerNorm ends with a lower held-out loss than LN', metric: 'final held-out loss', better: 'lower', kind: 'better', margin: 0, variantA: 'pn', variantB: 'ln' },
      ],
    };
  },
  run: async (variant, seed, ctx) => {
    const s = lmSize(ctx.quick);
    const norm = variant.id === 'pn' ? 'power' : variant.id === 'bn' ? 'batch' : 'layer';
    // Short runs: BN's moving averages with momentum 0.9 (not Keras's 0.99); PN's warm-up on batch statistics
    // for the first quarter of training (its default, 10000 steps, would never end here).
    const normConfig: Record<string, unknown> = { epsilon: 1e-5, ...(norm === 'batch' ? { momentum: 0.9 } : norm === 'power' ? { warmupIters: Math.floor(s.steps / 4) } : {}) };
    return runLanguageModel({
      model: { layers: s.layers, dModel: s.dModel, heads: s.heads, norm, placement: 'pre', normConfig },
      steps: s.steps, batchSize: s.batch, length: s.length, evalEvery: s.evalEvery,
      optimizer: () => tf.train.adam(0.003),
    }, seed, ctx);
  },
  plots: LM_PLOTS,
};
