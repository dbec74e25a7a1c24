/**
 * Adaptive Gradient Clipping (Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image Recognition
 * Without Normalization", ICML 2021), usable with any tfjs optimizer.
 */
import * as tf from '@tensorflow/tfjs-core';
import { NormkitError } from '../core/errors.js';
import { defaultFanInAxes, type KernelLayout } from '../core/kernel-layout.js';
import { registerNorm } from '../core/registry.js';
import { checkKnownKeys, checkPositive } from './options.js';
import { gradientEntries, variableNamed, type NamedTensor, type VariableGradients } from './slot-optimizer.js';

/** Options of {@link adaptiveClipGradients} and {@link withAGC}. */
export interface AGCOptions {
  /** lambda: the largest allowed ratio ||G_i|| / ||W_i|| per unit (default 0.01, NFNet-F at batch 4096). */
  clipping?: number;
  /** Floor of ||W_i||, so zero-initialized weights can still move (default 1e-3). */
  epsilon?: number;
  /**
   * Variables left unclipped: a variable is skipped when its name contains one of these strings (the paper
   * excludes the final classifier layer, e.g. `['dense_3/']`).
   */
  exclude?: string[];
  /** Kernel layouts by variable name (`kernelLayoutsByVariable(model.layers)`); otherwise the last axis is the unit. Not serialized. */
  kernelLayouts?: Map<string, KernelLayout>;
}

const KNOWN = ['clipping', 'epsilon', 'exclude', 'kernelLayouts'];

interface ResolvedAGC {
  clipping: number;
  epsilon: number;
  exclude: string[];
  kernelLayouts?: Map<string, KernelLayout>;
}

function resolve(where: string, options: AGCOptions): ResolvedAGC {
  checkKnownKeys(where, options, KNOWN);
  const clipping = options.clipping ?? 0.01;
  const epsilon = options.epsilon ?? 1e-3;
  checkPositive(where, 'clipping', clipping);
  checkPositive(where, 'epsilon', epsilon);
  const exclude = options.exclude ?? [];
  if (!Array.isArray(exclude) || exclude.some((e) => typeof e !== 'string')) throw new NormkitError(where, 'exclude', 'an array of strings', exclude);
  return { clipping, epsilon, exclude, kernelLayouts: options.kernelLayouts };
}

/** Unit-wise L2 norm over `axes` with kept dims. */
function unitNorm(x: tf.Tensor, axes: number[]): tf.Tensor {
  return tf.sqrt(tf.sum(tf.square(x), axes, true));
}

/**
 * Clips one gradient G of parameter W unit-wise: with N(.) the L2 norm over each output unit's fan-in
 * (the last axis is the unit in tfjs layouts; scalars and vectors use the whole tensor),
 *
 *   max = clipping * max(N(W), eps);   G <- N(G) > max ? G * max / max(N(G), 1e-6) : G.
 */
export function adaptiveClipGradient(gradient: tf.Tensor, param: tf.Tensor, options: AGCOptions & { fanInAxes?: number[] } = {}): tf.Tensor {
  const where = 'adaptiveClipGradient';
  const { fanInAxes, ...rest } = options;
  const o = resolve(where, rest);
  if (!(gradient instanceof tf.Tensor) || !(param instanceof tf.Tensor)) throw new NormkitError(where, 'gradient', 'tf.Tensors for the gradient and the parameter', gradient);
  if (gradient.shape.length !== param.shape.length || gradient.shape.some((d, i) => d !== param.shape[i])) {
    throw new NormkitError(where, 'gradient', `a tensor of the parameter's shape [${param.shape.join(', ')}]`, gradient);
  }
  const axes = fanInAxes ?? defaultFanInAxes(param.rank);
  return tf.tidy(() => {
    const maxNorm = tf.mul(tf.maximum(unitNorm(param, axes), o.epsilon), o.clipping);
    const gNorm = unitNorm(gradient, axes);
    const clipped = tf.mul(gradient, tf.div(maxNorm, tf.maximum(gNorm, 1e-6)));
    return tf.where(tf.greater(gNorm, maxNorm), clipped, gradient);
  });
}

/**
 * Clips every gradient of a gradient map (as given to `optimizer.applyGradients`) against the registered
 * variable of the same name. Returns a new map of new tensors (the caller disposes them); excluded
 * variables get a copy of their gradient.
 */
export function adaptiveClipGradients(variableGradients: VariableGradients, options: AGCOptions = {}): tf.NamedTensorMap {
  const where = 'adaptiveClipGradients';
  const o = resolve(where, options);
  const out: tf.NamedTensorMap = {};
  for (const [name, gradient] of gradientEntries(variableGradients)) {
    const param = variableNamed(where, name);
    if (o.exclude.some((e) => name.includes(e))) {
      out[name] = tf.clone(gradient);
      continue;
    }
    const fanInAxes = o.kernelLayouts?.get(name)?.fanInAxes ?? defaultFanInAxes(param.rank);
    out[name] = adaptiveClipGradient(gradient, param, { clipping: o.clipping, epsilon: o.epsilon, fanInAxes });
  }
  return out;
}

/**
 * An optimizer that clips gradients with AGC, then hands them to any tfjs optimizer. Serializes with the
 * wrapped optimizer's `{className, config}`; its weights and iteration count are the wrapped optimizer's.
 */
export class AdaptiveGradientClipping extends tf.Optimizer {
  static className = 'AdaptiveGradientClipping';
  readonly optimizer: tf.Optimizer;
  readonly clipping: number;
  readonly epsilon: number;
  readonly exclude: string[];
  private readonly kernelLayouts?: Map<string, KernelLayout>;

  constructor(optimizer: tf.Optimizer, options: AGCOptions = {}) {
    super();
    const where = 'AdaptiveGradientClipping';
    if (!(optimizer instanceof tf.Optimizer)) throw new NormkitError(where, 'optimizer', 'a tf.Optimizer', optimizer);
    const o = resolve(where, options);
    this.optimizer = optimizer;
    this.clipping = o.clipping;
    this.epsilon = o.epsilon;
    this.exclude = o.exclude;
    this.kernelLayouts = o.kernelLayouts;
  }

  override get iterations(): number {
    return this.optimizer.iterations;
  }

  override applyGradients(variableGradients: VariableGradients): void {
    const clipped = adaptiveClipGradients(variableGradients, { clipping: this.clipping, epsilon: this.epsilon, exclude: this.exclude, kernelLayouts: this.kernelLayouts });
    try {
      this.optimizer.applyGradients(clipped);
    } finally {
      tf.dispose(clipped);
    }
  }

  override async getWeights(): Promise<NamedTensor[]> {
    return this.optimizer.getWeights();
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    return this.optimizer.setWeights(weightValues);
  }

  override dispose(): void {
    this.optimizer.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      clipping: this.clipping,
      epsilon: this.epsilon,
      exclude: [...this.exclude],
      optimizer: { className: this.optimizer.getClassName(), config: this.optimizer.getConfig() },
    };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>, config: tf.serialization.ConfigDict): T {
    const inner = config.optimizer as { className?: unknown; config?: tf.serialization.ConfigDict } | undefined;
    const entry = typeof inner?.className === 'string' ? tf.serialization.SerializationMap.getMap().classNameMap[inner.className] : undefined;
    if (entry === undefined) throw new NormkitError('AdaptiveGradientClipping.fromConfig', 'optimizer', 'a serialized optimizer {className, config} of a registered class', inner);
    const optimizer = entry[1](entry[0], { ...(inner?.config ?? {}), customObjects: config.customObjects ?? {} }) as unknown as tf.Optimizer;
    return new cls(optimizer, { clipping: config.clipping, epsilon: config.epsilon, exclude: config.exclude });
  }
}

/** Wraps `optimizer` so every step clips gradients with AGC first: `model.compile({optimizer: withAGC(tf.train.sgd(0.1))})`. */
export function withAGC(optimizer: tf.Optimizer, options: AGCOptions = {}): AdaptiveGradientClipping {
  return new AdaptiveGradientClipping(optimizer, options);
}

tf.serialization.registerClass(AdaptiveGradientClipping);

registerNorm({
  name: 'agc',
  aliases: ['adaptive-gradient-clipping', 'AdaptiveGradientClipping'],
  kind: 'optimizer',
  description: 'Clips each output unit\'s gradient when its norm exceeds a fraction of the unit\'s weight norm (NFNets).',
  paper: 'Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image Recognition Without Normalization", ICML 2021 (arXiv 2102.06171)',
  doc: 'docs/agc-nfnet.md',
});
