/**
 * Loader and adapter of the WebAssembly SIMD kernels (AssemblyScript source in wasm/norm.ts, compiled by
 * `npm run build` to dist/src/kernels/wasm/norm.wasm). On tfjs's wasm backend the module is instantiated with
 * the backend's own WebAssembly.Memory, so it reads and writes the tensors in place at their byte offsets.
 *
 * The module is loaded synchronously from the file next to this one with Node's fs (reached through
 * `process.getBuiltinModule`, so nothing here imports a Node module and bundlers are not affected). Where
 * that is unavailable, or the backend's memory is shared (threaded build), or the module fails to compile,
 * the kernels fall back to the scalar JavaScript path of norm-math.ts with identical results up to rounding.
 */
import type { NormLayout } from './norm-math.js';

/** Byte offsets in the backend's memory; 0 for an absent parameter or output that is not wanted. */
export interface SimdKernels {
  forward(layout: NormLayout, eps: number, x: number, gamma: number, beta: number, outs: number[]): boolean;
  backward(layout: NormLayout, x: number, dy: number, gamma: number, mean: number, rstd: number, outs: number[]): boolean;
}

interface NormExports {
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

/** The compiled module, or null when it cannot be loaded here (see the file comment). */
export function simdModule(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  try {
    const proc = (globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }).process;
    const fs = proc?.getBuiltinModule?.('node:fs') as { readFileSync(path: URL): Uint8Array } | undefined;
    if (fs) compiled = new WebAssembly.Module(fs.readFileSync(new URL('./wasm/norm.wasm', import.meta.url)) as Uint8Array<ArrayBuffer>);
  } catch {
    compiled = null;
  }
  return compiled;
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
export function simdForWasmBackend(backend: any): SimdKernels | null {
  if (!simdEnabled) return null;
  const memory = backend?.wasm?.asm?.memory ?? backend?.wasm?.wasmMemory;
  if (!(memory instanceof WebAssembly.Memory)) return null;
  let k = instances.get(memory);
  if (k === undefined) {
    k = instantiateSimd(memory);
    instances.set(memory, k);
  }
  return k ? adapter(k, backend) : null;
}

function adapter(k: NormExports, backend: any): SimdKernels {
  // Scratch for the channels kernels lives in the backend's memory as a temporary tensor.
  const withScratch = (channels: number, fn: (offset: number) => void) => {
    const info = backend.makeOutput([Math.ceil(k.channelsScratchBytes(channels) / 4) + 4], 'float32');
    try {
      const offset = backend.dataIdMap.get(info.dataId).memoryOffset as number;
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
        withScratch(l.width, (s) => k.channelsForward(x, y, gamma, beta, mean, rstd, pm, pv, l.outer, l.inner, l.width, l.group, eps, s));
      }
      return true;
    },
    backward(l, x, dy, gamma, mean, rstd, outs) {
      const [dx, dgamma, dbeta] = outs;
      if (l.kind === 'rows') {
        k.rowsBackward(x, dy, gamma, mean, rstd, dx, dgamma, dbeta, l.outer, l.width, l.center ? 1 : 0);
      } else {
        if (!l.center) return false;
        withScratch(l.width, (s) => k.channelsBackward(x, dy, gamma, mean, rstd, dx, dgamma, dbeta, l.outer, l.inner, l.width, l.group, s));
      }
      return true;
    },
  };
}
