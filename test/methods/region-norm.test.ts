import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn, randnTensor, rng } from '../helpers/numeric.js';
import { assertModelFitWithoutLeak } from '../helpers/layer-roundtrip.js';
import { conv2dSame } from '../helpers/conv-reference.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** A deterministic binary mask with about `p` ones. */
function binaryMask(n: number, seed: number, p = 0.5): Float32Array {
  const u = rng(seed);
  return Float32Array.from({ length: n }, () => (u() < p ? 1 : 0));
}

/**
 * Float64 region normalization exactly as the paper's code does it (geekyutao/RN, rn.py, RN_binarylabel), on
 * x laid out [N, S, C] and a mask [N, S, maskC] (maskC 1 or C): for each region, fill the pixels outside it with
 * the region mean, batch-normalize (biased variance, eps, no affine) over the pooled positions, multiply by
 * sqrt(S_R / P); add the two regions. 'instance' pools each sample separately.
 */
function refRegionCode(x: ArrayLike<number>, mask: ArrayLike<number>, n: number, s: number, c: number, maskC: number, eps: number, statistics: 'batch' | 'instance'): Float64Array {
  const out = new Float64Array(n * s * c);
  const groups = statistics === 'batch' ? [Array.from({ length: n }, (_, i) => i)] : Array.from({ length: n }, (_, i) => [i]);
  for (const samples of groups) {
    const p = samples.length * s;
    for (let ch = 0; ch < c; ch++) {
      for (const fg of [true, false]) {
        const idx: number[] = [];
        const m: number[] = [];
        for (const t of samples) {
          for (let q = 0; q < s; q++) {
            idx.push((t * s + q) * c + ch);
            const mv = mask[(t * s + q) * maskC + (maskC === 1 ? 0 : ch)];
            m.push(fg ? mv : 1 - mv);
          }
        }
        let sr = m.reduce((a, b) => a + b, 0);
        if (sr === 0) sr = 1;
        const mu = idx.reduce((acc, i, j) => acc + x[i] * m[j], 0) / sr;
        const z = idx.map((i, j) => x[i] * m[j] + (1 - m[j]) * mu);
        const meanZ = z.reduce((a, b) => a + b, 0) / p;
        const varZ = z.reduce((a, b) => a + (b - meanZ) ** 2, 0) / p;
        idx.forEach((i, j) => {
          out[i] += ((z[j] - meanZ) / Math.sqrt(varZ + eps)) * Math.sqrt(sr / p);
        });
      }
    }
  }
  return out;
}

interface BParams {
  gf: ArrayLike<number>;
  bf: ArrayLike<number>;
  gb: ArrayLike<number>;
  bb: ArrayLike<number>;
}

/** RN-B of the reference code: rn*M*(1+gamma_fg) + beta_fg + rn*(1-M)*(1+gamma_bg) + beta_bg (mask [N, S, 1]). */
function refRegionB(x: ArrayLike<number>, mask: ArrayLike<number>, n: number, s: number, c: number, eps: number, statistics: 'batch' | 'instance', p: BParams): Float64Array {
  const rn = refRegionCode(x, mask, n, s, c, 1, eps, statistics);
  return rn.map((v, i) => {
    const ch = i % c;
    const m = mask[Math.floor(i / c)];
    return v * m * (1 + p.gf[ch]) + p.bf[ch] + v * (1 - m) * (1 + p.gb[ch]) + p.bb[ch];
  });
}

interface LParams {
  att: ArrayLike<number>;
  gk: ArrayLike<number>;
  gbias: number;
  bk: ArrayLike<number>;
  bbias: number;
}

/** RN-L of the reference code (RN_L, SelfAware_Affine), float64; also returns the attention map. */
function refRegionL(x: ArrayLike<number>, n: number, h: number, w: number, c: number, k: number, p: LParams, threshold: number, eps: number, statistics: 'batch' | 'instance') {
  const pooled = new Float64Array(n * h * w * 2);
  for (let q = 0; q < n * h * w; q++) {
    let sum = 0;
    let max = -Infinity;
    for (let ch = 0; ch < c; ch++) {
      sum += x[q * c + ch];
      max = Math.max(max, x[q * c + ch]);
    }
    pooled[q * 2] = sum / c;
    pooled[q * 2 + 1] = max;
  }
  const attention = conv2dSame(pooled, n, h, w, 2, p.att, k, 1).map((v) => 1 / (1 + Math.exp(-v)));
  const mask = attention.map((a) => (a >= threshold ? 1 : 0));
  const rn = refRegionCode(x, mask, n, h * w, c, 1, eps, statistics);
  const gamma = conv2dSame(attention, n, h, w, 1, p.gk, k, 1).map((v) => v + p.gbias);
  const beta = conv2dSame(attention, n, h, w, 1, p.bk, k, 1).map((v) => v + p.bbias);
  const y = rn.map((v, i) => v * (1 + gamma[Math.floor(i / c)]) + beta[Math.floor(i / c)]);
  return { y, attention, mask };
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

describe('region normalization float64 reference', () => {
  it('equals the closed form (x - mu_R)/sqrt(var_R + eps P/S_R) on each region, as the paper derives it', () => {
    const n = 2;
    const s = 6;
    const c = 2;
    const x = randn(n * s * c, 1);
    const mask = binaryMask(n * s, 2);
    const eps = 0.1;
    const ref = refRegionCode(x, mask, n, s, c, 1, eps, 'batch');
    for (let ch = 0; ch < c; ch++) {
      for (const fg of [1, 0]) {
        const idx = [...Array(n * s).keys()].filter((q) => mask[q] === fg).map((q) => q * c + ch);
        const mu = idx.reduce((a, i) => a + x[i], 0) / idx.length;
        const v = idx.reduce((a, i) => a + (x[i] - mu) ** 2, 0) / idx.length;
        const closed = idx.map((i) => (x[i] - mu) / Math.sqrt(v + (eps * n * s) / idx.length));
        assertClose(idx.map((i) => ref[i]), closed, { atol: 1e-12, rtol: 1e-10 }, `region ${fg} channel ${ch}`);
      }
    }
  });
});

forEachBackend(() => {
  describe('regionNorm (RN-B) op', () => {
    const cases: Array<{ shape: number[]; maskShape: number[]; statistics: 'batch' | 'instance' }> = [
      { shape: [2, 4, 3, 3], maskShape: [2, 4, 3, 1], statistics: 'batch' },
      { shape: [2, 4, 3, 3], maskShape: [2, 4, 3, 1], statistics: 'instance' },
      { shape: [3, 5, 2], maskShape: [3, 5, 1], statistics: 'batch' },
    ];
    for (const { shape, maskShape, statistics } of cases) {
      it(`forward and gradients match the float64 reference code, shape [${shape}], ${statistics} statistics`, () => {
        const n = shape[0];
        const c = shape[shape.length - 1];
        const s = size(shape) / (n * c);
        const xv = randn(size(shape), 10, 0.5, 2);
        const mv = binaryMask(size(maskShape), 11);
        const dyv = randn(size(shape), 12);
        const params = { gf: randn(c, 13, 0, 0.3), bf: randn(c, 14), gb: randn(c, 15, 0, 0.3), bb: randn(c, 16) };
        const eps = 1e-3;
        const ref = refRegionB(xv, mv, n, s, c, eps, statistics, params);
        const loss = (p: BParams, xx: ArrayLike<number>) => dot(refRegionB(xx, mv, n, s, c, eps, statistics, p), dyv);
        const fdX = finiteDifference((v) => loss(params, v), Float64Array.from(xv));
        const fdGf = finiteDifference((v) => loss({ ...params, gf: v }, xv), Float64Array.from(params.gf));
        const fdBb = finiteDifference((v) => loss({ ...params, bb: v }, xv), Float64Array.from(params.bb));
        tf.tidy(() => {
          const mask = tf.tensor(mv, maskShape);
          const [gf, bf, gb, bb] = [params.gf, params.bf, params.gb, params.bb].map((v) => tf.tensor(v, [c]));
          const run = (x: tf.Tensor, a: tf.Tensor, b: tf.Tensor, d: tf.Tensor, e: tf.Tensor, m: tf.Tensor) =>
            nk.regionNorm(x, m, { epsilon: eps, statistics, foregroundGamma: a, foregroundBeta: b, backgroundGamma: d, backgroundBeta: e });
          const x = tf.tensor(xv, shape);
          assertClose(f64(run(x, gf, bf, gb, bb, mask)), ref, { atol: 2e-5, rtol: 2e-5 }, 'y');
          const dy = tf.tensor(dyv, shape);
          const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(run(a[0], a[1], a[2], a[3], a[4], a[5]), dy)))([x, gf, bf, gb, bb, mask]);
          assertClose(f64(grads[0]), fdX, { atol: 1e-4, rtol: 1e-3 }, 'dx');
          assertClose(f64(grads[1]), fdGf, { atol: 1e-4, rtol: 1e-3 }, 'dforegroundGamma');
          assertClose(f64(grads[4]), fdBb, { atol: 1e-4, rtol: 1e-3 }, 'dbackgroundBeta');
          assertClose(f64(grads[5]), new Float64Array(mv.length), { atol: 0 }, 'dmask (a constant)');
        });
      });
    }

    it('takes a per-channel mask and handles an empty region', () => {
      const shape = [2, 6, 3];
      const xv = randn(36, 20);
      const mv = binaryMask(36, 21);
      tf.tidy(() => {
        const y = nk.regionNorm(tf.tensor(xv, shape), tf.tensor(mv, shape), { statistics: 'instance' });
        assertClose(f64(y), refRegionCode(xv, mv, 2, 6, 3, 3, 1e-5, 'instance'), { atol: 2e-5, rtol: 2e-5 }, 'per-channel mask');
        const empty = new Float32Array(12).fill(0);
        const y0 = nk.regionNorm(tf.tensor(xv, shape), tf.tensor(empty, [2, 6, 1]));
        assertClose(f64(y0), refRegionCode(xv, empty, 2, 6, 3, 1, 1e-5, 'batch'), { atol: 2e-5, rtol: 2e-5 }, 'empty region');
        assert.ok(f64(tf.grad((x: tf.Tensor) => tf.sum(tf.square(nk.regionNorm(x, tf.tensor(empty, [2, 6, 1])))))(tf.tensor(xv, shape))).every(Number.isFinite));
      });
    });

    it('resizes a larger rank-4 mask with nearest-neighbour interpolation (PyTorch mode "nearest")', () => {
      const shape = [2, 3, 2, 2];
      const big = binaryMask(2 * 6 * 4, 30);
      const small = new Float32Array(2 * 3 * 2);
      // PyTorch nearest: source index floor(dst * in / out).
      for (let b = 0; b < 2; b++) for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) small[(b * 3 + i) * 2 + j] = big[(b * 6 + i * 2) * 4 + j * 2];
      const xv = randn(size(shape), 31);
      tf.tidy(() => {
        const y = nk.regionNorm(tf.tensor(xv, shape), tf.tensor(big, [2, 6, 4, 1]));
        assertClose(f64(y), refRegionCode(xv, small, 2, 6, 2, 1, 1e-5, 'batch'), { atol: 2e-5, rtol: 2e-5 }, 'y');
      });
    });

    it('holds on a large common offset, constant regions and magnitudes from 1e-10 to 1e10', () => {
      const shape = [2, 8, 2];
      const mv = binaryMask(16, 40);
      tf.tidy(() => {
        const off = randn(32, 41, 1e4, 1e-2);
        assertClose(f64(nk.regionNorm(tf.tensor(off, shape), tf.tensor(mv, [2, 8, 1]))), refRegionCode(off, mv, 2, 8, 2, 1, 1e-5, 'batch'), { atol: 2e-3, rtol: 1e-3 }, 'offset 1e4');
        const constant = new Float32Array(32).fill(-3.5);
        const bb = tf.tensor([0.25, -1], [2]);
        assertClose(f64(nk.regionNorm(tf.tensor(constant, shape), tf.tensor(mv, [2, 8, 1]), { backgroundBeta: bb })), new Float64Array(32).map((_, i) => (i % 2 === 0 ? 0.25 : -1)), { atol: 1e-6 }, 'constant');
        for (const scale of [1e-10, 1e-3, 1e3, 1e10]) {
          const xv = randn(32, 42).map((v) => v * scale);
          const eps = 1e-5 * scale * scale;
          assertClose(f64(nk.regionNorm(tf.tensor(xv, shape), tf.tensor(mv, [2, 8, 1]), { epsilon: eps })), refRegionCode(xv, mv, 2, 8, 2, 1, eps, 'batch'), { atol: 1e-5, rtol: 1e-4 }, `scale ${scale}`);
        }
      });
    });

    it('stays finite and exact for inputs of 1e19 to 1e30 (squares would overflow float32), forward and gradient', () => {
      const shape = [2, 8, 2];
      const mv = binaryMask(16, 44);
      const dyv = randn(32, 45);
      for (const scale of [1e19, 1e25, 1e30]) {
        const xv = randn(32, 46).map((v) => v * scale);
        tf.tidy(() => {
          const m = tf.tensor(mv, [2, 8, 1]);
          for (const statistics of ['batch', 'instance'] as const) {
            const y = f64(nk.regionNorm(tf.tensor(xv, shape), m, { statistics }));
            assertClose(y, refRegionCode(xv, mv, 2, 8, 2, 1, 1e-5, statistics), { atol: 1e-5, rtol: 1e-4 }, `scale ${scale}, ${statistics}`);
          }
          const dx = f64(tf.grad((v: tf.Tensor) => tf.sum(tf.mul(nk.regionNorm(v, m), tf.tensor(dyv, shape))))(tf.tensor(xv, shape)));
          assert.ok(dx.every(Number.isFinite), `scale ${scale}: finite gradient`);
          const learned = nk.regionNormLearned(tf.tensor(xv, [1, 4, 4, 2]), { attentionKernel: tf.fill([3, 3, 2, 1], 0.1), gammaKernel: tf.fill([3, 3, 1, 1], 0.1), betaKernel: tf.fill([3, 3, 1, 1], 0.1) });
          assert.ok(f64(learned).every(Number.isFinite), `scale ${scale}: RN-L finite`);
        });
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3, 2]);
      const m = tf.ones([2, 3, 1]);
      assertThrowsMentioning(() => nk.regionNorm(tf.zeros([2, 3]), m), ['regionNorm', "'x'", 'rank']);
      assertThrowsMentioning(() => nk.regionNorm(x, tf.ones([2, 4, 1])), ["'mask'", '[2, 4, 1]']);
      assertThrowsMentioning(() => nk.regionNorm(x, tf.ones([2, 3, 5])), ["'mask'", '1 or 2']);
      assertThrowsMentioning(() => nk.regionNorm(x, tf.ones([2, 3, 1], 'bool')), ["'mask'", 'float32']);
      assertThrowsMentioning(() => nk.regionNorm(x, tf.fill([2, 3, 1], 0.5)), ["'mask'", 'binary', '0.5']);
      assertThrowsMentioning(() => nk.regionNorm(x, m, { statistics: 'layer' as never }), ["'statistics'", '"batch"']);
      assertThrowsMentioning(() => nk.regionNorm(x, m, { epsilon: 0 }), ["'epsilon'"]);
      assertThrowsMentioning(() => nk.regionNorm(x, m, { foregroundGamma: tf.ones([3]) }), ["'foregroundGamma'", '[2]']);
      assertThrowsMentioning(() => nk.regionNorm(x, m, { gamma: tf.ones([2]) } as never), ["'gamma'"]);
      tf.dispose([x, m]);
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(24, 50), [2, 2, 3, 2]);
      const m = tf.tensor(binaryMask(12, 51), [2, 2, 3, 1]);
      const g = tf.zeros([2]);
      await assertNoLeak(() => nk.regionNorm(x, m, { foregroundGamma: g }).dispose(), 'forward');
      await assertNoLeak(() => tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(nk.regionNorm(a, m, { foregroundGamma: b })))([x, g])), 'gradient');
      tf.dispose([x, m, g]);
    });
  });

  describe('regionNormLearned (RN-L) op', () => {
    const [n, h, w, c, k] = [2, 5, 4, 3, 3];
    const shape = [n, h, w, c];
    const xv = randn(size(shape), 60, 0, 1.5);
    const params: LParams = { att: randn(k * k * 2, 61, 0, 0.6), gk: randn(k * k, 62, 0, 0.3), gbias: 0.1, bk: randn(k * k, 63, 0, 0.3), bbias: -0.2 };
    const threshold = 0.6;
    const eps = 1e-3;

    for (const statistics of ['batch', 'instance'] as const) {
      it(`forward and gradients (x and all five weights) match the float64 reference code, ${statistics} statistics`, () => {
        const ref = refRegionL(xv, n, h, w, c, k, params, threshold, eps, statistics);
        const ones = ref.mask.reduce((a, b) => a + b, 0);
        assert.ok(ones > 3 && ones < n * h * w - 3, `the test region is neither empty nor everything (${ones} of ${n * h * w})`);
        // Finite differences are valid only away from the threshold, where the region does not change.
        assert.ok(ref.attention.every((a) => Math.abs(a - threshold) > 1e-3), 'attention map stays away from the threshold');
        const dyv = randn(size(shape), 64);
        const loss = (p: LParams, xx: ArrayLike<number>) => dot(refRegionL(xx, n, h, w, c, k, p, threshold, eps, statistics).y, dyv);
        const fdX = finiteDifference((v) => loss(params, v), Float64Array.from(xv));
        const fdAtt = finiteDifference((v) => loss({ ...params, att: v }, xv), Float64Array.from(params.att));
        const fdGk = finiteDifference((v) => loss({ ...params, gk: v }, xv), Float64Array.from(params.gk));
        const fdBk = finiteDifference((v) => loss({ ...params, bk: v }, xv), Float64Array.from(params.bk));
        const fdGb = finiteDifference((v) => loss({ ...params, gbias: v[0] }, xv), Float64Array.from([params.gbias]));
        tf.tidy(() => {
          const run = (x: tf.Tensor, att: tf.Tensor, gk: tf.Tensor, gb: tf.Tensor, bk: tf.Tensor, bb: tf.Tensor) =>
            nk.regionNormLearned(x, { attentionKernel: att, gammaKernel: gk, gammaBias: gb, betaKernel: bk, betaBias: bb, threshold, epsilon: eps, statistics });
          const inputs = [tf.tensor(xv, shape), tf.tensor(params.att, [k, k, 2, 1]), tf.tensor(params.gk, [k, k, 1, 1]), tf.tensor([params.gbias]), tf.tensor(params.bk, [k, k, 1, 1]), tf.tensor([params.bbias])];
          assertClose(f64(run(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], inputs[5])), ref.y, { atol: 5e-5, rtol: 5e-5 }, 'y');
          const dy = tf.tensor(dyv, shape);
          const g = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(run(a[0], a[1], a[2], a[3], a[4], a[5]), dy)))(inputs);
          assertClose(f64(g[0]), fdX, { atol: 2e-4, rtol: 1e-3 }, 'dx');
          assertClose(f64(g[1]), fdAtt, { atol: 2e-4, rtol: 1e-3 }, 'dattentionKernel');
          assertClose(f64(g[2]), fdGk, { atol: 2e-4, rtol: 1e-3 }, 'dgammaKernel');
          assertClose(f64(g[3]), fdGb, { atol: 2e-4, rtol: 1e-3 }, 'dgammaBias');
          assertClose(f64(g[4]), fdBk, { atol: 2e-4, rtol: 1e-3 }, 'dbetaKernel');
        });
      });
    }

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([1, 4, 4, 2]);
      const att = tf.zeros([3, 3, 2, 1]);
      const kk = tf.zeros([3, 3, 1, 1]);
      const ok = { attentionKernel: att, gammaKernel: kk, betaKernel: kk };
      assertThrowsMentioning(() => nk.regionNormLearned(tf.zeros([1, 4, 2]), ok), ['regionNormLearned', "'x'", 'rank']);
      assertThrowsMentioning(() => nk.regionNormLearned(tf.zeros([1, 2, 4, 4, 2]), ok), ["'x'", 'rank 4']);
      assertThrowsMentioning(() => nk.regionNormLearned(x, { ...ok, attentionKernel: tf.zeros([4, 4, 2, 1]) }), ["'attentionKernel'", 'odd']);
      assertThrowsMentioning(() => nk.regionNormLearned(x, { ...ok, attentionKernel: tf.zeros([3, 3, 1, 1]) }), ["'attentionKernel'", '[3, 3, 2, 1]']);
      assertThrowsMentioning(() => nk.regionNormLearned(x, { ...ok, gammaKernel: tf.zeros([5, 5, 1, 1]) }), ["'gammaKernel'", '[3, 3, 1, 1]']);
      assertThrowsMentioning(() => nk.regionNormLearned(x, { attentionKernel: att, gammaKernel: kk } as never), ["'betaKernel'"]);
      assertThrowsMentioning(() => nk.regionNormLearned(x, { ...ok, threshold: 1.2 }), ["'threshold'", '[0, 1]']);
      assertThrowsMentioning(() => nk.regionNormLearned(x, { ...ok, gammaBias: tf.zeros([2]) }), ["'gammaBias'", '[1]']);
      tf.dispose([x, att, kk]);
    });
  });

  describe('RegionNormalizationB and RegionNormalizationL layers', () => {
    it('RN-B: a two-input functional model with a dense layer below trains without leaking', async () => {
      const xIn = tfl.input({ shape: [4, 4, 2] });
      const maskIn = tfl.input({ shape: [8, 8, 1] });
      // A dense layer (per pixel) below.
      const h = tfl.layers.dense({ units: 3 }).apply(xIn) as tfl.SymbolicTensor;
      const layer = new nk.RegionNormalizationB({ statistics: 'instance' });
      const rn = layer.apply([h, maskIn]) as tfl.SymbolicTensor;
      assert.deepEqual(rn.shape, [null, 4, 4, 3]);
      const out = tfl.layers.dense({ units: 1 }).apply(tfl.layers.flatten().apply(rn)) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: [xIn, maskIn], outputs: out });
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      assert.deepEqual(layer.weights.map((w) => w.originalName.split('/').pop()), ['foregroundGamma', 'foregroundBeta', 'backgroundGamma', 'backgroundBeta']);
      const xs = tf.tensor(randn(8 * 32, 70), [8, 4, 4, 2]);
      const ms = tf.tensor(binaryMask(8 * 64, 71), [8, 8, 8, 1]);
      const ys = tf.tensor(randn(8, 72), [8, 1]);
      await assertModelFitWithoutLeak(model, [xs, ms], ys);
      assert.ok(f64(layer.weights[0].read()).some((v) => v !== 0), 'foregroundGamma trained');
      tf.dispose([xs, ms, ys]);
      model.dispose();
    });

    it('RN-L: trains between dense layers without leaking', async () => {
      const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 2, inputShape: [5, 5, 2] }), new nk.RegionNormalizationL({ kernelSize: 3, threshold: 0.5 }), tfl.layers.flatten(), tfl.layers.dense({ units: 1 })] });
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      const layer = model.layers[1] as nk.RegionNormalizationL;
      assert.deepEqual(layer.weights.map((wt) => wt.originalName.split('/').pop()), ['attentionKernel', 'gammaKernel', 'gammaBias', 'betaKernel', 'betaBias']);
      const xs = tf.tensor(randn(8 * 50, 80), [8, 5, 5, 2]);
      const ys = tf.tensor(randn(8, 81), [8, 1]);
      await assertModelFitWithoutLeak(model, xs, ys);
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it('are what the registry builds for "region-b" and "region-l", and reject bad arguments', () => {
      assert.ok(nk.createNorm('region-b') instanceof nk.RegionNormalizationB);
      const l = nk.createNorm('region-l', { threshold: 0.9 });
      assert.ok(l instanceof nk.RegionNormalizationL);
      assert.equal(l.threshold, 0.9);
      assertThrowsMentioning(() => new nk.RegionNormalizationL({ kernelSize: 4 }), ['RegionNormalizationL', "'kernelSize'", 'odd']);
      assertThrowsMentioning(() => new nk.RegionNormalizationB({ statistics: 'group' as never }), ['RegionNormalizationB', "'statistics'"]);
      assertThrowsMentioning(() => new nk.RegionNormalizationB().apply(tf.zeros([1, 2, 2, 1])), ['RegionNormalizationB', "'inputs'"]);
    });
  });
});

runLayerTest(nk.RegionNormalizationB, { make: () => new nk.RegionNormalizationB({ epsilon: 1e-3, gammaInitializer: 'ones', betaRegularizer: { className: 'L1L2', config: { l1: 0, l2: 0.01 } } }), inputShape: [[4, 4, 4], [4, 4, 1]], trainable: 4, nonTrainable: 0,
  weights: [['foregroundGamma', [4]], ['foregroundBeta', [4]], ['backgroundGamma', [4]], ['backgroundBeta', [4]]],
  inputs: (n, seed) => [randnTensor([n, 4, 4, 4], seed), tf.tensor(Array.from({ length: n * 16 }, (_, i) => ((i * 7 + seed) % 3 === 0 ? 1 : 0)), [n, 4, 4, 1])],
  supportsMasking: false });
runLayerTest(nk.RegionNormalizationL, { make: () => new nk.RegionNormalizationL({ kernelSize: 3, threshold: 0.7, statistics: 'instance', biasInitializer: 'ones' }), inputShape: [4, 4, 4], trainable: 5, nonTrainable: 0,
  weights: [['attentionKernel', [3, 3, 2, 1]], ['gammaKernel', [3, 3, 1, 1]], ['gammaBias', [1]], ['betaKernel', [3, 3, 1, 1]], ['betaBias', [1]]], supportsMasking: false });
