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
import { readAttrs, toKernelFuncs, type NormKernelAttrs } from './contract.js';
import { STATISTICS_KERNELS, gradKernelName } from './names.js';
import { asCPUBackend, cpuNormKernels } from './backends/cpu.js';
import { asWasmBackend, wasmNormKernels } from './backends/wasm.js';
import { asWebGLBackend, webglFusedSupported, webglNormKernels } from './backends/webgl.js';
import { asWebGPUBackend, webgpuNormKernels } from './backends/webgpu.js';
import { blockedMean, rmsStandardizeWithRstd, standardizeWithRstd } from '../core/moments.js';

export type { NormKernelAttrs } from './contract.js';

/** Whether tfjs records operations for a gradient right now, i.e. a gradient is itself being differentiated. */
function recordingGradients(): boolean {
  return (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
}

/**
 * The backward of the fused kernels as differentiable tfjs ops (for higher-order gradients), statistics
 * recomputed from x: with xhat and rstd of each slice, g = gamma * dy,
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (RMS drops mean(g)), dgamma = sum(dy * xhat),
 * dbeta = sum(dy). x is viewed as [outer, inner, groups, group] with slices over axes 1 and 3.
 */
function compositeBackward(x: tf.Tensor, dy: tf.Tensor, gamma: tf.Tensor, a: NormKernelAttrs): { dx: tf.Tensor; dgamma: tf.Tensor; dbeta: tf.Tensor } {
  const groups = a.width / a.channelsPerGroup;
  const shape4 = a.kind === 'rows' ? [a.outer, 1, 1, a.width] : [a.outer, a.inner, groups, a.channelsPerGroup];
  const axes = [1, 3];
  const x4 = tf.reshape(x, shape4);
  const dy4 = tf.reshape(dy, shape4);
  const { xhat, rstd } = a.center ? standardizeWithRstd(x4, axes, a.epsilon) : rmsStandardizeWithRstd(x4, axes, a.epsilon);
  const g = a.hasGamma ? tf.mul(dy4, tf.reshape(gamma, [1, 1, groups, a.channelsPerGroup])) : dy4;
  let inner = tf.sub(g, tf.mul(xhat, blockedMean(tf.mul(g, xhat), axes)));
  if (a.center) inner = tf.sub(inner, blockedMean(g, axes));
  const dx = tf.reshape(tf.mul(rstd, inner), x.shape);
  const dgamma = a.hasGamma ? tf.reshape(tf.sum(tf.mul(dy4, xhat), [0, 1]), [a.width]) : tf.zeros([0]);
  const dbeta = a.hasBeta ? tf.reshape(tf.sum(dy4, [0, 1]), [a.width]) : tf.zeros([0]);
  return { dx, dgamma, dbeta };
}

let registered = false;

/**
 * Registers the fused kernels and their gradients for every backend (idempotent; runs on import of any op that
 * dispatches to them).
 */
export function registerFusedKernels(): void {
  if (registered) return;
  registered = true;
  const backends: Array<[string, { forward: tf.KernelFunc; backward: tf.KernelFunc }]> = [
    ['cpu', toKernelFuncs(cpuNormKernels, asCPUBackend)],
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
        if (recordingGradients()) {
          // This gradient is itself being differentiated (tf.grad of a gradient): the backward kernel has no
          // gradient, so the same backward is written with differentiable tfjs ops.
          const g = compositeBackward(x, dyY, gamma, readAttrs(attrs as tf.NamedAttrMap));
          return { x: () => g.dx, gamma: () => g.dgamma, beta: () => g.dbeta };
        }
        const [dx, dgamma, dbeta] = tf.engine().runKernel(gradKernelName(name), { x, dy: dyY, gamma, mean, rstd }, attrs) as tf.Tensor[];
        return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
      },
    });
  }
}
