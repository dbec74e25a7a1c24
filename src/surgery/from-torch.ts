/**
 * Loading PyTorch normalization weights (a module's state_dict entries) into normkit layers, and converting
 * a PyTorch module's constructor arguments into normkit layer arguments.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { checkKnownKeys, checkOneOf } from '../core/checks.js';
import { CONVENTION_DEFAULTS, conventionDefaults, type Convention } from '../core/conventions.js';
import { NormkitError, describe } from '../core/errors.js';

/** normkit layer class names {@link fromTorchStateDict} loads into. */
export const TORCH_LOADABLE_CLASSES = ['BatchNormalization', 'LayerNormalization', 'GroupNormalization', 'InstanceNormalization', 'RMSNormalization'] as const;

/** normkit weight name -> PyTorch state_dict key (without the module prefix). */
const TORCH_KEY: Record<string, string> = {
  gamma: 'weight',
  scale: 'weight',
  beta: 'bias',
  moving_mean: 'running_mean',
  moving_variance: 'running_var',
};
const IGNORED_KEYS = ['num_batches_tracked'];

/** Options of {@link fromTorchStateDict}. */
export interface FromTorchOptions {
  /** The module's key prefix in the state dict, e.g. `'features.1'` or `'features.1.'` (default none). */
  prefix?: string;
  /**
   * Tensor layout: `'auto'` (default) copies a tensor whose shape equals the weight's and otherwise moves a
   * leading channel axis to the end (NCHW-style `[C, H, W]` -> NHWC `[H, W, C]`); `'nchw'` always moves it;
   * `'same'` never does.
   */
  layout?: 'auto' | 'nchw' | 'same';
  /** The PyTorch module's momentum (weight of the NEW value). When given, the layer's momentum is checked against it. */
  momentum?: number;
  /** The PyTorch module's eps. When given, the layer's epsilon is checked against it. */
  eps?: number;
}

const WHERE = 'fromTorchStateDict';

/**
 * Loads a PyTorch normalization module's weights into a built normkit BatchNormalization,
 * LayerNormalization, GroupNormalization, InstanceNormalization or RMSNormalization layer:
 *
 *   gamma / scale <- weight,  beta <- bias,  moving_mean <- running_mean,  moving_variance <- running_var
 *
 * (`num_batches_tracked` is ignored). `running_var` is copied as is: PyTorch stores an EMA of UNBIASED batch
 * variances and normalizes with it in eval mode, exactly as normkit normalizes with moving_variance in
 * inference, so eval outputs match; to continue training with PyTorch's update rule build the layer with
 * `convention: 'pytorch'` (see {@link torchNormArgs}). Multi-axis parameters laid out channels-first
 * (LayerNorm over `[C, H, W]`) are transposed to channels-last. With `momentum` / `eps` given (the module's
 * values) the layer's own are checked: Keras momentum = 1 - m_torch, or m_torch under the PyTorch convention.
 *
 * `tensors` maps state-dict keys to tensors (or nested arrays); they are read, never disposed. Throws a
 * NormkitError naming the key for a missing key, a wrong shape, or an unexpected key under the prefix
 * (e.g. running statistics for a layer that has none), before writing anything.
 */
export function fromTorchStateDict(layer: tfl.layers.Layer, tensors: Record<string, tf.Tensor | tf.TensorLike>, options: FromTorchOptions = {}): void {
  checkKnownKeys(WHERE, options, ['prefix', 'layout', 'momentum', 'eps']);
  const className = layer?.getClassName?.();
  if (!(TORCH_LOADABLE_CLASSES as readonly string[]).includes(className)) {
    throw new NormkitError(WHERE, 'layer', `a normkit ${TORCH_LOADABLE_CLASSES.join(' / ')} layer`, className ?? layer);
  }
  if (!layer.built) throw new NormkitError(WHERE, 'layer', 'a built layer (apply it to an input or build the model first)', `unbuilt layer '${layer.name}'`);
  if (tensors === null || typeof tensors !== 'object') throw new NormkitError(WHERE, 'tensors', 'an object mapping state-dict keys to tensors', tensors);
  const layout = options.layout ?? 'auto';
  checkOneOf(WHERE, 'layout', layout, ['auto', 'nchw', 'same']);
  const raw = options.prefix ?? '';
  const prefix = raw === '' || raw.endsWith('.') ? raw : `${raw}.`;
  checkHyperparameters(layer, options);

  const targets = layer.weights.map((w) => ({ variable: w, name: w.originalName.split('/').pop() as string }));
  const expectedKeys = targets.map((t) => prefix + TORCH_KEY[t.name]);
  for (const key of Object.keys(tensors)) {
    if (!key.startsWith(prefix)) continue;
    const local = key.slice(prefix.length);
    if (local.includes('.') || IGNORED_KEYS.includes(local) || expectedKeys.includes(key)) continue;
    throw new NormkitError(WHERE, key, `one of ${expectedKeys.map((k) => `'${k}'`).join(', ')} for this ${className} (or num_batches_tracked)`, 'a key the layer has no weight for');
  }
  const owned: tf.Tensor[] = [];
  try {
    const assignments: Array<[tfl.LayerVariable, tf.Tensor]> = [];
    for (const [i, { variable, name }] of targets.entries()) {
      const key = expectedKeys[i];
      if (TORCH_KEY[name] === undefined) throw new NormkitError(WHERE, 'layer', 'a layer whose weights are gamma/scale, beta, moving_mean, moving_variance', `weight '${name}'`);
      const given = tensors[key];
      if (given === undefined || given === null) {
        const present = Object.keys(tensors).filter((k) => k.startsWith(prefix));
        throw new NormkitError(WHERE, key, `present in the state dict (for ${name})`, `missing; keys under '${prefix}': ${describe(present)}`);
      }
      let t: tf.Tensor;
      if (given instanceof tf.Tensor) t = given;
      else owned.push((t = tf.tensor(given as tf.TensorLike, undefined, 'float32')));
      const converted = toLayout(key, t, variable.shape as number[], layout);
      if (converted !== t) owned.push(converted);
      const value = converted.dtype === 'float32' ? converted : tf.cast(converted, 'float32');
      if (value !== converted) owned.push(value);
      assignments.push([variable, value]);
    }
    // Nothing is written until every key has been found and checked.
    for (const [variable, value] of assignments) variable.write(value);
  } finally {
    tf.dispose(owned);
  }
}

/** `t` in the weight's layout: as is, or with its leading (channel) axis moved last. Throws on a wrong shape. */
function toLayout(key: string, t: tf.Tensor, shape: number[], layout: 'auto' | 'nchw' | 'same'): tf.Tensor {
  const same = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
  const moved = [...t.shape.slice(1), t.shape[0]];
  const channelsFirst = t.rank >= 2 && moved.length === shape.length && moved.every((d, i) => d === shape[i]);
  if (layout !== 'nchw' && same) return t;
  if (layout !== 'same' && channelsFirst) return tf.transpose(t, [...Array(t.rank).keys()].slice(1).concat(0));
  const expected = layout === 'nchw' ? `[${[shape[shape.length - 1], ...shape.slice(0, -1)].join(', ')}] (channels first)` : `[${shape.join(', ')}]`;
  throw new NormkitError(WHERE, key, `a tensor of shape ${expected}`, `shape [${t.shape.join(', ')}]`);
}

function checkHyperparameters(layer: tfl.layers.Layer, options: FromTorchOptions): void {
  const config = layer.getConfig() as { epsilon?: number; momentum?: number; convention?: string };
  if (options.eps !== undefined && !(typeof config.epsilon === 'number' && Math.abs(config.epsilon - options.eps) <= 1e-9 * Math.abs(options.eps))) {
    throw new NormkitError(WHERE, 'eps', `equal to the layer's epsilon ${config.epsilon} (build the layer with torchNormArgs, or epsilon: ${options.eps})`, options.eps);
  }
  if (options.momentum !== undefined) {
    if (typeof config.momentum !== 'number') throw new NormkitError(WHERE, 'momentum', 'absent for a layer without moving statistics', options.momentum);
    const weighsNew = config.convention !== undefined && CONVENTION_DEFAULTS[config.convention as Convention]?.momentumWeighs === 'new';
    const expected = weighsNew ? options.momentum : 1 - options.momentum;
    if (Math.abs(config.momentum - expected) > 1e-9) {
      throw new NormkitError(
        WHERE,
        'momentum',
        `the PyTorch momentum matching the layer's ${config.momentum} (${weighsNew ? 'same value under the PyTorch convention' : `Keras momentum = 1 - m_torch, so m_torch = ${1 - config.momentum}`})`,
        options.momentum,
      );
    }
  }
}

/** A PyTorch normalization module's constructor arguments, as in torch.nn (snake_case). */
export interface TorchNormModuleArgs {
  momentum?: number | null;
  eps?: number | null;
  affine?: boolean;
  elementwise_affine?: boolean;
  bias?: boolean;
  num_groups?: number;
  normalized_shape?: number | number[];
}

/** PyTorch module kinds {@link torchNormArgs} converts. */
export type TorchNormKind = 'BatchNorm' | 'LayerNorm' | 'GroupNorm' | 'InstanceNorm' | 'RMSNorm';

/**
 * normkit layer arguments equivalent to a PyTorch module's (defaults as in torch.nn):
 * BatchNorm{1,2,3}d(momentum m = 0.1, eps 1e-5, affine) -> momentum 1 - m (Keras convention) or m
 * (`convention: 'pytorch'`), epsilon eps, center = scale = affine; LayerNorm(normalized_shape, eps,
 * elementwise_affine, bias) -> axis over the last len(normalized_shape) axes; GroupNorm(num_groups, eps,
 * affine) -> groups; InstanceNorm(eps, affine = false); RMSNorm(eps = None -> the PyTorch convention's
 * default, elementwise_affine). A `momentum: null` (cumulative average in PyTorch) has no EMA equivalent
 * and is rejected.
 */
export function torchNormArgs(kind: TorchNormKind, torchArgs: TorchNormModuleArgs = {}, options: { convention?: Convention } = {}): Record<string, unknown> {
  const where = 'torchNormArgs';
  checkOneOf(where, 'kind', kind, ['BatchNorm', 'LayerNorm', 'GroupNorm', 'InstanceNorm', 'RMSNorm']);
  const { convention, momentumWeighs } = conventionDefaults(where, options.convention);
  const torch = CONVENTION_DEFAULTS.pytorch;
  const eps = torchArgs.eps ?? (kind === 'RMSNorm' ? undefined : torch.epsilon);
  const out: Record<string, unknown> = { convention };
  if (eps !== undefined) out.epsilon = eps;
  switch (kind) {
    case 'BatchNorm': {
      if (torchArgs.momentum === null) throw new NormkitError(where, 'momentum', 'a number (PyTorch momentum=None, a cumulative average, has no EMA equivalent)', null);
      const m = torchArgs.momentum ?? torch.momentum;
      out.momentum = momentumWeighs === 'new' ? m : 1 - m;
      out.center = out.scale = torchArgs.affine ?? true;
      break;
    }
    case 'LayerNorm': {
      const ns = torchArgs.normalized_shape;
      const k = ns === undefined ? 1 : typeof ns === 'number' ? 1 : ns.length;
      out.axis = k === 1 ? -1 : [...Array(k).keys()].map((i) => i - k);
      out.scale = torchArgs.elementwise_affine ?? true;
      out.center = (torchArgs.elementwise_affine ?? true) && (torchArgs.bias ?? true);
      break;
    }
    case 'GroupNorm':
      if (torchArgs.num_groups !== undefined) out.groups = torchArgs.num_groups;
      out.center = out.scale = torchArgs.affine ?? true;
      break;
    case 'InstanceNorm':
      out.center = out.scale = torchArgs.affine ?? false;
      break;
    case 'RMSNorm':
      out.scale = torchArgs.elementwise_affine ?? true;
      break;
  }
  return out;
}
