/**
 * Loader and adapter of the WebAssembly SIMD kernels (AssemblyScript source in wasm/norm.ts, compiled by
 * `npm run build` and embedded as bytes in wasm/norm-bytes.generated.ts, so it loads in browsers and in Node
 * with no file access and no bundler configuration). On tfjs's wasm backend the module is instantiated with
 * the backend's own WebAssembly.Memory, so it reads and writes the tensors in place at their byte offsets.
 *
 * The module is compiled synchronously where the platform allows it (Node, web workers). Browsers refuse
 * synchronous compilation of modules over 4 KB on the main thread: there it is compiled asynchronously on first
 * use (or by {@link simdReady}), and until then the kernels run the scalar JavaScript path of norm-math.ts,
 * which gives the same results up to float32 rounding. Where the module cannot load at all (no SIMD, a shared
 * memory of a threaded build), the scalar path is used throughout.
 */
import type { NormLayout } from './norm-math.js';
import { byteOffset, wasmMemory, type WasmBackendLike } from './backends/wasm.js';
import { NORM_WASM_BASE64 } from './wasm/norm-bytes.generated.js';

/** Byte offsets in the backend's memory; 0 for an absent parameter or output that is not wanted. */
export interface SimdKernels {
  forward(layout: NormLayout, eps: number, x: number, gamma: number, beta: number, outs: number[]): boolean;
  backward(layout: NormLayout, x: number, dy: number, gamma: number, mean: number, rstd: number, outs: number[]): boolean;
}

/** The raw exports of the SIMD module (byte offsets into its memory). */
export interface NormExports {
  rowsForward(x: number, y: number, g: number, b: number, mean: number, rstd: number, pm: number, pv: number, rows: number, n: number, eps: number, center: number): void;
  rowsBackward(x: number, dy: number, g: number, mean: number, rstd: number, dx: number, dg: number, db: number, rows: number, n: number, center: number): void;
  channelsScratchBytes(channels: number): number;
  channelsForward(x: number, y: number, g: number, b: number, mean: number, rstd: number, pm: number, pv: number, batches: number, positions: number, channels: number, perGroup: number, eps: number, scratch: number): void;
  channelsBackward(x: number, dy: number, g: number, mean: number, rstd: number, dx: number, dg: number, db: number, batches: number, positions: number, channels: number, perGroup: number, scratch: number): void;
}

let simdEnabled = true;

/** Turns the WebAssembly SIMD path off or on (default on); off, the wasm backend runs the scalar JavaScript kernels. */
export function setSimdKernels(enabled: boolean): void {
  simdEnabled = enabled;
}

/** Whether the SIMD path is switched on. */
export function simdKernelsEnabled(): boolean {
  return simdEnabled;
}

let compiled: WebAssembly.Module | null | undefined;
let compiling: Promise<void> | null = null;

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const text = atob(NORM_WASM_BASE64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** Starts (once) the asynchronous compilation; resolves when the module is compiled or known not to load. */
function compileAsync(): Promise<void> {
  compiling ??= WebAssembly.compile(moduleBytes()).then(
    (m) => {
      compiled = m;
    },
    () => {
      compiled = null;
    },
  );
  return compiling;
}

/**
 * The compiled module, or null when it is not (yet) available here: see the file comment. A null while an
 * asynchronous compilation is under way is temporary.
 */
export function simdModule(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  if (compiling !== null) return null;
  try {
    compiled = new WebAssembly.Module(moduleBytes());
  } catch {
    // Main-thread size limit in browsers (or no SIMD support): try the asynchronous path once.
    void compileAsync();
    return null;
  }
  return compiled;
}

/**
 * Resolves when the SIMD kernels are compiled (or known to be unavailable, in which case the scalar kernels are
 * used). Only browsers' main threads need to wait; elsewhere it resolves at once.
 *
 * @example
 * await nk.ready(); // before timing the first fused call in a browser
 */
export async function simdReady(): Promise<void> {
  if (simdModule() === null && compiling !== null) await compiling;
}

/** Instantiates the module over `memory` (its only import). */
export function instantiateSimd(memory: WebAssembly.Memory): NormExports | null {
  const mod = simdModule();
  if (!mod) return null;
  try {
    return new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as NormExports;
  } catch {
    return null;
  }
}

const instances = new WeakMap<WebAssembly.Memory, NormExports | null>();

/** The SIMD kernels for one tfjs wasm backend instance, or null when switched off or unavailable. */
export function simdForWasmBackend(backend: WasmBackendLike): SimdKernels | null {
  if (!simdEnabled) return null;
  const memory = wasmMemory(backend);
  if (memory === null) return null;
  let k = instances.get(memory);
  if (k === undefined) {
    k = instantiateSimd(memory);
    if (k === null && compiled === undefined) return null; // still compiling: ask again on the next call
    instances.set(memory, k);
  }
  return k ? adapter(k, backend) : null;
}

function adapter(k: NormExports, backend: WasmBackendLike): SimdKernels {
  // Scratch for the channels kernels lives in the backend's memory as a temporary tensor.
  const withScratch = (channels: number, fn: (offset: number) => void) => {
    const info = backend.makeOutput([Math.ceil(k.channelsScratchBytes(channels) / 4) + 4], 'float32');
    try {
      const offset = byteOffset(backend, info);
      fn(offset + ((16 - (offset % 16)) % 16));
    } finally {
      backend.disposeData(info.dataId);
    }
  };
  return {
    forward(l, eps, x, gamma, beta, outs) {
      const [y, mean, rstd, pm, pv] = outs;
      if (l.kind === 'rows') {
        k.rowsForward(x, y, gamma, beta, mean, rstd, pm, pv, l.outer, l.width, eps, l.center ? 1 : 0);
      } else {
        if (!l.center) return false;
        withScratch(l.width, (s) => k.channelsForward(x, y, gamma, beta, mean, rstd, pm, pv, l.outer, l.inner, l.width, l.channelsPerGroup, eps, s));
      }
      return true;
    },
    backward(l, x, dy, gamma, mean, rstd, outs) {
      const [dx, dgamma, dbeta] = outs;
      if (l.kind === 'rows') {
        k.rowsBackward(x, dy, gamma, mean, rstd, dx, dgamma, dbeta, l.outer, l.width, l.center ? 1 : 0);
      } else {
        if (!l.center) return false;
        withScratch(l.width, (s) => k.channelsBackward(x, dy, gamma, mean, rstd, dx, dgamma, dbeta, l.outer, l.inner, l.width, l.channelsPerGroup, s));
      }
      return true;
    },
  };
}

/** Forward results of {@link CpuSimdKernels}, as fresh Float32Arrays the cpu backend can own. */
export interface CpuForwardResult {
  y: Float32Array;
  mean: Float32Array;
  rstd: Float32Array;
  plainMean: Float32Array;
  variance: Float32Array;
}

/**
 * The SIMD kernels for tfjs's cpu backend, whose tensors are JavaScript Float32Arrays: the inputs are copied
 * into the module's own memory, the kernel runs there in place (y over x, dx over dy: every output element
 * depends only on its own input element and the slice statistics of the first pass), and the outputs are
 * copied out into new arrays. Two copies cost less than the scalar path they replace (see
 * docs/performance.md). The memory keeps its largest size, like any allocator's arena.
 */
export interface CpuSimdKernels {
  forward(layout: NormLayout, eps: number, x: Float32Array, gamma: Float32Array | null, beta: Float32Array | null, stats: number): CpuForwardResult | null;
  backward(layout: NormLayout, x: Float32Array, dy: Float32Array, gamma: Float32Array | null, mean: Float32Array, rstd: Float32Array, wantGamma: boolean, wantBeta: boolean): { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array } | null;
}

let cpuKernels: CpuSimdKernels | null | undefined;

/** The copy-in/copy-out SIMD kernels for the cpu backend, or null when switched off or unavailable. */
export function simdForCpuBackend(): CpuSimdKernels | null {
  if (!simdEnabled) return null;
  if (cpuKernels !== undefined) return cpuKernels;
  if (simdModule() === null && compiled === undefined) return null; // still compiling: ask again on the next call
  const memory = new WebAssembly.Memory({ initial: 1 });
  const k = instantiateSimd(memory);
  cpuKernels = k ? cpuAdapter(k, memory) : null;
  return cpuKernels;
}

function cpuAdapter(k: NormExports, memory: WebAssembly.Memory): CpuSimdKernels {
  const align = (bytes: number) => (bytes + 15) & ~15;
  /** Lays out `sizes` (in floats) one after another, growing the memory to fit; returns their byte offsets. */
  const reserve = (sizes: number[]): { offsets: number[]; heap: Float32Array } => {
    const offsets: number[] = [];
    let end = 0;
    for (const s of sizes) {
      offsets.push(end);
      end = align(end + 4 * s);
    }
    const need = end - memory.buffer.byteLength;
    if (need > 0) memory.grow(Math.ceil(need / 65536));
    return { offsets, heap: new Float32Array(memory.buffer) };
  };
  const put = (heap: Float32Array, offset: number, a: Float32Array) => heap.set(a, offset / 4);
  const take = (heap: Float32Array, offset: number, n: number) => heap.slice(offset / 4, offset / 4 + n);
  return {
    forward(l, eps, x, gamma, beta, stats) {
      if (l.kind === 'channels' && !l.center) return null;
      const w = l.width;
      const n = x.length;
      const scratch = l.kind === 'channels' ? Math.ceil(k.channelsScratchBytes(w) / 4) : 0;
      const { offsets, heap } = reserve([n, w, w, stats, stats, stats, stats, scratch]);
      const [X, G, B, M, R, PM, PV, S] = offsets;
      put(heap, X, x);
      if (gamma) put(heap, G, gamma);
      if (beta) put(heap, B, beta);
      // y is written over x.
      if (l.kind === 'rows') k.rowsForward(X, X, gamma ? G : 0, beta ? B : 0, M, R, PM, PV, l.outer, w, eps, l.center ? 1 : 0);
      else k.channelsForward(X, X, gamma ? G : 0, beta ? B : 0, M, R, PM, PV, l.outer, l.inner, w, l.channelsPerGroup, eps, S);
      return { y: take(heap, X, n), mean: take(heap, M, stats), rstd: take(heap, R, stats), plainMean: take(heap, PM, stats), variance: take(heap, PV, stats) };
    },
    backward(l, x, dy, gamma, mean, rstd, wantGamma, wantBeta) {
      if (l.kind === 'channels' && !l.center) return null;
      const w = l.width;
      const n = x.length;
      const stats = mean.length;
      const scratch = l.kind === 'channels' ? Math.ceil(k.channelsScratchBytes(w) / 4) : 0;
      const { offsets, heap } = reserve([n, n, w, stats, stats, w, w, scratch]);
      const [X, DY, G, M, R, DG, DB, S] = offsets;
      put(heap, X, x);
      put(heap, DY, dy);
      if (gamma) put(heap, G, gamma);
      put(heap, M, mean);
      put(heap, R, rstd);
      // dx is written over dy.
      if (l.kind === 'rows') k.rowsBackward(X, DY, gamma ? G : 0, M, R, DY, wantGamma ? DG : 0, wantBeta ? DB : 0, l.outer, w, l.center ? 1 : 0);
      else k.channelsBackward(X, DY, gamma ? G : 0, M, R, DY, wantGamma ? DG : 0, wantBeta ? DB : 0, l.outer, l.inner, w, l.channelsPerGroup, S);
      return { dx: take(heap, DY, n), dgamma: wantGamma ? take(heap, DG, w) : new Float32Array(0), dbeta: wantBeta ? take(heap, DB, w) : new Float32Array(0) };
    },
  };
}
