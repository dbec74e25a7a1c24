/**
 * Registers normkit's fused normalization kernels with tfjs (tf.registerKernel / tf.registerGradient) for the
 * `cpu`, `wasm`, `webgl` and `webgpu` backends, so they run inside the user's tfjs. Every backend implements the
 * typed contract of contract.ts in its own module under backends/ (which is also the only place that reaches
 * that backend's memory); the gradient registration is shared: it saves x, gamma and the forward's mean and
 * rstd and runs the backward kernel of the active backend.
 *
 * Nothing here imports a backend package: registering a kernel for a backend that is never loaded is harmless,
 * and each kernel reaches its backend through the `backend` argument tfjs passes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setFusedBackendCheck } from '../core/dispatch.js';
import { toKernelFuncs } from './contract.js';
import { STATISTICS_KERNELS, gradKernelName } from './names.js';
import { asCpuBackend, cpuNormKernels } from './backends/cpu.js';
import { asWasmBackend, wasmNormKernels } from './backends/wasm.js';
import { asWebGLBackend, webglFusedSupported, webglNormKernels } from './backends/webgl.js';
import { asWebGPUBackend, webgpuNormKernels } from './backends/webgpu.js';

export type { NormKernelAttrs } from './contract.js';

let registered = false;

/**
 * Registers the fused kernels and their gradients for every backend (idempotent; runs on import of any op that
 * dispatches to them).
 */
export function registerFusedKernels(): void {
  if (registered) return;
  registered = true;
  const backends: Array<[string, { forward: tf.KernelFunc; backward: tf.KernelFunc }]> = [
    ['cpu', toKernelFuncs(cpuNormKernels, asCpuBackend)],
    ['wasm', toKernelFuncs(wasmNormKernels, asWasmBackend)],
    ['webgl', toKernelFuncs(webglNormKernels, asWebGLBackend)],
    ['webgpu', toKernelFuncs(webgpuNormKernels, asWebGPUBackend)],
  ];
  // WebGL without float32 render targets keeps the composite path (see backends/webgl.ts).
  setFusedBackendCheck('webgl', () => webglFusedSupported(tf.env()));
  for (const name of STATISTICS_KERNELS) {
    for (const [backendName, k] of backends) {
      tf.registerKernel({ kernelName: name, backendName, kernelFunc: k.forward });
      tf.registerKernel({ kernelName: gradKernelName(name), backendName, kernelFunc: k.backward });
    }
    tf.registerGradient({
      kernelName: name,
      inputsToSave: ['x', 'gamma'],
      outputsToSave: [false, true, true, false, false],
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs?: tf.NamedAttrMap) => {
        const [x, gamma, mean, rstd] = saved;
        const dyY = Array.isArray(dy) ? dy[0] : dy;
        const [dx, dgamma, dbeta] = tf.engine().runKernel(gradKernelName(name), { x, dy: dyY, gamma, mean, rstd }, attrs) as tf.Tensor[];
        return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
      },
    });
  }
}
