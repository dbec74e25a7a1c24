/**
 * A small decoder-only Transformer language model with pluggable normalization placement and any registry
 * norm by name: the reference architecture for normkit's placement experiments.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean, checkInRange, checkInteger, checkKnownKeys, checkOneOf, checkPositive } from '../core/checks.js';
import { NormkitError } from '../core/errors.js';
import { createNorm } from '../catalog.js';
import { deepNormConstants } from '../methods/deepnorm/index.js';
import { L2Normalize, NGPTResidual } from '../methods/ngpt/layers.js';
import { ngptNormalizeWeights } from '../methods/ngpt/normalize-weights.js';
import { CausalSelfAttention, LearnedScale, ResidualAdd, SwiGLU, TokenPositionEmbedding } from './transformer-layers.js';

/** Where the normalization layers sit in each block. */
export const PLACEMENTS = ['post', 'pre', 'peri', 'deepnorm', 'normformer', 'ngpt', 'none'] as const;
export type Placement = (typeof PLACEMENTS)[number];

/** Configuration of {@link buildTransformerLM}. */
export interface TransformerLMConfig {
  vocabSize: number;
  /** Longest sequence (the position table's length); shorter sequences are accepted too. */
  seqLen: number;
  /** Model width d. */
  dModel: number;
  heads: number;
  layers: number;
  /** MLP hidden width = mlpRatio * dModel (default 4). */
  mlpRatio?: number;
  /** Registry name of the norm (default 'layer'); any method with a layer: 'rms', 'layer', ... */
  norm?: string;
  /** Config passed to createNorm for every norm (default `{epsilon: 1e-5}`; a `name` is added per layer). */
  normConfig?: Record<string, unknown>;
  /** Default 'pre'. */
  placement?: Placement;
  /** MLP activation (default 'gelu'; nGPT always uses SwiGLU). */
  activation?: 'gelu' | 'gelu_new' | 'relu' | 'swish' | 'selu' | 'tanh';
  /** Dropout on each sublayer output before the residual add (default 0). */
  dropout?: number;
  /** Biases in attention and MLP projections (default true; nGPT has none). */
  useBias?: boolean;
  /** Model output: 'logits' (default) or 'probabilities' (softmax, for tfjs's sparseCategoricalCrossentropy). */
  output?: 'logits' | 'probabilities';
  /** NormFormer: learned per-channel residual scales (fairseq --scale-resids; default false). */
  scaleResiduals?: boolean;
  /**
   * Position information: 'learned' absolute embeddings added to the tokens, or 'rope' (rotary embeddings on
   * q and k in every attention layer). Default 'rope' for nGPT (as its reference), 'learned' otherwise.
   */
  positional?: 'learned' | 'rope';
  /** Seed of the weight initializers, for reproducible models. */
  seed?: number;
  /** Model name (default 'transformer_lm'). */
  name?: string;
}

const WHERE = 'buildTransformerLM';
const KEYS = ['vocabSize', 'seqLen', 'dModel', 'heads', 'layers', 'mlpRatio', 'norm', 'normConfig', 'placement', 'activation', 'dropout', 'useBias', 'output', 'scaleResiduals', 'positional', 'seed', 'name'];

/**
 * Builds a decoder-only Transformer LM as a tf.LayersModel mapping token ids [B, T] (int32, T <= seqLen) to
 * logits (or probabilities) [B, T, vocabSize]. Every block is causal self-attention then an MLP, with the
 * normalization placed by `placement` (F = sublayer, N = `createNorm(norm, normConfig)`):
 *
 * - 'post':       x <- N(x + F(x))                              (no final norm)
 * - 'pre':        x <- x + F(N(x)),  final N
 * - 'peri':       x <- x + N_out(F(N_in(x))),  final N
 * - 'deepnorm':   x <- N(alpha x + F(x)), alpha = (2L)^(1/4); W_v, W_o, W_fc1, W_fc2 scaled by beta = (8L)^(-1/4)
 * - 'normformer': pre plus N after attention, N over the MLP width after the activation, per-head scales
 *                 (and per-channel residual scales with `scaleResiduals`),  final N
 * - 'ngpt':       unit-norm hidden states: h <- norm(h + |alpha| (norm(F(h)) - h)), q/k unit-normalized,
 *                 SwiGLU MLP scaled by s_uv sqrt(d), logits scaled by s_z; weights unit-norm (call
 *                 {@link ngptNormalizeWeights} after every step); `norm` is not used
 * - 'none':       x <- x + F(x)
 *
 * Initialization: GPT-2's N(0, 0.02), with the residual-writing projections (W_o, W_fc2) at
 * 0.02/sqrt(2L); 'deepnorm' uses Xavier-normal then beta; 'ngpt' uses N(0, 1/sqrt(d)) then projects onto
 * the sphere. Layer names are stable (`block{i}_attn`, `block{i}_fc1`, `final_norm`, `lm_head`, ...), which
 * the model tools (preLNToPreRMS, diagnoseNorms, ngptNormalizeWeights) rely on.
 */
export function buildTransformerLM(config: TransformerLMConfig): tfl.LayersModel {
  if (config === undefined || config === null || typeof config !== 'object') throw new NormkitError(WHERE, 'config', 'an object', config);
  checkKnownKeys(WHERE, config, KEYS);
  const { vocabSize, seqLen, dModel, heads, layers } = config;
  checkInteger(WHERE, 'vocabSize', vocabSize);
  checkInteger(WHERE, 'seqLen', seqLen);
  checkInteger(WHERE, 'dModel', dModel);
  checkInteger(WHERE, 'heads', heads);
  checkInteger(WHERE, 'layers', layers);
  if (dModel % heads !== 0) throw new NormkitError(WHERE, 'heads', `a divisor of dModel = ${dModel}`, heads);
  const mlpRatio = config.mlpRatio ?? 4;
  checkPositive(WHERE, 'mlpRatio', mlpRatio);
  const hidden = Math.round(mlpRatio * dModel);
  if (hidden < 1) throw new NormkitError(WHERE, 'mlpRatio', 'a ratio giving an MLP width >= 1', mlpRatio);
  const placement = config.placement ?? 'pre';
  checkOneOf(WHERE, 'placement', placement, PLACEMENTS);
  const normName = config.norm ?? 'layer';
  if (typeof normName !== 'string') throw new NormkitError(WHERE, 'norm', 'a registry name (string)', normName);
  const normConfig = config.normConfig ?? { epsilon: 1e-5 };
  const activation = config.activation ?? 'gelu';
  checkOneOf(WHERE, 'activation', activation, ['gelu', 'gelu_new', 'relu', 'swish', 'selu', 'tanh'] as const);
  const dropout = config.dropout ?? 0;
  checkInRange(WHERE, 'dropout', dropout, 0, 0.999);
  const useBias = config.useBias ?? placement !== 'ngpt';
  checkBoolean(WHERE, 'useBias', useBias);
  const output = config.output ?? 'logits';
  checkOneOf(WHERE, 'output', output, ['logits', 'probabilities'] as const);
  const scaleResiduals = config.scaleResiduals ?? false;
  checkBoolean(WHERE, 'scaleResiduals', scaleResiduals);
  if (scaleResiduals && placement !== 'normformer') {
    throw new NormkitError(WHERE, 'scaleResiduals', "false unless placement is 'normformer'", scaleResiduals);
  }
  const positional = config.positional ?? (placement === 'ngpt' ? 'rope' : 'learned');
  checkOneOf(WHERE, 'positional', positional, ['learned', 'rope'] as const);
  if (positional === 'rope' && (dModel / heads) % 2 !== 0) {
    throw new NormkitError(WHERE, 'positional', `'learned' when the head size dModel / heads = ${dModel / heads} is odd`, positional);
  }
  if (config.seed !== undefined) checkInteger(WHERE, 'seed', config.seed, 0);
  // Fail on an unknown norm name now, with the registry's list, rather than halfway through the graph.
  if (placement !== 'ngpt' && placement !== 'none') createNorm(normName, { ...normConfig });

  let seedCounter = config.seed ?? 0;
  const seed = () => (config.seed === undefined ? undefined : seedCounter++);
  const normal = (stddev: number) => tfl.initializers.randomNormal({ mean: 0, stddev, seed: seed() });
  const glorot = () => tfl.initializers.glorotNormal({ seed: seed() });
  const ngpt = placement === 'ngpt';
  const deep = placement === 'deepnorm' ? deepNormConstants({ decoder: layers }) : null;
  const kernelInit = () => (deep ? glorot() : ngpt ? normal(1 / Math.sqrt(dModel)) : normal(0.02));
  const writerInit = () => (deep ? glorot() : ngpt ? normal(1 / Math.sqrt(dModel)) : normal(0.02 / Math.sqrt(2 * layers)));
  const norm = (name: string) => createNorm(normName, { ...normConfig, name });
  const drop = (t: tfl.SymbolicTensor, name: string) => (dropout > 0 ? (tfl.layers.dropout({ rate: dropout, name }).apply(t) as tfl.SymbolicTensor) : t);
  const apply = (layer: tfl.layers.Layer, t: tfl.SymbolicTensor | tfl.SymbolicTensor[]) => layer.apply(t) as tfl.SymbolicTensor;

  const tokens = tfl.input({ shape: [null], dtype: 'int32', name: 'tokens' });
  let x = apply(new TokenPositionEmbedding({ vocabSize, maxLength: seqLen, dModel, positional: positional === 'learned', embeddingsInitializer: kernelInit(), name: 'embed' }), tokens);
  if (ngpt) x = apply(new L2Normalize({ name: 'embed_unit' }), x);

  for (let i = 0; i < layers; i++) {
    const p = `block${i}`;
    const attention = (input: tfl.SymbolicTensor) =>
      apply(
        new CausalSelfAttention({
          heads,
          useBias,
          kernelInitializer: kernelInit(),
          outputInitializer: writerInit(),
          headScale: placement === 'normformer',
          qkNormalize: ngpt,
          rotary: positional === 'rope',
          name: `${p}_attn`,
        }),
        input,
      );
    const mlp = (input: tfl.SymbolicTensor) => {
      if (ngpt) {
        let uv = apply(tfl.layers.dense({ units: 2 * hidden, useBias, kernelInitializer: kernelInit(), name: `${p}_fc1` }), input);
        uv = apply(new LearnedScale({ initValue: 1, initScaling: 1, extraFactor: Math.sqrt(dModel), name: `${p}_fc_scale` }), uv);
        const gated = apply(new SwiGLU({ name: `${p}_swiglu` }), uv);
        return apply(tfl.layers.dense({ units: dModel, useBias, kernelInitializer: writerInit(), name: `${p}_fc2` }), gated);
      }
      let h = apply(tfl.layers.dense({ units: hidden, activation, useBias, kernelInitializer: kernelInit(), name: `${p}_fc1` }), input);
      if (placement === 'normformer') h = apply(norm(`${p}_fc_norm`), h);
      return apply(tfl.layers.dense({ units: dModel, useBias, kernelInitializer: writerInit(), name: `${p}_fc2` }), h);
    };
    for (const [part, sublayer] of [['attn', attention], ['mlp', mlp]] as const) {
      const q = `${p}_${part}`;
      switch (placement) {
        case 'post':
        case 'deepnorm': {
          const f = drop(sublayer(x), `${q}_dropout`);
          x = apply(new ResidualAdd({ residualScale: deep ? deep.alpha : 1, name: `${q}_add` }), [x, f]);
          x = apply(norm(`${q}_post_norm`), x);
          break;
        }
        case 'pre':
        case 'none': {
          const input = placement === 'pre' ? apply(norm(`${q}_norm`), x) : x;
          x = apply(new ResidualAdd({ name: `${q}_add` }), [x, drop(sublayer(input), `${q}_dropout`)]);
          break;
        }
        case 'peri': {
          const f = apply(norm(`${q}_out_norm`), sublayer(apply(norm(`${q}_norm`), x)));
          x = apply(new ResidualAdd({ name: `${q}_add` }), [x, drop(f, `${q}_dropout`)]);
          break;
        }
        case 'normformer': {
          let f = sublayer(apply(norm(`${q}_norm`), x));
          if (part === 'attn') f = apply(norm(`${q}_out_norm`), f);
          x = apply(new ResidualAdd({ learnedScale: scaleResiduals, name: `${q}_add` }), [x, drop(f, `${q}_dropout`)]);
          break;
        }
        case 'ngpt': {
          x = apply(new NGPTResidual({ name: `${q}_residual` }), [x, sublayer(x)]);
          break;
        }
      }
    }
  }
  if (placement === 'pre' || placement === 'peri' || placement === 'normformer') x = apply(norm('final_norm'), x);
  let out = apply(tfl.layers.dense({ units: vocabSize, useBias: useBias && !ngpt, kernelInitializer: ngpt ? kernelInit() : normal(0.02), name: 'lm_head' }), x);
  if (ngpt) out = apply(new LearnedScale({ initValue: 1, initScaling: 1 / Math.sqrt(dModel), name: 'logit_scale' }), out);
  if (output === 'probabilities') out = apply(tfl.layers.activation({ activation: 'softmax', name: 'lm_softmax' }), out);
  const model = tfl.model({ inputs: tokens, outputs: out, name: config.name ?? 'transformer_lm' });

  if (deep) scaleDeepNormWeights(model, deep.beta);
  if (ngpt) ngptNormalizeWeights(model);
  return model;
}

/** Multiplies W_v, W_o (with b_v, b_o) and the FFN weights of every block by beta, as torchscale does after init. */
function scaleDeepNormWeights(model: tfl.LayersModel, beta: number): void {
  tf.tidy(() => {
    for (const layer of model.layers) {
      const scaled =
        layer instanceof CausalSelfAttention
          ? layer.weights.filter((w) => /\/(value|output)_(kernel|bias)$/.test(w.originalName))
          : /_fc[12]$/.test(layer.name)
            ? layer.weights
            : [];
      for (const w of scaled) w.write(tf.mul(w.read(), beta));
    }
  });
}

/**
 * Mean next-token cross-entropy from logits: `mean over [B, T] of logsumexp(z) - z[target]`.
 * `targets` are ids [B, T] (or [B, T, 1]) or one-hot / soft targets [B, T, V]; with model.fit use one-hot
 * targets (tfjs checks the target shape against the output), or `output: 'probabilities'` with tfjs's
 * 'sparseCategoricalCrossentropy' and ids [B, T, 1].
 */
export function lmCrossEntropy(targets: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  if (!(logits instanceof tf.Tensor) || logits.rank < 2) throw new NormkitError('lmCrossEntropy', 'logits', 'a tensor [..., vocab]', logits);
  if (!(targets instanceof tf.Tensor)) throw new NormkitError('lmCrossEntropy', 'targets', 'a tf.Tensor', targets);
  const vocab = logits.shape[logits.rank - 1];
  const oneHot = targets.rank === logits.rank && targets.shape[targets.rank - 1] === vocab;
  const ids = targets.rank === logits.rank - 1 || (targets.rank === logits.rank && targets.shape[targets.rank - 1] === 1 && vocab !== 1);
  if (!oneHot && !ids) {
    throw new NormkitError('lmCrossEntropy', 'targets', `ids of shape [${logits.shape.slice(0, -1).join(', ')}] or one-hot [..., ${vocab}]`, targets);
  }
  return tf.tidy(() => {
    const z = tf.reshape(logits, [-1, vocab]);
    const t = oneHot ? tf.reshape(targets, [-1, vocab]) : tf.oneHot(tf.cast(tf.reshape(targets, [-1]), 'int32'), vocab);
    return tf.losses.softmaxCrossEntropy(t, z) as tf.Scalar;
  });
}

/** RMS of one tensor of a Transformer's residual stream or of one sublayer's output. */
export interface StreamStat {
  /** Layer whose output was measured (`embed`, `block0_attn_add`, ...). */
  layer: string;
  /** 'stream': the residual stream after this layer; 'branch': the sublayer output written into it. */
  role: 'stream' | 'branch';
  /** sqrt(mean(x^2)) over every element. */
  rms: number;
}

/**
 * Per-layer RMS of the residual stream and of every sublayer output added to it, for one batch of tokens
 * (inference mode): the instrumentation of the placement papers (Peri-LN's "massive activations", Pre-LN's
 * growing stream variance). Works on {@link buildTransformerLM} models; leaves no tensors behind.
 */
export function transformerStreamStats(model: tfl.LayersModel, tokens: tf.Tensor): StreamStat[] {
  const where = 'transformerStreamStats';
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError(where, 'model', 'a tf.LayersModel', model);
  if (!(tokens instanceof tf.Tensor) || tokens.rank !== 2) throw new NormkitError(where, 'tokens', 'a tensor of shape [batch, time]', tokens);
  const probes: Array<{ layer: string; role: 'stream' | 'branch'; tensor: tfl.SymbolicTensor }> = [];
  for (const layer of model.layers) {
    if (layer instanceof TokenPositionEmbedding) probes.push({ layer: layer.name, role: 'stream', tensor: layer.output as tfl.SymbolicTensor });
    if (layer instanceof ResidualAdd || layer instanceof NGPTResidual) {
      const branch = (layer.input as tfl.SymbolicTensor[])[1];
      probes.push({ layer: layer.name, role: 'branch', tensor: branch });
      probes.push({ layer: layer.name, role: 'stream', tensor: layer.output as tfl.SymbolicTensor });
    }
  }
  if (probes.length === 0) throw new NormkitError(where, 'model', 'a model built by buildTransformerLM', `'${model.name}'`);
  const probe = tfl.model({ inputs: model.inputs, outputs: probes.map((p) => p.tensor) });
  const values = tf.tidy(() => {
    const outs = probe.predict(tokens) as tf.Tensor | tf.Tensor[];
    return (Array.isArray(outs) ? outs : [outs]).map((o) => tf.sqrt(tf.mean(tf.square(o))).dataSync()[0]);
  });
  return probes.map((p, i) => ({ layer: p.layer, role: p.role, rms: values[i] }));
}
