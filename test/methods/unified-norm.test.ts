import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { recordReadBacks } from '../helpers/read-back.js';
import { runLayerTest } from '../helpers/run-layer-test.js';
import { assertNextStepAfterSaveLoad } from '../helpers/state-roundtrip.js';

// ---------- float64 reference, written from the paper (docs/unified-norm.md) and the reference code ----------
type F64 = Float64Array<ArrayBufferLike>;
interface RefState { runVar: F64; ema: F64; bufX2: F64[]; bufGz: F64[] }
interface RefOpts { C: number; wf: number; wb: number; warmup: number; filter: boolean; eps: number; m: number; gamma: ArrayLike<number>; beta: ArrayLike<number>; mask?: ArrayLike<number> }

const copyState = (s: RefState): RefState => ({ runVar: Float64Array.from(s.runVar), ema: Float64Array.from(s.ema), bufX2: s.bufX2.map((r) => Float64Array.from(r)), bufGz: s.bufGz.map((r) => Float64Array.from(r)) });

type Step = { y: F64; state: RefState; skip: boolean; dx: F64; dgamma: F64; dbeta: F64 };

function refTrainStep(x: ArrayLike<number>, dy: ArrayLike<number>, it: number, s0: RefState, o: RefOpts): Step {
  const s = copyState(s0);
  const { C } = o;
  const M = x.length / C;
  const x2 = new Float64Array(C);
  let count = 0;
  for (let t = 0; t < M; t++) {
    const w = o.mask ? o.mask[t] : 1;
    count += w;
    for (let c = 0; c < C; c++) x2[c] += w * x[t * C + c] ** 2;
  }
  for (let c = 0; c < C; c++) x2[c] /= count;
  // unbiased variance of sqrt(buffer) over all entries, before insertion
  const roots = s.bufX2.flatMap((r) => Array.from(r, Math.sqrt));
  const mr = roots.reduce((a, b) => a + b, 0) / roots.length;
  const recorded = roots.reduce((a, b) => a + (b - mr) ** 2, 0) / (roots.length - 1);
  s.bufX2[it % o.wf] = Float64Array.from(x2);
  const gmOf = (rows: Float64Array[], c: number) => Math.exp(rows.reduce((a, r) => a + Math.log(r[c]), 0) / rows.length);
  let skip = o.wf <= 1;
  if (it >= o.warmup && o.filter) {
    let flagged = false;
    for (let c = 0; c < C; c++) {
      const am = s.bufX2.reduce((a, r) => a + r[c], 0) / o.wf;
      if (am - gmOf(s.bufX2, c) > recorded * o.wf) flagged = true;
    }
    if (flagged) {
      s.bufX2[it % o.wf] = Float64Array.from(s0.runVar);
      skip = true;
    }
  }
  const v = new Float64Array(C);
  for (let c = 0; c < C; c++) v[c] = it <= o.wf || it < o.warmup || skip ? x2[c] : gmOf(s.bufX2, c);
  const r = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const raw = Math.sqrt(v[c] + o.eps) / Math.sqrt(s0.runVar[c] + o.eps);
    r[c] = it <= Math.max(1000, o.warmup) || skip ? 1 : Math.min(5, Math.max(1 / 5, raw));
  }
  const z = Float64Array.from(x, (xv, i) => xv / Math.sqrt(v[i % C] + o.eps));
  const y = z.map((zv, i) => o.gamma[i % C] * zv + o.beta[i % C]);
  for (let c = 0; c < C; c++) s.runVar[c] = o.m * s0.runVar[c] + (1 - o.m) * v[c];
  // backward
  const g = Float64Array.from(dy, (d, i) => d * o.gamma[i % C] * r[i % C]);
  const gz = new Float64Array(C);
  for (let i = 0; i < g.length; i++) gz[i % C] += (g[i] * z[i]) / M;
  s.bufGz[it % o.wb] = skip ? Float64Array.from(s0.ema) : Float64Array.from(gz);
  const meanGz = new Float64Array(C);
  for (let c = 0; c < C; c++) meanGz[c] = it <= o.wb || it < o.warmup || skip ? gz[c] : s.bufGz.reduce((a, row) => a + row[c], 0) / o.wb;
  for (let c = 0; c < C; c++) s.ema[c] = o.m * s0.ema[c] + (1 - o.m) * meanGz[c];
  const dx = g.map((gv, i) => (gv - (skip ? meanGz : s.ema)[i % C] * z[i]) / Math.sqrt(v[i % C] + o.eps));
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  for (let i = 0; i < g.length; i++) {
    dgamma[i % C] += dy[i] * r[i % C] * z[i];
    dbeta[i % C] += dy[i];
  }
  return { y, state: s, skip, dx, dgamma, dbeta };
}

const rows = (t: tf.Tensor) => (t.arraySync() as number[][]).map((r) => Float64Array.from(r));
const tensorRows = (r: Float64Array[]) => tf.tensor(r.map((v) => Array.from(v)));

function opTrainStep(xv: Float32Array, dyv: Float32Array, shape: number[], it: number, s: RefState, o: RefOpts): Step {
  let out: Step | undefined;
  tf.tidy(() => {
    const C = o.C;
    const back: { ema?: F64; buf?: F64[] } = {};
    const x = tf.tensor(xv, shape);
    const gamma = tf.tensor(Float32Array.from(o.gamma), [C]);
    const beta = tf.tensor(Float32Array.from(o.beta), [C]);
    const opts = {
      training: true, iteration: it, runningVar: tf.tensor(Float32Array.from(s.runVar)), emaGz: tf.tensor(Float32Array.from(s.ema)), bufferX2: tensorRows(s.bufX2), bufferGz: tensorRows(s.bufGz),
      windowSize: [o.wf, o.wb] as [number, number], warmupIters: o.warmup, outlierFiltration: o.filter, epsilon: o.eps, momentum: o.m,
      ...(o.mask ? { mask: tf.tensor(Float32Array.from(o.mask), shape.slice(0, -1)) } : {}),
      onBackward: (b: nk.UnifiedNormBackwardState) => { back.ema = f64(b.emaGz); back.buf = rows(b.bufferGz); },
    };
    const res = nk.unifiedNorm(x, { ...opts, gamma, beta });
    const dy = tf.tensor(dyv, shape);
    const [dx, dg, db] = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(nk.unifiedNorm(a, { ...opts, gamma: g, beta: b }).y, dy)))([x, gamma, beta]);
    out = {
      y: f64(res.y), skip: res.outlier, dx: f64(dx), dgamma: f64(dg), dbeta: f64(db),
      state: { runVar: f64(res.runningVar), bufX2: rows(res.bufferX2), ema: back.ema as F64, bufGz: back.buf as F64[] },
    };
  });
  return out as Step;
}

function compare(got: Step, want: Step, tol = 1e-4): void {
  assert.equal(got.skip, want.skip, 'outlier flag');
  assertClose(got.y, want.y, { atol: tol, rtol: tol }, 'y');
  assertClose(got.state.runVar, want.state.runVar, { atol: tol, rtol: tol }, 'runningVar');
  assertClose(got.state.bufX2.flatMap((r) => Array.from(r)), want.state.bufX2.flatMap((r) => Array.from(r)), { atol: tol, rtol: tol }, 'bufferX2');
  assertClose(got.state.ema, want.state.ema, { atol: tol, rtol: tol }, 'emaGz');
  assertClose(got.state.bufGz.flatMap((r) => Array.from(r)), want.state.bufGz.flatMap((r) => Array.from(r)), { atol: tol, rtol: tol }, 'bufferGz');
  assertClose(got.dx, want.dx, { atol: tol, rtol: tol }, 'dx (custom backward)');
  assertClose(got.dgamma, want.dgamma, { atol: tol, rtol: tol }, 'dgamma');
  assertClose(got.dbeta, want.dbeta, { atol: tol, rtol: tol }, 'dbeta');
}

const C = 5;
const shape = [2, 6, C];
const N = 60;
const fresh = (wf: number, wb: number): RefState => ({ runVar: new Float64Array(C).fill(1), ema: new Float64Array(C), bufX2: Array.from({ length: wf }, () => new Float64Array(C)), bufGz: Array.from({ length: wb }, () => new Float64Array(C)) });

forEachBackend(() => {
  describe('unifiedNorm op', () => {
    const base: RefOpts = { C, wf: 3, wb: 2, warmup: 4, filter: false, eps: 1e-5, m: 0.9, gamma: randn(C, 1, 1, 0.3), beta: randn(C, 2) };

    it('a 7-step trajectory (batch statistics, then window geometric mean) matches the float64 reference', () => {
      let sOp = fresh(3, 2);
      let sRef = fresh(3, 2);
      for (let it = 1; it <= 7; it++) {
        const xv = randn(N, 10 + it, 0.2, 1 + 0.2 * it);
        const dyv = randn(N, 30 + it);
        const got = opTrainStep(xv, dyv, shape, it, sOp, base);
        const want = refTrainStep(xv, dyv, it, sRef, base);
        compare(got, want, 3e-4);
        sOp = got.state;
        sRef = want.state;
      }
    });

    it('past max(1000, warm-up): the scale ratio r is clamped to [1/5, 5] and scales g and dgamma', () => {
      const s: RefState = { runVar: Float64Array.from([0.01, 1, 2, 100, 1.5]), ema: Float64Array.from(randn(C, 40, 0, 0.3)), bufX2: [0, 1, 2].map((k) => Float64Array.from(randn(C, 41 + k), (v) => 1 + 0.1 * Math.abs(v))), bufGz: [0, 1].map((k) => Float64Array.from(randn(C, 45 + k))) };
      const xv = randn(N, 42);
      const dyv = randn(N, 43);
      for (const it of [1001, 1002]) compare(opTrainStep(xv, dyv, shape, it, s, base), refTrainStep(xv, dyv, it, s, base));
    });

    it('outlier filtration flags a batch far from the window, normalizes it with its own statistic and overwrites its slot', () => {
      const o = { ...base, filter: true, warmup: 2 };
      const calm = (k: number) => Float64Array.from(randn(C, 50 + k), (v) => 1 + 0.2 * v);
      const s: RefState = { runVar: Float64Array.from(calm(9)), ema: Float64Array.from(randn(C, 51, 0, 0.2)), bufX2: [calm(1), calm(2), calm(3)], bufGz: [calm(4), calm(5)] };
      // x2 = 1 exactly in every channel: inside the window's spread
      const normal = randn(N, 52).map(Math.sign);
      const outlier = randn(N, 53, 0, 30);
      const dyv = randn(N, 54);
      const wantOut = refTrainStep(outlier, dyv, 9, s, o);
      assert.equal(wantOut.skip, true, 'the reference flags the outlier batch');
      compare(opTrainStep(outlier, dyv, shape, 9, s, o), wantOut);
      const wantNormal = refTrainStep(normal, dyv, 9, s, o);
      assert.equal(wantNormal.skip, false, 'the reference keeps the normal batch');
      compare(opTrainStep(normal, dyv, shape, 9, s, o), wantNormal);
    });

    it('window size 1 treats every step as an outlier step; a padding mask is excluded from x2 only', () => {
      const mask = Float64Array.from({ length: 12 }, (_, i) => (i % 5 === 4 ? 0 : 1));
      const o = { ...base, wf: 1, wb: 1, mask };
      const s = fresh(1, 1);
      s.ema = Float64Array.from(randn(C, 60));
      const xv = randn(N, 61);
      const dyv = randn(N, 62);
      compare(opTrainStep(xv, dyv, shape, 5, s, o), refTrainStep(xv, dyv, 5, s, o));
      const o2 = { ...base, mask };
      compare(opTrainStep(xv, dyv, shape, 6, fresh(3, 2), o2), refTrainStep(xv, dyv, 6, fresh(3, 2), o2));
    });

    it('inference is the affine map gamma * x / sqrt(running_var + eps) + beta, with exact gradients', () => {
      const xv = randn(N, 70);
      const rv = Float64Array.from(randn(C, 71), (v) => 1 + 0.3 * Math.abs(v));
      const gv = randn(C, 72);
      const ref = (v: ArrayLike<number>) => Float64Array.from(v, (a, i) => (gv[i % C] * a) / Math.sqrt(rv[i % C] + 1e-5) + base.beta[i % C]);
      const dyv = randn(N, 73);
      const fd = finiteDifference((v) => ref(v).reduce((acc, y, i) => acc + y * dyv[i], 0), Float64Array.from(xv));
      tf.tidy(() => {
        const opts = { runningVar: tf.tensor(Float32Array.from(rv)), gamma: tf.tensor(gv), beta: tf.tensor(base.beta, [C]) };
        const r = nk.unifiedNorm(tf.tensor(xv, shape), opts);
        assertClose(f64(r.y), ref(xv), { atol: 1e-5, rtol: 1e-5 }, 'y');
        assert.equal(r.outlier, false);
        const dx = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(nk.unifiedNorm(a, opts).y, tf.tensor(dyv, shape))))(tf.tensor(xv, shape));
        assertClose(f64(dx), fd, { atol: 1e-4, rtol: 1e-3 }, 'dx');
      });
    });

    it('inference folds into the following dense layer (the paper\'s efficiency argument)', () => {
      const rv = Float64Array.from(randn(C, 75), (v) => 1 + Math.abs(v));
      const gv = randn(C, 76);
      const bv = randn(C, 77);
      const kernel = randn(C * 3, 78);
      const bias = randn(3, 79);
      // folded: y = x K' + b' with K'[c, j] = gamma_c K[c, j] / sqrt(rv_c + eps), b'_j = b_j + sum_c beta_c K[c, j]
      const folded = Float64Array.from(kernel, (k, i) => (gv[Math.floor(i / 3)] * k) / Math.sqrt(rv[Math.floor(i / 3)] + 1e-5));
      const foldedBias = Float64Array.from(bias, (b, j) => b + Array.from(bv).reduce((acc, beta, c) => acc + beta * kernel[c * 3 + j], 0));
      const xv = randn(N, 80);
      tf.tidy(() => {
        const x = tf.tensor(xv, shape);
        const un = nk.unifiedNorm(x, { runningVar: tf.tensor(Float32Array.from(rv)), gamma: tf.tensor(gv), beta: tf.tensor(bv) }).y;
        const viaNorm = tf.add(tf.matMul(tf.reshape(un, [-1, C]), tf.tensor(kernel, [C, 3])), tf.tensor(bias));
        const viaFold = tf.add(tf.matMul(tf.reshape(x, [-1, C]), tf.tensor(Float32Array.from(folded), [C, 3])), tf.tensor(Float32Array.from(foldedBias)));
        assertClose(f64(viaFold), f64(viaNorm), { atol: 1e-5, rtol: 1e-4 }, 'folded dense output');
      });
    });

    it('holds on magnitudes from 1e-15 to 1e15', () => {
      for (const scale of [1e-15, 1e-3, 1, 1e6, 1e15]) {
        const xv = randn(N, 80).map((v) => v * scale);
        const dyv = randn(N, 81);
        const got = opTrainStep(xv, dyv, shape, 1, fresh(3, 2), base);
        const want = refTrainStep(xv, dyv, 1, fresh(3, 2), base);
        assertClose(got.y, want.y, { atol: 1e-20, rtol: 1e-4 }, `y at ${scale}`);
        const big = Math.max(...want.dx.map(Math.abs));
        assertClose(got.dx, want.dx, { atol: 1e-4 * big, rtol: 1e-3 }, `dx at ${scale}`);
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3, 4]);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { training: true }), ['unifiedNorm', "'iteration'"]);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { windowSize: 0 }), ["'windowSize'", 'integer in [1, 10000]']);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { windowSize: 1e9 }), ["'windowSize'", '1000000000']);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { windowSize: [2, 3, 4] as never }), ["'windowSize'"]);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { bufferX2: tf.zeros([3, 4]) }), ["'bufferX2'", '[4, 4]', '[3, 4]']);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { windowSize: [2, 5], bufferGz: tf.zeros([2, 4]) }), ["'bufferGz'", '[5, 4]']);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { runningVar: tf.ones([3]) }), ["'runningVar'", '[4]']);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { momentum: 2 }), ["'momentum'", '[0, 1]']);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { outlierFiltration: 1 } as never), ["'outlierFiltration'", 'boolean']);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { warmupIters: -1 }), ["'warmupIters'"]);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { epsilon: 0 }), ["'epsilon'"]);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { mask: tf.ones([3, 2]) }), ["'mask'", '[2, 3]']);
      assertThrowsMentioning(() => nk.unifiedNorm(x, { window: 4 } as never), ["'window'"]);
      assertThrowsMentioning(() => nk.unifiedNorm(tf.zeros([4], 'float32')), ["'x'", 'rank']);
      x.dispose();
    });

    it('leaks no tensors in forward and gradient', async () => {
      const x = tf.tensor(randn(24, 90), [4, 6]);
      await assertNoLeak(() => {
        const r = nk.unifiedNorm(x, { training: true, iteration: 3, outlierFiltration: true, warmupIters: 0 });
        tf.dispose([r.y, r.runningVar, r.bufferX2]);
      }, 'forward');
      await assertNoLeak(() => tf.dispose(tf.grad((a: tf.Tensor) => tf.sum(nk.unifiedNorm(a, { training: true, iteration: 9, warmupIters: 0, onBackward: () => undefined }).y))(x)), 'gradient');
      x.dispose();
    });
  });

  describe('UnifiedNormalization layer', () => {
    it('training calls carry the state like the op; inference uses running_var', () => {
      const layer = new nk.UnifiedNormalization({ windowSize: [3, 2], warmupIters: 4 });
      const x = tf.tensor(randn(N, 100), shape);
      layer.apply(x);
      assert.deepEqual(layer.weights.map((w) => w.originalName.split('/').pop()), ['gamma', 'beta', 'running_var', 'ema_gz', 'buffer_x2', 'buffer_gz', 'iterations', 'skip_counter']);
      const o: RefOpts = { ...{ C, wf: 3, wb: 2, warmup: 4, filter: false, eps: 1e-5, m: 0.9 }, gamma: new Float64Array(C).fill(1), beta: new Float64Array(C) };
      let s = fresh(3, 2);
      const xv = randn(N, 100);
      for (let it = 1; it <= 6; it++) {
        const dyv = randn(N, 110 + it);
        const dx = tf.tidy(() => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(layer.apply(a, { training: true }) as tf.Tensor, tf.tensor(dyv, shape))))(x));
        const want = refTrainStep(xv, dyv, it, s, o);
        assertClose(f64(dx), want.dx, { atol: 2e-4, rtol: 2e-4 }, `dx step ${it}`);
        dx.dispose();
        const w = layer.getWeights();
        assertClose(f64(w[2]), want.state.runVar, { atol: 1e-5, rtol: 1e-5 }, `running_var step ${it}`);
        assertClose(f64(w[3]), want.state.ema, { atol: 1e-5, rtol: 1e-4 }, `ema_gz step ${it}`);
        assert.equal(w[6].dataSync()[0], it);
        s = want.state;
      }
      const y = tf.tidy(() => layer.apply(x) as tf.Tensor);
      assertClose(f64(y), Float64Array.from(xv, (v, i) => v / Math.sqrt(s.runVar[i % C] + 1e-5)), { atol: 1e-5, rtol: 1e-5 }, 'inference y');
      tf.dispose([x, y]);
      layer.dispose();
    });

    it('a training step (forward, backward, state updates, outlier count) reads nothing back to the host', () => {
      const layer = new nk.UnifiedNormalization({ windowSize: [3, 2], warmupIters: 2, outlierFiltration: true });
      const o: RefOpts = { C, wf: 3, wb: 2, warmup: 2, filter: true, eps: 1e-5, m: 0.9, gamma: new Float64Array(C).fill(1), beta: new Float64Array(C) };
      // Steps 1 to 6 cross the warm-up and the window fill; step 7 is a batch far from the window.
      const batches = Array.from({ length: 7 }, (_, k) => ({ xv: randn(N, 140 + k, 0, k === 6 ? 30 : 1), dyv: randn(N, 150 + k) }));
      const inputs = batches.map(({ xv, dyv }) => [tf.tensor(xv, shape), tf.tensor(dyv, shape)]);
      tf.dispose(layer.apply(inputs[0][0]) as tf.Tensor);
      let s = fresh(3, 2);
      let skips = 0;
      batches.forEach(({ xv, dyv }, k) => {
        const want = refTrainStep(xv, dyv, k + 1, s, o);
        skips += want.skip ? 1 : 0;
        s = want.state;
      });
      assert.ok(skips >= 1, 'the reference filters the far batch');
      const { reads } = recordReadBacks(() => {
        for (const [x, dy] of inputs) {
          const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, dy)) as tf.Scalar, layer.trainableWeights.map((w) => w.read() as tf.Variable));
          tf.dispose([value, ...Object.values(grads)]);
        }
      });
      assert.deepEqual(reads, [], 'reads during training steps');
      const w = layer.getWeights();
      assertClose(f64(w[2]), s.runVar, { atol: 1e-5, rtol: 1e-4 }, 'running_var');
      assertClose(f64(w[3]), s.ema, { atol: 1e-5, rtol: 1e-4 }, 'ema_gz');
      assert.equal(w[6].dataSync()[0], 7, 'iterations');
      assert.equal(w[7].dataSync()[0], skips, 'skip_counter');
      tf.dispose(inputs.flat());
      layer.dispose();
    });

    it('its state (windows, counters) round trips through save and load: the next training step is the same', async () => {
      const layer = new nk.UnifiedNormalization({ windowSize: [3, 2], warmupIters: 2, outlierFiltration: true });
      const input = tfl.input({ shape: shape.slice(1) });
      const model = tfl.model({ inputs: input, outputs: layer.apply(input) as tfl.SymbolicTensor });
      const x = tf.tensor(randn(N, 130), shape);
      const step = (m: tfl.LayersModel): tf.Tensor[] => {
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(m.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar, m.trainableWeights.map((v) => v.read() as tf.Variable));
        return [value, ...Object.values(grads)];
      };
      for (let it = 1; it <= 5; it++) tf.tidy(() => void step(model));
      await assertNextStepAfterSaveLoad(model, step);
      x.dispose();
      model.dispose();
    });

    it('is what the registry builds for "unified" and its aliases', () => {
      for (const name of ['unified', 'un', 'UnifiedNormalization']) assert.ok(nk.createNorm(name) instanceof nk.UnifiedNormalization);
      assertThrowsMentioning(() => new nk.UnifiedNormalization({ windowSize: 1.5 }), ['UnifiedNormalization', "'windowSize'"]);
    });
  });
});

runLayerTest(nk.UnifiedNormalization, { make: () => new nk.UnifiedNormalization(), inputShape: [3, 4], trainable: 2, nonTrainable: 6,
  weights: [['gamma', [4]], ['beta', [4]], ['running_var', [4]], ['ema_gz', [4]], ['buffer_x2', [4, 4]], ['buffer_gz', [4, 4]], ['iterations', []], ['skip_counter', []]],
  // skip_counter counts filtered outlier batches; outlier filtration is off by default.
  state: ['running_var', 'ema_gz', 'buffer_x2', 'buffer_gz', 'iterations'], supportsMasking: true });
runLayerTest(nk.UnifiedNormalization, { label: 'outlier filtration, no gamma',
  make: () => new nk.UnifiedNormalization({ windowSize: [3, 2], warmupIters: 1, outlierFiltration: true, momentum: 0.8, scale: false }), inputShape: [3, 4], trainable: 1, nonTrainable: 6,
  weights: [['beta', [4]], ['running_var', [4]], ['ema_gz', [4]], ['buffer_x2', [3, 4]], ['buffer_gz', [2, 4]], ['iterations', []], ['skip_counter', []]],
  supportsMasking: true });
