import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, randn } from '../helpers/numeric.js';
import { unitGroups } from '../helpers/kernel-wrappers.js';
import { assertFitLowersLoss, assertOptimizerResumes } from '../helpers/optimizer-roundtrip.js';

/** Float64 AGC over unit groups: max = lambda max(||W_i||, eps); clip G_i to max when ||G_i|| > max. */
function refAGC(g: ArrayLike<number>, w: ArrayLike<number>, groups: number[][], lambda: number, eps: number): Float64Array {
  const out = Float64Array.from(g);
  for (const idx of groups) {
    const wn = Math.sqrt(idx.reduce((s, i) => s + w[i] * w[i], 0));
    const gn = Math.sqrt(idx.reduce((s, i) => s + g[i] * g[i], 0));
    const max = lambda * Math.max(wn, eps);
    if (gn > max) for (const i of idx) out[i] = (g[i] * max) / Math.max(gn, 1e-6);
  }
  return out;
}

/** A gradient whose unit j has norm ratio[j] * ||W_j||, so some units clip and some do not. */
function gradientWithRatios(w: Float32Array, groups: number[][], ratios: number[], seed: number): Float32Array {
  const g = randn(w.length, seed);
  groups.forEach((idx, j) => {
    const wn = Math.sqrt(idx.reduce((s, i) => s + w[i] * w[i], 0));
    const gn = Math.sqrt(idx.reduce((s, i) => s + g[i] * g[i], 0));
    for (const i of idx) g[i] *= (ratios[j % ratios.length] * wn) / gn;
  });
  return g;
}

forEachBackend(() => {
  describe('adaptive gradient clipping', () => {
    it('clips a Dense kernel per output unit (last axis), a bias as a whole, and floors zero weights at eps', () => {
      const w = randn(12, 1);
      const groups = unitGroups([4, 3], [1]);
      const g = gradientWithRatios(w, groups, [0.001, 0.05, 0.5], 2);
      tf.tidy(() => {
        const clipped = nk.adaptiveClipGradient(tf.tensor(g, [4, 3]), tf.tensor(w, [4, 3]), { clipping: 0.02 });
        assertClose(f64(clipped), refAGC(g, w, groups, 0.02, 1e-3), { rtol: 1e-5, atol: 1e-8 }, 'kernel');
        const b = randn(3, 3);
        const gb = randn(3, 4);
        assertClose(f64(nk.adaptiveClipGradient(tf.tensor(gb), tf.tensor(b))), refAGC(gb, b, [[0, 1, 2]], 0.01, 1e-3), { rtol: 1e-5, atol: 1e-8 }, 'bias');
        const zero = new Float32Array(12);
        assertClose(f64(nk.adaptiveClipGradient(tf.tensor(g, [4, 3]), tf.tensor(zero, [4, 3]))), refAGC(g, zero, groups, 0.01, 1e-3), { rtol: 1e-5, atol: 1e-8 }, 'zero weights');
        const s = nk.adaptiveClipGradient(tf.scalar(5), tf.scalar(2));
        assertClose(f64(s), [0.02], { rtol: 1e-6 }, 'scalar');
      });
    });

    it('uses the true output unit of Conv2DTranspose and DepthwiseConv2D kernels via kernelLayoutsByVariable', () => {
      const model = tfl.sequential();
      model.add(tfl.layers.depthwiseConv2d({ kernelSize: 2, depthMultiplier: 2, inputShape: [4, 4, 3] }));
      model.add(tfl.layers.conv2dTranspose({ filters: 3, kernelSize: 2 }));
      const layouts = nk.kernelLayoutsByVariable(model.layers);
      const cases: Array<[tfl.LayerVariable, number[]]> = [
        [model.layers[0].weights[0], [2, 3]], // depthwise [kh, kw, in, mult]: unit = (in, mult)
        [model.layers[1].weights[0], [2]], // transpose [kh, kw, out, in]: unit = out
      ];
      for (const [variable, unitAxes] of cases) {
        const shape = variable.shape as number[];
        const w = f64(variable.read());
        const groups = unitGroups(shape, unitAxes);
        const g = gradientWithRatios(Float32Array.from(w), groups, [0.001, 0.3], 5);
        const out = nk.adaptiveClipGradients({ [variable.name]: tf.tensor(g, shape) }, { kernelLayouts: layouts });
        assertClose(f64(out[variable.name]), refAGC(g, w, groups, 0.01, 1e-3), { rtol: 1e-5, atol: 1e-8 }, variable.name);
        tf.dispose(out);
      }
      model.dispose();
    });

    it('withAGC(sgd) takes the SGD step on clipped gradients, leaves excluded variables alone, and leaks nothing', async () => {
      const w0 = randn(12, 7);
      const groups = unitGroups([4, 3], [1]);
      const a = tf.variable(tf.tensor(w0, [4, 3]));
      const b = tf.variable(tf.tensor(w0, [4, 3]));
      const g = gradientWithRatios(w0, groups, [0.001, 0.2], 8);
      const opt = nk.withAGC(tf.train.sgd(0.5), { clipping: 0.01, exclude: [b.name] });
      await assertNoLeak(() => tf.tidy(() => opt.applyGradients({ [a.name]: tf.tensor(g, [4, 3]), [b.name]: tf.tensor(g, [4, 3]) })), 'step');
      const clipped = refAGC(g, w0, groups, 0.01, 1e-3);
      assertClose(f64(a), Float64Array.from(w0).map((x, i) => x - 0.5 * clipped[i]), { rtol: 1e-5, atol: 1e-7 }, 'clipped step');
      assertClose(f64(b), Float64Array.from(w0).map((x, i) => x - 0.5 * g[i]), { rtol: 1e-5, atol: 1e-7 }, 'excluded step');
      tf.dispose([a, b]);
      opt.dispose();
    });

    it('serializes with the wrapped optimizer, and its weights are the wrapped optimizer\'s', async () => {
      const opt = nk.withAGC(new nk.AdamP({ learningRate: 0.01 }), { clipping: 0.04, epsilon: 1e-4, exclude: ['dense_9/'] });
      const entry = tf.serialization.SerializationMap.getMap().classNameMap.AdaptiveGradientClipping;
      assert.ok(entry);
      const copy = entry[1](entry[0], opt.getConfig()) as nk.AdaptiveGradientClipping;
      assert.deepEqual(copy.getConfig(), opt.getConfig());
      assert.ok(copy.optimizer instanceof nk.AdamP);
      const p = tf.variable(tf.ones([2, 2]));
      tf.tidy(() => opt.applyGradients({ [p.name]: tf.fill([2, 2], 0.5) }));
      assert.equal(opt.iterations, 1);
      const weights = await opt.getWeights();
      assert.deepEqual(weights.map((w) => w.name), ['iter', `${p.name}/m`, `${p.name}/v`]);
      await copy.setWeights(weights);
      assert.equal(copy.iterations, 1);
      weights[0].tensor.dispose();
      tf.dispose(p);
      opt.dispose();
      copy.dispose();
    });

    it('model.save({includeOptimizer}) then loadLayersModel continues training identically (withAGC(adam), withAGC(AdamP))', async () => {
      await assertOptimizerResumes(() => nk.withAGC(tf.train.adam(0.01), { clipping: 0.05, exclude: ['nothing/'] }));
      await assertOptimizerResumes(() => nk.withAGC(new nk.AdamP({ learningRate: 0.01 }), { clipping: 0.05 }));
    });

    it('trains a tiny model with withAGC(adam) (loss goes down, no leak)', async () => {
      const model = tfl.sequential({
        layers: [
          tfl.layers.dense({ units: 8, inputShape: [4], activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 5 }) }),
          tfl.layers.dense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: 6 }) }),
        ],
      });
      const optimizer = nk.withAGC(tf.train.adam(0.05), { clipping: 0.1, kernelLayouts: nk.kernelLayoutsByVariable(model.layers) });
      await assertFitLowersLoss(model, optimizer, 9, { minimizeStep: false });
    });

    it('rejects bad arguments, naming them', () => {
      assertThrowsMentioning(() => nk.withAGC('sgd' as never), ['AdaptiveGradientClipping', "'optimizer'"]);
      assertThrowsMentioning(() => nk.withAGC(tf.train.sgd(0.1), { clipping: 0 }), ["'clipping'", '> 0']);
      assertThrowsMentioning(() => nk.withAGC(tf.train.sgd(0.1), { exclude: 'dense' as never }), ["'exclude'", 'array']);
      assertThrowsMentioning(() => nk.withAGC(tf.train.sgd(0.1), { lambda: 0.1 } as never), ["'lambda'"]);
      tf.tidy(() => assertThrowsMentioning(() => nk.adaptiveClipGradient(tf.ones([2, 3]), tf.ones([3, 2])), ["'gradient'", '[3, 2]']));
      assert.equal(nk.listNorms().find((e) => e.name === 'agc')?.kind, 'optimizer');
    });
  });
});
