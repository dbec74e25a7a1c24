import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertThrowsMentioning, f64, randn } from '../helpers/numeric.js';
import { unitGroups } from '../helpers/kernel-wrappers.js';
import { assertFitLowersLoss, assertOptimizerResumes } from '../helpers/optimizer-roundtrip.js';

/**
 * Float64 AdamP / SGDP written from the official clovaai/AdamP code, with the channel view over the
 * tfjs output unit (last axis) given as `groups` (flat indices of each unit).
 */
const dot = (a: ArrayLike<number>, b: ArrayLike<number>, idx: number[]) => idx.reduce((s, i) => s + a[i] * b[i], 0);

function refProject(p: Float64Array, g: Float64Array, d: Float64Array<ArrayBufferLike>, groups: number[][], delta: number, wdRatio: number, eps: number): { d: Float64Array<ArrayBufferLike>; wd: number } {
  const all = [...p.keys()];
  for (const view of [groups, [all]]) {
    const rowSize = view[0].length;
    let maxCos = 0;
    for (const idx of view) {
      const c = Math.abs(dot(g, p, idx)) / (Math.max(Math.sqrt(dot(g, g, idx)), eps) * Math.max(Math.sqrt(dot(p, p, idx)), eps));
      maxCos = Math.max(maxCos, c);
    }
    if (maxCos < delta / Math.sqrt(rowSize)) {
      const out = Float64Array.from(d);
      for (const idx of view) {
        const n = Math.sqrt(dot(p, p, idx)) + eps;
        let s = 0;
        for (const i of idx) s += (p[i] / n) * d[i];
        for (const i of idx) out[i] -= (p[i] / n) * s;
      }
      return { d: out, wd: wdRatio };
    }
  }
  return { d, wd: 1 };
}

interface RefAdamP { p: Float64Array; m: Float64Array; v: Float64Array; t: number }

function refAdamPStep(s: RefAdamP, g: Float64Array, groups: number[][] | null, o: { lr: number; b1: number; b2: number; eps: number; wd: number; delta: number; wdRatio: number; nesterov: boolean }): void {
  s.t += 1;
  const bc1 = 1 - o.b1 ** s.t;
  const bc2 = 1 - o.b2 ** s.t;
  let d: Float64Array<ArrayBufferLike> = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) {
    s.m[i] = o.b1 * s.m[i] + (1 - o.b1) * g[i];
    s.v[i] = o.b2 * s.v[i] + (1 - o.b2) * g[i] * g[i];
    const denom = Math.sqrt(s.v[i]) / Math.sqrt(bc2) + o.eps;
    d[i] = (o.nesterov ? o.b1 * s.m[i] + (1 - o.b1) * g[i] : s.m[i]) / denom;
  }
  let wd = 1;
  if (groups) ({ d, wd } = refProject(s.p, g, d, groups, o.delta, o.wdRatio, o.eps));
  for (let i = 0; i < g.length; i++) {
    if (o.wd > 0) s.p[i] *= 1 - o.lr * o.wd * wd;
    s.p[i] -= (o.lr / bc1) * d[i];
  }
}

interface RefSGDP { p: Float64Array; buf: Float64Array }

function refSGDPStep(s: RefSGDP, g: Float64Array, groups: number[][] | null, o: { lr: number; momentum: number; dampening: number; eps: number; wd: number; delta: number; wdRatio: number; nesterov: boolean }): void {
  for (let i = 0; i < g.length; i++) s.buf[i] = o.momentum * s.buf[i] + (1 - o.dampening) * g[i];
  let d: Float64Array<ArrayBufferLike> = o.nesterov ? g.map((gi, i) => gi + o.momentum * s.buf[i]) : Float64Array.from(s.buf);
  let wd = 1;
  if (groups) ({ d, wd } = refProject(s.p, g, d, groups, o.delta, o.wdRatio, o.eps));
  if (!o.nesterov) s.buf = Float64Array.from(d); // the official code projects the buffer in place
  for (let i = 0; i < g.length; i++) {
    if (o.wd > 0) s.p[i] *= 1 - (o.lr * o.wd * wd) / (1 - o.momentum);
    s.p[i] -= o.lr * d[i];
  }
}

/** Gradients of three kinds: random, orthogonal to p within each unit, orthogonal to p as a whole. */
function gradient(kind: 'random' | 'unit' | 'tensor', p: Float64Array, groups: number[][], seed: number): Float64Array {
  const g = Float64Array.from(randn(p.length, seed));
  const views = kind === 'unit' ? groups : kind === 'tensor' ? [[...p.keys()]] : [];
  for (const idx of views) {
    const s = dot(g, p, idx) / dot(p, p, idx);
    for (const i of idx) g[i] -= s * p[i];
  }
  return g;
}

const SHAPE = [4, 3];
const GROUPS = unitGroups(SHAPE, [1]);
const KINDS: Array<'random' | 'unit' | 'tensor'> = ['random', 'unit', 'tensor', 'unit', 'random', 'tensor'];

forEachBackend(() => {
  describe('AdamP', () => {
    for (const nesterov of [false, true]) {
      it(`matches a float64 AdamP step by step (nesterov ${nesterov}, weight decay, all projection branches)`, () => {
        const o = { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.1, delta: 0.1, wdRatio: 0.1, nesterov };
        const opt = new nk.AdamP({ learningRate: o.lr, weightDecay: o.wd, nesterov });
        const p0 = randn(12, 1);
        const b0 = randn(3, 2);
        const p = tf.variable(tf.tensor(p0, SHAPE));
        const b = tf.variable(tf.tensor(b0, [3]));
        const ref: RefAdamP = { p: Float64Array.from(p0), m: new Float64Array(12), v: new Float64Array(12), t: 0 };
        const refB: RefAdamP = { p: Float64Array.from(b0), m: new Float64Array(3), v: new Float64Array(3), t: 0 };
        KINDS.forEach((kind, step) => {
          // Gradients are built from the float32 weights so the cosine test sees the same inputs.
          const g = gradient(kind, f64(p), GROUPS, 10 + step);
          const gb = Float64Array.from(randn(3, 30 + step));
          tf.tidy(() => opt.applyGradients({ [p.name]: tf.tensor(Float32Array.from(g), SHAPE), [b.name]: tf.tensor(Float32Array.from(gb), [3]) }));
          refAdamPStep(ref, Float64Array.from(Float32Array.from(g)), GROUPS, o);
          refAdamPStep(refB, Float64Array.from(Float32Array.from(gb)), null, o);
          assertClose(f64(p), ref.p, { atol: 1e-6, rtol: 1e-5 }, `kernel after step ${step + 1} (${kind})`);
          assertClose(f64(b), refB.p, { atol: 1e-6, rtol: 1e-5 }, `bias after step ${step + 1}`);
        });
        assert.equal(opt.iterations, KINDS.length);
        tf.dispose([p, b]);
        opt.dispose();
      });
    }

    it('projection keeps the norm of a scale-invariant weight from growing (the paper\'s point)', () => {
      const p0 = randn(12, 3);
      const norm = (t: tf.Tensor) => Math.sqrt(f64(t).reduce((s, x) => s + x * x, 0));
      const run = (opt: tf.Optimizer) => {
        const p = tf.variable(tf.tensor(p0, SHAPE));
        for (let i = 0; i < 20; i++) {
          const g = gradient('unit', f64(p), GROUPS, 100 + (i % 3));
          tf.tidy(() => opt.applyGradients({ [p.name]: tf.tensor(Float32Array.from(g), SHAPE) }));
        }
        const n = norm(p);
        p.dispose();
        opt.dispose();
        return n;
      };
      const n0 = Math.sqrt(p0.reduce((s, x) => s + x * x, 0));
      const adam = run(tf.train.adam(0.1));
      const adamp = run(new nk.AdamP({ learningRate: 0.1 }));
      assert.ok(adam > n0 * 1.05, `Adam grows the norm (${n0} -> ${adam})`);
      assert.ok(adamp - n0 < (adam - n0) / 4, `AdamP grows it far less (${n0} -> ${adamp}, Adam ${adam})`);
    });

    it('serializes like tfjs optimizers: config round trip, registered class, weights round trip', async () => {
      const opt = new nk.AdamP({ learningRate: 0.02, beta1: 0.8, beta2: 0.99, epsilon: 1e-7, weightDecay: 0.01, delta: 0.2, wdRatio: 0.5, nesterov: true });
      const entry = tf.serialization.SerializationMap.getMap().classNameMap.AdamP;
      assert.ok(entry, 'AdamP is registered');
      const copy = entry[1](entry[0], opt.getConfig()) as nk.AdamP;
      assert.deepEqual(copy.getConfig(), opt.getConfig());
      assert.equal(copy.getClassName(), 'AdamP');
      const p = tf.variable(tf.tensor(randn(12, 5), SHAPE));
      const q = tf.variable(p.clone());
      for (let i = 0; i < 3; i++) tf.tidy(() => opt.applyGradients({ [p.name]: tf.tensor(randn(12, 40 + i), SHAPE) }));
      const weights = await opt.getWeights();
      assert.deepEqual(weights.map((w) => w.name), ['iter', `${p.name}/m`, `${p.name}/v`]);
      // Restore into the copy under q's name, then one more step on both must agree.
      await copy.setWeights(weights.map((w) => ({ name: w.name.replace(p.name, q.name), tensor: w.tensor })));
      tf.tidy(() => q.assign(p));
      assert.equal(copy.iterations, 3);
      tf.tidy(() => opt.applyGradients({ [p.name]: tf.tensor(randn(12, 50), SHAPE) }));
      tf.tidy(() => copy.applyGradients({ [q.name]: tf.tensor(randn(12, 50), SHAPE) }));
      assert.deepEqual(Array.from(q.dataSync()), Array.from(p.dataSync()));
      tf.dispose([p, q]);
      weights[0].tensor.dispose();
      opt.dispose();
      copy.dispose();
    });
  });

  describe('optimizer state in saved models', () => {
    for (const make of [() => new nk.AdamP({ learningRate: 0.01, weightDecay: 1e-3 }), () => new nk.SGDP({ learningRate: 0.05, momentum: 0.9 })]) {
      it(`${make().getClassName()}: model.save({includeOptimizer}) then loadLayersModel continues training identically`, async () => {
        await assertOptimizerResumes(make);
      });
    }
  });

  describe('projectScaleInvariant channel view on other kernel layouts', () => {
    for (const [label, shape, unitAxes] of [
      ['Conv2DTranspose [kh, kw, out, in]', [2, 2, 3, 2], [2]],
      ['DepthwiseConv2D [kh, kw, in, mult]', [2, 2, 3, 2], [2, 3]],
      ['Conv2D [kh, kw, in, out]', [2, 2, 2, 3], [3]],
    ] as Array<[string, number[], number[]]>) {
      it(`projects per output unit of a ${label} kernel given its fan-in axes`, () => {
        const n = shape.reduce((a, b) => a * b, 1);
        const groups = unitGroups(shape, unitAxes);
        const fanInAxes = shape.map((_, i) => i).filter((a) => !unitAxes.includes(a));
        const p = Float64Array.from(randn(n, 90));
        const g = gradient('unit', p, groups, 91);
        const d = Float64Array.from(randn(n, 92));
        const ref = refProject(p, g, d, groups, 0.1, 0.1, 1e-8);
        assert.equal(ref.wd, 0.1, 'the reference takes the channel branch');
        tf.tidy(() => {
          const r = nk.projectScaleInvariant(tf.tensor(Float32Array.from(p), shape), tf.tensor(Float32Array.from(g), shape), tf.tensor(Float32Array.from(d), shape), { delta: 0.1, wdRatio: 0.1, epsilon: 1e-8, fanInAxes });
          assertClose(f64(r.update), ref.d, { atol: 1e-5, rtol: 1e-4 }, 'projected update');
          assertClose(f64(r.wdFactor), [0.1], { rtol: 1e-6 }, 'wd factor');
        });
      });
    }
  });

  describe('SGDP', () => {
    for (const nesterov of [false, true]) {
      it(`matches a float64 SGDP step by step, projected buffer included (nesterov ${nesterov})`, () => {
        const o = { lr: 0.05, momentum: 0.9, dampening: 0, eps: 1e-8, wd: 1e-3, delta: 0.1, wdRatio: 0.1, nesterov };
        const opt = new nk.SGDP({ learningRate: o.lr, momentum: o.momentum, weightDecay: o.wd, nesterov });
        const p0 = randn(12, 6);
        const p = tf.variable(tf.tensor(p0, SHAPE));
        const ref: RefSGDP = { p: Float64Array.from(p0), buf: new Float64Array(12) };
        KINDS.forEach((kind, step) => {
          const g = gradient(kind, f64(p), GROUPS, 60 + step);
          tf.tidy(() => opt.applyGradients([{ name: p.name, tensor: tf.tensor(Float32Array.from(g), SHAPE) }]));
          refSGDPStep(ref, Float64Array.from(Float32Array.from(g)), GROUPS, o);
          assertClose(f64(p), ref.p, { atol: 1e-6, rtol: 1e-5 }, `kernel after step ${step + 1} (${kind})`);
        });
        tf.dispose(p);
        opt.dispose();
      });
    }

    it('serializes: config round trip and slot names', async () => {
      const opt = new nk.SGDP({ learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-5 });
      const copy = nk.SGDP.fromConfig(nk.SGDP, opt.getConfig()) as nk.SGDP;
      assert.deepEqual(copy.getConfig(), opt.getConfig());
      assert.ok(tf.serialization.SerializationMap.getMap().classNameMap.SGDP);
      const p = tf.variable(tf.ones([2, 2]));
      tf.tidy(() => opt.applyGradients({ [p.name]: tf.ones([2, 2]) }));
      const w = await opt.getWeights();
      assert.deepEqual(w.map((x) => x.name), ['iter', `${p.name}/momentum`]);
      w[0].tensor.dispose();
      tf.dispose(p);
      opt.dispose();
    });
  });

  describe('AdamP and SGDP in training', () => {
    for (const make of [() => new nk.AdamP({ learningRate: 0.05, weightDecay: 1e-4 }), () => new nk.SGDP({ learningRate: 0.02, momentum: 0.9, nesterov: true })]) {
      it(`${make().getClassName()}: a tiny model.fit lowers the loss, and no step leaks tensors`, async () => {
        const model = tfl.sequential({
          layers: [
            tfl.layers.dense({ units: 8, inputShape: [4], activation: 'tanh', kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) }),
            new nk.LayerNormalization(),
            tfl.layers.dense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }) }),
          ],
        });
        await assertFitLowersLoss(model, make(), 70);
      });
    }
  });

  describe('optimizer argument checks', () => {
    it('rejects bad options and bad gradients, naming them', () => {
      assertThrowsMentioning(() => new nk.AdamP({ learningRate: -1 }), ['AdamP', "'learningRate'", '> 0']);
      assertThrowsMentioning(() => new nk.AdamP({ beta1: 1 }), ["'beta1'", '[0, 1)']);
      assertThrowsMentioning(() => new nk.AdamP({ weightDecay: -0.1 }), ["'weightDecay'", '>= 0']);
      assertThrowsMentioning(() => new nk.AdamP({ lr: 0.1 } as never), ["'lr'"]);
      assertThrowsMentioning(() => new nk.SGDP(undefined as never), ['SGDP', "'options'"]);
      assertThrowsMentioning(() => new nk.SGDP({ learningRate: 0.1, nesterov: true }), ["'nesterov'", 'momentum > 0']);
      assertThrowsMentioning(() => new nk.SGDP({ learningRate: 0.1, momentum: 1 }), ["'momentum'"]);
      const opt = new nk.AdamP();
      const p = tf.variable(tf.ones([2, 2]));
      assertThrowsMentioning(() => opt.applyGradients({ [p.name]: tf.ones([2]) }), [`'variableGradients['${p.name}']'`, '[2, 2]']);
      assertThrowsMentioning(() => opt.applyGradients({ nope: tf.ones([2]) }), ["'variableGradients'", 'nope']);
      tf.dispose(p);
      opt.dispose();
    });
  });
});
