/**
 * Checks of normkit's fused WebGL and WebGPU kernels, run in the browser page: forward and gradients of every
 * fused method against the float64 references of test/helpers/reference.ts and against the composite path on
 * the same backend, over shapes across the ranges the kernels are sized for (rows of 17 to 16384 elements,
 * 1 to 2048 channels, 32 groups, batch 1 to 256; small enough for a software renderer), the numerical hard
 * cases, and leaks of tensors and of backend buffers.
 *
 * Tolerances (float32 on the device, float64 reference): y atol 2e-5 + rtol 1e-4; dx atol 1e-4 + rtol 1e-3;
 * dgamma and dbeta, sums over up to 4096 rows, atol 1e-4 * sqrt(rows) + rtol 1e-3. The composite path is held
 * to twice those against the fused path.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../../src/index.js';
import { fusedKernelAvailable } from '../../../src/core/dispatch.js';
import { FUSED_KERNELS } from '../../../src/kernels/names.js';
import { randn } from '../../helpers/random.js';
import { refNormalize, refNormalizeBackward } from '../../helpers/reference.js';
import { trainingBatchNorm } from '../../helpers/training-ops.js';
import { check, expectClose } from './checks.js';

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** A fused method on one shape, and how the float64 reference sees it (GroupNorm splits C into [G, C/G]). */
interface Case {
  name: string;
  kernel: string;
  shape: number[];
  refShape: number[];
  axes: number[];
  paramAxes: number[];
  width: number;
  center: boolean;
  eps: number;
  hasBeta: boolean;
  /** Rows each parameter gradient adds. */
  paramRows: number;
  op: (x: tf.Tensor, gamma?: tf.Tensor, beta?: tf.Tensor) => tf.Tensor;
}

function layerNormCase(shape: number[]): Case {
  const n = shape[shape.length - 1];
  return {
    name: `layerNorm [${shape}]`, kernel: FUSED_KERNELS.layerNorm, shape, refShape: shape, axes: [shape.length - 1], paramAxes: [shape.length - 1],
    width: n, center: true, eps: 1e-5, hasBeta: true, paramRows: size(shape) / n, op: (x, gamma, beta) => nk.layerNorm(x, { gamma, beta }),
  };
}

function rmsNormCase(shape: number[]): Case {
  const n = shape[shape.length - 1];
  return {
    name: `rmsNorm [${shape}]`, kernel: FUSED_KERNELS.rmsNorm, shape, refShape: shape, axes: [shape.length - 1], paramAxes: [shape.length - 1],
    width: n, center: false, eps: 1e-6, hasBeta: false, paramRows: size(shape) / n, op: (x, gamma) => nk.rmsNorm(x, { gamma }),
  };
}

function batchNormCase(shape: number[]): Case {
  const c = shape[shape.length - 1];
  return {
    name: `batchNorm (training) [${shape}]`, kernel: FUSED_KERNELS.batchNorm, shape, refShape: shape, axes: shape.slice(0, -1).map((_, i) => i), paramAxes: [shape.length - 1],
    width: c, center: true, eps: 1e-5, hasBeta: true, paramRows: size(shape) / c,
    op: trainingBatchNorm,
  };
}

function groupNormCase(shape: number[], groups: number): Case {
  const [b, h, w, c] = shape;
  return {
    name: `groupNorm [${shape}] with ${groups} groups`, kernel: FUSED_KERNELS.groupNorm, shape, refShape: [b, h, w, groups, c / groups], axes: [1, 2, 4], paramAxes: [3, 4],
    width: c, center: true, eps: 1e-5, hasBeta: true, paramRows: b * h * w, op: (x, gamma, beta) => nk.groupNorm(x, { groups, gamma, beta }),
  };
}

function instanceNormCase(shape: number[]): Case {
  const c = shape[shape.length - 1];
  return {
    name: `instanceNorm [${shape}]`, kernel: FUSED_KERNELS.instanceNorm, shape, refShape: shape, axes: [1, 2], paramAxes: [3],
    width: c, center: true, eps: 1e-5, hasBeta: true, paramRows: size(shape) / c, op: (x, gamma, beta) => nk.instanceNorm(x, { gamma, beta }),
  };
}

const CASES: Case[] = [
  layerNormCase([6, 33]),
  layerNormCase([2, 16384]),
  layerNormCase([512, 64]),
  rmsNormCase([5, 17]),
  rmsNormCase([4, 4096]),
  batchNormCase([4, 3, 6]),
  batchNormCase([256, 4, 4, 1]),
  batchNormCase([2, 2, 2, 2048]),
  groupNormCase([2, 3, 4, 6], 3),
  groupNormCase([1, 16, 16, 64], 32),
  groupNormCase([2, 8, 8, 128], 32),
  instanceNormCase([2, 5, 3, 4]),
  instanceNormCase([1, 32, 32, 3]),
];

interface Run {
  y: Float32Array;
  dx: Float32Array;
  dgamma: Float32Array;
  dbeta: Float32Array;
}

/** y = op(x, gamma, beta) and the gradients of sum(y * dy), read back asynchronously (no GPU stall). */
async function run(c: Case, xv: Float32Array, gv: Float32Array, bv: Float32Array, dyv: Float32Array, fused: boolean): Promise<Run> {
  nk.setFusedKernels(fused);
  try {
    const outs = tf.tidy(() => {
      const x = tf.tensor(xv, c.shape);
      const g = tf.tensor(gv, [c.width]);
      const b = tf.tensor(bv, [c.width]);
      const dy = tf.tensor(dyv, c.shape);
      const loss = (a: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(c.op(a, gg, c.hasBeta ? bb : undefined), dy));
      const grads = c.hasBeta ? tf.grads(loss)([x, g, b]) : [...tf.grads((a: tf.Tensor, gg: tf.Tensor) => loss(a, gg, b))([x, g]), tf.zeros([c.width])];
      return [c.op(x, g, c.hasBeta ? b : undefined), ...grads];
    });
    const [y, dx, dgamma, dbeta] = await Promise.all(outs.map(async (t) => (await t.data()) as Float32Array));
    tf.dispose(outs);
    return { y, dx, dgamma, dbeta };
  } finally {
    nk.setFusedKernels(true);
  }
}

function tolerances(c: Case, scale = 1) {
  return {
    y: { atol: 2e-5 * scale, rtol: 1e-4 * scale },
    dx: { atol: 1e-4 * scale, rtol: 1e-3 * scale },
    param: { atol: 1e-4 * Math.sqrt(c.paramRows) * scale, rtol: 1e-3 * scale },
  };
}

function compare(r: Run, ref: { y: ArrayLike<number>; dx: ArrayLike<number>; dgamma: ArrayLike<number>; dbeta: ArrayLike<number> }, c: Case, scale: number, what: string): void {
  const tol = tolerances(c, scale);
  expectClose(r.y, ref.y, tol.y, `${what}: y`);
  expectClose(r.dx, ref.dx, tol.dx, `${what}: dx`);
  expectClose(r.dgamma, ref.dgamma, tol.param, `${what}: dgamma`);
  if (c.hasBeta) expectClose(r.dbeta, ref.dbeta, tol.param, `${what}: dbeta`);
}

function reference(c: Case, xv: Float32Array, gv: Float32Array, bv: Float32Array, dyv: Float32Array) {
  const fwd = refNormalize(xv, c.refShape, c.axes, c.eps, { center: c.center, gamma: gv, beta: c.hasBeta ? bv : undefined, paramAxes: c.paramAxes });
  const bwd = refNormalizeBackward(xv, dyv, c.refShape, c.axes, c.eps, { center: c.center, gamma: gv, paramAxes: c.paramAxes });
  return { y: fwd.y, dx: bwd.dx, dgamma: bwd.dgamma, dbeta: bwd.dbeta };
}

/** The values of the tensor `fn` returns, read asynchronously; everything else `fn` makes is disposed. */
async function values(fn: () => tf.Tensor): Promise<Float32Array> {
  const t = tf.tidy(fn);
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

/** Live backend buffers (tensors tfjs tracks and intermediates a kernel might leave behind). */
function backendDataIds(): number {
  return tf.engine().backend.numDataIds();
}

/** Registers the fused-kernel checks of `backend` ('webgl' or 'webgpu'); `enter` switches tfjs to it. */
export function registerGPUKernelChecks(backend: 'webgl' | 'webgpu', enter: () => Promise<void>): void {
  const label = `[${backend}] fused`;

  check(`${label}: every statistics kernel dispatches`, async () => {
    await enter();
    for (const name of Object.values(FUSED_KERNELS)) {
      if (!fusedKernelAvailable(name)) throw new Error(`${name} is not available on ${backend}`);
    }
  });

  for (const c of CASES) {
    check(`${label} ${c.name}: forward and gradients vs float64 and the composite path`, async () => {
      await enter();
      const n = size(c.shape);
      const xv = randn(n, 2, 0.5, 2);
      const gv = randn(c.width, 3, 1, 0.5);
      const bv = randn(c.width, 4);
      const dyv = randn(n, 5);
      const fusedRun = await run(c, xv, gv, bv, dyv, true);
      compare(fusedRun, reference(c, xv, gv, bv, dyv), c, 1, 'fused vs float64');
      const composite = await run(c, xv, gv, bv, dyv, false);
      compare(composite, fusedRun, c, 2, 'composite vs fused');
    });
  }

  const hard = [layerNormCase([4, 300]), rmsNormCase([3, 50]), batchNormCase([8, 5, 4]), groupNormCase([2, 4, 4, 8], 2)];
  for (const c of hard) {
    check(`${label} ${c.name}: exact on a large common offset (mean 1e4, std 1e-2)`, async () => {
      await enter();
      const n = size(c.shape);
      const xv = randn(n, 8, 1e4, 1e-2);
      const dyv = randn(n, 9);
      const ones = new Float32Array(c.width).fill(1);
      const zeros = new Float32Array(c.width);
      const r = await run(c, xv, ones, zeros, dyv, true);
      const ref = reference(c, xv, ones, zeros, dyv);
      expectClose(r.y, ref.y, { atol: 1e-4, rtol: 1e-4 }, 'y');
      expectClose(r.dx, ref.dx, { atol: 1e-2, rtol: 1e-3 }, 'dx');
    });

    check(`${label} ${c.name}: constant slices give beta and finite gradients`, async () => {
      await enter();
      const n = size(c.shape);
      const xv = new Float32Array(n).fill(-3.5);
      const gv = randn(c.width, 10, 1, 0.5);
      const bv = randn(c.width, 11);
      const dyv = randn(n, 12);
      const r = await run(c, xv, gv, bv, dyv, true);
      const ref = reference(c, xv, gv, bv, dyv);
      expectClose(r.y, ref.y, { atol: 1e-5, rtol: 1e-5 }, 'y');
      if (!r.dx.every(Number.isFinite)) throw new Error('dx is not finite');
      expectClose(r.dx, ref.dx, { atol: 1e-2, rtol: 1e-4 }, 'dx');
    });

    check(`${label} ${c.name}: holds on magnitudes from 1e-20 to 1e15`, async () => {
      await enter();
      for (const scale of [1e-20, 1e-10, 1e-3, 1, 1e6, 1e15]) {
        const xv = randn(size(c.shape), 13).map((v) => v * scale);
        const y = await values(() => c.op(tf.tensor(xv, c.shape)));
        const expected = refNormalize(xv, c.refShape, c.axes, c.eps, { center: c.center }).y;
        // float32 statistics: an element near its slice's mean carries the rounding of the slice's largest
        // values, so the absolute tolerance follows the largest |y| (1e-6 of it) besides rtol 1e-4.
        const largest = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expectClose(y, expected, { atol: 1e-6 * largest, rtol: 1e-4 }, `y at scale ${scale}`);
      }
    });

    check(`${label} ${c.name}: a NaN in one slice leaves the others exact`, async () => {
      await enter();
      const n = size(c.shape);
      const xv = randn(n, 14);
      xv[0] = NaN;
      const y = await values(() => c.op(tf.tensor(xv, c.shape)));
      const expected = refNormalize(xv, c.refShape, c.axes, c.eps, { center: c.center }).y;
      // The reference puts NaN exactly where the slice of element 0 is; the other slices must match.
      expectClose(y, expected, { atol: 2e-5, rtol: 1e-4 }, 'y');
    });
  }

  check(`${label} layerNorm over an axis of length 1 gives beta and a zero gradient`, async () => {
    await enter();
    const x = tf.tensor([[3], [-2], [1e6]]);
    const beta = tf.tensor([0.5]);
    const y = tf.tidy(() => nk.layerNorm(x, { beta }));
    const dx = tf.tidy(() => tf.grad((v: tf.Tensor) => tf.sum(nk.layerNorm(v)))(x));
    const [yv, dxv] = await Promise.all([y.data(), dx.data()]);
    tf.dispose([x, beta, y, dx]);
    expectClose(yv as Float32Array, [0.5, 0.5, 0.5], { atol: 1e-6 }, 'y');
    expectClose(dxv as Float32Array, [0, 0, 0], { atol: 1e-6 }, 'dx');
  });

  check(`${label}: no tensors or backend buffers leak in forward and gradient`, async () => {
    await enter();
    const cases = [layerNormCase([3, 2000]), batchNormCase([300, 2, 5]), groupNormCase([2, 3, 4, 6], 3)];
    const inputs = cases.map((c, i) => [tf.tensor(randn(size(c.shape), 20 + i), c.shape), tf.tensor(randn(c.width, 30 + i), [c.width]), tf.tensor(randn(c.width, 40 + i), [c.width])]);
    const step = async () => {
      for (let i = 0; i < cases.length; i++) {
        const [x, g, b] = inputs[i];
        const outs = tf.tidy(() => tf.grads((a: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => tf.sum(cases[i].op(a, gg, bb)))([x, g, b]));
        await Promise.all(outs.map((t) => t.data()));
        tf.dispose(outs);
      }
    };
    await step();
    const tensors = tf.memory().numTensors;
    const ids = backendDataIds();
    for (let k = 0; k < 3; k++) await step();
    const leakedTensors = tf.memory().numTensors - tensors;
    const leakedIds = backendDataIds() - ids;
    tf.dispose(inputs);
    if (leakedTensors !== 0 || leakedIds !== 0) throw new Error(`leaked ${leakedTensors} tensors and ${leakedIds} backend buffers over 3 steps`);
  });

  if (backend === 'webgl') {
    check(`${label}: float16-only textures (WEBGL_RENDER_FLOAT32_ENABLED false) take the composite path`, async () => {
      await enter();
      const saved = tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED');
      tf.env().set('WEBGL_RENDER_FLOAT32_ENABLED', false);
      try {
        if (fusedKernelAvailable(FUSED_KERNELS.layerNorm)) throw new Error('the fused kernel was chosen without float32 render targets');
      } finally {
        tf.env().set('WEBGL_RENDER_FLOAT32_ENABLED', saved);
      }
      if (!fusedKernelAvailable(FUSED_KERNELS.layerNorm)) throw new Error('the fused kernel is not chosen again once float32 is back');
    });
  }
}
