/**
 * The benchmark's cases and how each is run: normkit's op, and tfjs's own (the tfjs-layers layer where tfjs
 * has one, else normkit's composite of tfjs ops). Shared by the kernel timings (run.ts) and the memory peaks
 * (memory.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../src/index.js';

/** A fused method of the benchmark. */
export type Method = 'layerNorm' | 'rmsNorm' | 'batchNorm' | 'groupNorm' | 'instanceNorm';

/** One benchmark case. */
export interface Case {
  method: Method;
  shape: number[];
  groups?: number;
}

/** What each method is compared with. */
export const BASELINE: Record<Method, string> = {
  layerNorm: 'tf.layers.layerNormalization',
  rmsNorm: 'tfjs ops composite',
  batchNorm: 'tf.layers.batchNormalization (training)',
  groupNorm: 'tfjs ops composite',
  instanceNorm: 'tfjs ops composite',
};

const moving = new Map<string, { movingMean: tf.Tensor; movingVariance: tf.Tensor }>();

/**
 * Moving statistics for C channels on the current backend, made once and kept (as PyTorch's side keeps its running_mean and
 * running_var): making them in every timed call measured 86 us of the 226 us a [32, 14, 14, 16] call took.
 */
function movingStatistics(channels: number): { movingMean: tf.Tensor; movingVariance: tf.Tensor } {
  const key = `${tf.getBackend()} ${channels}`;
  let m = moving.get(key);
  if (m === undefined || m.movingMean.isDisposed) {
    m = { movingMean: tf.keep(tf.zeros([channels])), movingVariance: tf.keep(tf.ones([channels])) };
    moving.set(key, m);
  }
  return m;
}

/** The op under test with normkit's current fused setting: returns y (all other outputs disposed). */
export function normkitOp(c: Case, x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  switch (c.method) {
    case 'layerNorm':
      return nk.layerNorm(x, { gamma, beta });
    case 'rmsNorm':
      return nk.rmsNorm(x, { gamma });
    case 'groupNorm':
      return nk.groupNorm(x, { groups: c.groups ?? 32, gamma, beta });
    case 'instanceNorm':
      return nk.instanceNorm(x, { gamma, beta });
    case 'batchNorm': {
      const { movingMean, movingVariance } = movingStatistics(x.shape[x.shape.length - 1]);
      return tf.tidy(() => nk.batchNorm(x, { training: true, movingMean, movingVariance, gamma, beta }).y);
    }
  }
}

/** Gradients of x, gamma and beta (x and gamma for RMSNorm) given the upstream gradient dy (no loss ops). */
export function normkitGrads(c: Case, x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, dy: tf.Tensor): tf.Tensor[] {
  return usesBeta(c)
    ? tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => normkitOp(c, a, g, b))([x, gamma, beta], dy)
    : tf.grads((a: tf.Tensor, g: tf.Tensor) => normkitOp(c, a, g, beta))([x, gamma], dy);
}

/** One way of running tfjs's own normalization. */
export interface BaselineOp {
  forward(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor;
  /** Gradients given dy: of x only for the tfjs layers (they own their weights; favours the baseline). */
  grads(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, dy: tf.Tensor): tf.Tensor[];
  dispose(): void;
}

/** tfjs's own: the tfjs-layers layer where tfjs has one, else normkit's composite of tfjs ops. */
export function baselineOp(c: Case): BaselineOp {
  if (c.method === 'layerNorm' || c.method === 'batchNorm') {
    const layer = c.method === 'layerNorm' ? tfl.layers.layerNormalization({ axis: -1, epsilon: 1e-5 }) : tfl.layers.batchNormalization({ axis: -1 });
    const forward = (x: tf.Tensor) => layer.apply(x, { training: true }) as tf.Tensor;
    return {
      forward,
      grads: (x, _g, _b, dy) => tf.grads((a: tf.Tensor) => forward(a))([x], dy),
      dispose: () => {
        if (layer.built) layer.dispose();
      },
    };
  }
  const withComposite = <T>(fn: () => T): T => {
    nk.setFusedKernels(false);
    try {
      return fn();
    } finally {
      nk.setFusedKernels(true);
    }
  };
  return {
    forward: (x, g, b) => withComposite(() => normkitOp(c, x, g, b)),
    grads: (x, g, b, dy) => withComposite(() => normkitGrads(c, x, g, b, dy)),
    dispose: () => undefined,
  };
}

/** Whether the method's op takes beta. */
export function usesBeta(c: Case): boolean {
  return c.method !== 'rmsNorm';
}
