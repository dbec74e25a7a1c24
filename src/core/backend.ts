/**
 * Backend selection. normkit imports no backend and never changes tfjs's default: the application imports the
 * backends it wants (`@tensorflow/tfjs` brings cpu and webgl; `@tensorflow/tfjs-backend-wasm` and
 * `@tensorflow/tfjs-backend-webgpu` are separate packages), as in any tfjs program. normkit's kernels are
 * registered under each backend's name, so they are there for whichever of these backends the application loads.
 */
import * as tf from '@tensorflow/tfjs-core';
import { registerWasmGapKernels } from '../kernels/wasm-gaps/register.js';
import { NormkitError } from './errors.js';

/** Backends normkit is built and tested for: fused kernels on cpu and wasm, composites of tfjs ops elsewhere. */
export const SUPPORTED_BACKENDS = ['cpu', 'wasm', 'webgl', 'webgpu'] as const;

/** The package that registers each supported backend. */
const BACKEND_PACKAGES: Record<string, string> = {
  cpu: '@tensorflow/tfjs-backend-cpu',
  wasm: '@tensorflow/tfjs-backend-wasm',
  webgl: '@tensorflow/tfjs-backend-webgl',
  webgpu: '@tensorflow/tfjs-backend-webgpu',
};

/**
 * Switches tfjs to the backend `name` and waits until it is ready; a shorthand for `tf.setBackend(name)` plus
 * `tf.ready()` with clear errors. The backend's package must have been imported by the application.
 *
 * @example
 * import '@tensorflow/tfjs-backend-wasm';
 * await nk.useBackend('wasm');
 */
export async function useBackend(name: string): Promise<void> {
  if (typeof name !== 'string' || tf.findBackendFactory(name) === null) {
    const pkg = typeof name === 'string' ? BACKEND_PACKAGES[name] : undefined;
    const expected = pkg !== undefined ? `a registered backend (import '${pkg}' first)` : `a registered backend (${SUPPORTED_BACKENDS.join(', ')})`;
    throw new NormkitError('useBackend', 'name', expected, name);
  }
  const ok = await tf.setBackend(name);
  if (!ok) throw new NormkitError('useBackend', 'name', 'a backend that initializes on this platform', name);
  await tf.ready();
  if (name === 'wasm') registerWasmGapKernels();
}
