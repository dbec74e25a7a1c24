/**
 * The lab runs in Node on tfjs's cpu or wasm backend. normkit's package root imports no backend, so the lab loads
 * the one it is asked for when a run starts (the packages are normkit's optional peer dependencies).
 */
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../core/backend.js';
import { NormkitError } from '../core/errors.js';

/** Backends the lab trains on. */
export const LAB_BACKENDS = ['cpu', 'wasm'] as const;

/** Loads the backend's package if the application has not, then switches tfjs to it. */
export async function loadLabBackend(name: string): Promise<void> {
  if (!(LAB_BACKENDS as readonly string[]).includes(name)) throw new NormkitError('lab', 'backend', `one of ${LAB_BACKENDS.join(', ')}`, name);
  if (tf.findBackendFactory(name) === null) {
    try {
      if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
      else await import('@tensorflow/tfjs-backend-cpu');
    } catch {
      throw new NormkitError('lab', 'backend', `an installed backend (npm install @tensorflow/tfjs-backend-${name})`, name);
    }
  }
  await useBackend(name);
}
