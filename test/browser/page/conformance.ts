/**
 * The conformance page: normkit's ops, every registry layer and small model.fit runs on cpu, wasm, webgl
 * and webgpu in one Chromium page. Query `fused=0` switches normkit's fused kernels off for the whole page
 * and keeps only the backends normkit has kernels for (cpu and wasm today).
 */
import * as tf from '@tensorflow/tfjs-core';
// The application's part of a tfjs program: normkit imports no backend.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as nk from '../../../src/index.js';
import { check, param, publish } from './checks.js';
import { registerOpChecks } from './op-checks.js';
import { registerRegistryChecks } from './registry-checks.js';
import { registerFitChecks } from './fit-checks.js';

export const BACKENDS = ['cpu', 'wasm', 'webgl', 'webgpu'] as const;

setWasmPaths('/wasm/');
const fused = param('fused', '1') !== '0';
nk.setFusedKernels(fused);

/** Switches tfjs to `backend`; a backend that does not come up fails the check that asked for it. */
async function enter(backend: string): Promise<void> {
  if (tf.getBackend() === backend) return;
  const ok = await tf.setBackend(backend);
  if (!ok) throw new Error(`tfjs backend '${backend}' did not come up in this browser`);
  await tf.ready();
}

/** Whether normkit registers any kernel of its own for `backend` (its fused kernels are named Normkit*). */
function hasNormkitKernels(backend: string): boolean {
  return tf.getKernelsForBackend(backend).some((k) => k.kernelName.startsWith('Normkit'));
}

for (const backend of BACKENDS) {
  // With fused kernels off, a backend normkit has no kernels for runs exactly the code of the fused page,
  // so the unfused page leaves it out (this keeps the second pass of scripts/test.mjs short).
  if (!fused && !hasNormkitKernels(backend)) continue;
  const label = fused ? backend : `${backend}, unfused`;
  check(`[${label}] backend up`, async () => {
    await enter(backend);
    if (backend === 'webgpu') {
      const adapter = await (navigator as any).gpu?.requestAdapter();
      const info = adapter?.info ?? {};
      return `adapter ${info.vendor ?? '?'} / ${info.architecture ?? '?'}`;
    }
    if (backend === 'webgl') return `WEBGL_VERSION ${tf.env().get('WEBGL_VERSION')}, float32 textures ${tf.env().get('WEBGL_RENDER_FLOAT32_ENABLED')}`;
    return '';
  });
  registerOpChecks(label, backend, () => enter(backend));
  registerRegistryChecks(label, backend, () => enter(backend), () => enter('cpu'));
  registerFitChecks(label, backend, () => enter(backend), () => enter('cpu'));
}

await nk.ready();
publish();
