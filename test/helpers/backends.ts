/**
 * Runs a suite once per backend (cpu and wasm by default; NORMKIT_TEST_BACKENDS=cpu limits it), so one
 * `node --test` run counts every test on every backend.
 */
import { before, describe } from 'node:test';
import { fusedKernelsEnabled, setFusedKernels, useBackend } from '../../src/index.js';

export const BACKENDS = (process.env.NORMKIT_TEST_BACKENDS ?? 'cpu,wasm').split(',').filter((b) => b.length > 0);

/** Declares `describe('[backend]', …)` for each backend, switching tfjs to it before the suite's tests. */
export function forEachBackend(body: (backend: string) => void): void {
  for (const backend of BACKENDS) {
    describe(`[${backend}]`, () => {
      before(async () => {
        await useBackend(backend);
      });
      body(backend);
    });
  }
}

/** Runs `fn` with normkit's fused kernels switched to `on`, restoring the previous setting. */
export function withFused<T>(on: boolean, fn: () => T): T {
  const prev = fusedKernelsEnabled();
  setFusedKernels(on);
  try {
    return fn();
  } finally {
    setFusedKernels(prev);
  }
}
