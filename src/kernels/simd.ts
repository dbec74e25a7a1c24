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
export interface SIMDKernels {
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
  channelsSums(x: number, positions: number, channels: number, shift: number, sums: number): void;
  channelsApply(x: number, y: number, positions: number, channels: number, coefs: number): void;
  channelsGradSums(x: number, dy: number, positions: number, channels: number, norm: number, sums: number): void;
  channelsDx(x: number, dy: number, dx: number, positions: number, channels: number, coefs: number): void;
}

let simdEnabled = true;

/** Turns the WebAssembly SIMD path off or on (default on); off, the wasm backend runs the scalar JavaScript kernels. */
export function setSIMDKernels(enabled: boolean): void {
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
export function instantiateSIMD(memory: WebAssembly.Memory): NormExports | null {
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
export function simdForWasmBackend(backend: WasmBackendLike): SIMDKernels | null {
  if (!simdEnabled) return null;
  const memory = wasmMemory(backend);
  if (memory === null) return null;
  let k = instances.get(memory);
  if (k === undefined) {
    k = instantiateSIMD(memory);
    if (k === null && compiled === undefined) return null; // still compiling: ask again on the next call
    instances.set(memory, k);
  }
  return k ? adapter(k, backend) : null;
}

function adapter(k: NormExports, backend: WasmBackendLike): SIMDKernels {
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
