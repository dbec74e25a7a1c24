import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertThrowsMentioning, f64, randn } from '../helpers/numeric.js';
import { assertFitLowersLoss, assertOptimizerResumes } from '../helpers/optimizer-roundtrip.js';

type Mat = number[][];
const zeros = (r: number, c: number): Mat => Array.from({ length: r }, () => new Array(c).fill(0));
const transpose = (a: Mat): Mat => a[0].map((_, j) => a.map((row) => row[j]));
const matmul = (a: Mat, b: Mat): Mat => a.map((row) => b[0].map((_, j) => row.reduce((s, x, k) => s + x * b[k][j], 0)));
const toMat = (v: ArrayLike<number>, r: number, c: number): Mat => Array.from({ length: r }, (_, i) => Array.from({ length: c }, (_, j) => v[i * c + j]));
const flat = (a: Mat) => Float64Array.from(a.flat());

/**
 * Right singular vectors of a tall matrix (rows >= cols) by one-sided (Hestenes) Jacobi: rotate column
 * pairs of A until orthogonal, accumulating the rotations in V; columns sorted by descending norm.
 * A different algorithm from the library's (Jacobi on the Gram matrix).
 */
function rightSingularVectors(a0: Mat): Mat {
  const a = a0.map((r) => [...r]);
  const n = a[0].length;
  const v = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) {
      let alpha = 0, beta = 0, gamma = 0;
      for (const row of a) { alpha += row[p] ** 2; beta += row[q] ** 2; gamma += row[p] * row[q]; }
      if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
      rotated = true;
      const zeta = (beta - alpha) / (2 * gamma);
      const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
      const c = 1 / Math.sqrt(1 + t * t);
      const s = c * t;
      for (const row of [...a, ...v]) { const x = row[p]; const y = row[q]; row[p] = c * x - s * y; row[q] = s * x + c * y; }
    }
    if (!rotated) break;
  }
  const norms = [...Array(n).keys()].map((j) => Math.sqrt(a.reduce((s, row) => s + row[j] ** 2, 0)));
  const order = [...Array(n).keys()].sort((i, j) => norms[j] - norms[i]);
  return v.map((row) => order.map((j) => row[j]));
}

interface RefConda { w: Mat; m: Mat; v: Mat; p: Mat | null }

/** One float64 Conda step from the official conda.py (step is 1-based). */
function refCondaStep(s: RefConda, g: Mat, step: number, o: { lr: number; b1: number; b2: number; eps: number; wd: number; gap: number; scale: number; project: boolean }): void {
  const rows = g.length, cols = g[0].length;
  s.m = s.m.map((row, i) => row.map((x, j) => o.b1 * x + (1 - o.b1) * g[i][j]));
  let gr = g, mr = s.m;
  const tall = rows >= cols;
  if (o.project) {
    if ((step - 1) % o.gap === 0) s.p = tall ? transpose(rightSingularVectors(s.m)) : rightSingularVectors(transpose(s.m)); // V^T or U
    const p = s.p as Mat;
    gr = tall ? matmul(g, transpose(p)) : matmul(transpose(p), g);
    mr = tall ? matmul(s.m, transpose(p)) : matmul(transpose(p), s.m);
  }
  s.v = s.v.map((row, i) => row.map((x, j) => o.b2 * x + (1 - o.b2) * gr[i][j] ** 2));
  let n = mr.map((row, i) => row.map((x, j) => x / (Math.sqrt(s.v[i][j]) + o.eps)));
  if (o.project) n = (tall ? matmul(n, s.p as Mat) : matmul(s.p as Mat, n)).map((row) => row.map((x) => x * o.scale));
  const stepSize = (o.lr * Math.sqrt(1 - o.b2 ** step)) / (1 - o.b1 ** step);
  s.w = s.w.map((row, i) => row.map((x, j) => x - stepSize * n[i][j]));
  if (o.wd > 0) s.w = s.w.map((row) => row.map((x) => x - o.lr * o.wd * x));
}

forEachBackend(() => {
  describe('Conda', () => {
    const o = { lr: 0.01, b1: 0.9, b2: 0.99, eps: 1e-8, wd: 0.1, gap: 2, scale: 0.25 };
    for (const [label, shape, project] of [
      ['tall 2-D kernel [5, 3]', [5, 3], true],
      ['wide 2-D kernel [2, 4]', [2, 4], true],
      ['excluded 2-D kernel [3, 3] (plain AdamW)', [3, 3], false],
      ['bias [3] (plain AdamW)', [3], false],
    ] as Array<[string, number[], boolean]>) {
      it(`matches a float64 Conda step by step with projection refreshes: ${label}`, () => {
        const [r, c] = shape.length === 2 ? shape : [1, shape[0]];
        const w0 = randn(r * c, 1);
        const opt = new nk.Conda({ learningRate: o.lr, beta2: o.b2, weightDecay: o.wd, updateProjGap: o.gap, scale: o.scale, exclude: project ? [] : ['excluded'] });
        const w = tf.variable(tf.tensor(w0, shape), true, project ? 'conda_w' : 'conda_excluded_w');
        const ref: RefConda = { w: toMat(w0, r, c), m: zeros(r, c), v: zeros(r, c), p: null };
        for (let step = 1; step <= 5; step++) {
          const g = randn(r * c, 10 + step);
          tf.tidy(() => opt.applyGradients({ [w.name]: tf.tensor(g, shape) }));
          refCondaStep(ref, toMat(g, r, c), step, { ...o, project: project && shape.length === 2 });
          assertClose(f64(w), flat(ref.w), { atol: 2e-6, rtol: 1e-4 }, `weights after step ${step}`);
        }
        tf.dispose(w);
        opt.dispose();
      });
    }

    it('without projection and scale 1 it is AdamW (HF form): one step equals the closed form', () => {
      const opt = new nk.Conda({ learningRate: 0.1, exclude: ['w'] });
      const w = tf.variable(tf.tensor([[1, -2], [3, 4]]), true, 'plain_w');
      tf.tidy(() => opt.applyGradients({ [w.name]: tf.tensor([[0.5, -1], [2, 0]]) }));
      // m = 0.1 g, v = 0.001 g^2, step = lr sqrt(0.001) / 0.1: w - step * m / (sqrt(v) + eps) = w - 0.1 sign(g) (for g != 0)
      assertClose(f64(w), [0.9, -1.9, 2.9, 4], { atol: 1e-6 }, 'w');
      tf.dispose(w);
      opt.dispose();
    });

    it('serializes: config round trip, registered class, and the slots m, v, proj restore exactly', async () => {
      const opt = new nk.Conda({ learningRate: 0.01, beta1: 0.8, updateProjGap: 3, scale: 0.5, weightDecay: 0.01, exclude: ['head'], correctBias: true, epsilon: 1e-7 });
      const entry = tf.serialization.SerializationMap.getMap().classNameMap.Conda;
      assert.ok(entry);
      const copy = entry[1](entry[0], opt.getConfig()) as nk.Conda;
      assert.deepEqual(copy.getConfig(), opt.getConfig());
      const p = tf.variable(tf.tensor(randn(12, 3), [4, 3]));
      const q = tf.variable(p.clone());
      for (let i = 0; i < 2; i++) tf.tidy(() => opt.applyGradients({ [p.name]: tf.tensor(randn(12, 20 + i), [4, 3]) }));
      const weights = await opt.getWeights();
      assert.deepEqual(weights.map((x) => x.name), ['iter', `${p.name}/m`, `${p.name}/v`, `${p.name}/proj`]);
      await copy.setWeights(weights.map((x) => ({ name: x.name.replace(p.name, q.name), tensor: x.tensor })));
      tf.tidy(() => q.assign(p));
      // Step 3 reuses the cached projection (gap 3), so both must agree exactly.
      tf.tidy(() => opt.applyGradients({ [p.name]: tf.tensor(randn(12, 30), [4, 3]) }));
      tf.tidy(() => copy.applyGradients({ [q.name]: tf.tensor(randn(12, 30), [4, 3]) }));
      assert.deepEqual(Array.from(q.dataSync()), Array.from(p.dataSync()));
      weights[0].tensor.dispose();
      tf.dispose([p, q]);
      opt.dispose();
      copy.dispose();
    });

    it('model.save({includeOptimizer}) then loadLayersModel continues training identically', async () => {
      await assertOptimizerResumes(() => new nk.Conda({ learningRate: 0.01, updateProjGap: 3, weightDecay: 1e-3 }));
    });

    it('a tiny model.fit lowers the loss, and no step leaks tensors', async () => {
      const model = tfl.sequential({
        layers: [
          tfl.layers.dense({ units: 8, inputShape: [4], activation: 'tanh', kernelInitializer: tfl.initializers.glorotUniform({ seed: 7 }) }),
          tfl.layers.dense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: 8 }) }),
        ],
      });
      await assertFitLowersLoss(model, new nk.Conda({ learningRate: 0.02, updateProjGap: 5 }), 70);
    });

    it('rejects bad options, naming them', () => {
      assertThrowsMentioning(() => new nk.Conda({ updateProjGap: 0 }), ['Conda', "'updateProjGap'", 'integer']);
      assertThrowsMentioning(() => new nk.Conda({ scale: -1 }), ["'scale'"]);
      assertThrowsMentioning(() => new nk.Conda({ beta2: 1.5 }), ["'beta2'"]);
      assertThrowsMentioning(() => new nk.Conda({ exclude: [1] as never }), ["'exclude'"]);
      assertThrowsMentioning(() => new nk.Conda({ gap: 3 } as never), ["'gap'"]);
      assert.equal(nk.listNorms().find((e) => e.name === 'conda')?.kind, 'optimizer');
    });
  });
});
