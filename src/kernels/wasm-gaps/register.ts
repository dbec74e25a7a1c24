/**
 * Thin adapters that register the wasm-gap kernels with tfjs's `wasm` backend, so that models train on wasm:
 * tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter (Conv1D/Conv2D/SeparableConv2D/Conv2DTranspose weight
 * gradients), DepthwiseConv2dNativeBackpropFilter/Input (DepthwiseConv2D, SeparableConv2D) or
 * UnsortedSegmentSum (the gradient of gather, so of Embedding). Its MaxPoolGrad (batch or channels > 1),
 * MaxPool3D (windows of negative values give 1.2e-38), MaxPool3DGrad, Conv3DBackpropInputV2 and
 * Conv3DBackpropFilterV2 kernels return wrong values (checked against tfjs's cpu kernels and a float64
 * reference), so those are replaced, but only up to the wasm version where that was seen; so are BatchMatMul on
 * transposed single matrices and Conv2DBackpropInput, which take slow plain loops there, and Identity, which
 * copies (see `batchMatMul`, `conv2DBackpropInput` and `identity` below). Conv2D's two gradients are computed as forward convolutions on the backend's own
 * XNNPACK Conv2D wherever the geometry allows.
 *
 * A kernel reads its inputs in place from the wasm heap (`backend.dataIdMap.get(dataId).memoryOffset` into
 * `backend.wasm.HEAPF32`), runs the plain math of this folder, and hands the result to
 * `backend.makeOutput(shape, dtype, undefined, values)`, which allocates the output on the heap and copies it
 * there. Inputs are read before that allocation, since a growing heap replaces HEAPF32.
 *
 * normkit does not import the wasm backend. Kernels the backend lacks are registered under its name on import,
 * whatever the import order. Replacements of kernels the backend has are registered once the backend's package
 * is loaded (on import of normkit when it came first, else when {@link useBackend} selects it or a normkit op
 * runs on it), since a backend registered later would overwrite them. The wasm backend's version is read as
 * tfjs-core's (`tf.version_core`): the packages are released together and the peer range keeps them in step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { asWasmBackend, heapF32, heapI32, type WasmBackendLike } from '../backends/wasm.js';
import type { WindowGeometry } from './geometry.js';
import { convBackpropFilter } from './conv-backprop-filter.js';
import { convBackpropInput } from './conv-backprop-input.js';
import { depthwiseConv2dBackpropFilter } from './depthwise-conv2d-backprop-filter.js';
import { depthwiseConv2dBackpropInput } from './depthwise-conv2d-backprop-input.js';
import { maxPool } from './max-pool.js';
import { maxPoolBackprop } from './max-pool-backprop.js';
import { unsortedSegmentSum } from './unsorted-segment-sum.js';

/** What normkit did about one kernel on the wasm backend. */
export interface WasmGapKernel {
  kernelName: string;
  /**
   * 'added': wasm had none; 'replaced': wasm's own kernel gives wrong results in this version (BatchMatMul and
   * Conv2DBackpropInput: are slow, and are then rewritten onto the backend's fast kernels); 'kept': wasm's own
   * kernel is used.
   */
  status: 'added' | 'replaced' | 'kept';
}

function requireFloat32(kernel: string, name: string, t: tf.TensorInfo): void {
  if (t.dtype !== 'float32') throw new Error(`${kernel} on wasm (normkit): ${name} must be float32, got ${t.dtype}`);
}

/** WindowGeometry of a tfjs 2-D conv/pool info (depth 1). */
function from2d(info: tf.backend_util.Conv2DInfo): WindowGeometry {
  return {
    batch: info.batchSize,
    inDepth: 1,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    outDepth: 1,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    outChannels: info.outChannels,
    filterDepth: 1,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    strideDepth: 1,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    dilationDepth: 1,
    dilationHeight: info.dilationHeight,
    dilationWidth: info.dilationWidth,
    padFront: 0,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
    channelsFirst: info.dataFormat === 'channelsFirst',
  };
}

/** WindowGeometry of a tfjs 3-D conv/pool info. */
function from3d(info: tf.backend_util.Conv3DInfo): WindowGeometry {
  return {
    batch: info.batchSize,
    inDepth: info.inDepth,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    outDepth: info.outDepth,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    outChannels: info.outChannels,
    filterDepth: info.filterDepth,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    strideDepth: info.strideDepth,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    dilationDepth: info.dilationDepth,
    dilationHeight: info.dilationHeight,
    dilationWidth: info.dilationWidth,
    padFront: info.padInfo.front,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
    channelsFirst: info.dataFormat === 'channelsFirst',
  };
}

type Inputs = Record<string, tf.TensorInfo>;
type Attrs = Record<string, any>;
/** A kernel; a replacement also gets the backend's own kernel of that name (`own`), to delegate to. */
type GapKernelFunc = (inputs: Inputs, backend: WasmBackendLike, attrs: Attrs, own?: tf.KernelFunc) => tf.TensorInfo;

/** Runs the wasm backend's own kernel of that name (the registered one: a replacement where normkit made one). */
function wasmKernel(kernelName: string, backend: WasmBackendLike, inputs: Inputs, attrs: Attrs): tf.TensorInfo {
  const kernel = tf.getKernel(kernelName, 'wasm') as tf.KernelConfig;
  return kernel.kernelFunc({ inputs, backend: backend as unknown as tf.KernelBackend, attrs }) as tf.TensorInfo;
}

/**
 * dW of a channels-last 2-D convolution as one forward convolution on the backend's Conv2D kernel (XNNPACK),
 * which is 5-10x faster than a loop in JavaScript at a small CNN's sizes:
 * dW[kh, kw, ci, co] = sum over b, oh, ow of x[b, oh * sH - padTop + kh, ow * sW - padLeft + kw, ci] dy[b, oh, ow, co]
 * is the convolution of x with batch and channels swapped ([Ci, H, W, B]) by dy as a filter ([outH, outW, B, Co])
 * dilated by the strides, padded by (padTop, padLeft) and by whatever makes the output KH x KW; its output
 * [Ci, KH, KW, Co] is transposed to the filter's layout. Null when the geometry does not fit (channels-first, or
 * windows that never reach the last rows or columns of x).
 */
function convBackpropFilterAsForward(x: tf.TensorInfo, dy: tf.TensorInfo, info: tf.backend_util.Conv2DInfo, backend: WasmBackendLike): tf.TensorInfo | null {
  const { strideHeight: sH, strideWidth: sW, filterHeight: kH, filterWidth: kW, padInfo } = info;
  const padBottom = kH + sH * (info.outHeight - 1) - info.inHeight - padInfo.top;
  const padRight = kW + sW * (info.outWidth - 1) - info.inWidth - padInfo.left;
  if (info.dataFormat !== 'channelsLast' || info.dilationHeight !== 1 || info.dilationWidth !== 1 || padBottom < 0 || padRight < 0) return null;
  const xSwapped = wasmKernel('Transpose', backend, { x }, { perm: [3, 1, 2, 0] });
  const dyAsFilter = wasmKernel('Transpose', backend, { x: dy }, { perm: [1, 2, 0, 3] });
  const pad = [[0, 0], [padInfo.top, padBottom], [padInfo.left, padRight], [0, 0]];
  const product = wasmKernel('Conv2D', backend, { x: xSwapped, filter: dyAsFilter }, { strides: [1, 1], dilations: [sH, sW], pad, dataFormat: 'NHWC' });
  const dw = wasmKernel('Transpose', backend, { x: product }, { perm: [1, 2, 0, 3] });
  for (const t of [xSwapped, dyAsFilter, product]) backend.disposeData(t.dataId);
  return dw;
}

/**
 * dx of a channels-last 2-D convolution with stride 1 as one forward convolution on the backend's Conv2D kernel:
 * dx[b, ih, iw, ci] = sum over kh, kw, co of dy[b, ih + padTop - kh, iw + padLeft - kw, co] w[kh, kw, ci, co]
 * is dy convolved with w flipped in both spatial axes and with its channel axes swapped, padded by KH - 1 - padTop
 * above and KH - 1 - padBottom below (likewise left and right). tfjs-backend-wasm's own Conv2DBackpropInput is a
 * plain loop, about 10x slower than its forward convolution. Null for strides above 1 or a padding wider than the
 * filter (the backend's own kernel then runs).
 */
function convBackpropInputAsForward(dy: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo, backend: WasmBackendLike): tf.TensorInfo | null {
  const { filterHeight: kH, filterWidth: kW, padInfo } = info;
  const pad = [[0, 0], [kH - 1 - padInfo.top, kH - 1 - padInfo.bottom], [kW - 1 - padInfo.left, kW - 1 - padInfo.right], [0, 0]];
  if (info.dataFormat !== 'channelsLast' || info.strideHeight !== 1 || info.strideWidth !== 1 || info.dilationHeight !== 1 || info.dilationWidth !== 1 || pad.flat().some((p) => p < 0)) return null;
  const flipped = wasmKernel('Reverse', backend, { x: filter }, { dims: [0, 1] });
  const swapped = wasmKernel('Transpose', backend, { x: flipped }, { perm: [0, 1, 3, 2] });
  const dx = wasmKernel('Conv2D', backend, { x: dy, filter: swapped }, { strides: [1, 1], dilations: [1, 1], pad, dataFormat: 'NHWC' });
  backend.disposeData(flipped.dataId);
  backend.disposeData(swapped.dataId);
  return dx;
}

const conv2DBackpropFilter: GapKernelFunc = ({ x, dy }, backend, a) => {
  requireFloat32('Conv2DBackpropFilter', 'x', x);
  requireFloat32('Conv2DBackpropFilter', 'dy', dy);
  const dataFormat = tf.backend_util.convertConv2DDataFormat(a.dataFormat ?? 'NHWC');
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, dataFormat);
  const fast = convBackpropFilterAsForward(x, dy, info, backend);
  if (fast !== null) return fast;
  const dw = convBackpropFilter(heapF32(backend, x), heapF32(backend, dy), from2d(info));
  return backend.makeOutput(info.filterShape, 'float32', undefined, dw);
};

/** Conv2DBackpropInput: the forward-convolution form where it applies, else the backend's own kernel. */
const conv2DBackpropInput: GapKernelFunc = (inputs, backend, a, own) => {
  const { dy, filter } = inputs;
  if (dy.dtype === 'float32' && filter.dtype === 'float32') {
    const dataFormat = tf.backend_util.convertConv2DDataFormat(a.dataFormat ?? 'NHWC');
    const info = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as [number, number, number, number], a.strides, 1, a.pad, a.dimRoundingMode, false, dataFormat);
    const fast = convBackpropInputAsForward(dy, filter, info, backend);
    if (fast !== null) return fast;
  }
  return (own as tf.KernelFunc)({ inputs, backend: backend as unknown as tf.KernelBackend, attrs: a }) as tf.TensorInfo;
};

const conv3DBackpropFilterV2: GapKernelFunc = ({ x, dy }, backend, a) => {
  requireFloat32('Conv3DBackpropFilterV2', 'x', x);
  requireFloat32('Conv3DBackpropFilterV2', 'dy', dy);
  const info = tf.backend_util.computeConv3DInfo(x.shape as [number, number, number, number, number], a.filterShape, a.strides, 1, a.pad);
  const dw = convBackpropFilter(heapF32(backend, x), heapF32(backend, dy), from3d(info));
  return backend.makeOutput(info.filterShape, 'float32', undefined, dw);
};

const conv3DBackpropInputV2: GapKernelFunc = ({ dy, filter }, backend, a) => {
  requireFloat32('Conv3DBackpropInputV2', 'dy', dy);
  requireFloat32('Conv3DBackpropInputV2', 'filter', filter);
  const info = tf.backend_util.computeConv3DInfo(a.inputShape, filter.shape as [number, number, number, number, number], a.strides, 1, a.pad);
  const dx = convBackpropInput(heapF32(backend, dy), heapF32(backend, filter), from3d(info));
  return backend.makeOutput(info.inShape, 'float32', undefined, dx);
};

const depthwiseBackpropFilter: GapKernelFunc = ({ x, dy }, backend, a) => {
  requireFloat32('DepthwiseConv2dNativeBackpropFilter', 'x', x);
  requireFloat32('DepthwiseConv2dNativeBackpropFilter', 'dy', dy);
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, a.dilations, a.pad, a.dimRoundingMode, true);
  const dw = depthwiseConv2dBackpropFilter(heapF32(backend, x), heapF32(backend, dy), from2d(info));
  return backend.makeOutput(info.filterShape, 'float32', undefined, dw);
};

const depthwiseBackpropInput: GapKernelFunc = ({ dy, filter }, backend, a) => {
  requireFloat32('DepthwiseConv2dNativeBackpropInput', 'dy', dy);
  requireFloat32('DepthwiseConv2dNativeBackpropInput', 'filter', filter);
  const info = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as [number, number, number, number], a.strides, a.dilations, a.pad, a.dimRoundingMode, true);
  const dx = depthwiseConv2dBackpropInput(heapF32(backend, dy), heapF32(backend, filter), from2d(info));
  return backend.makeOutput(info.inShape, 'float32', undefined, dx);
};

const maxPoolGrad: GapKernelFunc = ({ dy, input }, backend, a) => {
  requireFloat32('MaxPoolGrad', 'input', input);
  const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  const dx = maxPoolBackprop(heapF32(backend, input), heapF32(backend, dy), from2d(info), 'first');
  return backend.makeOutput(input.shape, 'float32', undefined, dx);
};

const maxPool3D: GapKernelFunc = ({ x }, backend, a) => {
  requireFloat32('MaxPool3D', 'x', x);
  const info = tf.backend_util.computePool3DInfo(x.shape as [number, number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode, a.dataFormat ?? 'NDHWC');
  if (info.dataFormat === 'channelsFirst') throw new Error('MaxPool3D on wasm (normkit): only NDHWC is supported');
  return backend.makeOutput(info.outShape, 'float32', undefined, maxPool(heapF32(backend, x), from3d(info)));
};

const maxPool3DGrad: GapKernelFunc = ({ dy, input }, backend, a) => {
  requireFloat32('MaxPool3DGrad', 'input', input);
  const info = tf.backend_util.computePool3DInfo(input.shape as [number, number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  const dx = maxPoolBackprop(heapF32(backend, input), heapF32(backend, dy), from3d(info), 'last');
  return backend.makeOutput(input.shape, 'float32', undefined, dx);
};

const unsortedSegmentSumKernel: GapKernelFunc = ({ x, segmentIds }, backend, a) => {
  const numSegments = a.numSegments as number;
  const ids = heapI32(backend, segmentIds);
  const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  if (x.dtype === 'int32') {
    return backend.makeOutput(outShape, 'int32', undefined, unsortedSegmentSum(heapI32(backend, x), ids, numSegments));
  }
  requireFloat32('UnsortedSegmentSum', 'x', x);
  return backend.makeOutput(outShape, 'float32', undefined, unsortedSegmentSum(heapF32(backend, x), ids, numSegments));
};

/**
 * A product of two single matrices (every leading dimension 1) with transposeA or transposeB: the operand is
 * transposed first (one copy of it) and the backend's own kernel multiplies untransposed. tfjs-backend-wasm 4.22
 * takes its fast path only for untransposed single matrices and a plain loop otherwise, 3-5x slower at the sizes
 * of a small model's dense-layer gradients (dx = dy W^T, dW = x^T dy are both transposed products). Batched
 * products go to the backend's own kernel unchanged (the same loop either way). Same values up to summation order.
 */
const batchMatMul: GapKernelFunc = ({ a, b }, backend, attrs, own) => {
  const single = (t: tf.TensorInfo) => t.shape.slice(0, -2).every((n) => n === 1);
  const call = (inputs: Inputs, transposeA: boolean, transposeB: boolean) =>
    (own as tf.KernelFunc)({ inputs, backend: backend as unknown as tf.KernelBackend, attrs: { ...attrs, transposeA, transposeB } }) as tf.TensorInfo;
  if (!(attrs.transposeA || attrs.transposeB) || !single(a) || !single(b)) return call({ a, b }, attrs.transposeA, attrs.transposeB);
  const swapped = (t: tf.TensorInfo) => {
    const perm = t.shape.map((_, i) => i);
    [perm[perm.length - 2], perm[perm.length - 1]] = [perm[perm.length - 1], perm[perm.length - 2]];
    return wasmKernel('Transpose', backend, { x: t }, { perm });
  };
  const ta = attrs.transposeA ? swapped(a) : a;
  const tb = attrs.transposeB ? swapped(b) : b;
  const out = call({ a: ta, b: tb }, false, false);
  if (ta !== a) backend.disposeData(ta.dataId);
  if (tb !== b) backend.disposeData(tb.dataId);
  return out;
};

/**
 * Identity (`tf.clone`, and every input or output the tape saves for a gradient) sharing its input's memory, as
 * tfjs's cpu backend does: tfjs-backend-wasm 4.22 copies the whole tensor, a full pass over memory for each saved
 * tensor of each op in a training step (for a fused norm, x: one copy of the input per call). Tensors are
 * immutable (a Variable's assign swaps its data, never writes it), so sharing gives the same values; the data is
 * freed when the last tensor on it is disposed. Strings, and a backend without reference counts, keep the
 * backend's own kernel.
 */
const identity: GapKernelFunc = (inputs, backend, attrs, own) => {
  const { x } = inputs;
  if (x.dtype === 'string' || typeof backend.incRef !== 'function') {
    return (own as tf.KernelFunc)({ inputs, backend: backend as unknown as tf.KernelBackend, attrs }) as tf.TensorInfo;
  }
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
};

/**
 * The kernels: `replaceThrough` names the last tfjs-backend-wasm version whose own kernel of that name was
 * found to compute wrong values; a newer wasm backend keeps its own.
 */
const GAP_KERNELS: Array<{ kernelName: string; func: GapKernelFunc; replaceThrough?: string }> = [
  { kernelName: 'Conv2DBackpropFilter', func: conv2DBackpropFilter },
  { kernelName: 'DepthwiseConv2dNativeBackpropFilter', func: depthwiseBackpropFilter },
  { kernelName: 'DepthwiseConv2dNativeBackpropInput', func: depthwiseBackpropInput },
  { kernelName: 'UnsortedSegmentSum', func: unsortedSegmentSumKernel },
  { kernelName: 'MaxPoolGrad', func: maxPoolGrad, replaceThrough: '4.22.0' },
  { kernelName: 'MaxPool3D', func: maxPool3D, replaceThrough: '4.22.0' },
  { kernelName: 'MaxPool3DGrad', func: maxPool3DGrad, replaceThrough: '4.22.0' },
  { kernelName: 'Conv3DBackpropFilterV2', func: conv3DBackpropFilterV2, replaceThrough: '4.22.0' },
  { kernelName: 'Conv3DBackpropInputV2', func: conv3DBackpropInputV2, replaceThrough: '4.22.0' },
  { kernelName: 'BatchMatMul', func: batchMatMul, replaceThrough: '4.22.0' },
  { kernelName: 'Conv2DBackpropInput', func: conv2DBackpropInput, replaceThrough: '4.22.0' },
  { kernelName: 'Identity', func: identity, replaceThrough: '4.22.0' },
];

/** True when version a <= b (numeric major.minor.patch; pre-release tags ignored). */
function versionAtMost(a: string, b: string): boolean {
  const pa = a.split(/[.-]/).map((s) => parseInt(s, 10));
  const pb = b.split(/[.-]/).map((s) => parseInt(s, 10));
  for (let i = 0; i < 3; i++) {
    const x = pa[i] || 0;
    const y = pb[i] || 0;
    if (x !== y) return x < y;
  }
  return true;
}

const ownFuncs = new Set<tf.KernelFunc>();
let report: WasmGapKernel[] = [];

let complete = false;

/**
 * Registers normkit's kernels for the gaps of the wasm backend (idempotent; runs when normkit is imported and
 * again when the wasm backend is selected). A kernel the wasm backend already has is left alone, unless it is
 * one known to be wrong up to the installed version. Returns what was done per kernel.
 */
export function registerWasmGapKernels(): readonly WasmGapKernel[] {
  const backendLoaded = tf.findBackendFactory('wasm') !== null;
  report = GAP_KERNELS.flatMap(({ kernelName, func, replaceThrough }): WasmGapKernel[] => {
    const existing = tf.getKernel(kernelName, 'wasm');
    if (existing !== undefined && ownFuncs.has(existing.kernelFunc)) {
      return [{ kernelName, status: report.find((r) => r.kernelName === kernelName)?.status ?? 'added' }];
    }
    // A replacement registered before the backend's package would be overwritten by it: wait for the package.
    if (replaceThrough !== undefined && !backendLoaded) return [];
    let status: WasmGapKernel['status'] = 'added';
    const own = existing?.kernelFunc;
    if (existing !== undefined) {
      if (replaceThrough === undefined || !versionAtMost(tf.version_core, replaceThrough)) return [{ kernelName, status: 'kept' }];
      tf.unregisterKernel(kernelName, 'wasm');
      status = 'replaced';
    }
    const kernelFunc: tf.KernelFunc = ({ inputs, backend, attrs }) => func(inputs as Inputs, asWasmBackend(backend), (attrs ?? {}) as Attrs, own);
    ownFuncs.add(kernelFunc);
    // The backend's own set-up still runs when the backend starts: a replacement may call the own kernel.
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc, setupFunc: existing?.setupFunc });
    return [{ kernelName, status }];
  });
  complete = backendLoaded;
  return report;
}

/** Completes the registration once the wasm backend's package is loaded (cheap when already complete). */
export function ensureWasmGapKernels(): void {
  if (!complete && tf.findBackendFactory('wasm') !== null) registerWasmGapKernels();
}

/** What {@link registerWasmGapKernels} did for each kernel (added, replaced or kept). */
export function wasmGapKernels(): readonly WasmGapKernel[] {
  return report;
}

registerWasmGapKernels();
