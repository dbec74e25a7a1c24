/**
 * Fused normalization kernels for tfjs's `wasm` backend, and the one place normkit reaches that backend's
 * memory (the wasm-gap kernels use the same accessors). Tensors live in the backend's WebAssembly memory at
 * `dataIdMap.get(dataId).memoryOffset`; outputs are allocated there with `makeOutput`. The SIMD module
 * (simd.ts) imports that same memory and writes the outputs in place; where it is unavailable the scalar
 * kernels of norm-math.ts run on Float32Array views of the heap.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { NormkitError } from '../../core/errors.js';
import { narrowBackend, type NormBackwardOutputs, type NormForwardOutputs, type NormKernels } from '../contract.js';
import { normBackward, normForward, statCount } from '../norm-math.js';
import { simdForWasmBackend } from '../simd.js';

/** What normkit uses of tfjs's wasm backend. */
export interface WasmBackendLike {
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } | undefined };
  wasm: { HEAPF32: Float32Array; HEAP32: Int32Array; asm?: { memory?: unknown }; wasmMemory?: unknown };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.backend_util.BackendValues): tf.TensorInfo;
  disposeData(dataId: tf.DataId): boolean;
  /** Counts one more tensor on `dataId` (tfjs-backend-wasm has it for Reshape; absent from older versions). */
  incRef?(dataId: tf.DataId): void;
}

/** Narrows tfjs's backend object to {@link WasmBackendLike}, checking what normkit relies on. */
export function asWasmBackend(backend: unknown): WasmBackendLike {
  return narrowBackend<WasmBackendLike>(backend, 'wasm', 'a tfjs wasm backend', ['makeOutput', 'disposeData'], (b) => !!b.dataIdMap && b.wasm?.HEAPF32 instanceof Float32Array);
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Byte offset of a tensor in the backend's memory. */
export function byteOffset(backend: WasmBackendLike, t: tf.TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (data === undefined) throw new NormkitError('wasm kernel', 'tensor', 'a tensor that lives on the wasm backend', t);
  return data.memoryOffset;
}

/** A float32 view of a tensor in the wasm heap (valid until the next heap allocation, which may grow it). */
export function heapF32(backend: WasmBackendLike, t: tf.TensorInfo): Float32Array {
  const n = sizeOf(t.shape);
  if (n === 0) return new Float32Array(0);
  const at = byteOffset(backend, t) >>> 2;
  return backend.wasm.HEAPF32.subarray(at, at + n);
}

/** An int32 view of a tensor in the wasm heap (valid until the next heap allocation). */
export function heapI32(backend: WasmBackendLike, t: tf.TensorInfo): Int32Array {
  const n = sizeOf(t.shape);
  if (n === 0) return new Int32Array(0);
  const at = byteOffset(backend, t) >>> 2;
  return backend.wasm.HEAP32.subarray(at, at + n);
}

/** The backend's WebAssembly.Memory, where the build exposes it. */
export function wasmMemory(backend: WasmBackendLike): WebAssembly.Memory | null {
  const m = backend.wasm.asm?.memory ?? backend.wasm.wasmMemory;
  return m instanceof WebAssembly.Memory ? m : null;
}

/** normkit's fused kernels on the wasm backend (see the file comment). */
export const wasmNormKernels: NormKernels<WasmBackendLike> = {
  forward({ inputs: { x, gamma, beta }, attrs: a, backend }): NormForwardOutputs {
    const stats = statCount(a);
    const outs = [backend.makeOutput(x.shape, 'float32'), ...Array.from({ length: 4 }, () => backend.makeOutput([stats], 'float32'))] as NormForwardOutputs;
    const off = (t: tf.TensorInfo) => byteOffset(backend, t);
    const simd = simdForWasmBackend(backend);
    if (simd?.forward(a, a.epsilon, off(x), a.hasGamma ? off(gamma) : 0, a.hasBeta ? off(beta) : 0, outs.map(off))) return outs;
    // Views are taken after the last allocation, which may have grown (and replaced) the heap.
    const [y, mean, rstd, plainMean, variance] = outs.map((t) => heapF32(backend, t));
    const view = (t: tf.TensorInfo) => heapF32(backend, t);
    normForward(a, a.epsilon, view(x), a.hasGamma ? view(gamma) : null, a.hasBeta ? view(beta) : null, y, mean, rstd, { mean: plainMean, variance });
    return outs;
  },

  backward({ inputs: { x, dy, gamma, mean, rstd }, attrs: a, backend }): NormBackwardOutputs {
    const outs: NormBackwardOutputs = [backend.makeOutput(x.shape, 'float32'), backend.makeOutput([a.hasGamma ? a.width : 0], 'float32'), backend.makeOutput([a.hasBeta ? a.width : 0], 'float32')];
    const off = (t: tf.TensorInfo) => byteOffset(backend, t);
    const simd = simdForWasmBackend(backend);
    if (simd?.backward(a, off(x), off(dy), a.hasGamma ? off(gamma) : 0, off(mean), off(rstd), [off(outs[0]), a.hasGamma ? off(outs[1]) : 0, a.hasBeta ? off(outs[2]) : 0])) return outs;
    const view = (t: tf.TensorInfo) => heapF32(backend, t);
    // Parameter gradients are accumulated at full width; an absent parameter gets an empty gradient.
    const dg = a.hasGamma ? view(outs[1]) : new Float32Array(a.width);
    const db = a.hasBeta ? view(outs[2]) : new Float32Array(a.width);
    normBackward(a, view(x), view(dy), a.hasGamma ? view(gamma) : null, view(mean), view(rstd), view(outs[0]), dg, db);
    return outs;
  },
};
