import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { slices } from '../helpers/reference.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

type F64 = Float64Array<ArrayBufferLike>;

/** Biased variance of each slice over `axes`, written back per element. */
function varianceOver(x: ArrayLike<number>, shape: number[], axes: number[]): F64 {
  const out = new Float64Array(x.length);
  for (const idx of slices(shape, axes)) {
    const m = idx.reduce((s, i) => s + x[i], 0) / idx.length;
    const v = idx.reduce((s, i) => s + (x[i] - m) ** 2, 0) / idx.length;
    for (const i of idx) out[i] = v;
  }
  return out;
}

interface P { gamma: ArrayLike<number>; beta: ArrayLike<number>; v: ArrayLike<number> }

/** EvoNorm-B0 in float64 from the page: x / max(sqrt(s2_batch + eps), v x + sqrt(s2_inst + eps)) * gamma + beta. */
function refB0(x: ArrayLike<number>, shape: number[], p: P, eps: number, training: boolean, mv: ArrayLike<number>, momentum = 0.1): { y: F64; mv: F64 } {
  const C = shape[shape.length - 1];
  const lead = shape.slice(0, -1).map((_, i) => i);
  const batchVar = training ? varianceOver(x, shape, lead) : Float64Array.from(x, (_, i) => mv[i % C]);
  const instVar = varianceOver(x, shape, lead.slice(1));
  const y = Float64Array.from(x, (xv, i) => {
    const c = i % C;
    const d = Math.max(Math.sqrt(batchVar[i] + eps), p.v[c] * xv + Math.sqrt(instVar[i] + eps));
    return (xv / d) * p.gamma[c] + p.beta[c];
  });
  const n = x.length / C;
  const next = Float64Array.from(mv, (m, c) => (training ? (1 - momentum) * m + (momentum * batchVar[c] * n) / (n - 1) : m));
  return { y, mv: next };
}

/** EvoNorm-S0 in float64: x * sigmoid(v x) / sqrt(s2_group(x) + eps) * gamma + beta. */
function refS0(x: ArrayLike<number>, shape: number[], G: number, p: P, eps: number): F64 {
  const C = shape[shape.length - 1];
  const gshape = [...shape.slice(0, -1), G, C / G];
  const axes = gshape.map((_, i) => i).filter((i) => i !== 0 && i !== gshape.length - 2);
  const gv = varianceOver(x, gshape, axes);
  return Float64Array.from(x, (xv, i) => {
    const c = i % C;
    return ((xv / (1 + Math.exp(-p.v[c] * xv))) / Math.sqrt(gv[i] + eps)) * p.gamma[c] + p.beta[c];
  });
}

const shape = [2, 3, 2, 4];
const C = 4;
const n = 48;
const params: P = { gamma: randn(C, 1, 1, 0.3), beta: randn(C, 2), v: randn(C, 3, 1, 0.5) };
const mv0 = Float64Array.from(randn(C, 4), (a) => 0.5 + Math.abs(a));
const pt = () => ({ gamma: tf.tensor(params.gamma), beta: tf.tensor(params.beta), v: tf.tensor(params.v) });

forEachBackend(() => {
  describe('evoNormB0 op', () => {
    for (const training of [true, false]) {
      it(`${training ? 'training' : 'inference'}: output, moving variance and gradients match the float64 reference`, () => {
        const xv = randn(n, 10, 0.3, 1.5);
        const dyv = randn(n, 11);
        const want = refB0(xv, shape, params, 1e-3, training, mv0);
        const loss = (x: ArrayLike<number>, p: P) => refB0(x, shape, p, 1e-3, training, mv0).y.reduce((s, y, i) => s + y * dyv[i], 0);
        const fd = {
          x: finiteDifference((a) => loss(a, params), Float64Array.from(xv)),
          gamma: finiteDifference((a) => loss(xv, { ...params, gamma: a }), Float64Array.from(params.gamma)),
          beta: finiteDifference((a) => loss(xv, { ...params, beta: a }), Float64Array.from(params.beta)),
          v: finiteDifference((a) => loss(xv, { ...params, v: a }), Float64Array.from(params.v)),
        };
        tf.tidy(() => {
          const mv = tf.tensor(Float32Array.from(mv0));
          const r = nk.evoNormB0(tf.tensor(xv, shape), { training, movingVariance: mv, ...pt() });
          assertClose(f64(r.y), want.y, { atol: 1e-5, rtol: 1e-4 }, 'y');
          assertClose(f64(r.movingVariance), want.mv, { atol: 1e-6, rtol: 1e-5 }, 'movingVariance');
          const p = pt();
          const grads = tf.grads((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, v: tf.Tensor) =>
            tf.sum(tf.mul(nk.evoNormB0(x, { training, movingVariance: mv, gamma: g, beta: b, v }).y, tf.tensor(dyv, shape))))([tf.tensor(xv, shape), p.gamma, p.beta, p.v]);
          ['x', 'gamma', 'beta', 'v'].forEach((k, i) => assertClose(f64(grads[i]), fd[k as keyof typeof fd], { atol: 2e-4, rtol: 2e-3 }, `d${k}`));
        });
      });
    }

    it('holds on a large common offset and magnitudes 1e-3 to 1e6 (eps-dominated and scale-free regimes)', () => {
      for (const [mean, std] of [[1e4, 1e-2], [0, 1e-3], [0, 1e6], [5, 1]]) {
        const xv = randn(n, 20, mean, std);
        const want = refB0(xv, shape, params, 1e-3, true, mv0).y;
        tf.tidy(() => assertClose(f64(nk.evoNormB0(tf.tensor(xv, shape), { training: true, ...pt() }).y), want, { atol: 1e-4, rtol: 1e-3 }, `y at ${mean}, ${std}`));
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3, 4]);
      assertThrowsMentioning(() => nk.evoNormB0(tf.zeros([2, 4])), ['evoNormB0', "'x'", 'rank >= 3']);
      assertThrowsMentioning(() => nk.evoNormB0(x, { v: tf.ones([3]) }), ["'v'", '[4]', '[3]']);
      assertThrowsMentioning(() => nk.evoNormB0(x, { movingVariance: tf.ones([2]) }), ["'movingVariance'", '[4]']);
      assertThrowsMentioning(() => nk.evoNormB0(x, { momentum: 1.5 }), ["'momentum'"]);
      assertThrowsMentioning(() => nk.evoNormB0(x, { epsilon: 0 }), ["'epsilon'"]);
      assertThrowsMentioning(() => nk.evoNormB0(x, { groups: 2 } as never), ["'groups'"]);
      x.dispose();
    });
  });

  describe('evoNormS0 op', () => {
    for (const [G, s] of [[2, shape], [4, [2, 5, 4]], [1, [3, 2, 2, 4]]] as Array<[number, number[]]>) {
      it(`output and gradients match the float64 reference, groups ${G}, shape [${s}]`, () => {
        const size = s.reduce((a, b) => a * b, 1);
        const xv = randn(size, 30 + G, 0.2, 1.3);
        const dyv = randn(size, 31);
        const loss = (x: ArrayLike<number>, p: P) => refS0(x, s, G, p, 1e-5).reduce((acc, y, i) => acc + y * dyv[i], 0);
        const fdx = finiteDifference((a) => loss(a, params), Float64Array.from(xv));
        const fdv = finiteDifference((a) => loss(xv, { ...params, v: a }), Float64Array.from(params.v));
        tf.tidy(() => {
          assertClose(f64(nk.evoNormS0(tf.tensor(xv, s), { groups: G, ...pt() })), refS0(xv, s, G, params, 1e-5), { atol: 1e-5, rtol: 1e-4 }, 'y');
          const p = pt();
          const [dx, dv] = tf.grads((x: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(nk.evoNormS0(x, { groups: G, gamma: p.gamma, beta: p.beta, v }), tf.tensor(dyv, s))))([tf.tensor(xv, s), p.v]);
          assertClose(f64(dx), fdx, { atol: 2e-4, rtol: 2e-3 }, 'dx');
          assertClose(f64(dv), fdv, { atol: 2e-4, rtol: 2e-3 }, 'dv');
        });
      });
    }

    it('holds on a large common offset (group std computed with shifted moments)', () => {
      const xv = randn(n, 40, 1e3, 1e-2);
      tf.tidy(() => assertClose(f64(nk.evoNormS0(tf.tensor(xv, shape), { groups: 2, ...pt() })), refS0(xv, shape, 2, params, 1e-5), { atol: 1e-3, rtol: 2e-3 }, 'y'));
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3, 4]);
      assertThrowsMentioning(() => nk.evoNormS0(x), ['evoNormS0', "'groups'", 'divisor']);
      assertThrowsMentioning(() => nk.evoNormS0(x, { groups: 3 }), ["'groups'"]);
      assertThrowsMentioning(() => nk.evoNormS0(x, { groups: 2, gamma: tf.ones([2]) }), ["'gamma'", '[4]']);
      assertThrowsMentioning(() => nk.evoNormS0(x, { groups: 2, epsilon: -1 }), ["'epsilon'"]);
      assertThrowsMentioning(() => nk.evoNormS0(tf.zeros([2, 4]), { groups: 2 }), ["'x'", 'rank']);
      x.dispose();
    });

    it('both ops leak no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(n, 50), shape);
      await assertNoLeak(() => nk.evoNormS0(x, { groups: 2 }).dispose(), 'S0 forward');
      await assertNoLeak(() => tf.grad((a: tf.Tensor) => tf.sum(nk.evoNormS0(a, { groups: 2 })))(x).dispose(), 'S0 gradient');
      await assertNoLeak(() => {
        const r = nk.evoNormB0(x, { training: true });
        tf.dispose([r.y, r.movingVariance]);
      }, 'B0 forward');
      await assertNoLeak(() => tf.grad((a: tf.Tensor) => tf.sum(nk.evoNormB0(a, { training: true }).y))(x).dispose(), 'B0 gradient');
      x.dispose();
    });
  });

  describe('EvoNormB0 and EvoNormS0 layers', () => {
    it('B0 updates its moving variance in training and uses it at inference', () => {
      const layer = new nk.EvoNormB0();
      const xv = randn(n, 60, 1, 2);
      const x = tf.tensor(xv, shape);
      tf.dispose(layer.apply(x, { training: true }) as tf.Tensor);
      assert.deepEqual(layer.weights.map((w) => w.originalName.split('/').pop()), ['gamma', 'beta', 'v', 'moving_variance']);
      const plain: P = { gamma: [1, 1, 1, 1], beta: [0, 0, 0, 0], v: [1, 1, 1, 1] };
      const { mv } = refB0(xv, shape, plain, 1e-3, true, [1, 1, 1, 1]);
      assertClose(f64(layer.getWeights()[3]), mv, { atol: 1e-5, rtol: 1e-5 }, 'moving_variance');
      const y = layer.apply(x) as tf.Tensor;
      assertClose(f64(y), refB0(xv, shape, plain, 1e-3, false, mv).y, { atol: 1e-5, rtol: 1e-4 }, 'inference y');
      tf.dispose([x, y]);
    });

    it('are what the registry builds for "evonorm-b0" and "evonorm-s0"', () => {
      for (const name of ['evonorm-b0', 'EvoNormB0']) assert.ok(nk.createNorm(name) instanceof nk.EvoNormB0);
      for (const name of ['evonorm-s0', 'EvoNormS0']) assert.ok(nk.createNorm(name, { groups: 8 }) instanceof nk.EvoNormS0);
      assertThrowsMentioning(() => new nk.EvoNormS0({ groups: 0 }), ['EvoNormS0', "'groups'"]);
    });
  });
});

runLayerTest(nk.EvoNormB0, { make: () => new nk.EvoNormB0({ momentum: 0.05, epsilon: 1e-4, vInitializer: 'zeros' }), inputShape: [3, 3, 4], trainable: 3, nonTrainable: 1,
  weights: [['gamma', [4]], ['beta', [4]], ['v', [4]], ['moving_variance', [4]]], supportsMasking: true });
runLayerTest(nk.EvoNormS0, { make: () => new nk.EvoNormS0({ groups: 2, center: false }), inputShape: [3, 3, 4], trainable: 2, nonTrainable: 0,
  weights: [['gamma', [4]], ['v', [4]]], supportsMasking: true });
