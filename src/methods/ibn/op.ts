/**
 * IBN-Net (Pan, Luo, Shi & Tang, ECCV 2018): IBN-a splits the channels between InstanceNorm and BatchNorm;
 * IBN-b applies InstanceNorm to a residual block's output after the addition. Built on normkit's
 * {@link instanceNorm} and {@link batchNorm} ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkBoolean, checkFloatTensor, checkInRange, checkKnownKeys, checkParam, checkPositive, checkRequiredParam } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { batchNorm, checkBatchHasSpread } from '../batch-norm/op.js';
import { CONVENTION_DEFAULTS, conventionDefaults, type Convention } from '../../core/conventions.js';
import { instanceNorm, spatialAxes } from '../instance-norm/op.js';

/** Options of {@link ibnA}. */
export interface IBNAOptions {
  /** Normalize the BatchNorm part with batch statistics and update its moving ones (true) or use them (false). */
  training: boolean;
  /** Fraction of the channels (the first floor(C * ratio)) that go through InstanceNorm (default 0.5). */
  ratio?: number;
  /** Moving mean of the BatchNorm part, shape [C - floor(C * ratio)]. */
  movingMean: tf.Tensor;
  /** Moving variance of the BatchNorm part, shape [C - floor(C * ratio)]. */
  movingVariance: tf.Tensor;
  /** InstanceNorm scale and shift, shape [floor(C * ratio)]. */
  inGamma?: tf.Tensor;
  inBeta?: tf.Tensor;
  /** BatchNorm scale and shift, shape [C - floor(C * ratio)]. */
  bnGamma?: tf.Tensor;
  bnBeta?: tf.Tensor;
  /** Epsilon of both parts (default 1e-5, as the paper's PyTorch code). */
  epsilon?: number;
  /** BatchNorm momentum, in the convention's meaning (default 0.1 for 'pytorch', 0.99 for 'keras'). */
  momentum?: number;
  /** BatchNorm moving-statistics rule (default `'pytorch'`, the paper's framework). */
  convention?: Convention;
}

/** What {@link ibnA} returns; every tensor is new and owned by the caller. */
export interface IBNAResult {
  y: tf.Tensor;
  movingMean: tf.Tensor;
  movingVariance: tf.Tensor;
}

const WHERE_A = 'ibnA';

/** The number of InstanceNorm channels floor(C * ratio); throws unless both parts are non-empty. */
export function ibnSplit(where: string, channels: number, ratio: unknown): number {
  checkInRange(where, 'ratio', ratio, 0, 1);
  const half = Math.floor(channels * ratio);
  if (half < 1 || half > channels - 1) {
    throw new NormkitError(where, 'ratio', `a fraction giving 1 to ${channels - 1} InstanceNorm channels of ${channels} (floor(C * ratio))`, ratio);
  }
  return half;
}

/**
 * IBN-a on channels-last `x` ([N, ...spatial, C]): with h = floor(C * ratio), channels [0, h) are instance
 * normalized (per sample and channel over the spatial axes) and channels [h, C) batch normalized (over the
 * batch and spatial axes in training, with the moving statistics in inference), each with its own affine,
 * and concatenated back in the original order:
 *
 *   y[..., :h] = inGamma (x - mu_{n,c}) / sqrt(var_{n,c} + eps) + inBeta
 *   y[..., h:] = bnGamma (x - mu_c) / sqrt(var_c + eps) + bnBeta
 *
 * The BatchNorm part follows {@link batchNorm} (moving statistics in, updated ones out).
 */
export function ibnA(x: tf.Tensor, options: IBNAOptions): IBNAResult {
  if (options === undefined || options === null || typeof options !== 'object') {
    throw new NormkitError(WHERE_A, 'options', 'an object with training, movingMean and movingVariance', options);
  }
  checkKnownKeys(WHERE_A, options, ['training', 'ratio', 'movingMean', 'movingVariance', 'inGamma', 'inBeta', 'bnGamma', 'bnBeta', 'epsilon', 'momentum', 'convention']);
  checkFloatTensor(WHERE_A, 'x', x, 3);
  checkBoolean(WHERE_A, 'training', options.training);
  const channels = x.shape[x.rank - 1];
  const half = ibnSplit(WHERE_A, channels, options.ratio ?? 0.5);
  const { convention, momentum: defaultMomentum } = conventionDefaults(WHERE_A, options.convention, 'pytorch');
  const momentum = options.momentum ?? defaultMomentum;
  checkInRange(WHERE_A, 'momentum', momentum, 0, 1);
  // The paper's code (PyTorch) sets both parts' epsilon, whatever the moving-statistics convention.
  const epsilon = options.epsilon ?? CONVENTION_DEFAULTS.pytorch.epsilon;
  checkPositive(WHERE_A, 'epsilon', epsilon);
  spatialAxes(WHERE_A, x.shape, x.rank - 1);
  if (options.training) checkBatchHasSpread(WHERE_A, x.shape, x.rank - 1);
  for (const name of ['movingMean', 'movingVariance'] as const) checkRequiredParam(WHERE_A, name, options[name], [channels - half]);
  checkParam(WHERE_A, 'inGamma', options.inGamma, [half]);
  checkParam(WHERE_A, 'inBeta', options.inBeta, [half]);
  checkParam(WHERE_A, 'bnGamma', options.bnGamma, [channels - half]);
  checkParam(WHERE_A, 'bnBeta', options.bnBeta, [channels - half]);
  const out = tf.tidy(() => {
    const [xIn, xBN] = tf.split(x, [half, channels - half], -1);
    const yIn = instanceNorm(xIn, { epsilon, gamma: options.inGamma, beta: options.inBeta });
    const bn = batchNorm(xBN, {
      training: options.training,
      movingMean: options.movingMean,
      movingVariance: options.movingVariance,
      momentum,
      epsilon,
      convention,
      gamma: options.bnGamma,
      beta: options.bnBeta,
    });
    return [tf.concat([yIn, bn.y], -1), bn.movingMean, bn.movingVariance];
  });
  return { y: out[0], movingMean: out[1], movingVariance: out[2] };
}

/** Options of {@link ibnB}. */
export interface IBNBOptions {
  /** InstanceNorm epsilon (default 1e-5). */
  epsilon?: number;
  /** Scale and shift, shape [C]. */
  gamma?: tf.Tensor;
  beta?: tf.Tensor;
}

const WHERE_B = 'ibnB';

/**
 * IBN-b's normalization of a residual block, channels last: `y = IN(residual + shortcut)`, an instance norm
 * with affine of the sum (per sample and channel, over the spatial axes), placed after the addition and before
 * the block's final ReLU (which the caller applies).
 */
export function ibnB(residual: tf.Tensor, shortcut: tf.Tensor, options: IBNBOptions = {}): tf.Tensor {
  checkKnownKeys(WHERE_B, options, ['epsilon', 'gamma', 'beta']);
  checkFloatTensor(WHERE_B, 'residual', residual, 3);
  checkFloatTensor(WHERE_B, 'shortcut', shortcut, 3);
  if (shortcut.rank !== residual.rank || shortcut.shape.some((d, i) => d !== residual.shape[i])) {
    throw new NormkitError(WHERE_B, 'shortcut', `a tensor of the residual's shape [${residual.shape.join(', ')}]`, `shape [${shortcut.shape.join(', ')}]`);
  }
  const channels = residual.shape[residual.rank - 1];
  const epsilon = options.epsilon ?? CONVENTION_DEFAULTS.pytorch.epsilon;
  checkPositive(WHERE_B, 'epsilon', epsilon);
  spatialAxes(WHERE_B, residual.shape, residual.rank - 1);
  checkParam(WHERE_B, 'gamma', options.gamma, [channels]);
  checkParam(WHERE_B, 'beta', options.beta, [channels]);
  return tf.tidy(() => instanceNorm(tf.add(residual, shortcut), { epsilon, gamma: options.gamma, beta: options.beta }));
}
