/**
 * Thin adapters that register normkit's fused normalization kernels with tfjs for the `cpu` and `wasm`
 * backends (tf.registerKernel / tf.registerGradient), so they run inside the user's tfjs. The math is in
 * norm-math.ts (scalar JavaScript) and simd.ts (a WebAssembly SIMD module built from AssemblyScript).
 *
 * - cpu: tensors live in JavaScript Float32Arrays (`backend.data.get(dataId).values`); outputs are new
 *   Float32Arrays handed to `backend.makeTensorInfo`. The SIMD module runs in its own memory with a copy in
 *   and a copy out, which measured faster than the scalar JavaScript path (docs/performance.md).
 * - wasm: tensors live in the backend's WebAssembly memory at `backend.dataIdMap.get(dataId).memoryOffset`;
 *   outputs are allocated there with `backend.makeOutput` and the kernels write in place: the SIMD module
 *   imports that same memory, so no copies.
 */
import * as tf from '@tensorflow/tfjs-core';
import { normBackward, normForward, statCount, type NormLayout } from './norm-math.js';
import { STATISTICS_KERNELS, gradKernelName } from './names.js';
import { simdForCpuBackend, simdForWasmBackend, type SimdKernels } from './simd.js';
import { blockedMean, rmsStandardizeWithRstd, standardizeWithRstd } from '../core/moments.js';

/** Attributes every statistics kernel takes: the layout, epsilon and which parameters are present. */
export interface NormKernelAttrs extends NormLayout {
  epsilon: number;
  hasGamma: boolean;
  hasBeta: boolean;
}

type AnyBackend = any;

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function layoutOf(attrs: tf.NamedAttrMap): NormKernelAttrs {
  return attrs as unknown as NormKernelAttrs;
}

/** Float32 views of input and output tensors on one backend, plus how to make outputs. */
interface BackendAccess {
  read(t: tf.TensorInfo): Float32Array;
  /** Allocates outputs; the returned views stay valid until the next allocation. */
  alloc(shapes: number[][]): { infos: tf.TensorInfo[]; views: () => Float32Array[] };
}

function cpuAccess(backend: AnyBackend): BackendAccess {
  return {
    read: (t) => backend.data.get(t.dataId).values as Float32Array,
    alloc: (shapes) => {
      const arrays = shapes.map((s) => new Float32Array(size(s)));
      const infos = shapes.map((s, i) => backend.makeTensorInfo(s, 'float32', arrays[i]) as tf.TensorInfo);
      return { infos, views: () => arrays };
    },
  };
}

function wasmAccess(backend: AnyBackend): BackendAccess {
  // HEAPF32 is replaced when the memory grows, so views are taken after every allocation.
  const view = (t: tf.TensorInfo) => {
    const off = backend.dataIdMap.get(t.dataId).memoryOffset / 4;
    return (backend.wasm.HEAPF32 as Float32Array).subarray(off, off + size(t.shape));
  };
  return {
    read: view,
    alloc: (shapes) => {
      const infos = shapes.map((s) => backend.makeOutput(s, 'float32') as tf.TensorInfo);
      return { infos, views: () => infos.map(view) };
    },
  };
}

function wasmOffset(backend: AnyBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset as number;
}

/** Outputs: y, mean relative to the slice's first element (see norm-math.ts), rstd, plain mean, variance. */
function forwardKernel(access: (backend: AnyBackend) => BackendAccess, simd: (backend: AnyBackend) => SimdKernels | null): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const a = layoutOf(attrs as tf.NamedAttrMap);
    const io = access(backend);
    const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
    const stats = statCount(a);
    const { infos, views } = io.alloc([x.shape, [stats], [stats], [stats], [stats]]);
    const fast = simd(backend);
    if (fast && fast.forward(a, a.epsilon, wasmOffset(backend, x), a.hasGamma ? wasmOffset(backend, gamma) : 0, a.hasBeta ? wasmOffset(backend, beta) : 0, infos.map((t) => wasmOffset(backend, t)))) {
      return infos;
    }
    const [y, mean, rstd, plainMean, variance] = views();
    normForward(a, a.epsilon, io.read(x), a.hasGamma ? io.read(gamma) : null, a.hasBeta ? io.read(beta) : null, y, mean, rstd, { mean: plainMean, variance });
    return infos;
  };
}

function backwardKernel(access: (backend: AnyBackend) => BackendAccess, simd: (backend: AnyBackend) => SimdKernels | null): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const a = layoutOf(attrs as tf.NamedAttrMap);
    const io = access(backend);
    const { x, dy, gamma, mean, rstd } = inputs as Record<string, tf.TensorInfo>;
    const { infos, views } = io.alloc([x.shape, [a.hasGamma ? a.width : 0], [a.hasBeta ? a.width : 0]]);
    const fast = simd(backend);
    if (fast && fast.backward(a, wasmOffset(backend, x), wasmOffset(backend, dy), a.hasGamma ? wasmOffset(backend, gamma) : 0, wasmOffset(backend, mean), wasmOffset(backend, rstd), [wasmOffset(backend, infos[0]), a.hasGamma ? wasmOffset(backend, infos[1]) : 0, a.hasBeta ? wasmOffset(backend, infos[2]) : 0])) {
      return infos;
    }
    const [dx, dgammaFull, dbetaFull] = views();
    const width = a.width;
    // Parameter gradients are always accumulated at full width; absent parameters get an empty gradient.
    const dg = a.hasGamma ? dgammaFull : new Float32Array(width);
    const db = a.hasBeta ? dbetaFull : new Float32Array(width);
    normBackward(a, io.read(x), io.read(dy), a.hasGamma ? io.read(gamma) : null, io.read(mean), io.read(rstd), dx, dg, db);
    return infos;
  };
}

/** cpu: the SIMD module with copies in and out when available (faster than the scalar path), else scalar. */
function cpuForwardKernel(): tf.KernelFunc {
  const scalar = forwardKernel(cpuAccess, () => null);
  return (config) => {
    const fast = simdForCpuBackend();
    const a = layoutOf(config.attrs as tf.NamedAttrMap);
    const backend = config.backend as AnyBackend;
    const { x, gamma, beta } = config.inputs as Record<string, tf.TensorInfo>;
    const read = (t: tf.TensorInfo) => backend.data.get(t.dataId).values as Float32Array;
    const stats = statCount(a);
    const r = fast?.forward(a, a.epsilon, read(x), a.hasGamma ? read(gamma) : null, a.hasBeta ? read(beta) : null, stats);
    if (!r) return scalar(config);
    const make = (shape: number[], values: Float32Array) => backend.makeTensorInfo(shape, 'float32', values) as tf.TensorInfo;
    return [make(x.shape, r.y), make([stats], r.mean), make([stats], r.rstd), make([stats], r.plainMean), make([stats], r.variance)];
  };
}

function cpuBackwardKernel(): tf.KernelFunc {
  const scalar = backwardKernel(cpuAccess, () => null);
  return (config) => {
    const fast = simdForCpuBackend();
    const a = layoutOf(config.attrs as tf.NamedAttrMap);
    const backend = config.backend as AnyBackend;
    const { x, dy, gamma, mean, rstd } = config.inputs as Record<string, tf.TensorInfo>;
    const read = (t: tf.TensorInfo) => backend.data.get(t.dataId).values as Float32Array;
    const r = fast?.backward(a, read(x), read(dy), a.hasGamma ? read(gamma) : null, read(mean), read(rstd), a.hasGamma, a.hasBeta);
    if (!r) return scalar(config);
    const make = (shape: number[], values: Float32Array) => backend.makeTensorInfo(shape, 'float32', values) as tf.TensorInfo;
    return [make(x.shape, r.dx), make([r.dgamma.length], r.dgamma), make([r.dbeta.length], r.dbeta)];
  };
}

/** Whether tfjs records operations for a gradient right now, i.e. a gradient is itself being differentiated. */
function recordingGradients(): boolean {
  return (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
}

/**
 * The backward of the fused kernels as differentiable tfjs ops (for higher-order gradients), statistics
 * recomputed from x: with xhat and rstd of each slice, g = gamma * dy,
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (RMS drops mean(g)), dgamma = sum(dy * xhat),
 * dbeta = sum(dy). x is viewed as [outer, inner, groups, group] with slices over axes 1 and 3.
 */
function compositeBackward(x: tf.Tensor, dy: tf.Tensor, gamma: tf.Tensor, a: NormKernelAttrs): { dx: tf.Tensor; dgamma: tf.Tensor; dbeta: tf.Tensor } {
  const groups = a.width / a.group;
  const shape4 = a.kind === 'rows' ? [a.outer, 1, 1, a.width] : [a.outer, a.inner, groups, a.group];
  const axes = [1, 3];
  const x4 = tf.reshape(x, shape4);
  const dy4 = tf.reshape(dy, shape4);
  const { xhat, rstd } = a.center ? standardizeWithRstd(x4, axes, a.epsilon) : rmsStandardizeWithRstd(x4, axes, a.epsilon);
  const g = a.hasGamma ? tf.mul(dy4, tf.reshape(gamma, [1, 1, groups, a.group])) : dy4;
  let inner = tf.sub(g, tf.mul(xhat, blockedMean(tf.mul(g, xhat), axes)));
  if (a.center) inner = tf.sub(inner, blockedMean(g, axes));
  const dx = tf.reshape(tf.mul(rstd, inner), x.shape);
  const dgamma = a.hasGamma ? tf.reshape(tf.sum(tf.mul(dy4, xhat), [0, 1]), [a.width]) : tf.zeros([0]);
  const dbeta = a.hasBeta ? tf.reshape(tf.sum(dy4, [0, 1]), [a.width]) : tf.zeros([0]);
  return { dx, dgamma, dbeta };
}

let registered = false;

/**
 * Registers the fused kernels and their gradients for `cpu` and `wasm` (idempotent; runs on import of any op
 * that dispatches to them).
 */
export function registerFusedKernels(): void {
  if (registered) return;
  registered = true;
  const backends: Array<[string, tf.KernelFunc, tf.KernelFunc]> = [
    ['cpu', cpuForwardKernel(), cpuBackwardKernel()],
    ['wasm', forwardKernel(wasmAccess, simdForWasmBackend), backwardKernel(wasmAccess, simdForWasmBackend)],
  ];
  for (const name of STATISTICS_KERNELS) {
    for (const [backendName, forward, backward] of backends) {
      tf.registerKernel({ kernelName: name, backendName, kernelFunc: forward });
      tf.registerKernel({ kernelName: gradKernelName(name), backendName, kernelFunc: backward });
    }
    tf.registerGradient({
      kernelName: name,
      inputsToSave: ['x', 'gamma'],
      outputsToSave: [false, true, true, false, false],
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs?: tf.NamedAttrMap) => {
        const [x, gamma, mean, rstd] = saved;
        const dyY = Array.isArray(dy) ? dy[0] : dy;
        if (recordingGradients()) {
          // This gradient is itself being differentiated (tf.grad of a gradient): the backward kernel has no
          // gradient, so the same backward is written with differentiable tfjs ops.
          const g = compositeBackward(x, dyY, gamma, layoutOf(attrs as tf.NamedAttrMap));
          return { x: () => g.dx, gamma: () => g.dgamma, beta: () => g.dbeta };
        }
        const [dx, dgamma, dbeta] = tf.engine().runKernel(gradKernelName(name), { x, dy: dyY, gamma, mean, rstd }, attrs) as tf.Tensor[];
        return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
      },
    });
  }
}
