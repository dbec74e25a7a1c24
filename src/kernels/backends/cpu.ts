/**
 * Fused normalization kernels for tfjs's `cpu` backend, and the one place normkit reaches that backend's
 * memory: tensors are JavaScript typed arrays (`data.get(dataId).values`); outputs are new Float32Arrays handed
 * to `makeTensorInfo`. The SIMD module runs in its own memory with a copy in and a copy out, which measured
 * faster than the scalar JavaScript path of norm-math.ts (docs/performance.md); the scalar path runs where the
 * module is unavailable.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { NormkitError } from '../../core/errors.js';
import type { NormBackwardOutputs, NormForwardOutputs, NormKernels } from '../contract.js';
import { normBackward, normForward, statCount } from '../norm-math.js';
import { simdForCpuBackend } from '../simd.js';

/** What normkit uses of tfjs's cpu backend. */
export interface CpuBackendLike {
  data: { get(dataId: tf.DataId): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

/** Narrows tfjs's backend object to {@link CpuBackendLike}, checking what normkit relies on. */
export function asCpuBackend(backend: unknown): CpuBackendLike {
  const b = backend as Partial<CpuBackendLike> | null;
  if (!b || typeof b.makeTensorInfo !== 'function' || typeof b.data?.get !== 'function') {
    throw new NormkitError('fused normalization kernel (cpu)', 'backend', 'a tfjs cpu backend', backend);
  }
  return b as CpuBackendLike;
}

/** The float32 values of a tensor on the cpu backend. */
export function cpuValues(backend: CpuBackendLike, t: tf.TensorInfo): Float32Array {
  const values = backend.data.get(t.dataId)?.values;
  if (!(values instanceof Float32Array)) throw new NormkitError('cpu kernel', 'tensor', 'a float32 tensor that lives on the cpu backend', t);
  return values;
}

/** normkit's fused kernels on the cpu backend (see the file comment). */
export const cpuNormKernels: NormKernels<CpuBackendLike> = {
  forward({ inputs: { x, gamma, beta }, attrs: a, backend }): NormForwardOutputs {
    const read = (t: tf.TensorInfo) => cpuValues(backend, t);
    const stats = statCount(a);
    const make = (shape: number[], values: Float32Array) => backend.makeTensorInfo(shape, 'float32', values);
    const r = simdForCpuBackend()?.forward(a, a.epsilon, read(x), a.hasGamma ? read(gamma) : null, a.hasBeta ? read(beta) : null, stats);
    if (r) return [make(x.shape, r.y), make([stats], r.mean), make([stats], r.rstd), make([stats], r.plainMean), make([stats], r.variance)];
    const y = new Float32Array(read(x).length);
    const [mean, rstd, plainMean, variance] = Array.from({ length: 4 }, () => new Float32Array(stats));
    normForward(a, a.epsilon, read(x), a.hasGamma ? read(gamma) : null, a.hasBeta ? read(beta) : null, y, mean, rstd, { mean: plainMean, variance });
    return [make(x.shape, y), make([stats], mean), make([stats], rstd), make([stats], plainMean), make([stats], variance)];
  },

  backward({ inputs: { x, dy, gamma, mean, rstd }, attrs: a, backend }): NormBackwardOutputs {
    const read = (t: tf.TensorInfo) => cpuValues(backend, t);
    const make = (shape: number[], values: Float32Array) => backend.makeTensorInfo(shape, 'float32', values);
    const r = simdForCpuBackend()?.backward(a, read(x), read(dy), a.hasGamma ? read(gamma) : null, read(mean), read(rstd), a.hasGamma, a.hasBeta);
    if (r) return [make(x.shape, r.dx), make([r.dgamma.length], r.dgamma), make([r.dbeta.length], r.dbeta)];
    const dx = new Float32Array(read(x).length);
    // Parameter gradients are accumulated at full width; an absent parameter gets an empty gradient.
    const dg = new Float32Array(a.width);
    const db = new Float32Array(a.width);
    normBackward(a, read(x), read(dy), a.hasGamma ? read(gamma) : null, read(mean), read(rstd), dx, dg, db);
    return [make(x.shape, dx), a.hasGamma ? make([a.width], dg) : make([0], new Float32Array(0)), a.hasBeta ? make([a.width], db) : make([0], new Float32Array(0))];
  },
};
