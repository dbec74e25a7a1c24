import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { refNormalize } from '../helpers/reference.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

type F64 = Float64Array<ArrayBufferLike>;
interface Ref { y: F64; mean: F64; variance: F64 }
interface RefArgs { eps: number; ceps: number; p: number; gamma: ArrayLike<number>; beta: ArrayLike<number>; gg: ArrayLike<number>; gb: ArrayLike<number> }

/** Channel stage in float64: per (n, group) over every non-batch axis and the group's channels, per-group affine. */
function refChannelStage(u: ArrayLike<number>, shape: number[], G: number, a: RefArgs): F64 {
  const C = shape[shape.length - 1];
  const gshape = [...shape.slice(0, -1), G, C / G];
  const axes = gshape.map((_, i) => i).filter((i) => i !== 0 && i !== gshape.length - 2);
  return refNormalize(u, gshape, axes, a.ceps, { gamma: a.gg, beta: a.gb, paramAxes: [gshape.length - 2] }).y;
}

/** Training BCN in float64: PyTorch BN with batch statistics (running update with unbiased variance), then the channel stage. */
function refTrain(x: ArrayLike<number>, shape: number[], G: number, a: RefArgs, m0: ArrayLike<number>, v0: ArrayLike<number>): Ref {
  const C = shape[shape.length - 1];
  const axes = shape.slice(0, -1).map((_, i) => i);
  const bn = refNormalize(x, shape, axes, a.eps, { gamma: a.gamma, beta: a.beta, paramAxes: [shape.length - 1] });
  const n = x.length / C;
  // slices() orders slices by the kept coordinate, i.e. by channel
  const mean = Float64Array.from(m0, (m, c) => (1 - a.p) * m + a.p * bn.mean[c]);
  const variance = Float64Array.from(v0, (v, c) => (1 - a.p) * v + (a.p * bn.variance[c] * n) / (n - 1));
  return { y: refChannelStage(bn.y, shape, G, a), mean, variance };
}

/** BN stage with given statistics (inference / estimate mode), then the channel stage. */
function refWithStats(x: ArrayLike<number>, shape: number[], G: number, a: RefArgs, m: ArrayLike<number>, v: ArrayLike<number>): F64 {
  const C = shape[shape.length - 1];
  const u = Float64Array.from(x, (xv, i) => (a.gamma[i % C] * (xv - m[i % C])) / Math.sqrt(v[i % C] + a.eps) + a.beta[i % C]);
  return refChannelStage(u, shape, G, a);
}

/** EstBN estimates: m' = (1-s) m + s mean(x), v' = (1-s) v + s mean((x - m_old)^2). */
function refEstimates(x: ArrayLike<number>, C: number, s: number, m: ArrayLike<number>, v: ArrayLike<number>): { mean: F64; variance: F64 } {
  const n = x.length / C;
  const mean = new Float64Array(C);
  const sq = new Float64Array(C);
  for (let i = 0; i < x.length; i++) {
    mean[i % C] += x[i] / n;
    sq[i % C] += (x[i] - m[i % C]) ** 2 / n;
  }
  return { mean: Float64Array.from(mean, (b, c) => (1 - s) * m[c] + s * b), variance: Float64Array.from(sq, (b, c) => (1 - s) * v[c] + s * b) };
}

const shape = [2, 3, 2, 8];
const C = 8;
const G = 4;
const size = 96;
const args: RefArgs = { eps: 1e-5, ceps: 1e-5, p: 0.1, gamma: randn(C, 1, 1, 0.3), beta: randn(C, 2), gg: randn(G, 3, 1, 0.3), gb: randn(G, 4) };
const m0 = randn(C, 5, 0, 0.5);
const v0 = Float64Array.from(randn(C, 6), (v) => 1 + 0.5 * Math.abs(v));

function tensors() {
  return {
    groups: G, gamma: tf.tensor(args.gamma), beta: tf.tensor(args.beta), groupGamma: tf.tensor(args.gg), groupBeta: tf.tensor(args.gb),
    movingMean: tf.tensor(m0), movingVariance: tf.tensor(Float32Array.from(v0)),
  };
}

forEachBackend(() => {
  describe('batchChannelNorm op', () => {
    it('training: output and running statistics match float64 BN-then-channel-norm', () => {
      const xv = randn(size, 10, 3, 2);
      const want = refTrain(xv, shape, G, args, m0, v0);
      tf.tidy(() => {
        const r = nk.batchChannelNorm(tf.tensor(xv, shape), { training: true, ...tensors() });
        assertClose(f64(r.y), want.y, { atol: 1e-4, rtol: 1e-4 }, 'y');
        assertClose(f64(r.movingMean), want.mean, { atol: 1e-5, rtol: 1e-5 }, 'movingMean');
        assertClose(f64(r.movingVariance), want.variance, { atol: 1e-5, rtol: 1e-5 }, 'movingVariance');
      });
    });

    it('training gradients (x, both affines) match finite differences of the float64 reference', () => {
      const xv = randn(size, 11);
      const dyv = randn(size, 12);
      const loss = (x: ArrayLike<number>, a: RefArgs) => refTrain(x, shape, G, a, m0, v0).y.reduce((s, y, i) => s + y * dyv[i], 0);
      const fdx = finiteDifference((v) => loss(v, args), Float64Array.from(xv));
      const fdg = finiteDifference((v) => loss(xv, { ...args, gamma: v }), Float64Array.from(args.gamma));
      const fdgg = finiteDifference((v) => loss(xv, { ...args, gg: v }), Float64Array.from(args.gg));
      const fdgb = finiteDifference((v) => loss(xv, { ...args, gb: v }), Float64Array.from(args.gb));
      tf.tidy(() => {
        const t = tensors();
        const [dx, dg, dgg, dgb] = tf.grads((x: tf.Tensor, g: tf.Tensor, gg: tf.Tensor, gb: tf.Tensor) =>
          tf.sum(tf.mul(nk.batchChannelNorm(x, { training: true, ...t, gamma: g, groupGamma: gg, groupBeta: gb }).y, tf.tensor(dyv, shape))))([tf.tensor(xv, shape), t.gamma, t.groupGamma, t.groupBeta]);
        assertClose(f64(dx), fdx, { atol: 2e-4, rtol: 2e-3 }, 'dx');
        assertClose(f64(dg), fdg, { atol: 2e-4, rtol: 2e-3 }, 'dgamma');
        assertClose(f64(dgg), fdgg, { atol: 2e-4, rtol: 2e-3 }, 'dgroupGamma');
        assertClose(f64(dgb), fdgb, { atol: 2e-4, rtol: 2e-3 }, 'dgroupBeta');
      });
    });

    it('inference uses the running statistics in the batch stage and the sample statistics in the channel stage', () => {
      const xv = randn(size, 20, -1, 3);
      const want = refWithStats(xv, shape, G, args, m0, v0);
      tf.tidy(() => {
        const r = nk.batchChannelNorm(tf.tensor(xv, shape), tensors());
        assertClose(f64(r.y), want, { atol: 1e-4, rtol: 1e-4 }, 'y');
        assertClose(f64(r.movingMean), m0, { atol: 0 }, 'movingMean unchanged');
      });
    });

    it('estimate mode (EstBN): updates the estimates around the old mean first, normalizes with them, no gradient through them', () => {
      const xv = randn(size, 30, 2, 1.5);
      const s = 0.3;
      const est = refEstimates(xv, C, s, m0, v0);
      const dyv = randn(size, 31);
      const fixedStatsLoss = (v: ArrayLike<number>) => refWithStats(v, shape, G, args, est.mean, est.variance).reduce((acc, y, i) => acc + y * dyv[i], 0);
      const fdx = finiteDifference(fixedStatsLoss, Float64Array.from(xv));
      tf.tidy(() => {
        const opts = { training: true, estimate: true, estimateSpeed: s, ...tensors() };
        const r = nk.batchChannelNorm(tf.tensor(xv, shape), opts);
        assertClose(f64(r.movingMean), est.mean, { atol: 1e-5, rtol: 1e-5 }, 'mean estimate');
        assertClose(f64(r.movingVariance), est.variance, { atol: 1e-5, rtol: 1e-5 }, 'variance estimate');
        assertClose(f64(r.y), refWithStats(xv, shape, G, args, est.mean, est.variance), { atol: 1e-4, rtol: 1e-4 }, 'y');
        const dx = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(nk.batchChannelNorm(x, opts).y, tf.tensor(dyv, shape))))(tf.tensor(xv, shape));
        assertClose(f64(dx), fdx, { atol: 2e-4, rtol: 2e-3 }, 'dx with constant estimates');
      });
    });

    it('holds on a large common offset and on magnitudes from 1e-6 to 1e6', () => {
      for (const [mean, std] of [[1e4, 1e-2], [0, 1e-6], [0, 1e6]]) {
        const xv = randn(size, 40, mean, std);
        const want = refTrain(xv, shape, G, args, m0, v0);
        tf.tidy(() => {
          const r = nk.batchChannelNorm(tf.tensor(xv, shape), { training: true, ...tensors() });
          assertClose(f64(r.y), want.y, { atol: 1e-3, rtol: 1e-3 }, `y at mean ${mean}, std ${std}`);
        });
      }
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([2, 3, 8]);
      assertThrowsMentioning(() => nk.batchChannelNorm(x, { groups: 3 }), ['batchChannelNorm', "'groups'", 'divisor']);
      assertThrowsMentioning(() => nk.batchChannelNorm(x, { groups: 4, groupGamma: tf.ones([8]) }), ["'groupGamma'", '[4]', '[8]']);
      assertThrowsMentioning(() => nk.batchChannelNorm(x, { groups: 4, gamma: tf.ones([4]) }), ["'gamma'", '[8]']);
      assertThrowsMentioning(() => nk.batchChannelNorm(x, { groups: 4, movingMean: tf.ones([2]) }), ["'movingMean'", '[8]']);
      assertThrowsMentioning(() => nk.batchChannelNorm(x, { groups: 4, estimate: true }), ["'estimateSpeed'"]);
      assertThrowsMentioning(() => nk.batchChannelNorm(x, { groups: 4, estimate: true, estimateSpeed: 2 }), ["'estimateSpeed'", '[0, 1]']);
      assertThrowsMentioning(() => nk.batchChannelNorm(x, { groups: 4, momentum: -1 }), ["'momentum'"]);
      assertThrowsMentioning(() => nk.batchChannelNorm(x, { groups: 4, channelEpsilon: 0 }), ["'channelEpsilon'"]);
      assertThrowsMentioning(() => nk.batchChannelNorm(tf.zeros([1, 8]), { groups: 4, training: true }), ["'x'", 'more than one value']);
      assertThrowsMentioning(() => nk.batchChannelNorm(x, { groups: 4, axis: 1 } as never), ["'axis'"]);
      assertThrowsMentioning(() => nk.batchChannelNorm(tf.zeros([8])), ["'x'", 'rank']);
      x.dispose();
    });

    it('leaks no tensors in forward or gradient, in both modes', async () => {
      const x = tf.tensor(randn(32, 50), [2, 2, 8]);
      for (const extra of [{}, { estimate: true, estimateSpeed: 0.1 }]) {
        await assertNoLeak(() => {
          const r = nk.batchChannelNorm(x, { training: true, groups: 2, ...extra });
          tf.dispose([r.y, r.movingMean, r.movingVariance]);
        }, 'forward');
        await assertNoLeak(() => tf.dispose(tf.grad((a: tf.Tensor) => tf.sum(nk.batchChannelNorm(a, { training: true, groups: 2, ...extra }).y))(x)), 'gradient');
      }
      x.dispose();
    });
  });

  describe('BatchChannelNormalization layer', () => {
    it('updates its moving statistics in training calls and uses them at inference', () => {
      const layer = new nk.BatchChannelNormalization({ groups: G });
      const xv = randn(size, 60, 1, 2);
      const x = tf.tensor(xv, shape);
      tf.dispose(layer.apply(x, { training: true }) as tf.Tensor);
      assert.deepEqual(layer.weights.map((w) => w.originalName.split('/').pop()), ['gamma', 'beta', 'group_gamma', 'group_beta', 'moving_mean', 'moving_variance']);
      const ones = new Float64Array(C).fill(1);
      const plain: RefArgs = { ...args, gamma: ones, beta: new Float64Array(C), gg: new Float64Array(G).fill(1), gb: new Float64Array(G) };
      const want = refTrain(xv, shape, G, plain, new Float64Array(C), ones);
      const w = layer.getWeights();
      assertClose(f64(w[4]), want.mean, { atol: 1e-5, rtol: 1e-5 }, 'moving_mean');
      assertClose(f64(w[5]), want.variance, { atol: 1e-5, rtol: 1e-5 }, 'moving_variance');
      const y = layer.apply(x) as tf.Tensor;
      assertClose(f64(y), refWithStats(xv, shape, G, plain, want.mean, want.variance), { atol: 1e-4, rtol: 1e-4 }, 'inference y');
      tf.dispose([x, y]);
      layer.dispose();
    });

    it('is what the registry builds for "bcn"', () => {
      for (const name of ['bcn', 'batch-channel', 'BatchChannelNormalization']) assert.ok(nk.createNorm(name, { groups: 8 }) instanceof nk.BatchChannelNormalization);
      assertThrowsMentioning(() => new nk.BatchChannelNormalization({ estimate: true }), ['BatchChannelNormalization', "'estimateSpeed'"]);
    });
  });
});

runLayerTest(nk.BatchChannelNormalization, { make: () => new nk.BatchChannelNormalization({ groups: 2 }), inputShape: [3, 3, 4], trainable: 4, nonTrainable: 2,
  weights: [['gamma', [4]], ['beta', [4]], ['group_gamma', [2]], ['group_beta', [2]], ['moving_mean', [4]], ['moving_variance', [4]]], supportsMasking: true });
runLayerTest(nk.BatchChannelNormalization, { label: 'estimate mode', make: () => new nk.BatchChannelNormalization({ groups: 2, estimate: true, estimateSpeed: 0.01, channelEpsilon: 1e-4, betaInitializer: 'ones' }), inputShape: [3, 3, 4], trainable: 4, nonTrainable: 2,
  weights: [['gamma', [4]], ['beta', [4]], ['group_gamma', [2]], ['group_beta', [2]], ['moving_mean', [4]], ['moving_variance', [4]]], supportsMasking: true });
