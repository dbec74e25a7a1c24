import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { assertGradMatchesFiniteDifferences } from '../helpers/op-checks.js';
import { assertFitWithoutLeak } from '../helpers/layer-roundtrip.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

/** Runs `fn` in a tf.tidy scope and returns its (non-tensor) result. */
function scoped<T>(fn: () => T): T {
  let out: T | undefined;
  tf.tidy(() => {
    out = fn();
  });
  return out as T;
}

type Ecm = 'clamp' | 'layer-scaling' | 'none';

interface RefConfig {
  n: number;
  s: number; // spatial positions per sample
  c: number;
  afwd: number;
  abkw: number;
  eps: number;
  ecm: Ecm;
  clamp: number;
  lsEps: number;
  mu0: ArrayLike<number>;
  sigma20: ArrayLike<number>;
  u0: ArrayLike<number>;
  v0: ArrayLike<number>;
  gamma: ArrayLike<number>;
  beta: ArrayLike<number>;
}

/**
 * Float64 Online Normalization written from the paper's formulas (docs/online-norm.md), on [N, S, C]
 * (channels last, flat index (t*S + s)*C + c). Returns the output, the streams after the batch and, for
 * an upstream gradient dOut, the ON backward (dx, u, v) and the exact dgamma, dbeta.
 */
function refOnline(x: ArrayLike<number>, cfg: RefConfig, dOut?: ArrayLike<number>, training = true) {
  const { n, s, c } = cfg;
  const at = (t: number, p: number, ch: number) => (t * s + p) * c + ch;
  const mu = Array.from(cfg.mu0);
  const sigma2 = Array.from(cfg.sigma20);
  const y = new Float64Array(n * s * c);
  const scale = new Float64Array(n * c);
  for (let t = 0; t < n; t++) {
    for (let ch = 0; ch < c; ch++) {
      let m = 0;
      for (let p = 0; p < s; p++) m += x[at(t, p, ch)];
      m /= s;
      let s2 = 0;
      for (let p = 0; p < s; p++) s2 += (x[at(t, p, ch)] - m) ** 2;
      s2 /= s;
      scale[t * c + ch] = Math.sqrt(sigma2[ch] + cfg.eps);
      for (let p = 0; p < s; p++) y[at(t, p, ch)] = (x[at(t, p, ch)] - mu[ch]) / scale[t * c + ch];
      if (training) {
        const a = cfg.afwd;
        sigma2[ch] = a * sigma2[ch] + (1 - a) * s2 + a * (1 - a) * (m - mu[ch]) ** 2;
        mu[ch] = mu[ch] + (1 - a) * (m - mu[ch]);
      }
    }
  }
  const z = y.map((v, i) => cfg.gamma[i % c] * v + cfg.beta[i % c]);
  const out = new Float64Array(z.length);
  const lsScale = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    let m2 = 0;
    for (let i = t * s * c; i < (t + 1) * s * c; i++) m2 += z[i] * z[i];
    lsScale[t] = Math.sqrt(m2 / (s * c) + cfg.lsEps);
    for (let i = t * s * c; i < (t + 1) * s * c; i++) {
      if (cfg.ecm === 'clamp') out[i] = Math.min(cfg.clamp, Math.max(-cfg.clamp, z[i]));
      else if (cfg.ecm === 'layer-scaling') out[i] = z[i] / lsScale[t];
      else out[i] = z[i];
    }
  }
  if (!dOut) return { out, mu, sigma2 };
  // ECM backward, then affine backward (exact), then the ON gradient normalization.
  const dz = new Float64Array(z.length);
  for (let t = 0; t < n; t++) {
    let proj = 0;
    for (let i = t * s * c; i < (t + 1) * s * c; i++) proj += dOut[i] * out[i];
    proj /= s * c;
    for (let i = t * s * c; i < (t + 1) * s * c; i++) {
      if (cfg.ecm === 'clamp') dz[i] = Math.abs(z[i]) < cfg.clamp ? dOut[i] : 0;
      else if (cfg.ecm === 'layer-scaling') dz[i] = (dOut[i] - out[i] * proj) / lsScale[t];
      else dz[i] = dOut[i];
    }
  }
  const dgamma = new Float64Array(c);
  const dbeta = new Float64Array(c);
  const dy = new Float64Array(z.length);
  for (let i = 0; i < z.length; i++) {
    dgamma[i % c] += dz[i] * y[i];
    dbeta[i % c] += dz[i];
    dy[i] = cfg.gamma[i % c] * dz[i];
  }
  const u = Array.from(cfg.u0);
  const v = Array.from(cfg.v0);
  const dx = new Float64Array(z.length);
  const b = cfg.abkw;
  for (let t = 0; t < n; t++) {
    for (let ch = 0; ch < c; ch++) {
      if (!training) {
        for (let p = 0; p < s; p++) dx[at(t, p, ch)] = dy[at(t, p, ch)] / scale[t * c + ch];
        continue;
      }
      const g = new Float64Array(s);
      let gy = 0;
      for (let p = 0; p < s; p++) {
        g[p] = dy[at(t, p, ch)] - (1 - b) * v[ch] * y[at(t, p, ch)];
        gy += g[p] * y[at(t, p, ch)];
      }
      v[ch] += gy / s;
      let mdx = 0;
      for (let p = 0; p < s; p++) {
        const d = g[p] / scale[t * c + ch] - (1 - b) * u[ch];
        dx[at(t, p, ch)] = d;
        mdx += d;
      }
      u[ch] += mdx / s;
    }
  }
  return { out, mu, sigma2, dx, u, v, dgamma, dbeta };
}

function config(n: number, s: number, c: number, ecm: Ecm, seed: number, over: Partial<RefConfig> = {}): RefConfig {
  return {
    n, s, c, ecm,
    afwd: 0.8, abkw: 0.7, eps: 1e-5, clamp: 1.5, lsEps: 1e-5,
    mu0: randn(c, seed, 0, 0.3),
    sigma20: randn(c, seed + 1).map((v) => 0.5 + v * v),
    u0: randn(c, seed + 2, 0, 0.1),
    v0: randn(c, seed + 3, 0, 0.1),
    gamma: randn(c, seed + 4, 1, 0.3),
    beta: randn(c, seed + 5, 0, 0.2),
    ...over,
  };
}

/** Runs nk.onlineNorm forward and (when dOut is given) backward with the options of `cfg`. */
interface OpRun {
  out: Float64Array;
  mu: Float64Array;
  sigma2: Float64Array;
  dx?: Float64Array;
  dgamma?: Float64Array;
  dbeta?: Float64Array;
  control?: { u: Float64Array; v: Float64Array };
}

function runOp(xv: Float32Array, shape: number[], cfg: RefConfig, dOut?: Float32Array, training = true): OpRun {
  const c = cfg.c;
  let control: { u: Float64Array; v: Float64Array } | undefined;
  return scoped(() => {
    const state = { mu: tf.tensor(Float32Array.from(cfg.mu0), [c]), sigma2: tf.tensor(Float32Array.from(cfg.sigma20), [c]) };
    const gamma = tf.tensor(Float32Array.from(cfg.gamma), [c]);
    const beta = tf.tensor(Float32Array.from(cfg.beta), [c]);
    const opts = {
      state,
      control: { u: tf.tensor(Float32Array.from(cfg.u0), [c]), v: tf.tensor(Float32Array.from(cfg.v0), [c]) },
      onControl: (k: { u: tf.Tensor; v: tf.Tensor }) => {
        control = { u: f64(k.u), v: f64(k.v) };
      },
      training,
      alphaFwd: cfg.afwd,
      alphaBkw: cfg.abkw,
      epsilon: cfg.eps,
      ecm: cfg.ecm,
      clampValue: cfg.clamp,
      lsEpsilon: cfg.lsEps,
    };
    const r = nk.onlineNorm(tf.tensor(xv, shape), { ...opts, gamma, beta });
    const result = { out: f64(r.y), mu: f64(r.state.mu), sigma2: f64(r.state.sigma2) };
    if (!dOut) return { ...result, control };
    const dOutT = tf.tensor(dOut, shape);
    const [dx, dg, db] = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(nk.onlineNorm(a, { ...opts, gamma: g, beta: b }).y, dOutT)))([
      tf.tensor(xv, shape),
      gamma,
      beta,
    ]);
    return { ...result, dx: f64(dx), dgamma: f64(dg), dbeta: f64(db), control };
  });
}

const TOL = { atol: 2e-5, rtol: 2e-5 };

describe('onlineNorm float64 reference', () => {
  it('with one sample and zero control streams its backward is the exact gradient of its forward', () => {
    for (const ecm of ['none', 'layer-scaling'] as Ecm[]) {
      const cfg = config(1, 6, 3, ecm, 1, { u0: [0, 0, 0], v0: [0, 0, 0] });
      const x = Float64Array.from(randn(18, 2));
      const dOut = randn(18, 3);
      const loss = (v: Float64Array) => refOnline(v, cfg).out.reduce((acc, o, i) => acc + o * dOut[i], 0);
      assertClose(refOnline(x, cfg, dOut).dx!, finiteDifference(loss, x), { atol: 1e-7, rtol: 1e-6 }, `dx (${ecm})`);
      const lossG = (g: Float64Array) => refOnline(x, { ...cfg, gamma: g }).out.reduce((acc, o, i) => acc + o * dOut[i], 0);
      assertClose(refOnline(x, cfg, dOut).dgamma!, finiteDifference(lossG, Float64Array.from(cfg.gamma)), { atol: 1e-7, rtol: 1e-6 }, `dgamma (${ecm})`);
    }
  });
});

forEachBackend(() => {
  describe('onlineNorm op', () => {
    const shapes: Array<{ shape: number[]; s: number }> = [
      { shape: [5, 4], s: 1 },
      { shape: [4, 3, 2, 3], s: 6 },
      { shape: [3, 5, 2], s: 5 },
    ];
    for (const { shape, s } of shapes) {
      for (const ecm of ['clamp', 'layer-scaling', 'none'] as Ecm[]) {
        it(`forward, streams and ON backward match the float64 reference, shape [${shape}], ecm ${ecm}`, () => {
          const n = shape[0];
          const c = shape[shape.length - 1];
          const cfg = config(n, s, c, ecm, 10);
          const size = n * s * c;
          const xv = randn(size, 11, 0.2, 1.3);
          const dOut = randn(size, 12);
          const ref = refOnline(xv, cfg, dOut);
          const got = runOp(xv, shape, cfg, dOut);
          assertClose(got.out, ref.out, TOL, 'y');
          assertClose(got.mu, ref.mu, TOL, 'mu');
          assertClose(got.sigma2, ref.sigma2, TOL, 'sigma2');
          assertClose(got.dx!, ref.dx!, { atol: 1e-4, rtol: 1e-4 }, 'dx');
          assertClose(got.dgamma!, ref.dgamma!, { atol: 1e-4, rtol: 1e-4 }, 'dgamma');
          assertClose(got.dbeta!, ref.dbeta!, { atol: 1e-4, rtol: 1e-4 }, 'dbeta');
          assert.ok(got.control, 'onControl was called');
          assertClose(got.control.u, ref.u!, { atol: 1e-5, rtol: 1e-4 }, 'u');
          assertClose(got.control.v, ref.v!, { atol: 1e-5, rtol: 1e-4 }, 'v');
        });
      }
    }

    it('inference uses the given streams, leaves them unchanged and has the exact gradient (finite differences)', () => {
      const shape = [3, 2, 4];
      const cfg = config(3, 2, 4, 'layer-scaling', 20);
      const xv = randn(24, 21);
      const dOut = randn(24, 22);
      const ref = refOnline(xv, cfg, dOut, false);
      const got = runOp(xv, shape, cfg, dOut, false);
      assertClose(got.out, ref.out, TOL, 'y');
      assertClose(got.mu, Float64Array.from(Float32Array.from(cfg.mu0)), { atol: 0 }, 'mu');
      assertClose(got.sigma2, Float64Array.from(Float32Array.from(cfg.sigma20)), { atol: 0 }, 'sigma2');
      assert.equal(got.control, undefined, 'no control update in inference');
      assertClose(got.dx!, ref.dx!, { atol: 1e-4, rtol: 1e-4 }, 'dx');
      const loss = (v: Float64Array) => refOnline(v, cfg, undefined, false).out.reduce((acc, o, i) => acc + o * dOut[i], 0);
      assertClose(got.dx!, finiteDifference(loss, Float64Array.from(xv)), { atol: 1e-4, rtol: 1e-3 }, 'dx vs finite differences');
    });

    it('one-sample training gradient equals finite differences of the op itself', () => {
      const opts = { ecm: 'none' as const, state: undefined, epsilon: 1e-2 };
      assertGradMatchesFiniteDifferences((x) => nk.onlineNorm(x, opts).y, [1, 8, 2], randn(16, 30), randn(16, 31), { tol: { atol: 5e-3, rtol: 1e-2 } });
    });

    it('holds on a large common offset, constant samples and magnitudes from 1e-6 to 1e15', () => {
      const shape = [4, 8, 3];
      for (const { mean, std, label } of [
        { mean: 1e3, std: 1, label: 'offset 1e3' },
        { mean: 7.25, std: 0, label: 'constant' },
      ]) {
        const cfg = config(4, 8, 3, 'none', 40, { mu0: [mean, mean, mean], sigma20: [std * std + 0.5, 1, 2], afwd: 0.5 });
        const xv = randn(96, 41, mean, std);
        const ref = refOnline(xv, cfg, randn(96, 42));
        const got = runOp(xv, shape, cfg, randn(96, 42));
        assertClose(got.out, ref.out, { atol: 1e-3, rtol: 1e-4 }, `y (${label})`);
        assertClose(got.mu, ref.mu, { atol: 0, rtol: 1e-6 }, `mu (${label})`);
        assertClose(got.sigma2, ref.sigma2, { atol: 1e-4, rtol: 1e-4 }, `sigma2 (${label})`);
        assertClose(got.dx!, ref.dx!, { atol: 1e-3, rtol: 1e-3 }, `dx (${label})`);
      }
      for (const scale of [1e-6, 1, 1e6, 1e15]) {
        const cfg = config(4, 8, 3, 'none', 50, { mu0: [0, 0, 0], sigma20: [scale * scale, scale * scale, scale * scale], eps: 1e-30 });
        const xv = randn(96, 51).map((v) => v * scale);
        const ref = refOnline(xv, cfg);
        const got = runOp(xv, shape, cfg);
        assertClose(got.out, ref.out, { atol: 1e-5, rtol: 1e-4 }, `y at scale ${scale}`);
        assertClose(got.sigma2, ref.sigma2, { rtol: 1e-4 }, `sigma2 at scale ${scale}`);
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3]);
      assertThrowsMentioning(() => nk.onlineNorm(tf.zeros([3])), ['onlineNorm', "'x'", 'rank']);
      assertThrowsMentioning(() => nk.onlineNorm(tf.zeros([2, 3], 'int32')), ["'x'", 'float32']);
      assertThrowsMentioning(() => nk.onlineNorm(tf.zeros([0, 3])), ["'x'", 'at least one sample']);
      assertThrowsMentioning(() => nk.onlineNorm(x, { alphaFwd: 1.5 }), ["'alphaFwd'", '[0, 1]', '1.5']);
      assertThrowsMentioning(() => nk.onlineNorm(x, { alphaBkw: -0.1 }), ["'alphaBkw'"]);
      assertThrowsMentioning(() => nk.onlineNorm(x, { epsilon: 0 }), ["'epsilon'", '> 0']);
      assertThrowsMentioning(() => nk.onlineNorm(x, { ecm: 'ac' as never }), ["'ecm'", '"clamp"', '"ac"']);
      assertThrowsMentioning(() => nk.onlineNorm(x, { clampValue: 0 }), ["'clampValue'"]);
      assertThrowsMentioning(() => nk.onlineNorm(x, { state: { mu: tf.zeros([2]) } }), ["'state.mu'", '[3]', '[2]']);
      assertThrowsMentioning(() => nk.onlineNorm(x, { control: { v: tf.zeros([3, 1]) } }), ["'control.v'", '[3]']);
      assertThrowsMentioning(() => nk.onlineNorm(x, { gamma: tf.ones([4]) }), ["'gamma'", '[3]']);
      assertThrowsMentioning(() => nk.onlineNorm(x, { state: { sigma: tf.ones([3]) } as never }), ["'sigma'"]);
      assertThrowsMentioning(() => nk.onlineNorm(x, { training: 1 as never }), ["'training'", 'boolean']);
      assertThrowsMentioning(() => nk.onlineNorm(x, { momentum: 0.9 } as never), ["'momentum'"]);
      x.dispose();
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(24, 70), [4, 2, 3]);
      const g = tf.ones([3]);
      await assertNoLeak(() => {
        const r = nk.onlineNorm(x, { gamma: g });
        tf.dispose([r.y, r.state.mu, r.state.sigma2]);
      }, 'forward');
      await assertNoLeak(() => tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(nk.onlineNorm(a, { gamma: b, onControl: () => undefined }).y))([x, g])), 'gradient');
      x.dispose();
      g.dispose();
    });
  });

  describe('OnlineNormalization layer', () => {
    it('a training step updates mu, sigma2 (forward) and u, v (backward) as the reference', () => {
      const shape = [4, 3, 2];
      const layer = new nk.OnlineNormalization({ alphaFwd: 0.75, alphaBkw: 0.5, ecm: 'none', gammaInitializer: { className: 'Constant', config: { value: 1.5 } } });
      const model = tfl.sequential({ layers: [tfl.layers.inputLayer({ inputShape: shape.slice(1) }), layer] });
      const xv = randn(24, 80, 0.5, 2);
      const dOut = randn(24, 81);
      const cfg = config(4, 3, 2, 'none', 0, { afwd: 0.75, abkw: 0.5, mu0: [0, 0], sigma20: [1, 1], u0: [0, 0], v0: [0, 0], gamma: [1.5, 1.5], beta: [0, 0] });
      const ref = refOnline(xv, cfg, dOut);
      tf.tidy(() => {
        const dx = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, tf.tensor(dOut, shape))))(tf.tensor(xv, shape));
        assertClose(f64(dx), ref.dx!, { atol: 1e-4, rtol: 1e-4 }, 'dx');
      });
      const byName = Object.fromEntries(layer.weights.map((w) => [w.originalName.split('/').pop(), f64(w.read())]));
      assert.deepEqual(Object.keys(byName), ['gamma', 'beta', 'mu', 'sigma2', 'u', 'v']);
      assert.deepEqual(layer.trainableWeights.map((w) => w.originalName.split('/').pop()), ['gamma', 'beta']);
      assertClose(byName.mu, ref.mu, TOL, 'mu');
      assertClose(byName.sigma2, ref.sigma2, TOL, 'sigma2');
      assertClose(byName.u, ref.u!, { atol: 1e-5, rtol: 1e-4 }, 'u');
      assertClose(byName.v, ref.v!, { atol: 1e-5, rtol: 1e-4 }, 'v');
      // Inference leaves the streams alone and normalizes with them.
      const out = scoped(() => f64(layer.apply(tf.tensor(xv, shape), { training: false }) as tf.Tensor));
      const inf = refOnline(xv, { ...cfg, mu0: ref.mu, sigma20: ref.sigma2 }, undefined, false);
      assertClose(out, inf.out, { atol: 1e-4, rtol: 1e-4 }, 'inference y');
      assertClose(f64(layer.weights[2].read()), ref.mu, TOL, 'mu after inference');
      model.dispose();
    });

    it('trains in model.fit without leaking, updating its streams', async () => {
      const layer = new nk.OnlineNormalization({ alphaFwd: 0.9, alphaBkw: 0.9 });
      const xs = tf.tensor(randn(48, 90), [12, 4]);
      const ys = tf.tensor(randn(12, 91), [12, 1]);
      await assertFitWithoutLeak(layer, [4], { xs, ys });
      // The layer is disposed with the model; its streams were read during training through the weights.
      tf.dispose([xs, ys]);
    });

    it('streams move during model.fit', async () => {
      // A trainable layer below, so the gradient reaches the ON input and its backward runs.
      const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 3, inputShape: [3] }), new nk.OnlineNormalization({ alphaFwd: 0.5 })] });
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      const xs = tf.tensor(randn(24, 92, 3), [8, 3]);
      const ys = tf.tensor(randn(24, 93), [8, 3]);
      await model.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
      const [, , , , mu, , u] = model.getWeights().map((w) => f64(w));
      assert.ok(mu.some((m) => m !== 0), 'mu was updated by the forward');
      assert.ok(u.some((m) => m !== 0), 'u was updated by the backward');
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it('is what the registry builds for "online"', () => {
      const layer = nk.createNorm('online', { alphaFwd: 0.9 });
      assert.ok(layer instanceof nk.OnlineNormalization);
      assert.equal((layer as nk.OnlineNormalization).alphaFwd, 0.9);
      assert.ok(nk.listNorms().some((e) => e.name === 'online' && e.doc === 'docs/online-norm.md'));
      assertThrowsMentioning(() => new nk.OnlineNormalization({ ecm: 'ls' as never }), ['OnlineNormalization', "'ecm'"]);
      assertThrowsMentioning(() => new nk.OnlineNormalization({ alphaFwd: 2 }), ["'alphaFwd'"]);
    });
  });
});

runLayerTest(nk.OnlineNormalization, { make: () => new nk.OnlineNormalization(), inputShape: [3, 4], trainable: 2, nonTrainable: 4,
  weights: [['gamma', [4]], ['beta', [4]], ['mu', [4]], ['sigma2', [4]], ['u', [4]], ['v', [4]]],
  // u and v move in the backward pass over the input, which runs only when a trainable layer lies below.
  state: ['mu', 'sigma2'], supportsMasking: true });
runLayerTest(nk.OnlineNormalization, { label: 'layer scaling, no beta',
  make: () => new nk.OnlineNormalization({ alphaFwd: 0.99, alphaBkw: 0.9, ecm: 'layer-scaling', lsEpsilon: 1e-4, center: false, epsilon: 1e-3 }), inputShape: [3, 4], trainable: 1, nonTrainable: 4,
  weights: [['gamma', [4]], ['mu', [4]], ['sigma2', [4]], ['u', [4]], ['v', [4]]], state: ['mu', 'sigma2'], supportsMasking: true });
