import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

// ---------- float64 reference, written from the paper (docs/power-norm.md) and the reference code ----------
const GEPS = 1e-5;

/** Per token (row of C), per group: xs = x / sqrt(mean_group(x^2) + 1e-5). */
function refGroupScale(x: ArrayLike<number>, C: number, G: number): Float64Array {
  const out = new Float64Array(x.length);
  const cg = C / G;
  for (let t = 0; t < x.length / C; t++) {
    for (let g = 0; g < G; g++) {
      let ms = 0;
      for (let k = 0; k < cg; k++) ms += x[t * C + g * cg + k] ** 2;
      const r = 1 / Math.sqrt(ms / cg + GEPS);
      for (let k = 0; k < cg; k++) out[t * C + g * cg + k] = x[t * C + g * cg + k] * r;
    }
  }
  return out;
}

/** Exact backward of refGroupScale: dx = r * (d - xs * mean_group(d * xs)). */
function refGroupScaleBackward(x: ArrayLike<number>, d: ArrayLike<number>, C: number, G: number): Float64Array {
  const xs = refGroupScale(x, C, G);
  const out = new Float64Array(x.length);
  const cg = C / G;
  for (let t = 0; t < x.length / C; t++) {
    for (let g = 0; g < G; g++) {
      let ms = 0;
      let m = 0;
      for (let k = 0; k < cg; k++) {
        const i = t * C + g * cg + k;
        ms += x[i] ** 2;
        m += d[i] * xs[i];
      }
      const r = 1 / Math.sqrt(ms / cg + GEPS);
      m /= cg;
      for (let k = 0; k < cg; k++) {
        const i = t * C + g * cg + k;
        out[i] = r * (d[i] - xs[i] * m);
      }
    }
  }
  return out;
}

interface RefState { phi: Float64Array; ema: Float64Array }
interface RefOpts { C: number; G: number; eps: number; aF: number; aB: number; warmup: number; gamma: ArrayLike<number>; beta: ArrayLike<number>; mask?: ArrayLike<number> }

/** One training step: forward, running update, approximate backward (all float64). */
function refTrainStep(x: ArrayLike<number>, dy: ArrayLike<number>, it: number, s: RefState, o: RefOpts) {
  const { C } = o;
  const M = x.length / C;
  const xs = refGroupScale(x, C, o.G);
  const psi2 = new Float64Array(C);
  let count = 0;
  for (let t = 0; t < M; t++) {
    const w = o.mask ? o.mask[t] : 1;
    count += w;
    for (let c = 0; c < C; c++) psi2[c] += w * xs[t * C + c] ** 2;
  }
  for (let c = 0; c < C; c++) psi2[c] /= count;
  const denom = it <= o.warmup ? psi2 : s.phi;
  const z = xs.map((v, i) => v / Math.sqrt(denom[i % C] + o.eps));
  const y = z.map((v, i) => o.gamma[i % C] * v + o.beta[i % C]);
  const phi = Float64Array.from(s.phi);
  for (let c = 0; c < C; c++) {
    if (it < o.warmup) phi[c] = (phi[c] * (it - 1)) / it + psi2[c] / it;
    phi[c] = o.aF * phi[c] + (1 - o.aF) * psi2[c];
  }
  const gt = new Float64Array(x.length);
  const ema = Float64Array.from(s.ema);
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  for (let i = 0; i < x.length; i++) {
    const c = i % C;
    gt[i] = o.gamma[c] * dy[i] - (1 - o.aB) * s.ema[c] * z[i];
    ema[c] += (gt[i] * z[i]) / M;
    dgamma[c] += dy[i] * z[i];
    dbeta[c] += dy[i];
  }
  const dxs = gt.map((v, i) => v / Math.sqrt(psi2[i % C] + o.eps));
  return { y, phi, ema, dx: refGroupScaleBackward(x, dxs, C, o.G), dgamma, dbeta };
}

/** Inference: y = gamma * xs / sqrt(phi + eps) + beta. */
function refInfer(x: ArrayLike<number>, phi: ArrayLike<number>, o: RefOpts): Float64Array {
  const xs = refGroupScale(x, o.C, o.G);
  return xs.map((v, i) => (o.gamma[i % o.C] * v) / Math.sqrt(phi[i % o.C] + o.eps) + o.beta[i % o.C]);
}

describe('powerNorm float64 reference', () => {
  it('group-scaling backward matches finite differences of its forward', () => {
    const x = Float64Array.from(randn(24, 1));
    const d = Float64Array.from(randn(24, 2));
    const fd = finiteDifference((v) => refGroupScale(v, 6, 2).reduce((s, y, i) => s + y * d[i], 0), x);
    assertClose(refGroupScaleBackward(x, d, 6, 2), fd, { atol: 1e-7, rtol: 1e-6 }, 'dx');
  });
});

type StepOut = { y: Float64Array; phi: Float64Array; ema: Float64Array; dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array };

/** Runs one training step of the op with the given state, returning outputs, new state and gradients. */
function opTrainStep(xv: Float32Array, dyv: Float32Array, shape: number[], it: number, s: RefState, o: RefOpts): StepOut {
  const C = o.C;
  let ema: Float64Array = new Float64Array(C);
  let out: StepOut | undefined;
  tf.tidy(() => {
    const x = tf.tensor(xv, shape);
    const gamma = tf.tensor(Float32Array.from(o.gamma), [C]);
    const beta = tf.tensor(Float32Array.from(o.beta), [C]);
    const opts = {
      training: true, iteration: it, runningPhi: tf.tensor(Float32Array.from(s.phi), [C]), emaGz: tf.tensor(Float32Array.from(s.ema), [C]),
      warmupIters: o.warmup, alphaForward: o.aF, alphaBackward: o.aB, epsilon: o.eps, groups: o.G,
      ...(o.mask ? { mask: tf.tensor(Float32Array.from(o.mask), shape.slice(0, -1)) } : {}),
      onEmaGz: (t: tf.Tensor) => { ema = f64(t); },
    };
    const { y, runningPhi } = nk.powerNorm(x, { ...opts, gamma, beta });
    const dy = tf.tensor(dyv, shape);
    const [dx, dg, db] = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const r = nk.powerNorm(a, { ...opts, gamma: g, beta: b });
      r.runningPhi.dispose();
      return tf.sum(tf.mul(r.y, dy));
    })([x, gamma, beta]);
    out = { y: f64(y), phi: f64(runningPhi), ema, dx: f64(dx), dgamma: f64(dg), dbeta: f64(db) };
  });
  return out as StepOut;
}

function compareStep(got: StepOut, want: ReturnType<typeof refTrainStep>, tol = 1e-4): void {
  assertClose(got.y, want.y, { atol: tol, rtol: tol }, 'y');
  assertClose(got.phi, want.phi, { atol: tol, rtol: tol }, 'runningPhi');
  assertClose(got.ema, want.ema, { atol: tol, rtol: tol }, 'emaGz');
  assertClose(got.dx, want.dx, { atol: tol, rtol: tol }, 'dx (approximate backward)');
  assertClose(got.dgamma, want.dgamma, { atol: tol, rtol: tol }, 'dgamma');
  assertClose(got.dbeta, want.dbeta, { atol: tol, rtol: tol }, 'dbeta');
}

forEachBackend(() => {
  describe('powerNorm op', () => {
    const shape = [3, 4, 6];
    const C = 6;
    const base: RefOpts = { C, G: 2, eps: 1e-5, aF: 0.9, aB: 0.8, warmup: 3, gamma: randn(C, 3, 1, 0.5), beta: randn(C, 4) };
    const state0: RefState = { phi: Float64Array.from(randn(C, 5, 2, 0.3)), ema: Float64Array.from(randn(C, 6, 0, 0.5)) };

    it('training step in warm-up: batch statistic, running update and approximate backward match float64', () => {
      const xv = randn(72, 10, 0.5, 2);
      const dyv = randn(72, 11);
      compareStep(opTrainStep(xv, dyv, shape, 2, state0, base), refTrainStep(xv, dyv, 2, state0, base));
    });

    it('training step after warm-up: forward divides by the running value, backward by the batch one', () => {
      const xv = randn(72, 12, 0, 3);
      const dyv = randn(72, 13);
      compareStep(opTrainStep(xv, dyv, shape, 7, state0, base), refTrainStep(xv, dyv, 7, state0, base));
    });

    it('padding mask: excluded from psi2, still normalized, included in the backward means', () => {
      const mask = Float64Array.from({ length: 12 }, (_, i) => (i % 4 === 3 || i === 5 ? 0 : 1));
      const o = { ...base, mask };
      const xv = randn(72, 14);
      const dyv = randn(72, 15);
      for (const it of [1, 9]) compareStep(opTrainStep(xv, dyv, shape, it, state0, o), refTrainStep(xv, dyv, it, state0, o));
    });

    it('a bool mask (as Keras passes it) gives the same result as the 0/1 float mask', () => {
      const maskValues = Array.from({ length: 12 }, (_, i) => i % 3 !== 2);
      tf.tidy(() => {
        const x = tf.tensor(randn(72, 16), shape);
        const run = (mask: tf.Tensor) => {
          const r = nk.powerNorm(x, { training: true, iteration: 1, groups: 2, mask });
          return [f64(r.y), f64(r.runningPhi)];
        };
        const [yb, pb] = run(tf.tensor(maskValues, [3, 4], 'bool'));
        const [yf, pf] = run(tf.tensor(maskValues.map(Number), [3, 4]));
        assertClose(yb, yf, { atol: 0 }, 'y');
        assertClose(pb, pf, { atol: 0 }, 'runningPhi');
      });
    });

    it('state trajectory over warm-up and beyond follows the reference (cumulative average, then EMA)', () => {
      let sOp: RefState = { phi: new Float64Array(C).fill(1), ema: new Float64Array(C) };
      let sRef: RefState = { phi: new Float64Array(C).fill(1), ema: new Float64Array(C) };
      for (let it = 1; it <= 6; it++) {
        const xv = randn(72, 100 + it, 0, 1 + it);
        const dyv = randn(72, 200 + it);
        const got = opTrainStep(xv, dyv, shape, it, sOp, base);
        const want = refTrainStep(xv, dyv, it, sRef, base);
        compareStep(got, want, 3e-4);
        sOp = { phi: got.phi, ema: got.ema };
        sRef = { phi: want.phi, ema: want.ema };
      }
    });

    it('inference uses running_phi and its gradient matches finite differences', () => {
      const o = { ...base, G: 3 };
      const xv = randn(72, 20);
      const phi = Float64Array.from(randn(C, 21, 1.5, 0.2));
      tf.tidy(() => {
        const args = { runningPhi: tf.tensor(Float32Array.from(phi), [C]), groups: 3, gamma: tf.tensor(o.gamma, [C]), beta: tf.tensor(o.beta, [C]) };
        const r = nk.powerNorm(tf.tensor(xv, shape), args);
        assertClose(f64(r.y), refInfer(xv, phi, o), { atol: 1e-5, rtol: 1e-5 }, 'y');
        assertClose(f64(r.runningPhi), phi, { atol: 1e-6 }, 'runningPhi unchanged');
        const dyv = randn(72, 22);
        const loss = (v: Float64Array) => refInfer(v, phi, o).reduce((s, y, i) => s + y * dyv[i], 0);
        const fd = finiteDifference(loss, Float64Array.from(xv));
        const dx = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(nk.powerNorm(a, args).y, tf.tensor(dyv, shape))))(tf.tensor(xv, shape));
        assertClose(f64(dx), fd, { atol: 1e-4, rtol: 1e-3 }, 'dx');
      });
    });

    it('holds on magnitudes from 1e-20 to 1e15 and on a large common offset', () => {
      const o = { ...base, G: 1, gamma: new Float64Array(C).fill(1), beta: new Float64Array(C) };
      for (const [scale, mean] of [[1e-20, 0], [1e-6, 0], [1, 0], [1e6, 0], [1e15, 0], [1, 1e4]]) {
        const xv = randn(72, 30).map((v) => mean + v * scale);
        const dyv = randn(72, 31);
        const s: RefState = { phi: new Float64Array(C).fill(1), ema: new Float64Array(C) };
        const got = opTrainStep(xv, dyv, shape, 1, s, o);
        const want = refTrainStep(xv, dyv, 1, s, o);
        assertClose(got.y, want.y, { atol: 1e-25, rtol: 1e-4 }, `y at scale ${scale}, offset ${mean}`);
        assert.ok(got.dx.every(Number.isFinite), 'finite dx');
        assertClose(got.dx, want.dx, { atol: 1e-4 * Math.max(...want.dx.map(Math.abs)), rtol: 1e-3 }, `dx at scale ${scale}, offset ${mean}`);
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3, 4]);
      assertThrowsMentioning(() => nk.powerNorm(x, { training: true }), ['powerNorm', "'iteration'"]);
      assertThrowsMentioning(() => nk.powerNorm(x, { training: true, iteration: 0 }), ["'iteration'", '>= 1']);
      assertThrowsMentioning(() => nk.powerNorm(x, { groups: 3 }), ["'groups'", 'divisor', '4']);
      assertThrowsMentioning(() => nk.powerNorm(x, { alphaForward: 1.5 }), ["'alphaForward'", '[0, 1]']);
      assertThrowsMentioning(() => nk.powerNorm(x, { alphaBackward: -0.1 }), ["'alphaBackward'"]);
      assertThrowsMentioning(() => nk.powerNorm(x, { epsilon: 0 }), ["'epsilon'", '> 0']);
      assertThrowsMentioning(() => nk.powerNorm(x, { warmupIters: 1.5 }), ["'warmupIters'"]);
      assertThrowsMentioning(() => nk.powerNorm(x, { runningPhi: tf.ones([3]) }), ["'runningPhi'", '[4]', '[3]']);
      assertThrowsMentioning(() => nk.powerNorm(x, { emaGz: tf.ones([4, 1]) }), ["'emaGz'", '[4]']);
      assertThrowsMentioning(() => nk.powerNorm(x, { gamma: tf.ones([2]) }), ["'gamma'", '[4]']);
      assertThrowsMentioning(() => nk.powerNorm(x, { mask: tf.ones([2, 4]) }), ["'mask'", '[2, 3]']);
      assertThrowsMentioning(() => nk.powerNorm(x, { training: 'yes' } as never), ["'training'", 'boolean']);
      assertThrowsMentioning(() => nk.powerNorm(tf.zeros([4], 'float32')), ["'x'", 'rank']);
      assertThrowsMentioning(() => nk.powerNorm(tf.zeros([2, 4], 'int32')), ["'x'", 'float32']);
      assertThrowsMentioning(() => nk.powerNorm(x, { momentum: 0.1 } as never), ["'momentum'"]);
      x.dispose();
    });

    it('leaks no tensors in forward, training gradient (with the ema callback) and inference', async () => {
      const x = tf.tensor(randn(24, 70), [4, 6]);
      const g = tf.ones([6]);
      let kept: tf.Tensor | null = null;
      await assertNoLeak(() => {
        const r = nk.powerNorm(x, { training: true, iteration: 2, gamma: g });
        tf.dispose([r.y, r.runningPhi]);
      }, 'training forward');
      await assertNoLeak(() => {
        const r = nk.powerNorm(x);
        tf.dispose([r.y, r.runningPhi]);
      }, 'inference forward');
      const before = tf.memory().numTensors;
      tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => {
        const r = nk.powerNorm(a, { training: true, iteration: 2, gamma: b, onEmaGz: (t) => { kept = tf.keep(tf.clone(t)); } });
        return tf.sum(r.y);
      })([x, g]));
      assert.ok(kept !== null, 'onEmaGz was called');
      assert.equal(tf.memory().numTensors, before + 1, 'only the cloned emaGz survives the gradient');
      tf.dispose([kept as unknown as tf.Tensor, x, g]);
    });
  });

  describe('PowerNormalization layer', () => {
    it('training calls update running_phi, iterations and ema_gz like the op; inference uses running_phi', () => {
      const layer = new nk.PowerNormalization({ groups: 2, warmupIters: 5, alphaBackward: 0.5 });
      const xv = randn(24, 80);
      const x = tf.tensor(xv, [6, 4]);
      layer.apply(x);
      const names = layer.weights.map((w) => w.originalName.split('/').pop());
      assert.deepEqual(names, ['gamma', 'beta', 'running_phi', 'ema_gz', 'iterations']);
      assert.deepEqual(layer.trainableWeights.map((w) => w.originalName.split('/').pop()), ['gamma', 'beta']);
      const dyv = randn(24, 81);
      const o: RefOpts = { C: 4, G: 2, eps: 1e-5, aF: 0.9, aB: 0.5, warmup: 5, gamma: [1, 1, 1, 1], beta: [0, 0, 0, 0] };
      let s: RefState = { phi: new Float64Array(4).fill(1), ema: new Float64Array(4) };
      for (let it = 1; it <= 2; it++) {
        const dx = tf.tidy(() => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(layer.apply(a, { training: true }) as tf.Tensor, tf.tensor(dyv, [6, 4]))))(x));
        const want = refTrainStep(xv, dyv, it, s, o);
        assertClose(f64(dx), want.dx, { atol: 1e-4, rtol: 1e-4 }, `dx step ${it}`);
        dx.dispose();
        const [, , phi, ema, iters] = layer.getWeights();
        assertClose(f64(phi), want.phi, { atol: 1e-5, rtol: 1e-5 }, `running_phi step ${it}`);
        assertClose(f64(ema), want.ema, { atol: 1e-5, rtol: 1e-5 }, `ema_gz step ${it}`);
        assert.equal(iters.dataSync()[0], it);
        s = { phi: want.phi, ema: want.ema };
      }
      const y = tf.tidy(() => layer.apply(x) as tf.Tensor);
      assertClose(f64(y), refInfer(xv, s.phi, o), { atol: 1e-5, rtol: 1e-5 }, 'inference y');
      tf.dispose([x, y]);
      layer.dispose();
    });

    it('is what the registry builds for "power" and its aliases', () => {
      for (const name of ['power', 'pn', 'PowerNormalization']) {
        const layer = nk.createNorm(name, { warmupIters: 3 });
        assert.ok(layer instanceof nk.PowerNormalization);
        assert.equal((layer as nk.PowerNormalization).warmupIters, 3);
      }
      assert.ok(nk.listNorms().some((e) => e.name === 'power' && e.doc === 'docs/power-norm.md'));
      assertThrowsMentioning(() => new nk.PowerNormalization({ alphaForward: 2 }), ['PowerNormalization', "'alphaForward'"]);
    });
  });
});

runLayerTest(nk.PowerNormalization, { make: () => new nk.PowerNormalization(), inputShape: [3, 4], trainable: 2, nonTrainable: 3,
  weights: [['gamma', [4]], ['beta', [4]], ['running_phi', [4]], ['ema_gz', [4]], ['iterations', []]], supportsMasking: true });
runLayerTest(nk.PowerNormalization, { label: 'groups, warm-up, no beta',
  make: () => new nk.PowerNormalization({ groups: 2, alphaForward: 0.8, warmupIters: 2, epsilon: 1e-4, center: false }), inputShape: [3, 4], trainable: 1, nonTrainable: 3,
  weights: [['gamma', [4]], ['running_phi', [4]], ['ema_gz', [4]], ['iterations', []]], supportsMasking: true });
