/**
 * The fused-kernel switch. An op asks {@link fusedKernelAvailable} whether the active backend has normkit's
 * fused kernel for it; if not (another backend, or fused kernels switched off), the op runs its composite of
 * tfjs ops, which is also the reference the fused kernels are tested against.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ensureWasmGapKernels } from '../kernels/wasm-gaps/register.js';

function envDefault(): boolean {
  const v = typeof process !== 'undefined' ? process.env?.NORMKIT_FUSED : undefined;
  return !(v === '0' || v === 'false' || v === 'off');
}

let fusedEnabled = envDefault();

/**
 * Turns normkit's fused kernels on or off (default on; the environment variable `NORMKIT_FUSED=0` starts
 * with them off). With them off every op runs as a composite of tfjs ops.
 */
export function setFusedKernels(enabled: boolean): void {
  fusedEnabled = enabled;
}

/** Whether fused kernels are switched on. */
export function fusedKernelsEnabled(): boolean {
  return fusedEnabled;
}

const backendChecks = new Map<string, () => boolean>();

/**
 * Lets the fused kernels of `backendName` decline at run time (WebGL without float32 render targets runs the
 * composite path): `check` is asked on every dispatch while that backend is active.
 */
export function setFusedBackendCheck(backendName: string, check: () => boolean): void {
  backendChecks.set(backendName, check);
}

/**
 * True when fused kernels are on, `kernelName` is registered for the active backend, and that backend's check
 * (if any) passes.
 */
export function fusedKernelAvailable(kernelName: string): boolean {
  const backend = tf.getBackend();
  // The wasm backend may have been loaded after normkit: its replaced kernels are registered on first use.
  if (backend === 'wasm') ensureWasmGapKernels();
  if (!fusedEnabled) return false;
  if (tf.getKernel(kernelName, backend) === undefined) return false;
  const check = backendChecks.get(backend);
  return check === undefined || check();
}
