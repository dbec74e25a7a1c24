/**
 * What the ops call: layouts for each method and one entry point that runs a fused kernel through tfjs's
 * engine (so tf.grad records it and uses the registered fused gradient). Ops decide whether to call it with
 * `fusedKernelAvailable(name)` from core/dispatch.ts and keep their composite path for everything else.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NormLayout } from './norm-math.js';
import { registerFusedKernels } from './tfjs-kernels.js';
import { attrMap } from './contract.js';
import { registerZeroGradients } from '../core/second-order.js';
import { emptyResult } from '../core/empty.js';
import { statCount } from './norm-math.js';

export { FUSED_KERNELS } from './names.js';
export type { NormLayout } from './norm-math.js';

registerFusedKernels();
registerZeroGradients();

/**
 * Layout of a normalization over the trailing axes of `shape` that start at `firstAxis` (LayerNorm,
 * RMSNorm): rows of the product of those sizes.
 */
export function rowsLayout(shape: readonly number[], firstAxis: number, center: boolean): NormLayout {
  const width = shape.slice(firstAxis).reduce((a, b) => a * b, 1);
  const total = shape.reduce((a, b) => a * b, 1);
  return { kind: 'rows', outer: width === 0 ? 0 : total / width, inner: 1, width, channelsPerGroup: width, center };
}

/**
 * Layout of a channels-last normalization of `shape = [..., C]` whose slices are (leading `batchAxes` axes,
 * group of `perGroup` channels), reducing over everything else: BatchNorm (batchAxes 0, perGroup 1),
 * InstanceNorm (batchAxes 1, perGroup 1), GroupNorm (batchAxes 1, perGroup C / groups).
 */
export function channelsLayout(shape: readonly number[], batchAxes: number, perGroup: number): NormLayout {
  const channels = shape[shape.length - 1];
  const outer = shape.slice(0, batchAxes).reduce((a, b) => a * b, 1);
  const inner = shape.slice(batchAxes, shape.length - 1).reduce((a, b) => a * b, 1);
  return { kind: 'channels', outer, inner, width: channels, channelsPerGroup: perGroup, center: true };
}

/** Result of {@link runFusedNorm}: y, and per slice the mean and the biased variance. */
export interface FusedNormResult {
  y: tf.Tensor;
  mean: tf.Tensor;
  variance: tf.Tensor;
}

/**
 * Runs fused kernel `kernelName` on `x` with `layout`: per slice y = (x - mean) / sqrt(var + eps) (or the
 * RMS form y = x / sqrt(mean(x^2) + eps) when `layout.center` is false), times `gamma` plus `beta` (each of
 * `layout.width` elements, any shape). Differentiable with respect to x, gamma and beta through the
 * registered fused gradient.
 */
export function runFusedNorm(kernelName: string, x: tf.Tensor, layout: NormLayout, epsilon: number, gamma?: tf.Tensor, beta?: tf.Tensor): tf.Tensor {
  if (x.size === 0) return emptyResult(x, [gamma, beta]);
  return tf.tidy(() => runKernel(kernelName, x, layout, epsilon, gamma, beta)[0]);
}

/**
 * {@link runFusedNorm} that also returns each slice's mean and biased variance (mean(x^2) for RMS), of shape
 * [slices] (BatchNorm needs them for its moving averages); no gradient flows through those two.
 */
export function runFusedNormWithMoments(kernelName: string, x: tf.Tensor, layout: NormLayout, epsilon: number, gamma?: tf.Tensor, beta?: tf.Tensor): FusedNormResult {
  return tf.tidy(() => {
    if (x.size === 0) {
      const stats = statCount(layout);
      return { y: emptyResult(x, [gamma, beta]), mean: tf.fill([stats], NaN), variance: tf.fill([stats], NaN) };
    }
    const outs = runKernel(kernelName, x, layout, epsilon, gamma, beta);
    return { y: outs[0], mean: outs[3], variance: outs[4] };
  });
}

function runKernel(kernelName: string, x: tf.Tensor, layout: NormLayout, epsilon: number, gamma?: tf.Tensor, beta?: tf.Tensor): tf.Tensor[] {
  // Absent parameters travel as empty tensors so the gradient's saved inputs are always defined.
  const g = gamma ? tf.reshape(gamma, [layout.width]) : tf.zeros([0]);
  const b = beta ? tf.reshape(beta, [layout.width]) : tf.zeros([0]);
  const attrs = attrMap({ ...layout, epsilon, hasGamma: gamma !== undefined, hasBeta: beta !== undefined });
  return tf.engine().runKernel(kernelName, { x, gamma: g, beta: b }, attrs) as tf.Tensor[];
}
