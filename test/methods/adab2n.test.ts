import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { assertModelFitWithoutLeak } from '../helpers/layer-roundtrip.js';
import { recordReadBacks } from '../helpers/read-back.js';
import { runLayerTest } from '../helpers/run-layer-test.js';
import { assertNextStepAfterSaveLoad } from '../helpers/state-roundtrip.js';

interface RefParams {
  taskIds?: number[];
  logits?: ArrayLike<number>;
  currentTask: number;
  ms: ArrayLike<number>;
  vs: ArrayLike<number>;
  eta: number;
  eps: number;
  gamma?: ArrayLike<number>;
  beta?: ArrayLike<number>;
  /** Hold the updated running statistics fixed (they are detached in the reference code). */
  fixedRunning?: { mean: number[]; variance: number[] };
}

/**
 * AdaB2N's training forward in float64 as models/utils/adab2n.py computes it, on x laid out [N, S, C]:
 * task-balanced (or plain) batch statistics, output, running update, and the loss against the updated running
 * statistics.
 */
function refAdaB2N(x: ArrayLike<number>, n: number, s: number, c: number, p: RefParams) {
  const at = (i: number, q: number, ch: number) => (i * s + q) * c + ch;
  const balanced = p.taskIds !== undefined && p.currentTask > 0;
  const weights = new Array<number>(n).fill(1 / n);
  if (balanced) {
    const ids = p.taskIds as number[];
    const counts = new Array<number>(p.currentTask + 1).fill(0);
    for (const id of ids) counts[id] += 1;
    const conc = counts.map((k, t) => Math.exp((p.logits as ArrayLike<number>)[t]) + k);
    const total = conc.reduce((a, b) => a + b, 0);
    ids.forEach((id, i) => (weights[i] = conc[id] / total / counts[id]));
  }
  const mean = new Array<number>(c).fill(0);
  const variance = new Array<number>(c).fill(0);
  for (let ch = 0; ch < c; ch++) {
    for (let i = 0; i < n; i++) {
      let m = 0;
      for (let q = 0; q < s; q++) m += x[at(i, q, ch)];
      mean[ch] += weights[i] * (m / s);
    }
    for (let i = 0; i < n; i++) {
      let v = 0;
      for (let q = 0; q < s; q++) v += (x[at(i, q, ch)] - mean[ch]) ** 2;
      variance[ch] += weights[i] * (v / s);
    }
  }
  const y = new Float64Array(n * s * c);
  for (let i = 0; i < y.length; i++) {
    const ch = i % c;
    y[i] = ((x[i] - mean[ch]) / Math.sqrt(variance[ch] + p.eps)) * (p.gamma ? p.gamma[ch] : 1) + (p.beta ? p.beta[ch] : 0);
  }
  const newMean = p.fixedRunning?.mean ?? mean.map((m, ch) => p.ms[ch] + p.eta * (m - p.ms[ch]));
  const newVariance = p.fixedRunning?.variance ?? variance.map((v, ch) => (1 - p.eta) * p.vs[ch] + p.eta * v);
  const loss = mean.reduce((a, m, ch) => a + (m - newMean[ch]) ** 2, 0) / c + variance.reduce((a, v, ch) => a + (v - newVariance[ch]) ** 2, 0) / c;
  return { y, mean, variance, newMean, newVariance, loss };
}

/** The reference code's get_eta, step by step (num_batches_tracked incremented before the call). */
function refEtas(steps: number, m: number, kappa: number): number[] {
  const out: number[] = [];
  let last: number | null = null;
  for (let t = 1; t <= steps; t++) {
    if (kappa === 0) out.push(1 / t);
    else if (kappa === 1) out.push(m);
    else if (last === null) out.push((last = m ** kappa));
    else out.push((last = last / (last + (1 - m) ** kappa)));
  }
  return out;
}

describe('adab2nEta', () => {
  it('equals the reference code recursion for kappa in {0, 0.1, 0.4, 0.7, 1}', () => {
    for (const m of [0.1, 0.3]) {
      for (const kappa of [0, 0.1, 0.4, 0.7, 1]) {
        const expected = refEtas(60, m, kappa);
        const got = expected.map((_, i) => nk.adab2nEta(i + 1, m, kappa));
        assertClose(got, expected, { rtol: 1e-12 }, `m ${m}, kappa ${kappa}`);
      }
    }
    assertThrowsMentioning(() => nk.adab2nEta(0, 0.1, 0.5), ["'step'"]);
    assertThrowsMentioning(() => nk.adab2nEta(1, 0.1, 2), ["'kappa'"]);
  });
});

forEachBackend(() => {
  describe('adaB2N op', () => {
    const cases = [
      { shape: [6, 2, 2, 3], taskIds: [0, 1, 1, 2, 0, 1], currentTask: 2, label: 'balanced, three tasks' },
      { shape: [5, 4], taskIds: [0, 0, 0, 1, 1], currentTask: 2, label: 'balanced, a task absent from the batch' },
      { shape: [4, 3, 2], taskIds: [0, 1, 0, 1], currentTask: 0, label: 'first task: plain batch statistics' },
      { shape: [4, 3, 2], taskIds: undefined, currentTask: 1, label: 'no task ids: plain batch statistics' },
    ];
    for (const cs of cases) {
      it(`forward, running statistics, loss and gradients match the float64 reference code: ${cs.label}`, () => {
        const [n, c] = [cs.shape[0], cs.shape[cs.shape.length - 1]];
        const s = cs.shape.reduce((a, b) => a * b, 1) / (n * c);
        const xv = randn(n * s * c, 1, 0.5, 2);
        const dyv = randn(n * s * c, 2);
        const p: RefParams = { taskIds: cs.taskIds, logits: randn(3, 3, 0, 0.5), currentTask: cs.currentTask, ms: randn(c, 4), vs: randn(c, 5).map((v) => 0.5 + v * v), eta: 0.3, eps: 1e-3, gamma: randn(c, 6, 1, 0.3), beta: randn(c, 7) };
        const ref = refAdaB2N(xv, n, s, c, p);
        const fixed = { fixedRunning: { mean: ref.newMean, variance: ref.newVariance } };
        const objective = (r: { y: ArrayLike<number>; loss: number }) => Array.from(r.y).reduce((a, y, i) => a + y * dyv[i], 0) + 3 * r.loss;
        const fdX = finiteDifference((v) => objective(refAdaB2N(v, n, s, c, { ...p, ...fixed })), Float64Array.from(xv));
        const fdW = finiteDifference((w) => objective(refAdaB2N(xv, n, s, c, { ...p, ...fixed, logits: w })), Float64Array.from(p.logits as Float32Array));
        tf.tidy(() => {
          const opts = (logits: tf.Tensor) => ({
            training: true,
            movingMean: tf.tensor(p.ms),
            movingVariance: tf.tensor(p.vs),
            eta: p.eta,
            taskIds: cs.taskIds ? tf.tensor1d(cs.taskIds) : undefined,
            taskLogits: logits,
            currentTask: cs.currentTask,
            epsilon: p.eps,
            gamma: tf.tensor(p.gamma as Float32Array),
            beta: tf.tensor(p.beta as Float32Array),
          });
          const x = tf.tensor(xv, cs.shape);
          const logits = tf.tensor(p.logits as Float32Array);
          const r = nk.adaB2N(x, opts(logits));
          assertClose(f64(r.y), ref.y, { atol: 2e-5, rtol: 2e-5 }, 'y');
          assertClose(f64(r.movingMean), ref.newMean, { atol: 1e-5, rtol: 1e-5 }, 'movingMean');
          assertClose(f64(r.movingVariance), ref.newVariance, { atol: 1e-5, rtol: 1e-5 }, 'movingVariance');
          assertClose(f64(r.statsLoss), [ref.loss], { atol: 1e-5, rtol: 1e-4 }, 'statsLoss');
          const dy = tf.tensor(dyv, cs.shape);
          const objectiveT = (a: tf.Tensor, w: tf.Tensor) => {
            const out = nk.adaB2N(a, opts(w));
            return tf.add(tf.sum(tf.mul(out.y, dy)), tf.mul(out.statsLoss, 3));
          };
          const dx = tf.grad((a: tf.Tensor) => objectiveT(a, logits))(x);
          assertClose(f64(dx), fdX, { atol: 2e-4, rtol: 1e-3 }, 'dx vs finite differences');
          if (cs.taskIds && cs.currentTask > 0) {
            const dw = tf.grad((w: tf.Tensor) => objectiveT(x, w))(logits);
            assertClose(f64(dw), fdW, { atol: 2e-4, rtol: 1e-3 }, 'dtaskLogits vs finite differences');
          } else {
            assertClose(fdW, new Float64Array(3), { atol: 1e-9 }, 'no dependence on the task logits');
          }
        });
      });
    }

    it('inference is BatchNorm with the running statistics', () => {
      const xv = randn(12, 10);
      tf.tidy(() => {
        const r = nk.adaB2N(tf.tensor(xv, [4, 3]), { training: false, movingMean: tf.tensor([1, 0, -1]), movingVariance: tf.tensor([4, 1, 0.25]) });
        const ms = [1, 0, -1];
        const vs = [4, 1, 0.25];
        assertClose(f64(r.y), Array.from(xv, (v, i) => (v - ms[i % 3]) / Math.sqrt(vs[i % 3] + 1e-5)), { atol: 1e-5 }, 'y');
        assertClose(f64(r.movingMean), ms, { atol: 0 }, 'unchanged');
      });
    });

    it('holds on a large common offset (1e4) in the balanced path', () => {
      const shape = [4, 8, 2];
      const xv = randn(64, 20, 1e4, 1e-2);
      const p: RefParams = { taskIds: [0, 1, 1, 0], logits: [0.2, -0.1], currentTask: 1, ms: [1e4, 1e4], vs: [1e-4, 1e-4], eta: 0.1, eps: 1e-9 };
      const ref = refAdaB2N(xv, 4, 8, 2, p);
      tf.tidy(() => {
        const r = nk.adaB2N(tf.tensor(xv, shape), { training: true, movingMean: tf.tensor(p.ms), movingVariance: tf.tensor(p.vs), eta: p.eta, taskIds: tf.tensor1d([0, 1, 1, 0]), taskLogits: tf.tensor([0.2, -0.1]), currentTask: 1, epsilon: p.eps });
        assertClose(f64(r.y), ref.y, { atol: 2e-3, rtol: 1e-3 }, 'y');
      });
    });

    it('rejects bad input before computing, naming the argument', () => {
      const x = tf.zeros([4, 3]);
      const m = tf.zeros([3]);
      const ok = { training: true, movingMean: m, movingVariance: m, eta: 0.1, currentTask: 1, taskLogits: tf.zeros([2]) };
      assertThrowsMentioning(() => nk.adaB2N(x, { ...ok, eta: undefined }), ['adaB2N', "'eta'"]);
      assertThrowsMentioning(() => nk.adaB2N(x, { ...ok, eta: 2 }), ["'eta'", '[0, 1]']);
      assertThrowsMentioning(() => nk.adaB2N(x, { ...ok, taskIds: tf.tensor1d([0, 1, 2, 0]) }), ["'taskIds'", '[0, 1]', '2']);
      assertThrowsMentioning(() => nk.adaB2N(x, { ...ok, taskIds: tf.tensor1d([0, 1, 0.5, 0]) }), ["'taskIds'", '0.5']);
      assertThrowsMentioning(() => nk.adaB2N(x, { ...ok, taskIds: tf.tensor1d([0, 1]) }), ["'taskIds'", '[4]']);
      assertThrowsMentioning(() => nk.adaB2N(x, { ...ok, taskIds: tf.tensor1d([0, 1, 1, 0]), taskLogits: tf.zeros([1]) }), ["'taskLogits'", 'T > currentTask']);
      assertThrowsMentioning(() => nk.adaB2N(x, { ...ok, movingMean: tf.zeros([2]) }), ["'movingMean'", '[3]']);
      assertThrowsMentioning(() => nk.adaB2N(tf.zeros([1, 3]), ok), ["'x'", 'more than one value']);
      assertThrowsMentioning(() => nk.adaB2N(x, { ...ok, currentTask: -1 }), ["'currentTask'"]);
      assertThrowsMentioning(() => nk.adaB2N(x, { ...ok, momentum: 0.1 } as never), ["'momentum'"]);
      tf.dispose([x, m]);
    });

    it('leaks no tensors in forward or gradient', async () => {
      const x = tf.tensor(randn(24, 30), [4, 2, 3]);
      const m = tf.zeros([3]);
      const v = tf.ones([3]);
      const logits = tf.zeros([2]);
      const ids = tf.tensor1d([0, 1, 1, 0]);
      const opts = { training: true, movingMean: m, movingVariance: v, eta: 0.1, taskIds: ids, currentTask: 1 };
      await assertNoLeak(() => {
        const r = nk.adaB2N(x, { ...opts, taskLogits: logits });
        tf.dispose([r.y, r.movingMean, r.movingVariance, r.statsLoss]);
      }, 'forward');
      await assertNoLeak(() => tf.dispose(tf.grads((a: tf.Tensor, w: tf.Tensor) => tf.sum(nk.adaB2N(a, { ...opts, taskLogits: w }).y))([x, logits])), 'gradient');
      tf.dispose([x, m, v, logits, ids]);
    });
  });

  describe('AdaB2N layer', () => {
    it('training calls follow the eta schedule and the balance; adds lambda * statsLoss to the model losses', () => {
      const layer = new nk.AdaB2N({ numTasks: 3, kappa: 0.4, momentum: 0.2, lossWeight: 0.5 });
      const xIn = tfl.input({ shape: [2] });
      const idsIn = tfl.input({ shape: [1] });
      const model = tfl.model({ inputs: [xIn, idsIn], outputs: layer.apply([xIn, idsIn]) as tfl.SymbolicTensor });
      // tfjs lists trainable weights first.
      assert.deepEqual(layer.weights.map((w) => w.originalName.split('/').pop()), ['gamma', 'beta', 'task_logits', 'moving_mean', 'moving_variance', 'num_batches_tracked', 'current_task']);
      const etas = refEtas(3, 0.2, 0.4);
      let ms = [0, 0];
      let vs = [1, 1];
      const batches = [randn(8, 40, 1, 2), randn(8, 41, -1, 1), randn(8, 42, 2, 0.5)];
      const ids = [0, 1, 1, 0];
      batches.forEach((xv, step) => {
        if (step === 1) layer.endTask();
        const task = step === 0 ? 0 : 1;
        const ref = refAdaB2N(xv, 4, 1, 2, { taskIds: ids, logits: [0, 0, 0], currentTask: task, ms, vs, eta: etas[step], eps: 1e-5 });
        tf.tidy(() => {
          const y = layer.apply([tf.tensor(xv, [4, 2]), tf.tensor1d(ids)], { training: true }) as tf.Tensor;
          assertClose(f64(y), ref.y, { atol: 2e-5, rtol: 2e-5 }, `y at step ${step + 1}`);
          const losses = layer.calculateLosses();
          assert.equal(losses.length, 1);
          assertClose(f64(losses[0]), [0.5 * ref.loss], { atol: 1e-6, rtol: 1e-4 }, `aux loss at step ${step + 1}`);
        });
        ms = ref.newMean;
        vs = ref.newVariance;
        assertClose(f64(layer.getWeights()[3]), ms, { atol: 1e-5, rtol: 1e-5 }, `moving_mean at step ${step + 1}`);
        assertClose(f64(layer.getWeights()[4]), vs, { atol: 1e-5, rtol: 1e-5 }, `moving_variance at step ${step + 1}`);
      });
      assert.equal(layer.currentTask, 1);
      assertClose(f64(layer.getWeights()[5]), [3], { atol: 0 }, 'num_batches_tracked');
      tf.tidy(() => {
        assert.equal(f64(layer.calculateLosses()[0])[0], 0, 'the loss is added once per training call');
      });
      layer.endTask();
      assertThrowsMentioning(() => layer.endTask(), ['AdaB2N.endTask', "'numTasks'"]);
      model.dispose();
    });

    it('trains with task ids in model.fit without leaking, the task logits learning through the balance', async () => {
      const layer = new nk.AdaB2N({ numTasks: 2, kappa: 0.7 });
      const xIn = tfl.input({ shape: [3] });
      const idsIn = tfl.input({ shape: [1] });
      const h = tfl.layers.dense({ units: 3 }).apply(xIn) as tfl.SymbolicTensor;
      const out = tfl.layers.dense({ units: 1 }).apply(layer.apply([h, idsIn]) as tfl.SymbolicTensor) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: [xIn, idsIn], outputs: out });
      model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
      const xs = tf.tensor(randn(36, 50), [12, 3]);
      const idsT = tf.tensor([0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0], [12, 1]);
      const ys = tf.tensor(randn(12, 51), [12, 1]);
      await model.fit([xs, idsT], ys, { epochs: 1, batchSize: 4, verbose: 0, shuffle: false });
      layer.endTask();
      await assertModelFitWithoutLeak(model, [xs, idsT], ys, { shuffle: false });
      assert.ok(f64(layer.getWeights()[2]).some((w) => w !== 0), 'task logits trained');
      tf.dispose([xs, idsT, ys]);
      model.dispose();
    });

    it('takes eta from its step counter on the device: adab2nEta of a tensor follows the reference recursion', () => {
      for (const kappa of [0, 0.4, 1]) {
        const expected = refEtas(200, 0.2, kappa);
        const steps = tf.range(1, 201);
        const got = nk.adab2nEta(steps, 0.2, kappa);
        assertClose(f64(got), expected, { rtol: 1e-6 }, `tensor steps, kappa ${kappa}`);
        tf.dispose([steps, got]);
      }
    });

    it('a training step (eta, balance, running update, auxiliary loss, gradients) reads nothing back to the host', () => {
      const layer = new nk.AdaB2N({ numTasks: 3, kappa: 0.4, momentum: 0.2, lossWeight: 0.5, lossFromTask: 1 });
      const ids = [0, 1, 1, 0, 1];
      const batches = Array.from({ length: 4 }, (_, k) => ({ xv: randn(10, 60 + k, k, 1 + k), dyv: randn(10, 70 + k) }));
      const idsT = tf.tensor1d(ids);
      tf.dispose(layer.apply([tf.zeros([5, 2]), idsT]) as tf.Tensor);
      const etas = refEtas(4, 0.2, 0.4);
      let ms = [0, 0];
      let vs = [1, 1];
      batches.forEach(({ xv, dyv }, k) => {
        // Two steps in task 0, then two in task 1 (endTask reads the task on the host, between tasks).
        if (k === 2) layer.endTask();
        const task = k < 2 ? 0 : 1;
        const ref = refAdaB2N(xv, 5, 1, 2, { taskIds: ids, logits: [0, 0, 0], currentTask: task, ms, vs, eta: etas[k], eps: 1e-5 });
        const x = tf.tensor(xv, [5, 2]);
        const dy = tf.tensor(dyv, [5, 2]);
        const { result: aux, reads } = recordReadBacks(() => {
          let auxLoss: tf.Tensor | null = null;
          const { value, grads } = tf.variableGrads(() => {
            const y = layer.apply([x, idsT], { training: true }) as tf.Tensor;
            auxLoss = tf.keep(layer.calculateLosses()[0]);
            return tf.add(tf.sum(tf.mul(y, dy)), auxLoss) as tf.Scalar;
          }, layer.trainableWeights.map((w) => w.read() as tf.Variable));
          tf.dispose([value, ...Object.values(grads)]);
          return auxLoss as unknown as tf.Tensor;
        });
        assert.deepEqual(reads, [], `reads during training step ${k + 1}`);
        assertClose(f64(aux), [task >= 1 ? 0.5 * ref.loss : 0], { atol: 1e-6, rtol: 1e-4 }, `aux loss at step ${k + 1}`);
        ms = ref.newMean;
        vs = ref.newVariance;
        assertClose(f64(layer.getWeights()[3]), ms, { atol: 1e-5, rtol: 1e-5 }, `moving_mean at step ${k + 1}`);
        assertClose(f64(layer.getWeights()[4]), vs, { atol: 1e-5, rtol: 1e-5 }, `moving_variance at step ${k + 1}`);
        tf.dispose([x, dy, aux]);
      });
      assertClose(f64(layer.getWeights()[5]), [4], { atol: 0 }, 'num_batches_tracked');
      idsT.dispose();
      layer.dispose();
    });

    it('masks task ids outside [0, current task] out of the balance instead of reading them back', () => {
      const layer = new nk.AdaB2N({ numTasks: 3 });
      tf.dispose(layer.apply([tf.zeros([6, 2]), tf.zeros([6])]) as tf.Tensor);
      layer.endTask();
      const xv = randn(12, 90, 0.5, 2);
      // Samples 4 and 5 carry a future task and a negative id: the balance is that of samples 0 to 3 alone.
      const ref = refAdaB2N(xv.slice(0, 8), 4, 1, 2, { taskIds: [0, 1, 1, 0], logits: [0, 0, 0], currentTask: 1, ms: [0, 0], vs: [1, 1], eta: 0.1, eps: 1e-5 });
      tf.tidy(() => {
        const y = layer.apply([tf.tensor(xv, [6, 2]), tf.tensor1d([0, 1, 1, 0, 2, -1])], { training: true }) as tf.Tensor;
        assertClose(f64(tf.slice(y, [0, 0], [4, 2])), ref.y, { atol: 2e-5, rtol: 2e-5 }, 'y of the samples with valid ids');
        assert.ok(f64(y).every(Number.isFinite), 'every sample is normalized');
      });
      assertClose(f64(layer.getWeights()[3]), ref.newMean, { atol: 1e-5, rtol: 1e-5 }, 'moving_mean');
      assertClose(f64(layer.getWeights()[4]), ref.newVariance, { atol: 1e-5, rtol: 1e-5 }, 'moving_variance');
      layer.dispose();
    });

    it('its state (step counter, task, running statistics) round trips through save and load: the next training step is the same', async () => {
      const layer = new nk.AdaB2N({ numTasks: 3, kappa: 0.4, momentum: 0.2, lossWeight: 0.5, lossFromTask: 1 });
      const xIn = tfl.input({ shape: [2] });
      const idsIn = tfl.input({ shape: [1] });
      const model = tfl.model({ inputs: [xIn, idsIn], outputs: layer.apply([xIn, idsIn]) as tfl.SymbolicTensor });
      const x = tf.tensor(randn(10, 80, 1, 2), [5, 2]);
      const ids = tf.tensor([0, 1, 1, 0, 1], [5, 1]);
      const step = (m: tfl.LayersModel): tf.Tensor[] => {
        const { value, grads } = tf.variableGrads(
          () => tf.add(tf.sum(tf.square(m.apply([x, ids], { training: true }) as tf.Tensor)), tf.addN(m.calculateLosses())) as tf.Scalar,
          m.trainableWeights.map((v) => v.read() as tf.Variable),
        );
        return [value, ...Object.values(grads)];
      };
      tf.tidy(() => void step(model));
      layer.endTask();
      tf.tidy(() => void step(model));
      await assertNextStepAfterSaveLoad(model, step);
      tf.dispose([x, ids]);
      model.dispose();
    });

    it('is the registry entry "adab2n" and requires numTasks', () => {
      assert.ok(nk.createNorm('adab2n', { numTasks: 2 }) instanceof nk.AdaB2N);
      assertThrowsMentioning(() => new nk.AdaB2N(), ['AdaB2N', "'numTasks'"]);
      assertThrowsMentioning(() => new nk.AdaB2N({ numTasks: 2, kappa: 1.5 }), ["'kappa'"]);
      assertThrowsMentioning(() => new nk.AdaB2N({ numTasks: 2, lossWeight: -1 }), ["'lossWeight'"]);
    });
  });
});

runLayerTest(nk.AdaB2N, { make: () => new nk.AdaB2N({ numTasks: 5, kappa: 0.1, lossWeight: 10, lossFromTask: 1, center: false }), inputShape: [3, 4], trainable: 2, nonTrainable: 4,
  weights: [['gamma', [4]], ['task_logits', [5]], ['moving_mean', [4]], ['moving_variance', [4]], ['num_batches_tracked', [1]], ['current_task', [1]]],
  // Called on x alone every sample is of the current task, so the task logits get no gradient.
  frozen: ['task_logits'], exact: ['num_batches_tracked', 'current_task'], state: ['moving_mean', 'moving_variance', 'num_batches_tracked'], supportsMasking: true });
