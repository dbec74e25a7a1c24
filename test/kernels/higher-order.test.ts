/**
 * Second-order gradients (gradient penalties such as WGAN-GP and R1, Hessian-vector products) through every
 * fused kernel and every registry layer, fused kernels on and off: the Hessian-vector product
 * tf.grad(x => sum(tf.grad(f)(x) * v)) against central finite differences of the first gradient along v.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend, withFused } from '../helpers/backends.js';
import { f64, randn } from '../helpers/numeric.js';

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** The first gradient of f at x + t v, as float64. */
function gradAlong(f: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor, v: tf.Tensor, t: number): Float64Array {
  return scoped(() => f64(tf.grad(f)(tf.add(x, tf.mul(v, t)))));
}

/** Runs `fn` in a tfjs scope that disposes every tensor it made, returning its plain result. */
function scoped<T>(fn: () => T): T {
  let out: T | undefined;
  tf.tidy(() => {
    out = fn();
  });
  return out as T;
}

/**
 * Asserts H v (second order through tfjs) matches (grad(x + h v) - grad(x - h v)) / 2h, where grad is the
 * first gradient of f (itself checked elsewhere), and that no tensor is left behind. Methods with a max or a
 * threshold are smooth only piecewise: an element whose difference quotient changes between steps h and h / 2
 * straddles a kink there and is not compared (at most a fifth of the elements may be).
 */
function assertHessianVector(f: (x: tf.Tensor) => tf.Scalar, shape: number[], seed: number, what: string, h = 1e-3): void {
  const xv = randn(size(shape), seed, 0.3, 1);
  const vv = randn(size(shape), seed + 1);
  const before = tf.memory().numTensors;
  const x = tf.tensor(xv, shape);
  const v = tf.tensor(vv, shape);
  const grad = tf.grad(f);
  const hv = scoped(() => f64(tf.grad((a: tf.Tensor) => tf.sum(tf.mul(grad(a), v)))(x)));
  const quotient = (step: number) => {
    const plus = gradAlong(f, x, v, step);
    const minus = gradAlong(f, x, v, -step);
    return plus.map((p, i) => (p - minus[i]) / (2 * step));
  };
  const fd = quotient(h);
  const fdHalf = quotient(h / 2);
  tf.dispose([x, v]);
  assert.equal(tf.memory().numTensors, before, `${what}: tensors left behind`);
  const scale = Math.max(...Array.from(fd, Math.abs), 1e-3);
  assert.ok(hv.every(Number.isFinite), `${what}: finite H v`);
  const smooth = Array.from(fd.keys()).filter((i) => Math.abs(fd[i] - fdHalf[i]) <= 5e-3 * scale);
  assert.ok(smooth.length >= 0.8 * fd.length, `${what}: only ${smooth.length} of ${fd.length} elements away from a kink`);
  let worst = 0;
  for (const i of smooth) worst = Math.max(worst, Math.abs(hv[i] - fd[i]) / scale);
  assert.ok(worst < 2e-2, `${what}: H v differs from finite differences by ${worst.toExponential(2)} of max |H v| = ${scale.toExponential(2)}`);
}

/**
 * For a layer with trainable weights W: the gradient in W of the penalty p(W) = sum(grad_x f(x; W) * v)
 * (a gradient penalty's second-order term) against central differences of p along a random direction U.
 */
function assertPenaltyWeightGradient(layer: tfl.layers.Layer, apply: (x: tf.Tensor) => tf.Tensor, shape: number[], seed: number, what: string, h = 1e-3): void {
  const variables = layer.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
  if (variables.length === 0) return;
  const x = tf.tensor(randn(size(shape), seed, 0.3, 1), shape);
  const v = tf.tensor(randn(size(shape), seed + 1), shape);
  const penalty = () => tf.sum(tf.mul(tf.grad((a: tf.Tensor) => objective(apply(a), 12))(x), v)) as tf.Scalar;
  const before = tf.memory().numTensors;
  const { value, grads } = tf.variableGrads(penalty, variables);
  const directions = variables.map((w, k) => tf.tensor(randn(w.size, seed + 10 + k), w.shape));
  let analytic = 0;
  variables.forEach((w, k) => {
    // A weight the penalty does not depend on has no gradient (null): zero.
    if (grads[w.name]) analytic += tf.tidy(() => tf.sum(tf.mul(grads[w.name], directions[k])).dataSync()[0]);
  });
  const original = variables.map((w) => tf.clone(w));
  const shifted = (t: number) => {
    variables.forEach((w, k) => {
      const moved = tf.tidy(() => tf.add(original[k], tf.mul(directions[k], t)));
      w.assign(moved);
      moved.dispose();
    });
    return tf.tidy(() => penalty().dataSync()[0]);
  };
  const fd = (shifted(h) - shifted(-h)) / (2 * h);
  // Stable between steps h and h / 2 unless the step crosses a kink (a max or threshold in the weights).
  const fdHalf = (shifted(h / 2) - shifted(-h / 2)) / h;
  variables.forEach((w, k) => w.assign(original[k]));
  tf.dispose([value, ...Object.values(grads).filter((g) => g), ...directions, ...original]);
  assert.equal(tf.memory().numTensors, before, `${what}: tensors left behind by the weight gradient of the penalty`);
  assert.ok(Number.isFinite(analytic), `${what}: finite penalty gradient in the weights`);
  if (Math.abs(fd - fdHalf) > 5e-3 * Math.max(Math.abs(fd), 1e-2)) {
    // The direction crosses a kink: try another one.
    assert.ok(seed < 1000, `${what}: every direction tried crosses a kink`);
    tf.dispose([x, v]);
    assertPenaltyWeightGradient(layer, apply, shape, seed + 100, what, h);
    return;
  }
  assert.ok(Math.abs(analytic - fd) <= 2e-2 * Math.max(Math.abs(fd), 1e-2), `${what}: d penalty / dW along U = ${analytic}, finite differences ${fd}`);
  tf.dispose([x, v]);
}

/** A smooth, nonlinear scalar of y so that second derivatives through the op are not trivially zero. */
function objective(y: tf.Tensor, seed: number): tf.Scalar {
  const w = tf.tensor(randn(y.size, seed), y.shape);
  return tf.sum(tf.mul(tf.sin(y), w));
}

interface OpCase {
  name: string;
  shape: number[];
  op: (x: tf.Tensor, gamma: tf.Tensor) => tf.Tensor;
  paramShape: number[];
}

const OPS: OpCase[] = [
  { name: 'layerNorm', shape: [3, 10], paramShape: [10], op: (x, g) => nk.layerNorm(x, { gamma: g, beta: tf.onesLike(g) }) },
  { name: 'rmsNorm', shape: [3, 10], paramShape: [10], op: (x, g) => nk.rmsNorm(x, { gamma: g }) },
  { name: 'groupNorm', shape: [2, 3, 2, 6], paramShape: [6], op: (x, g) => nk.groupNorm(x, { groups: 3, gamma: g, beta: tf.onesLike(g) }) },
  { name: 'instanceNorm', shape: [2, 3, 2, 4], paramShape: [4], op: (x, g) => nk.instanceNorm(x, { gamma: g, beta: tf.onesLike(g) }) },
  {
    name: 'batchNorm (training)',
    shape: [4, 3, 5],
    paramShape: [5],
    op: (x, g) => {
      const r = nk.batchNorm(x, { training: true, movingMean: tf.zeros([5]), movingVariance: tf.ones([5]), gamma: g, beta: tf.onesLike(g) });
      return r.y;
    },
  },
];

/** Registry layers with a config and an input shape (channels last); weight wrappers wrap a dense layer. */
const LAYERS: Array<{ name: string; config: () => Record<string, unknown>; shape: number[]; training?: boolean }> = [
  { name: 'layer', config: () => ({}), shape: [2, 3, 4, 8] },
  { name: 'rms', config: () => ({}), shape: [2, 3, 4, 8] },
  { name: 'srms', config: () => ({}), shape: [2, 3, 4, 8] },
  { name: 'crms', config: () => ({}), shape: [2, 3, 4, 8] },
  { name: 'scale', config: () => ({}), shape: [2, 3, 4, 8] },
  { name: 'group', config: () => ({ groups: 4 }), shape: [2, 3, 4, 8] },
  { name: 'instance', config: () => ({}), shape: [2, 3, 4, 8] },
  { name: 'batch', config: () => ({}), shape: [2, 3, 4, 8], training: true },
  { name: 'bcn', config: () => ({ groups: 4 }), shape: [2, 3, 4, 8], training: true },
  { name: 'ibn-a', config: () => ({}), shape: [2, 3, 4, 8], training: true },
  { name: 'evonorm-b0', config: () => ({}), shape: [2, 3, 4, 8], training: true },
  { name: 'evonorm-s0', config: () => ({ groups: 4 }), shape: [2, 3, 4, 8] },
  { name: 'frn', config: () => ({}), shape: [2, 3, 4, 8] },
  { name: 'region-l', config: () => ({}), shape: [2, 3, 4, 8], training: true },
  { name: 'dyt', config: () => ({}), shape: [2, 3, 4, 8] },
  { name: 'lrn', config: () => ({ size: 3, convention: 'caffe' }), shape: [2, 3, 4, 8] },
  { name: 'lrn', config: () => ({ size: 4, convention: 'caffe' }), shape: [2, 3, 4, 8] },
  { name: 'power', config: () => ({}), shape: [2, 3, 4, 8] },
  { name: 'unified', config: () => ({}), shape: [2, 3, 4, 8] },
  { name: 'online', config: () => ({}), shape: [2, 3, 4, 8] },
  { name: 'adab2n', config: () => ({ numTasks: 1 }), shape: [2, 3, 4, 8] },
  { name: 'alpha-bn', config: () => ({ sourceWeight: 0.5 }), shape: [2, 3, 4, 8] },
  { name: 'ln-removal', config: () => ({}), shape: [2, 3, 8] },
  { name: 'weight-standardization', config: () => ({ layer: tfl.layers.dense({ units: 5, activation: 'linear', kernelInitializer: tfl.initializers.glorotUniform({ seed: 7 }) }) }), shape: [3, 8] },
  { name: 'scaled-weight-standardization', config: () => ({ layer: tfl.layers.dense({ units: 5, activation: 'linear', kernelInitializer: tfl.initializers.glorotUniform({ seed: 7 }) }) }), shape: [3, 8] },
  { name: 'weight-norm', config: () => ({ layer: tfl.layers.dense({ units: 5, activation: 'linear', kernelInitializer: tfl.initializers.glorotUniform({ seed: 7 }) }) }), shape: [3, 8] },
  { name: 'spectral-norm', config: () => ({ layer: tfl.layers.dense({ units: 5, activation: 'linear', kernelInitializer: tfl.initializers.glorotUniform({ seed: 7 }) }) }), shape: [3, 8] },
  { name: 'nap', config: () => ({ layer: tfl.layers.dense({ units: 5, activation: 'linear', kernelInitializer: tfl.initializers.glorotUniform({ seed: 7 }) }) }), shape: [3, 8] },
  { name: 'weight-compander', config: () => ({ layer: tfl.layers.dense({ units: 5, activation: 'linear', kernelInitializer: tfl.initializers.glorotUniform({ seed: 7 }) }) }), shape: [3, 8] },
];

forEachBackend((backend) => {
  for (const fused of [true, false]) {
    describe(`second-order gradients, ${fused ? 'fused kernels on' : 'composite path'} (${backend})`, () => {
      for (const [i, c] of OPS.entries()) {
        it(`${c.name}: H v in x, and in gamma, match finite differences of the first gradient`, () => {
          const gv = randn(size(c.paramShape), 100 + i, 1, 0.3);
          const xv = randn(size(c.shape), 200 + i);
          withFused(fused, () => {
            assertHessianVector((x) => tf.tidy(() => objective(c.op(x, tf.tensor(gv, c.paramShape)), 7)), c.shape, 10 + i, `${c.name} (x)`);
            assertHessianVector((g) => tf.tidy(() => objective(c.op(tf.tensor(xv, c.shape), g), 8)), c.paramShape, 20 + i, `${c.name} (gamma)`);
          });
        });

        it(`${c.name}: a WGAN-GP style penalty (gradient norm of the input gradient) trains gamma`, () => {
          withFused(fused, () => {
            const x = tf.tensor(randn(size(c.shape), 300 + i), c.shape);
            const g = tf.variable(tf.tensor(randn(size(c.paramShape), 400 + i, 1, 0.3), c.paramShape));
            const before = tf.memory().numTensors;
            const penalty = () => {
              const dx = tf.grad((a: tf.Tensor) => objective(c.op(a, g), 9))(x);
              return tf.square(tf.sub(tf.sqrt(tf.sum(tf.square(dx))), 1)) as tf.Scalar;
            };
            const { value, grads } = tf.variableGrads(penalty, [g]);
            assert.ok(Number.isFinite(value.dataSync()[0]));
            assert.ok(f64(grads[g.name]).every(Number.isFinite), 'finite penalty gradient');
            tf.dispose([value, grads[g.name]]);
            assert.equal(tf.memory().numTensors, before, 'tensors left behind');
            tf.dispose([x, g]);
          });
        });
      }

      for (const [i, c] of LAYERS.entries()) {
        it(`registry '${c.name}' layer: H v matches finite differences of the first gradient`, () => {
          withFused(fused, () => {
            const layer = nk.createNorm(c.name, c.config());
            const warm = tf.zeros(c.shape);
            tf.dispose(layer.apply(warm, { training: c.training ?? false }) as tf.Tensor);
            warm.dispose();
            const apply = (x: tf.Tensor) => layer.apply(x, { training: c.training ?? false }) as tf.Tensor;
            assertHessianVector((x) => tf.tidy(() => objective(apply(x), 11)), c.shape, 30 + i, c.name);
            assertPenaltyWeightGradient(layer, apply, c.shape, 40 + i, c.name);
            layer.dispose();
          });
        });
      }
    });
  }
});
