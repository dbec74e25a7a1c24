/**
 * The five standard ops (layerNorm, rmsNorm, batchNorm in training, groupNorm, instanceNorm) on one backend:
 * forward values and gradients (tf.grads over x, gamma, beta) against the float64 references of
 * test/helpers/reference.ts, including hard inputs: a large common offset (1e4) with a small spread (1e-2),
 * constant slices (variance 0) and a normalized axis of length 1.
 *
 * Tolerances (|got - want| <= atol * scale + rtol * |want|, scale = max(1, max |want|)):
 *   cpu, wasm:     forward atol 1e-4, rtol 1e-4;  gradients atol 1e-3, rtol 1e-3
 *   webgl, webgpu: forward atol 5e-4, rtol 5e-4;  gradients atol 3e-3, rtol 3e-3
 * The GPU bounds are looser because their reductions sum in a different order (tree reductions over
 * textures or workgroups) and SwiftShader's rsqrt and division are not correctly rounded; float32 inputs,
 * float32 arithmetic on all four.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../../src/index.js';
import { refNormalize, refNormalizeBackward } from '../../helpers/reference.js';
import { randn } from '../../helpers/random.js';
import { check, expectClose } from './checks.js';

interface Tol {
  atol: number;
  rtol: number;
}

/** Forward and gradient tolerances per backend (see the file's comment). */
export function tolerances(backend: string): { y: Tol; grad: Tol } {
  const gpu = backend === 'webgl' || backend === 'webgpu';
  return gpu ? { y: { atol: 5e-4, rtol: 5e-4 }, grad: { atol: 3e-3, rtol: 3e-3 } } : { y: { atol: 1e-4, rtol: 1e-4 }, grad: { atol: 1e-3, rtol: 1e-3 } };
}

/** One input case of an op: the op on tensors and the layout its float64 reference needs. */
interface OpCase {
  label: string;
  shape: number[];
  x: Float32Array;
  /** Shape the reference sees (group norm splits the channel axis into [G, C/G]); default `shape`. */
  refShape?: number[];
  /** Normalized axes and parameter axes of `refShape`. */
  axes: number[];
  paramAxes: number[];
  eps: number;
  center: boolean;
  hasBeta: boolean;
}

type GroupCase = OpCase & { groups: number; axis: number };

interface OpSpec {
  name: string;
  run: (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor | undefined, c: OpCase) => tf.Tensor;
  cases: OpCase[];
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Data for a case: standard normal, or with an offset and spread, or with constant slices written in. */
function data(shape: number[], seed: number, mean = 0, std = 1): Float32Array {
  return randn(size(shape), seed, mean, std);
}

/** x of shape [rows, cols] with row `r` constant. */
function withConstantRow(shape: number[], seed: number, r: number): Float32Array {
  const x = data(shape, seed);
  const cols = shape[shape.length - 1];
  x.fill(0.75, r * cols, (r + 1) * cols);
  return x;
}

function rowCases(center: boolean, hasBeta: boolean): OpCase[] {
  const base = { center, hasBeta, eps: 1e-5 };
  return [
    { label: '[4, 6] axis -1', shape: [4, 6], x: data([4, 6], 1), axes: [1], paramAxes: [1], ...base },
    { label: '[2, 3, 4] axis 1', shape: [2, 3, 4], x: data([2, 3, 4], 2), axes: [1], paramAxes: [1], ...base },
    { label: 'offset 1e4, std 1e-2', shape: [3, 8], x: data([3, 8], 3, 1e4, 1e-2), axes: [1], paramAxes: [1], ...base },
    { label: 'a constant row', shape: [3, 5], x: withConstantRow([3, 5], 4, 1), axes: [1], paramAxes: [1], ...base },
    { label: 'axis of length 1', shape: [3, 1], x: data([3, 1], 5), axes: [1], paramAxes: [1], ...base },
  ];
}

function batchCases(): OpCase[] {
  const base = { center: true, hasBeta: true, eps: 1e-3 };
  const constantChannel = data([6, 3], 13);
  for (let n = 0; n < 6; n++) constantChannel[n * 3 + 1] = -2.5;
  return [
    { label: '[6, 4] channels last', shape: [6, 4], x: data([6, 4], 10), axes: [0], paramAxes: [1], ...base },
    { label: '[2, 3, 3, 4] NHWC', shape: [2, 3, 3, 4], x: data([2, 3, 3, 4], 11), axes: [0, 1, 2], paramAxes: [3], ...base },
    { label: 'offset 1e4, std 1e-2', shape: [8, 3], x: data([8, 3], 12, 1e4, 1e-2), axes: [0], paramAxes: [1], ...base },
    { label: 'a constant channel', shape: [6, 3], x: constantChannel, axes: [0], paramAxes: [1], ...base },
    { label: 'channel axis of length 1', shape: [5, 1], x: data([5, 1], 14), axes: [0], paramAxes: [1], ...base },
  ];
}

function groupCases(): GroupCase[] {
  const base = { center: true, hasBeta: true, eps: 1e-5 };
  // Group g of channel c = g * (C / G) + k: the reference sees the channel axis split into [G, C/G].
  const constantGroup = data([2, 2, 2, 4], 23);
  for (let i = 0; i < 8; i++) constantGroup[i * 4] = constantGroup[i * 4 + 1] = 1.5; // sample 0 and 1, group 0
  return [
    { label: '[2, 3, 3, 4] groups 2', shape: [2, 3, 3, 4], x: data([2, 3, 3, 4], 20), groups: 2, axis: -1, refShape: [2, 3, 3, 2, 2], axes: [1, 2, 4], paramAxes: [3, 4], ...base },
    { label: '[2, 4, 3] groups 2 axis 1', shape: [2, 4, 3], x: data([2, 4, 3], 21), groups: 2, axis: 1, refShape: [2, 2, 2, 3], axes: [2, 3], paramAxes: [1, 2], ...base },
    { label: 'offset 1e4, std 1e-2', shape: [2, 4, 6], x: data([2, 4, 6], 22, 1e4, 1e-2), groups: 3, axis: -1, refShape: [2, 4, 3, 2], axes: [1, 3], paramAxes: [2, 3], ...base },
    { label: 'a constant group', shape: [2, 2, 2, 4], x: constantGroup, groups: 2, axis: -1, refShape: [2, 2, 2, 2, 2], axes: [1, 2, 4], paramAxes: [3, 4], ...base },
    { label: '[2, 2, 2, 2, 4] rank 5, groups 2', shape: [2, 2, 2, 2, 4], x: data([2, 2, 2, 2, 4], 25), groups: 2, axis: -1, refShape: [2, 2, 2, 2, 2, 2], axes: [1, 2, 3, 5], paramAxes: [4, 5], ...base },
    { label: 'groups of length 1 (G = C)', shape: [2, 5, 3], x: data([2, 5, 3], 24), groups: 3, axis: -1, refShape: [2, 5, 3, 1], axes: [1, 3], paramAxes: [2, 3], ...base },
  ];
}

function instanceCases(): OpCase[] {
  const base = { center: true, hasBeta: true, eps: 1e-5 };
  const constantChannel = data([2, 3, 3], 33);
  for (let s = 0; s < 3; s++) constantChannel[s * 3 + 2] = 4; // sample 0, channel 2
  return [
    { label: '[2, 3, 3, 4] NHWC', shape: [2, 3, 3, 4], x: data([2, 3, 3, 4], 30), axes: [1, 2], paramAxes: [3], ...base },
    { label: '[2, 4, 5] axis 1', shape: [2, 4, 5], x: data([2, 4, 5], 31), axes: [2], paramAxes: [1], ...base },
    { label: 'offset 1e4, std 1e-2', shape: [2, 6, 3], x: data([2, 6, 3], 32, 1e4, 1e-2), axes: [1], paramAxes: [2], ...base },
    { label: 'a constant channel', shape: [2, 3, 3], x: constantChannel, axes: [1], paramAxes: [2], ...base },
    { label: '[2, 2, 2, 2, 3] rank 5 NDHWC', shape: [2, 2, 2, 2, 3], x: data([2, 2, 2, 2, 3], 35), axes: [1, 2, 3], paramAxes: [4], ...base },
    { label: 'a spatial axis of length 1', shape: [2, 1, 4, 3], x: data([2, 1, 4, 3], 34), axes: [1, 2], paramAxes: [3], ...base },
  ];
}

const OPS: OpSpec[] = [
  { name: 'layerNorm', cases: rowCases(true, true), run: (x, gamma, beta, c) => nk.layerNorm(x, { axis: c.axes, epsilon: c.eps, gamma, beta }) },
  { name: 'rmsNorm', cases: rowCases(false, false), run: (x, gamma, _b, c) => nk.rmsNorm(x, { axis: c.axes, epsilon: c.eps, gamma }) },
  {
    name: 'batchNorm training',
    cases: batchCases(),
    run: (x, gamma, beta, c) => {
      const channels = x.shape[c.paramAxes[0]];
      const stats = { movingMean: tf.zeros([channels]), movingVariance: tf.ones([channels]) };
      const r = nk.batchNorm(x, { training: true, axis: c.paramAxes[0], epsilon: c.eps, gamma, beta, ...stats });
      tf.dispose([r.movingMean, r.movingVariance]);
      return r.y;
    },
  },
  {
    name: 'groupNorm',
    cases: groupCases(),
    run: (x, gamma, beta, c) => nk.groupNorm(x, { groups: (c as GroupCase).groups, axis: (c as GroupCase).axis, epsilon: c.eps, gamma, beta }),
  },
  {
    name: 'instanceNorm',
    cases: instanceCases(),
    run: (x, gamma, beta, c) => nk.instanceNorm(x, { axis: c.paramAxes[0] === c.shape.length - 1 ? -1 : c.paramAxes[0], epsilon: c.eps, gamma, beta }),
  },
];

/** gamma and beta values for a case (one per element of the parameter axes). */
function params(c: OpCase): { pShape: number[]; gamma: Float32Array; beta: Float32Array } {
  const refShape = c.refShape ?? c.shape;
  const pSize = c.paramAxes.reduce((n, a) => n * refShape[a], 1);
  // The op's parameters lie over its own axes; group norm's [G, C/G] reference axes are its channel axis.
  const pShape = c.refShape ? [pSize] : c.paramAxes.map((a) => c.shape[a]);
  return { pShape, gamma: randn(pSize, 100 + c.shape.length, 1, 0.5), beta: randn(pSize, 200 + c.shape.length) };
}

function scaled(tol: Tol, want: ArrayLike<number>): Tol {
  let m = 1;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(want[i]));
  return { atol: tol.atol * m, rtol: tol.rtol };
}

/** Fails when `fn` leaves tensors behind. */
async function noLeak<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const before = tf.memory().numTensors;
  const r = await fn();
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`${what} leaked ${after - before} tensor(s)`);
  return r;
}

/** Registers `[label] <op> forward` and `[label] <op> gradients` for the five ops; `enter` switches to the backend. */
export function registerOpChecks(label: string, backend: string, enter: () => Promise<void>): void {
  const tol = tolerances(backend);
  for (const op of OPS) {
    check(`[${label}] ${op.name} forward`, async () => {
      await enter();
      for (const c of op.cases) {
        const refShape = c.refShape ?? c.shape;
        const p = params(c);
        const want = refNormalize(c.x, refShape, c.axes, c.eps, { center: c.center, gamma: p.gamma, beta: c.hasBeta ? p.beta : undefined, paramAxes: c.paramAxes }).y;
        const got = await noLeak(`${op.name} ${c.label}`, async () => {
          const t = [tf.tensor(c.x, c.shape), tf.tensor(p.gamma, p.pShape), tf.tensor(p.beta, p.pShape)];
          const y = tf.tidy(() => op.run(t[0], t[1], c.hasBeta ? t[2] : undefined, c));
          const v = await y.data();
          tf.dispose([...t, y]);
          return v;
        });
        expectClose(got, want, scaled(tol.y, want), `${c.label}: y`);
      }
      return `${op.cases.length} cases`;
    });
    check(`[${label}] ${op.name} gradients`, async () => {
      await enter();
      for (const c of op.cases) {
        const refShape = c.refShape ?? c.shape;
        const p = params(c);
        const dy = randn(c.x.length, 300 + c.x.length);
        const want = refNormalizeBackward(c.x, dy, refShape, c.axes, c.eps, { center: c.center, gamma: p.gamma, paramAxes: c.paramAxes });
        const got = await noLeak(`${op.name} ${c.label} gradients`, async () => {
          const t = [tf.tensor(c.x, c.shape), tf.tensor(p.gamma, p.pShape), tf.tensor(p.beta, p.pShape), tf.tensor(dy, c.shape)];
          const f = c.hasBeta
            ? (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(op.run(x, g, b, c), t[3]))
            : (x: tf.Tensor, g: tf.Tensor) => tf.sum(tf.mul(op.run(x, g, undefined, c), t[3]));
          const grads = tf.grads(f as (...a: tf.Tensor[]) => tf.Tensor)(c.hasBeta ? t.slice(0, 3) : t.slice(0, 2));
          const v = await Promise.all(grads.map((g) => g.data()));
          tf.dispose([...t, ...grads]);
          return v;
        });
        expectClose(got[0], want.dx, scaled(tol.grad, want.dx), `${c.label}: dx`);
        expectClose(got[1], want.dgamma, scaled(tol.grad, want.dgamma), `${c.label}: dgamma`);
        if (c.hasBeta) expectClose(got[2], want.dbeta, scaled(tol.grad, want.dbeta), `${c.label}: dbeta`);
      }
      return `${op.cases.length} cases`;
    });
  }
}
