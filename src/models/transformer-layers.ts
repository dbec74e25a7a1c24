/**
 * The parts of normkit's decoder-only Transformer ({@link buildTransformerLM}): token + position embedding,
 * causal multi-head self-attention, a scaled residual add, SwiGLU and a learned per-channel scale. Each part
 * is a serializable tfjs layer, so a built model saves and loads like any tfjs LayersModel.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean, checkInteger, checkPositive } from '../core/checks.js';
import { NormkitError } from '../core/errors.js';
import { singleInput } from '../core/norm-layer.js';
import { registerLayerClass, resolveInitializer, serializeObject } from '../core/serialization.js';
import { unitNormalize } from '../methods/ngpt/layers.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;
type LayerVariable = tfl.LayerVariable;
type ConfigValue = tf.serialization.ConfigDictValue;

/** GPT-2's default initializer, N(0, 0.02). */
export function gpt2Normal(seed?: number): ReturnType<typeof tfl.initializers.randomNormal> {
  return tfl.initializers.randomNormal({ mean: 0, stddev: 0.02, seed });
}

function lastDim(where: string, inputShape: tfl.Shape | tfl.Shape[]): number {
  const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
  const d = shape[shape.length - 1];
  if (d == null) throw new NormkitError(where, 'inputShape', 'a known last (feature) dimension', shape);
  return d;
}

/** Arguments of {@link TokenPositionEmbedding}. */
export interface TokenPositionEmbeddingArgs extends LayerArgs {
  vocabSize: number;
  /** Longest sequence the learned position table covers. */
  maxLength: number;
  dModel: number;
  /** Add learned absolute position embeddings (default true). */
  positional?: boolean;
  /** Initializer of both tables (default N(0, 0.02), as GPT-2). */
  embeddingsInitializer?: unknown;
}

/**
 * `y[b, t] = E_tok[tokens[b, t]] + E_pos[t]`: token embedding plus learned absolute position embedding.
 * Tokens are integer ids of shape [B, T] with T <= maxLength (int32 or float32 holding integers); an id
 * outside [0, vocabSize) embeds as zeros. The lookup is tf.gather (its gradient, UnsortedSegmentSum, is
 * registered on wasm by src/kernels/wasm-gaps), O(B T d) instead of the O(B T V d) one-hot product it replaced.
 */
export class TokenPositionEmbedding extends tfl.layers.Layer {
  static className = 'NormkitTokenPositionEmbedding';
  readonly vocabSize: number;
  readonly maxLength: number;
  readonly dModel: number;
  readonly positional: boolean;
  private readonly embeddingsInitializer;
  /** The token table [vocabSize, dModel] (set by build). */
  tokenTable: LayerVariable | null = null;
  private positionTable: LayerVariable | null = null;

  constructor(args: TokenPositionEmbeddingArgs) {
    super(args);
    const where = 'TokenPositionEmbedding';
    checkInteger(where, 'vocabSize', args.vocabSize);
    checkInteger(where, 'maxLength', args.maxLength);
    checkInteger(where, 'dModel', args.dModel);
    this.positional = args.positional ?? true;
    checkBoolean(where, 'positional', this.positional);
    this.vocabSize = args.vocabSize;
    this.maxLength = args.maxLength;
    this.dModel = args.dModel;
    this.embeddingsInitializer = resolveInitializer(this.getClassName(), 'embeddingsInitializer', args.embeddingsInitializer ?? gpt2Normal(), 'zeros');
  }

  override build(): void {
    this.tokenTable = this.addWeight('token_embeddings', [this.vocabSize, this.dModel], 'float32', this.embeddingsInitializer);
    if (this.positional) {
      this.positionTable = this.addWeight('position_embeddings', [this.maxLength, this.dModel], 'float32', this.embeddingsInitializer);
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [...shape, this.dModel];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const tokens = singleInput(inputs);
    if (tokens.rank !== 2) throw new NormkitError('TokenPositionEmbedding', 'tokens', 'a tensor of shape [batch, time]', tokens);
    const [batch, time] = tokens.shape;
    if (time > this.maxLength) {
      throw new NormkitError('TokenPositionEmbedding', 'tokens', `at most maxLength = ${this.maxLength} positions`, `${time} positions`);
    }
    return tf.tidy(() => {
      const ids = tf.reshape(tf.cast(tokens, 'int32'), [batch * time]);
      // An id outside [0, vocabSize) embeds as zeros (tf.gather itself would throw on cpu and read out of
      // bounds on wasm): look up row 0 for it and multiply by 0.
      const inRange = tf.logicalAnd(tf.greaterEqual(ids, 0), tf.less(ids, this.vocabSize));
      const rows = tf.gather(this.tokenTable!.read(), tf.where(inRange, ids, tf.zerosLike(ids)));
      let y = tf.mul(rows, tf.expandDims(tf.cast(inRange, 'float32'), 1));
      y = tf.reshape(y, [batch, time, this.dModel]);
      if (this.positionTable) y = tf.add(y, tf.slice(this.positionTable.read(), [0, 0], [time, this.dModel]));
      return y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      vocabSize: this.vocabSize,
      maxLength: this.maxLength,
      dModel: this.dModel,
      positional: this.positional,
      embeddingsInitializer: serializeObject(this.embeddingsInitializer) as unknown as ConfigValue,
    };
  }
}

/** Arguments of {@link CausalSelfAttention}. */
export interface CausalSelfAttentionArgs extends LayerArgs {
  heads: number;
  /** Learn biases on the four projections (default true). */
  useBias?: boolean;
  /** Initializer of the query, key and value kernels (default N(0, 0.02)). */
  kernelInitializer?: unknown;
  /** Initializer of the output projection kernel (default: kernelInitializer). */
  outputInitializer?: unknown;
  /** NormFormer head scaling: a learned gain per head (init 1) on each head's output before W_O (paper form). */
  headScale?: boolean;
  /**
   * nGPT: unit-normalize each head's query and key over the head dimension and multiply by the learned
   * per-dimension `s_qk`; the softmax scale becomes sqrt(d_head) (q.k is a cosine).
   */
  qkNormalize?: boolean;
  /** nGPT `s_qk`: effective initial value (default 1) and storage scale (default 1/sqrt(dModel)). */
  qkScaleInitValue?: number;
  qkScaleInitScaling?: number;
  /** Floor inside the query/key normalization, so a zero vector gives 0 instead of NaN (default 1e-12). */
  epsilon?: number;
  /** Rotary position embedding on q and k (RoPE, half-split form; default false). */
  rotary?: boolean;
  /** RoPE frequency base (default 10000). */
  rotaryBase?: number;
}

/**
 * Causal multi-head self-attention over [B, T, D] with H heads of size dh = D / H (input x, or [x, x_v] with
 * the value projection reading x_v):
 *
 *   q, k, v = x W_q + b_q, x W_k + b_k, x W_v + b_v   (split into heads)
 *   A = softmax(q k^T * scale + M),  M[i, j] = -1e9 for j > i,  scale = 1/sqrt(dh)
 *   y = concat_h(g_h * A_h v_h) W_o + b_o
 *
 * with g_h = 1 unless `headScale` (NormFormer). With `qkNormalize` (nGPT), q and k are replaced by
 * s_qk * q/||q|| and s_qk * k/||k|| and scale = sqrt(dh). With `rotary`, q and k are first rotated by
 * RoPE (Su et al., 2021) in the half-split form: for position t and i < dh/2, theta_i = base^(-2i/dh),
 * `[x1, x2] -> [x1 cos(t theta) - x2 sin(t theta), x2 cos(t theta) + x1 sin(t theta)]`.
 * Kernels use the tfjs [in, out] layout.
 */
export class CausalSelfAttention extends tfl.layers.Layer {
  static className = 'NormkitCausalSelfAttention';
  readonly heads: number;
  readonly useBias: boolean;
  readonly headScale: boolean;
  readonly qkNormalize: boolean;
  readonly qkScaleInitValue: number;
  readonly qkScaleInitScaling: number | null;
  readonly epsilon: number;
  readonly rotary: boolean;
  readonly rotaryBase: number;
  private readonly kernelInitializer;
  private readonly outputInitializer;
  private dModel = 0;
  queryKernel: LayerVariable | null = null;
  keyKernel: LayerVariable | null = null;
  valueKernel: LayerVariable | null = null;
  outputKernel: LayerVariable | null = null;
  queryBias: LayerVariable | null = null;
  keyBias: LayerVariable | null = null;
  valueBias: LayerVariable | null = null;
  outputBias: LayerVariable | null = null;
  private headScales: LayerVariable | null = null;
  private qkScale: LayerVariable | null = null;

  constructor(args: CausalSelfAttentionArgs) {
    super(args);
    const where = 'CausalSelfAttention';
    checkInteger(where, 'heads', args.heads);
    this.heads = args.heads;
    this.useBias = args.useBias ?? true;
    this.headScale = args.headScale ?? false;
    this.qkNormalize = args.qkNormalize ?? false;
    checkBoolean(where, 'useBias', this.useBias);
    checkBoolean(where, 'headScale', this.headScale);
    checkBoolean(where, 'qkNormalize', this.qkNormalize);
    this.qkScaleInitValue = args.qkScaleInitValue ?? 1;
    checkPositive(where, 'qkScaleInitValue', this.qkScaleInitValue);
    this.qkScaleInitScaling = args.qkScaleInitScaling ?? null;
    if (this.qkScaleInitScaling !== null) checkPositive(where, 'qkScaleInitScaling', this.qkScaleInitScaling);
    this.epsilon = args.epsilon ?? 1e-12;
    checkPositive(where, 'epsilon', this.epsilon);
    this.rotary = args.rotary ?? false;
    checkBoolean(where, 'rotary', this.rotary);
    this.rotaryBase = args.rotaryBase ?? 10000;
    checkPositive(where, 'rotaryBase', this.rotaryBase);
    this.kernelInitializer = resolveInitializer(this.getClassName(), 'kernelInitializer', args.kernelInitializer ?? gpt2Normal(), 'zeros');
    this.outputInitializer = args.outputInitializer === undefined ? this.kernelInitializer : resolveInitializer(this.getClassName(), 'outputInitializer', args.outputInitializer, 'zeros');
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const d = lastDim('CausalSelfAttention', inputShape);
    if (d % this.heads !== 0) {
      throw new NormkitError('CausalSelfAttention', 'heads', `a divisor of the model width ${d}`, this.heads);
    }
    if (this.rotary && (d / this.heads) % 2 !== 0) {
      throw new NormkitError('CausalSelfAttention', 'rotary', `an even head size (dModel / heads = ${d / this.heads} is odd)`, true);
    }
    this.dModel = d;
    const zeros = tfl.initializers.zeros();
    this.queryKernel = this.addWeight('query_kernel', [d, d], 'float32', this.kernelInitializer);
    this.keyKernel = this.addWeight('key_kernel', [d, d], 'float32', this.kernelInitializer);
    this.valueKernel = this.addWeight('value_kernel', [d, d], 'float32', this.kernelInitializer);
    this.outputKernel = this.addWeight('output_kernel', [d, d], 'float32', this.outputInitializer);
    if (this.useBias) {
      this.queryBias = this.addWeight('query_bias', [d], 'float32', zeros);
      this.keyBias = this.addWeight('key_bias', [d], 'float32', zeros);
      this.valueBias = this.addWeight('value_bias', [d], 'float32', zeros);
      this.outputBias = this.addWeight('output_bias', [d], 'float32', zeros);
    }
    if (this.headScale) this.headScales = this.addWeight('head_scale', [this.heads], 'float32', tfl.initializers.ones());
    if (this.qkNormalize) {
      this.qkScale = this.addWeight('qk_scale', [d], 'float32', tfl.initializers.constant({ value: this.storageScale() }));
    }
    this.built = true;
  }

  private storageScale(): number {
    return this.qkScaleInitScaling ?? 1 / Math.sqrt(this.dModel);
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    // One input, or [qkInput, vInput] when the query/key and value paths read different tensors (LN removal).
    const x = singleInput(inputs);
    const xv = Array.isArray(inputs) && inputs.length === 2 ? inputs[1] : x;
    if (x.rank !== 3) throw new NormkitError('CausalSelfAttention', 'inputs', 'a tensor of shape [batch, time, features]', x);
    if (xv.rank !== 3 || xv.shape.some((n, i) => n !== x.shape[i])) {
      throw new NormkitError('CausalSelfAttention', 'inputs', `a value input of the query input's shape [${x.shape.join(', ')}]`, xv);
    }
    return tf.tidy(() => {
      const [batch, time, d] = x.shape;
      const h = this.heads;
      const dh = d / h;
      const flat = tf.reshape(x, [batch * time, d]);
      const flatV = xv === x ? flat : tf.reshape(xv, [batch * time, d]);
      const project = (kernel: LayerVariable, bias: LayerVariable | null, input = flat): tf.Tensor => {
        let y = tf.matMul(input, kernel.read());
        if (bias) y = tf.add(y, bias.read());
        // [B*T, D] -> [B, H, T, dh]
        return tf.transpose(tf.reshape(y, [batch, time, h, dh]), [0, 2, 1, 3]);
      };
      let q = project(this.queryKernel!, this.queryBias);
      let k = project(this.keyKernel!, this.keyBias);
      const v = project(this.valueKernel!, this.valueBias, flatV);
      if (this.rotary) {
        const { cos, sin } = this.rotaryTables(time, dh);
        q = rotate(q, cos, sin);
        k = rotate(k, cos, sin);
      }
      let scale = 1 / Math.sqrt(dh);
      if (this.qkNormalize) {
        const s = tf.reshape(tf.mul(this.qkScale!.read(), this.qkScaleInitValue / this.storageScale()), [1, h, 1, dh]);
        q = tf.mul(unitNormalize(q, this.epsilon), s);
        k = tf.mul(unitNormalize(k, this.epsilon), s);
        scale = Math.sqrt(dh);
      }
      const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), scale), causalMaskBias(time));
      let o = tf.matMul(tf.softmax(scores), v);
      if (this.headScales) o = tf.mul(o, tf.reshape(this.headScales.read(), [1, h, 1, 1]));
      o = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [batch * time, d]);
      let y = tf.matMul(o, this.outputKernel!.read());
      if (this.outputBias) y = tf.add(y, this.outputBias.read());
      return tf.reshape(y, [batch, time, d]);
    });
  }

  /** cos(t theta_i) and sin(t theta_i) as [T, dh] tables (each of the dh/2 frequencies twice). */
  private rotaryTables(time: number, dh: number): { cos: tf.Tensor; sin: tf.Tensor } {
    const half = dh / 2;
    const cos = new Float32Array(time * dh);
    const sin = new Float32Array(time * dh);
    for (let t = 0; t < time; t++) {
      for (let i = 0; i < half; i++) {
        const angle = t * this.rotaryBase ** ((-2 * i) / dh);
        cos[t * dh + i] = cos[t * dh + half + i] = Math.cos(angle);
        sin[t * dh + i] = sin[t * dh + half + i] = Math.sin(angle);
      }
    }
    return { cos: tf.tensor(cos, [time, dh]), sin: tf.tensor(sin, [time, dh]) };
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      heads: this.heads,
      useBias: this.useBias,
      headScale: this.headScale,
      qkNormalize: this.qkNormalize,
      qkScaleInitValue: this.qkScaleInitValue,
      qkScaleInitScaling: this.qkScaleInitScaling,
      epsilon: this.epsilon,
      rotary: this.rotary,
      rotaryBase: this.rotaryBase,
      kernelInitializer: serializeObject(this.kernelInitializer) as unknown as ConfigValue,
      outputInitializer: serializeObject(this.outputInitializer) as unknown as ConfigValue,
    };
  }
}

/**
 * The causal mask M [T, T]: M[i, j] = -1e9 for j > i, else 0. Filled in plain JS and uploaded as one tensor:
 * building it from tensor ops (ones, bandPart, sub, mul) cost a handful of kernels per layer and step.
 */
function causalMaskBias(time: number): tf.Tensor2D {
  const m = new Float32Array(time * time);
  for (let i = 0; i < time; i++) m.fill(-1e9, i * time + i + 1, (i + 1) * time);
  return tf.tensor2d(m, [time, time]);
}

/** RoPE on [B, H, T, dh]: x * cos + rotate_half(x) * sin, rotate_half([x1, x2]) = [-x2, x1]. */
function rotate(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  const [x1, x2] = tf.split(x, 2, -1);
  return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2), x1], -1), sin));
}

/** Arguments of {@link ResidualAdd}. */
export interface ResidualAddArgs extends LayerArgs {
  /** Constant multiplier of the residual (DeepNorm's alpha; default 1). */
  residualScale?: number;
  /** Learn a per-channel multiplier of the residual, init 1 (NormFormer's scale-resids; default false). */
  learnedScale?: boolean;
}

/**
 * `y = alpha * w ⊙ residual + branch` for inputs `[residual, branch]`, with alpha a constant (DeepNorm) and w
 * a learned per-channel vector (NormFormer's `scale_resids`) or 1.
 */
export class ResidualAdd extends tfl.layers.Layer {
  static className = 'NormkitResidualAdd';
  readonly residualScale: number;
  readonly learnedScale: boolean;
  private residualWeight: LayerVariable | null = null;

  constructor(args: ResidualAddArgs = {}) {
    super(args);
    this.residualScale = args.residualScale ?? 1;
    checkPositive('ResidualAdd', 'residualScale', this.residualScale);
    this.learnedScale = args.learnedScale ?? false;
    checkBoolean('ResidualAdd', 'learnedScale', this.learnedScale);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    if (this.learnedScale) {
      this.residualWeight = this.addWeight('residual_scale', [lastDim('ResidualAdd', inputShape)], 'float32', tfl.initializers.ones());
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    if (!Array.isArray(inputs) || inputs.length !== 2) {
      throw new NormkitError('ResidualAdd', 'inputs', 'a list [residual, branch]', inputs);
    }
    const [residual, branch] = inputs;
    return tf.tidy(() => {
      let r = this.residualScale === 1 ? residual : tf.mul(residual, this.residualScale);
      if (this.residualWeight) r = tf.mul(r, this.residualWeight.read());
      return tf.add(r, branch);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), residualScale: this.residualScale, learnedScale: this.learnedScale };
  }
}

/** `y = u ⊙ silu(v)` where `[u, v]` are the two halves of the last axis (the SwiGLU gate used by nGPT). */
export class SwiGLU extends tfl.layers.Layer {
  static className = 'NormkitSwiGLU';

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = [...((Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape)];
    const d = shape[shape.length - 1];
    shape[shape.length - 1] = d == null ? null : d / 2;
    return shape;
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const d = lastDim('SwiGLU', inputShape);
    if (d % 2 !== 0) throw new NormkitError('SwiGLU', 'inputShape', 'an even last dimension', d);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = singleInput(inputs);
    return tf.tidy(() => {
      const [u, v] = tf.split(x, 2, -1);
      return tf.mul(u, tf.mul(v, tf.sigmoid(v)));
    });
  }
}

/** Arguments of {@link LearnedScale}. */
export interface LearnedScaleArgs extends LayerArgs {
  /** Effective initial value of the scale (default 1). */
  initValue?: number;
  /** Stored initial value; the stored vector s is used as s * initValue / initScaling (default 1). */
  initScaling?: number;
  /** Constant extra factor (nGPT's sqrt(d) on s_uv; default 1). */
  extraFactor?: number;
}

/**
 * `y = x ⊙ s * (initValue / initScaling) * extraFactor` with a learned vector s over the last axis, stored as
 * `initScaling * ones` at init (nGPT's scaled parameters: the storage scale sets s's effective learning rate).
 */
export class LearnedScale extends tfl.layers.Layer {
  static className = 'NormkitLearnedScale';
  readonly initValue: number;
  readonly initScaling: number;
  readonly extraFactor: number;
  private scaleVector: LayerVariable | null = null;

  constructor(args: LearnedScaleArgs = {}) {
    super(args);
    this.initValue = args.initValue ?? 1;
    this.initScaling = args.initScaling ?? 1;
    this.extraFactor = args.extraFactor ?? 1;
    checkPositive('LearnedScale', 'initValue', this.initValue);
    checkPositive('LearnedScale', 'initScaling', this.initScaling);
    checkPositive('LearnedScale', 'extraFactor', this.extraFactor);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const d = lastDim('LearnedScale', inputShape);
    this.scaleVector = this.addWeight('scale', [d], 'float32', tfl.initializers.constant({ value: this.initScaling }));
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = singleInput(inputs);
    return tf.tidy(() => tf.mul(x, tf.mul(this.scaleVector!.read(), (this.initValue / this.initScaling) * this.extraFactor)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), initValue: this.initValue, initScaling: this.initScaling, extraFactor: this.extraFactor };
  }
}

for (const cls of [TokenPositionEmbedding, CausalSelfAttention, ResidualAdd, SwiGLU, LearnedScale]) registerLayerClass(cls);
