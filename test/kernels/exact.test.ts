/**
 * The hard numerical cases on both paths (fused kernels and the composite of tfjs ops that runs on every
 * other backend), against the float64 references: large common offsets, constant slices, magnitudes from
 * 1e-20 to 1e15, long slices, and the first element of every slice (the composite path's shift).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/index.js';
import { forEachBackend, withFused } from '../helpers/backends.js';
import { assertClose, f64, randn } from '../helpers/numeric.js';
import { refNormalize, refNormalizeBackward, slices } from '../helpers/reference.js';

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** One method as the op takes it and as the float64 reference sees it (see test/kernels/fused.test.ts). */
interface Method {
  name: string;
  shape: number[];
  refShape: number[];
  axes: number[];
  paramAxes: number[];
  center: boolean;
  eps: number;
  op: (x: tf.Tensor) => tf.Tensor;
}

function batchNormTraining(x: tf.Tensor, eps: number): tf.Tensor {
  const c = x.shape[x.rank - 1];
  const movingMean = tf.zeros([c]);
  const movingVariance = tf.ones([c]);
  const r = nk.batchNorm(x, { training: true, movingMean, movingVariance, epsilon: eps });
  tf.dispose([movingMean, movingVariance, r.movingMean, r.movingVariance]);
  return r.y;
}

const METHODS: Method[] = [
  { name: 'layerNorm [4, 37]', shape: [4, 37], refShape: [4, 37], axes: [1], paramAxes: [1], center: true, eps: 1e-5, op: (x) => nk.layerNorm(x) },
  { name: 'layerNorm [3, 4, 6] over axes [0, 1]', shape: [3, 4, 6], refShape: [3, 4, 6], axes: [0, 1], paramAxes: [0, 1], center: true, eps: 1e-5, op: (x) => nk.layerNorm(x, { axis: [0, 1] }) },
  // A conv kernel [kh, kw, in, out] standardized per output unit (what WeightStandardization computes), with a
  // fan-in of 576 (blocked sums): the first element of each unit is where the shift's residue collected.
  { name: 'layerNorm [3, 3, 64, 4] over axes [0, 1, 2]', shape: [3, 3, 64, 4], refShape: [3, 3, 64, 4], axes: [0, 1, 2], paramAxes: [0, 1, 2], center: true, eps: 1e-5, op: (x) => nk.layerNorm(x, { axis: [0, 1, 2] }) },
  { name: 'rmsNorm [4, 37]', shape: [4, 37], refShape: [4, 37], axes: [1], paramAxes: [1], center: false, eps: 1e-6, op: (x) => nk.rmsNorm(x) },
  { name: 'groupNorm [2, 3, 5, 6] with 3 groups', shape: [2, 3, 5, 6], refShape: [2, 3, 5, 3, 2], axes: [1, 2, 4], paramAxes: [3, 4], center: true, eps: 1e-5, op: (x) => nk.groupNorm(x, { groups: 3 }) },
  { name: 'groupNorm [2, 1, 1, 6] with 6 groups (slices of one element)', shape: [2, 1, 1, 6], refShape: [2, 1, 1, 6, 1], axes: [1, 2, 4], paramAxes: [3, 4], center: true, eps: 1e-5, op: (x) => nk.groupNorm(x, { groups: 6 }) },
  { name: 'instanceNorm [2, 5, 3, 4]', shape: [2, 5, 3, 4], refShape: [2, 5, 3, 4], axes: [1, 2], paramAxes: [3], center: true, eps: 1e-5, op: (x) => nk.instanceNorm(x) },
  { name: 'instanceNorm [2, 3, 4, 5] channels first', shape: [2, 3, 4, 5], refShape: [2, 3, 4, 5], axes: [2, 3], paramAxes: [1], center: true, eps: 1e-5, op: (x) => nk.instanceNorm(x, { axis: 1 }) },
  { name: 'batchNorm (training) [5, 3, 8]', shape: [5, 3, 8], refShape: [5, 3, 8], axes: [0, 1], paramAxes: [2], center: true, eps: 1e-5, op: (x) => batchNormTraining(x, 1e-5) },
];

/** y and the gradient of sum(y * dy) with respect to x, as float64 arrays (no tensor left behind). */
function run(m: Method, xv: Float32Array, dyv: Float32Array): { y: Float64Array; dx: Float64Array } {
  let out: { y: Float64Array; dx: Float64Array } = { y: new Float64Array(0), dx: new Float64Array(0) };
  tf.tidy(() => {
    const x = tf.tensor(xv, m.shape);
    const dy = tf.tensor(dyv, m.shape);
    out = { y: f64(m.op(x)), dx: f64(tf.grad((a: tf.Tensor) => tf.sum(tf.mul(m.op(a), dy)))(x)) };
  });
  return out;
}

const maxAbs = (v: ArrayLike<number>) => Array.from(v).reduce((a, b) => Math.max(a, Math.abs(b)), 0);

/**
 * Compares y and dx with the reference at float32-rounding tolerances scaled to the data: |y| is O(1) and
 * dx is compared relative to its largest magnitude, so a residue collected by any one element shows.
 */
function assertExact(m: Method, xv: Float32Array, dyv: Float32Array, what: string, tol = { y: 3e-5, dx: 3e-5 }): void {
  const got = run(m, xv, dyv);
  const refY = refNormalize(xv, m.refShape, m.axes, m.eps, { center: m.center }).y;
  const refDx = refNormalizeBackward(xv, dyv, m.refShape, m.axes, m.eps, { center: m.center, paramAxes: m.paramAxes }).dx;
  assertClose(got.y, refY, { atol: tol.y * Math.max(maxAbs(refY), 1e-30), rtol: tol.y }, `${what}: y`);
  assertClose(got.dx, refDx, { atol: tol.dx * Math.max(maxAbs(refDx), 1e-30), rtol: tol.dx }, `${what}: dx`);
  // The first element of every slice: the shift of the shifted moments, where a residue would collect.
  const first = slices(m.refShape, m.axes).map((idx) => idx[0]);
  assertClose(
    first.map((i) => got.dx[i]),
    first.map((i) => refDx[i]),
    { atol: tol.dx * Math.max(maxAbs(refDx), 1e-30), rtol: tol.dx },
    `${what}: dx at the first element of each slice`,
  );
}

forEachBackend((backend) => {
  for (const fused of [true, false]) {
    describe(`${fused ? 'fused' : 'composite'} path on ${backend}: hard cases against float64`, () => {
      for (const m of METHODS) {
        it(`${m.name}: a large common offset (mean 1e4, std 1e-2)`, () => {
          withFused(fused, () => assertExact(m, randn(size(m.shape), 1, 1e4, 1e-2), randn(size(m.shape), 2), 'offset 1e4'));
        });

        it(`${m.name}: constant slices give a zero output and finite gradients`, () => {
          const xv = new Float32Array(size(m.shape)).fill(-3.5);
          withFused(fused, () => {
            const got = run(m, xv, randn(size(m.shape), 3));
            assert.ok(got.dx.every(Number.isFinite), 'finite dx');
          });
          if (m.center) withFused(fused, () => assertExact(m, xv, randn(size(m.shape), 3), 'constant', { y: 1e-6, dx: 1e-5 }));
        });

        it(`${m.name}: magnitudes from 1e-20 to 1e15, outputs and gradients`, () => {
          for (const scale of [1e-20, 1e-10, 1e-3, 1, 1e6, 1e15, 1e18]) {
            const xv = randn(size(m.shape), 4).map((v) => v * scale);
            withFused(fused, () => assertExact(m, xv, randn(size(m.shape), 5), `scale ${scale}`, { y: 3e-5, dx: 1e-4 }));
          }
        });

        it(`${m.name}: the gradient of sum(y) is 0 up to rounding, also at the first element of each slice`, () => {
          const xv = randn(size(m.shape), 6, 0.5, 2);
          const ones = new Float32Array(size(m.shape)).fill(1);
          const got = withFused(fused, () => run(m, xv, ones));
          const refDx = refNormalizeBackward(xv, ones, m.refShape, m.axes, m.eps, { center: m.center, paramAxes: m.paramAxes }).dx;
          // Centered methods: exactly 0 in float64; RMS: the reference's own values.
          assertClose(got.dx, refDx, { atol: 1e-5 * Math.max(1, maxAbs(refDx)), rtol: 1e-5 }, 'dx');
        });
      }

      it('layerNorm and rmsNorm on slices of 100000 elements (sums blocked), first elements included', () => {
        const n = 100000;
        const long: Method[] = [
          { name: 'layerNorm', shape: [2, n], refShape: [2, n], axes: [1], paramAxes: [1], center: true, eps: 1e-5, op: (x) => nk.layerNorm(x) },
          { name: 'rmsNorm', shape: [2, n], refShape: [2, n], axes: [1], paramAxes: [1], center: false, eps: 1e-6, op: (x) => nk.rmsNorm(x) },
        ];
        for (const m of long) {
          withFused(fused, () => assertExact(m, randn(2 * n, 7, 3, 1), randn(2 * n, 8), `${m.name} [2, ${n}]`, { y: 2e-6, dx: 1e-5 }));
          // The case where the shift collected the whole slice's residue: d/dx sum(layerNorm(x)) = 0 exactly.
          const ones = new Float32Array(2 * n).fill(1);
          const got = withFused(fused, () => run(m, randn(2 * n, 9, 3, 1), ones));
          if (m.center) assert.ok(maxAbs(got.dx) < 1e-4, `${m.name}: max |d sum(y) / dx| = ${maxAbs(got.dx)}, exact 0`);
        }
      });
    });
  }
});
