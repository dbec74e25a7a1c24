/**
 * Backend selection for Node and browsers: normkit registers tfjs's `cpu` and `wasm` backends on import.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
// Kernels the wasm backend lacks (or gets wrong) for training: see src/kernels/wasm-gaps.
import '../kernels/wasm-gaps/register.js';
import { NormkitError } from './errors.js';

/** Backends normkit is built and tested for. */
export const SUPPORTED_BACKENDS = ['cpu', 'wasm'] as const;

/** Switches tfjs to `name` and waits until it is ready. Throws a clear error when it cannot start. */
export async function useBackend(name: string): Promise<void> {
  if (!(SUPPORTED_BACKENDS as readonly string[]).includes(name) && tf.findBackendFactory(name) === null) {
    throw new NormkitError('useBackend', 'name', `a registered backend (${SUPPORTED_BACKENDS.join(', ')})`, name);
  }
  const ok = await tf.setBackend(name);
  if (!ok) throw new NormkitError('useBackend', 'name', 'a backend that initializes on this platform', name);
  await tf.ready();
}
