/**
 * Normalize-and-Project (Lyle et al., "Normalization and effective learning rates in reinforcement
 * learning", NeurIPS 2024) as a wrapper around an existing kernel layer plus a projection step.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkAxisArgument, normalizeAxes, paramShape } from '../../core/axes.js';
import { checkBoolean, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { KernelWrapper, type KernelWrapperArgs } from '../../core/kernel-wrapper.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';
import { layerNorm } from '../layer-norm/op.js';

/** Arguments of {@link NormalizeAndProject}. */
export interface NormalizeAndProjectArgs extends KernelWrapperArgs {
  /** Axes of the wrapped layer's OUTPUT normalized by the inserted LayerNorm (default -1, the channels). */
  axis?: number | number[];
  /** LayerNorm epsilon (default 1e-5). */
  epsilon?: number;
  /** Learn the LayerNorm scale (default true). */
  scale?: boolean;
  /** Learn the LayerNorm offset (default true). */
  center?: boolean;
  /** Radius the kernel (with the bias) is projected to; null (default) keeps the norm it has at build. */
  targetNorm?: number | null;
}

/**
 * NaP's "normalize" half: the wrapped layer's pre-activation `t = x W + b` goes through a LayerNorm (over the
 * output `axis`, learned `gamma`/`beta`) BEFORE the wrapped layer's own activation:
 *
 *   y = act(gamma * (t - mean(t)) / sqrt(var(t) + eps) + beta).
 *
 * The output is then invariant to scaling (W, b) jointly, so growth of ||(W, b)|| only lowers the
 * effective learning rate. The "project" half is {@link NormalizeAndProject.project}: `(W, b) <- (W, b) *
 * rho / ||(W, b)||` with rho the norm at build time (weight `target_norm`), which leaves the output unchanged;
 * run it after every optimizer step with {@link napCallback} or {@link projectNAP}.
 */
export class NormalizeAndProject extends KernelWrapper {
  static className = 'NormalizeAndProject';
  static override argKeys: readonly string[] = [...KernelWrapper.argKeys, 'axis', 'epsilon', 'scale', 'center', 'targetNorm'];
  readonly axis: number | number[];
  readonly epsilon: number;
  readonly scale: boolean;
  readonly center: boolean;
  readonly targetNorm: number | null;
  private axes: number[] = [];
  private gamma: tfl.LayerVariable | null = null;
  private beta: tfl.LayerVariable | null = null;
  private target: tfl.LayerVariable | null = null;

  constructor(args: NormalizeAndProjectArgs) {
    super(args);
    this.axis = args.axis ?? -1;
    checkAxisArgument(this.where, this.axis);
    this.epsilon = args.epsilon ?? 1e-5;
    checkPositive(this.where, 'epsilon', this.epsilon);
    this.scale = args.scale ?? true;
    this.center = args.center ?? true;
    checkBoolean(this.where, 'scale', this.scale);
    checkBoolean(this.where, 'center', this.center);
    this.targetNorm = args.targetNorm ?? null;
    if (this.targetNorm !== null) checkPositive(this.where, 'targetNorm', this.targetNorm);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    // The axes are checked on the output shape before any weight exists.
    const out = this.layer.computeOutputShape(inputShape) as tfl.Shape;
    this.axes = normalizeAxes(this.where, this.axis, out.length);
    if (this.axes.includes(0)) throw new NormkitError(this.where, 'axis', 'output axes other than the batch axis 0', this.axis);
    const pShape = paramShape(out as number[], this.axes);
    if (pShape.some((d) => d == null)) throw new NormkitError(this.where, 'axis', 'axes of known size in the output', this.axis);
    super.build(inputShape);
    if (this.scale) this.gamma = this.addWeight('gamma', pShape, 'float32', tfl.initializers.ones(), undefined, true);
    if (this.center) this.beta = this.addWeight('beta', pShape, 'float32', tfl.initializers.zeros(), undefined, true);
  }

  protected override buildReparam(): void {
    this.target = this.addWeight('target_norm', [], 'float32', tfl.initializers.ones(), undefined, false);
    tf.tidy(() => {
      (this.target as tfl.LayerVariable).write(this.targetNorm === null ? this.parameterNorm() : tf.scalar(this.targetNorm));
    });
  }

  /** The projected parameters: the wrapped layer's kernel and, when present, its bias. */
  private projected(): tfl.LayerVariable[] {
    const bias = (this.layer as unknown as { bias?: tfl.LayerVariable | null }).bias;
    return bias ? [this.rawKernel, bias] : [this.rawKernel];
  }

  /** ||(W, b)||, the Euclidean norm over the kernel and bias together. */
  private parameterNorm(): tf.Tensor {
    return tf.sqrt(tf.addN(this.projected().map((v) => tf.sum(tf.square(v.read())))));
  }

  protected override computeKernel(kernel: tf.Tensor): tf.Tensor {
    return kernel;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    return tf.tidy(() => {
      const t = this.callWithKernel(inputs, this.rawKernel.read(), kwargs ?? {}, 'linear');
      const y = layerNorm(t, { axis: this.axes, epsilon: this.epsilon, gamma: this.gamma?.read(), beta: this.beta?.read() });
      const activation = (this.layer as unknown as { activation?: { apply(x: tf.Tensor): tf.Tensor } | null }).activation;
      return activation ? activation.apply(y) : y;
    });
  }

  /**
   * NaP's projection: rescales the wrapped layer's kernel and bias together to the target norm
   * (`(W, b) <- (W, b) * rho / ||(W, b)||`). The output does not change; only the effective learning rate does.
   */
  project(): void {
    this.requireLayout();
    tf.tidy(() => {
      const factor = tf.div((this.target as tfl.LayerVariable).read(), tf.maximum(this.parameterNorm(), 1e-12));
      for (const v of this.projected()) v.write(tf.mul(v.read(), factor));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), axis: this.axis, epsilon: this.epsilon, scale: this.scale, center: this.center, targetNorm: this.targetNorm };
  }
}

/** Every built NormalizeAndProject layer inside `layers` (nested models included). */
function napLayers(layers: readonly tfl.layers.Layer[]): NormalizeAndProject[] {
  const out: NormalizeAndProject[] = [];
  const visit = (layer: tfl.layers.Layer): void => {
    if (layer instanceof NormalizeAndProject) {
      if (layer.built) out.push(layer);
      return;
    }
    const nested = (layer as unknown as { layers?: tfl.layers.Layer[] }).layers;
    if (Array.isArray(nested)) nested.forEach(visit);
  };
  layers.forEach(visit);
  return out;
}

/** Runs {@link NormalizeAndProject.project} on every NaP layer of a model (or list of layers). */
export function projectNAP(model: tfl.LayersModel | readonly tfl.layers.Layer[]): void {
  const layers = Array.isArray(model) ? model : (model as tfl.LayersModel)?.layers;
  if (!Array.isArray(layers)) throw new NormkitError('projectNAP', 'model', 'a tfl.LayersModel or an array of layers', model);
  for (const layer of napLayers(layers)) layer.project();
}

/**
 * A `model.fit` callback that projects every NaP layer after each batch (i.e. after each optimizer step):
 * `model.fit(xs, ys, { callbacks: [napCallback(model)] })`.
 */
export function napCallback(model: tfl.LayersModel): tfl.CustomCallback {
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError('napCallback', 'model', 'a tfl.LayersModel', model);
  return new tfl.CustomCallback({ onBatchEnd: async () => projectNAP(model) });
}

registerLayerClass(NormalizeAndProject);

registerNorm({
  name: 'nap',
  aliases: ['normalize-and-project', 'NormalizeAndProject'],
  kind: 'weight',
  description: 'Inserts a LayerNorm before a layer\'s activation and projects its weights back to a fixed norm after each step, fixing the effective learning rate.',
  paper: 'Lyle, Zheng, Khetarpal, Martens, van Hasselt, Pascanu & Dabney, "Normalization and effective learning rates in reinforcement learning", NeurIPS 2024 (arXiv 2407.01800)',
  layerClass: 'NormalizeAndProject',
  create: (config) => new NormalizeAndProject(config as unknown as NormalizeAndProjectArgs),
  doc: 'docs/nap.md',
});
