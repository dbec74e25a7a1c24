/**
 * The fused GPU kernel page: normkit's WebGL and WebGPU kernels checked against float64 references and the
 * composite path (page/gpu-kernel-checks.ts). The checks switch normkit's fused kernels on and off themselves.
 */
import * as tf from '@tensorflow/tfjs-core';
// The application's part of a tfjs program: normkit imports no backend.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { publish } from './checks.js';
import { registerGPUKernelChecks } from './gpu-kernel-checks.js';

for (const backend of ['webgl', 'webgpu'] as const) {
  registerGPUKernelChecks(backend, async () => {
    if (tf.getBackend() === backend) return;
    if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend '${backend}' did not come up in this browser`);
    await tf.ready();
  });
}

publish();
