/**
 * A small decoder-only Transformer language model with pluggable normalization placement and any registry
 * norm by name: the reference architecture for normkit's placement experiments.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean, checkInRange, checkInteger, checkKnownKeys, checkOneOf, checkPositive } from '../core/checks.js';
import { NormkitError } from '../core/errors.js';
import { createNorm } from '../catalog.js';
import type { BlockPlacement, SublayerWiring } from '../core/block-placement.js';
import { deepNormConstants, deepNormPlacement, deepNormScaleWeights } from '../methods/deepnorm/index.js';
import { L2Normalize, NGPTResidual } from '../methods/ngpt/layers.js';
import { declareNGPTMatrices, ngptNormalizeWeights, type NGPTMatrix } from '../methods/ngpt/normalize-weights.js';
import { ngptPlacement } from '../methods/ngpt/placement.js';
import { normFormerPlacement, type NormFormerPlacement } from '../methods/normformer/index.js';
import { periLNPlacement } from '../methods/peri-ln/index.js';
import { postLNPlacement } from '../methods/post-ln/index.js';
import { preLNPlacement } from '../methods/pre-ln/index.js';
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
  /**
   * Weight initialization: 'gpt2' (N(0, 0.02), residual-writing projections W_o, W_fc2 at 0.02/sqrt(2L)) or
   * 'xavier' (Glorot-normal everywhere but the head, at N(0, 0.02)). Default 'xavier' for 'deepnorm' (then
   * scaled by beta), 'gpt2' otherwise; 'ngpt' always uses its own. Compare placements at one init.
   */
  init?: 'gpt2' | 'xavier';
  /**
   * Dynamic Tanh's LLaMA recipe for the embedding: entries initialized N(0, 1/d) (std d^-1/2) and a learned scale
   * after it initialized to sqrt(d), so token vectors start at unit RMS (with GPT-2's N(0, 0.02) and no norm to
   * undo it, tanh(alpha x) of the embeddings is nearly zero and the model stays on the unigram plateau). Default false.
   */
  embeddingScale?: boolean;
  /**
   * Per-role overrides of `normConfig`: `attn` for the norms before (and after) attention, `mlp` for those around the
   * MLP, `final` for the final norm; e.g. Dynamic Tanh's separate alpha inits for attention, FFN and final norms.
   */
  normConfigs?: { attn?: Record<string, unknown>; mlp?: Record<string, unknown>; final?: Record<string, unknown> };
  /** Seed of the weight initializers, for reproducible models. */
  seed?: number;
  /** Model name (default 'transformer_lm'). */
  name?: string;
}

const WHERE = 'buildTransformerLM';

/** No norm: `x <- x + F(x)`. */
const RESIDUAL_ONLY: BlockPlacement = { wire: (x, s) => s.add(x, s.drop(s.sublayer(x))), finalNorm: false };

/** The first weight a tfjs Dense layer creates is its kernel (the bias, if any, comes second). */
function denseKernel(layer: tfl.layers.Layer): tfl.LayerVariable {
  return layer.weights[0];
}
const KEYS = ['vocabSize', 'seqLen', 'dModel', 'heads', 'layers', 'mlpRatio', 'norm', 'normConfig', 'placement', 'activation', 'dropout', 'useBias', 'output', 'scaleResiduals', 'positional', 'init', 'embeddingScale', 'normConfigs', 'seed', 'name'];

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
 * Initialization (`init`): GPT-2's N(0, 0.02), with the residual-writing projections (W_o, W_fc2) at
 * 0.02/sqrt(2L), or Xavier-normal; 'deepnorm' defaults to Xavier-normal then beta; 'ngpt' uses N(0, 1/sqrt(d))
 * then projects onto the sphere. Each placement's wiring, and DeepNorm's and nGPT's init rules, live in the
 * method's module (src/methods/post-ln, pre-ln, peri-ln, deepnorm, normformer, ngpt); this builder composes
 * them. The nGPT model declares its unit-norm matrices ({@link declareNGPTMatrices}) for ngptNormalizeWeights.
 * Layer names are stable (`block{i}_attn`, `block{i}_fc1`, `final_norm`, `lm_head`, ...), which the model
 * tools (preLNToPreRMS, diagnoseNorms) rely on.
 *
 * @example
 * const model = nk.buildTransformerLM({ vocabSize: 256, seqLen: 64, dModel: 128, heads: 4, layers: 4, placement: 'peri', norm: 'rms' });
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
  const init = config.init ?? (placement === 'deepnorm' ? 'xavier' : 'gpt2');
  checkOneOf(WHERE, 'init', init, ['gpt2', 'xavier'] as const);
  const embeddingScale = config.embeddingScale ?? false;
  checkBoolean(WHERE, 'embeddingScale', embeddingScale);
  const normConfigs = config.normConfigs ?? {};
  if (typeof normConfigs !== 'object' || normConfigs === null) throw new NormkitError(WHERE, 'normConfigs', 'an object {attn?, mlp?, final?}', normConfigs);
  checkKnownKeys(WHERE, normConfigs, ['attn', 'mlp', 'final']);
  // Fail on an unknown norm name now, with the registry's list, rather than halfway through the graph.
  if (placement !== 'ngpt' && placement !== 'none') createNorm(normName, { ...normConfig });

  let seedCounter = config.seed ?? 0;
  const seed = () => (config.seed === undefined ? undefined : seedCounter++);
  const normal = (stddev: number) => tfl.initializers.randomNormal({ mean: 0, stddev, seed: seed() });
  const glorot = () => tfl.initializers.glorotNormal({ seed: seed() });
  const ngpt = placement === 'ngpt';
  const deep = placement === 'deepnorm' ? deepNormConstants({ decoder: layers }) : null;
  const xavier = init === 'xavier';
  const kernelInit = () => (ngpt ? normal(1 / Math.sqrt(dModel)) : xavier ? glorot() : normal(0.02));
  const writerInit = () => (ngpt ? normal(1 / Math.sqrt(dModel)) : xavier ? glorot() : normal(0.02 / Math.sqrt(2 * layers)));
  // With `embeddingScale`, token vectors start at unit RMS: N(0, 1/d) entries times sqrt(d).
  const embedInit = () => (embeddingScale && !ngpt ? normal(1 / Math.sqrt(dModel)) : kernelInit());
  const norm = (name: string, role?: 'attn' | 'mlp' | 'final') => createNorm(normName, { ...normConfig, ...(role ? normConfigs[role] : {}), name });
  const drop = (t: tfl.SymbolicTensor, name: string) => (dropout > 0 ? (tfl.layers.dropout({ rate: dropout, name }).apply(t) as tfl.SymbolicTensor) : t);
  const apply = (layer: tfl.layers.Layer, t: tfl.SymbolicTensor | tfl.SymbolicTensor[]) => layer.apply(t) as tfl.SymbolicTensor;
  const blocks: BlockPlacement =
    placement === 'post' ? postLNPlacement
    : placement === 'pre' ? preLNPlacement
    : placement === 'peri' ? periLNPlacement
    : placement === 'deepnorm' ? deepNormPlacement((deep as { alpha: number }).alpha)
    : placement === 'normformer' ? normFormerPlacement({ scaleResiduals })
    : placement === 'ngpt' ? ngptPlacement
    : RESIDUAL_ONLY;
  // NormFormer's parts inside the sublayers, as its placement asks for them.
  const { headScale = false, mlpNorm = false } = blocks as Partial<NormFormerPlacement>;
  // The weights the methods' init rules act on, collected as the layers are made (not found again by name).
  const deepScaled: tfl.LayerVariable[] = [];
  const unitNorm: NGPTMatrix[] = [];

  const tokens = tfl.input({ shape: [null], dtype: 'int32', name: 'tokens' });
  const embed = new TokenPositionEmbedding({ vocabSize, maxLength: seqLen, dModel, positional: positional === 'learned', embeddingsInitializer: embedInit(), name: 'embed' });
  let x = apply(embed, tokens);
  // Token embedding rows [V, d]; the position table (our addition to nGPT) is left free.
  unitNorm.push({ variable: embed.tokenTable!, axis: 1 });
  if (ngpt) x = apply(new L2Normalize({ name: 'embed_unit' }), x);
  if (embeddingScale) x = apply(new LearnedScale({ initValue: 1, initScaling: 1, extraFactor: Math.sqrt(dModel), name: 'embed_scale' }), x);

  for (let i = 0; i < layers; i++) {
    const p = `block${i}`;
    const attention = (input: tfl.SymbolicTensor) => {
      const layer = new CausalSelfAttention({
        heads,
        useBias,
        kernelInitializer: kernelInit(),
        outputInitializer: writerInit(),
        headScale,
        qkNormalize: ngpt,
        rotary: positional === 'rope',
        name: `${p}_attn`,
      });
      const y = apply(layer, input);
      deepScaled.push(layer.valueKernel!, layer.outputKernel!, ...(layer.valueBias ? [layer.valueBias, layer.outputBias!] : []));
      // Input projections [d, out]: each column is a vector over d. Output projection [in, d]: each row.
      for (const variable of [layer.queryKernel!, layer.keyKernel!, layer.valueKernel!]) unitNorm.push({ variable, axis: 0 });
      unitNorm.push({ variable: layer.outputKernel!, axis: 1 });
      return y;
    };
    const mlp = (input: tfl.SymbolicTensor) => {
      const dense = (units: number, name: string, kernelInitializer: ReturnType<typeof kernelInit>, act?: typeof activation) =>
        tfl.layers.dense({ units, useBias, kernelInitializer, name, ...(act ? { activation: act } : {}) });
      const fc1 = ngpt ? dense(2 * hidden, `${p}_fc1`, kernelInit()) : dense(hidden, `${p}_fc1`, kernelInit(), activation);
      let h = apply(fc1, input);
      if (ngpt) {
        h = apply(new LearnedScale({ initValue: 1, initScaling: 1, extraFactor: Math.sqrt(dModel), name: `${p}_fc_scale` }), h);
        h = apply(new SwiGLU({ name: `${p}_swiglu` }), h);
      }
      if (mlpNorm) h = apply(norm(`${p}_fc_norm`), h);
      const fc2 = dense(dModel, `${p}_fc2`, writerInit());
      const y = apply(fc2, h);
      deepScaled.push(...fc1.weights, ...fc2.weights);
      unitNorm.push({ variable: denseKernel(fc1), axis: 0 }, { variable: denseKernel(fc2), axis: 1 });
      return y;
    };
    for (const [part, sublayer] of [['attn', attention], ['mlp', mlp]] as const) {
      const q = `${p}_${part}`;
      const wiring: SublayerWiring = {
        part,
        name: (suffix) => `${q}_${suffix}`,
        sublayer,
        norm: (t, suffix) => apply(norm(`${q}_${suffix}`, part), t),
        drop: (t) => drop(t, `${q}_dropout`),
        add: (residual, branch, options = {}) => apply(new ResidualAdd({ ...options, name: `${q}_add` }), [residual, branch]),
      };
      x = blocks.wire(x, wiring);
    }
  }
  if (blocks.finalNorm) x = apply(norm('final_norm', 'final'), x);
  const head = tfl.layers.dense({ units: vocabSize, useBias: useBias && !ngpt, kernelInitializer: ngpt ? kernelInit() : normal(0.02), name: 'lm_head' });
  let out = apply(head, x);
  unitNorm.push({ variable: denseKernel(head), axis: 0 });
  if (ngpt) out = apply(new LearnedScale({ initValue: 1, initScaling: 1 / Math.sqrt(dModel), name: 'logit_scale' }), out);
  if (output === 'probabilities') out = apply(tfl.layers.activation({ activation: 'softmax', name: 'lm_softmax' }), out);
  const model = tfl.model({ inputs: tokens, outputs: out, name: config.name ?? 'transformer_lm' });

  if (deep) deepNormScaleWeights(deepScaled, deep.beta);
  if (ngpt) {
    declareNGPTMatrices(model, unitNorm);
    ngptNormalizeWeights(model);
  }
  return model;
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
