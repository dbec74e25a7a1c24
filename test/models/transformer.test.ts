import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { runLayerTest } from '../helpers/run-layer-test.js';
import { assertClose, assertNoLeak, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { attention, erf, referenceCrossEntropy, referenceLM, type RefConfig, type Weights } from './transformer-reference.js';

type Placement = RefConfig['placement'];
const PLACEMENTS: Placement[] = ['post', 'pre', 'peri', 'deepnorm', 'normformer', 'ngpt', 'none'];
const SMALL = { vocabSize: 7, seqLen: 6, dModel: 8, heads: 2, layers: 2, mlpRatio: 2 };
const TOKENS = [
  [1, 4, 2, 6, 0],
  [3, 3, 5, 1, 2],
];

/** Every weight of `model` set to seeded random values (gains near 1), returned by saved name in float64. */
function randomizeWeights(model: tfl.LayersModel, seed: number): Weights {
  const out: Weights = new Map();
  model.weights.forEach((w, i) => {
    const n = w.shape.reduce((a: number, b) => a * (b as number), 1);
    const gain = /(gamma|scale|alpha)$/.test(w.originalName);
    const values = randn(n, seed + i, gain ? 1 : 0, gain ? 0.2 : 0.4);
    tf.tidy(() => {
      w.write(tf.tensor(values, w.shape as number[]));
    });
    out.set(w.originalName, { values: Float64Array.from(values), shape: w.shape as number[] });
  });
  return out;
}

function refConfig(placement: Placement, norm: 'layer' | 'rms' = 'layer', epsilon = 1e-5): RefConfig {
  return {
    vocabSize: SMALL.vocabSize,
    dModel: SMALL.dModel,
    heads: SMALL.heads,
    layers: SMALL.layers,
    placement,
    norm,
    epsilon,
    activation: 'gelu',
    alpha: (2 * SMALL.layers) ** 0.25,
    rope: placement === 'ngpt',
  };
}

function tokensTensor(tokens = TOKENS): tf.Tensor {
  return tf.tensor(tokens, [tokens.length, tokens[0].length], 'int32');
}

describe('transformer float64 reference', () => {
  it('erf matches known values', () => {
    assertClose([erf(0), erf(0.5), erf(1), erf(1.99), erf(2), erf(-3), erf(5)], [0, 0.5204998778130465, 0.8427007929497149, 0.995111413199617, 0.9953222650189527, -0.9999779095030014, 0.9999999999984626], { atol: 1e-13 }, 'erf');
    assertClose([1 - erf(4)], [1.541725790028002e-8], { rtol: 1e-6 }, 'erfc(4)');
  });
  it('cross-entropy of uniform logits is log(V)', () => {
    assertClose([referenceCrossEntropy(new Float64Array(10), [1, 3], 5)], [Math.log(5)], { atol: 1e-12 }, 'ce');
  });
});

forEachBackend(() => {
  describe('buildTransformerLM', () => {
    for (const placement of PLACEMENTS) {
      it(`'${placement}': logits match the float64 reference`, () => {
        const model = nk.buildTransformerLM({ ...SMALL, placement, seed: 3 });
        const weights = randomizeWeights(model, 100);
        const expected = referenceLM(weights, refConfig(placement), TOKENS);
        const x = tokensTensor();
        const y = model.predict(x) as tf.Tensor;
        assert.deepEqual(y.shape, [2, 5, SMALL.vocabSize]);
        assertClose(f64(y), expected, { atol: 2e-4, rtol: 2e-4 }, `${placement} logits`);
        tf.dispose([x, y]);
        model.dispose();
      });

      it(`'${placement}': weight gradients match finite differences of the float64 reference`, () => {
        const model = nk.buildTransformerLM({ ...SMALL, placement, seed: 4 });
        const weights = randomizeWeights(model, 200);
        const cfg = refConfig(placement);
        const r = randn(2 * 5 * SMALL.vocabSize, 7);
        const x = tokensTensor();
        const rT = tf.tensor(r, [2, 5, SMALL.vocabSize]);
        const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(model.apply(x, { training: true }) as tf.Tensor, rT)) as tf.Scalar, vars);
        const lossOf = (w: Weights) => referenceLM(w, cfg, TOKENS).reduce((s, v, i) => s + v * r[i], 0);
        // Three entries of every trainable weight.
        for (const lv of model.trainableWeights) {
          const entry = weights.get(lv.originalName)!;
          const picks = [...new Set([0, Math.floor(entry.values.length / 2), entry.values.length - 1])];
          const sub = Float64Array.from(picks.map((p) => entry.values[p]));
          const fd = finiteDifference((v) => {
            const values = Float64Array.from(entry.values);
            picks.forEach((p, k) => (values[p] = v[k]));
            return lossOf(new Map([...weights, [lv.originalName, { values, shape: entry.shape }]]));
          }, sub, 1e-5);
          const g = f64(grads[(lv.read() as tf.Variable).name]);
          assertClose(picks.map((p) => g[p]), fd, { atol: 2e-3, rtol: 2e-3 }, `${placement} d/d ${lv.originalName}`);
        }
        tf.dispose([x, rT, value, ...Object.values(grads)]);
        model.dispose();
      });

      it(`'${placement}': saves and loads with identical weights and outputs`, async () => {
        const model = nk.buildTransformerLM({ ...SMALL, placement, seed: 5 });
        let artifacts: tf.io.ModelArtifacts | undefined;
        await model.save(
          tf.io.withSaveHandler(async (a) => {
            artifacts = a;
            return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
          }),
        );
        const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
        const a = model.getWeights();
        const b = loaded.getWeights();
        assert.equal(b.length, a.length);
        a.forEach((w, i) => assert.deepEqual(Array.from(b[i].dataSync()), Array.from(w.dataSync()), `weight ${i}`));
        const x = tokensTensor();
        const [ya, yb] = [model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
        assert.deepEqual(Array.from(yb.dataSync()), Array.from(ya.dataSync()));
        tf.dispose([x, ya, yb]);
        model.dispose();
        loaded.dispose();
      });
    }

    it('accepts sequences shorter than seqLen and rejects longer ones', () => {
      const model = nk.buildTransformerLM({ ...SMALL, seed: 1 });
      tf.tidy(() => {
        const y = model.predict(tf.tensor([[1, 2]], [1, 2], 'int32')) as tf.Tensor;
        assert.deepEqual(y.shape, [1, 2, SMALL.vocabSize]);
        // Causal: the first position's logits do not depend on later tokens.
        const y2 = model.predict(tf.tensor([[1, 5, 6]], [1, 3], 'int32')) as tf.Tensor;
        assertClose(f64(tf.slice(y2, [0, 0, 0], [1, 1, -1])), f64(tf.slice(y, [0, 0, 0], [1, 1, -1])), { atol: 1e-6 }, 'causality');
        assertThrowsMentioning(() => model.predict(tf.zeros([1, 7], 'int32')), ["'tokens'", 'maxLength = 6', '7']);
      });
      model.dispose();
    });

    it('builds with any registry norm by name (a different eps reaches every norm)', () => {
      const model = nk.buildTransformerLM({ ...SMALL, placement: 'peri', norm: 'ln', normConfig: { epsilon: 1e-2 }, seed: 6 });
      const weights = randomizeWeights(model, 300);
      const norms = model.layers.filter((l) => l instanceof nk.LayerNormalization) as nk.LayerNormalization[];
      assert.equal(norms.length, 2 * 2 * SMALL.layers + 1);
      assert.ok(norms.every((n) => n.epsilon === 1e-2));
      tf.tidy(() => assertClose(f64(model.predict(tokensTensor()) as tf.Tensor), referenceLM(weights, refConfig('peri', 'layer', 1e-2), TOKENS), { atol: 2e-4, rtol: 2e-4 }, 'logits'));
      model.dispose();
    });

    it("positional 'rope' (rotary q/k, no position table) matches the float64 reference, forward and gradient", () => {
      const model = nk.buildTransformerLM({ ...SMALL, placement: 'pre', positional: 'rope', seed: 14 });
      assert.equal(model.weights.some((w) => w.originalName === 'embed/position_embeddings'), false);
      const weights = randomizeWeights(model, 500);
      const cfg = { ...refConfig('pre'), rope: true };
      tf.tidy(() => assertClose(f64(model.predict(tokensTensor()) as tf.Tensor), referenceLM(weights, cfg, TOKENS), { atol: 2e-4, rtol: 2e-4 }, 'logits'));
      const r = randn(2 * 5 * SMALL.vocabSize, 15);
      const x = tokensTensor();
      const q = model.trainableWeights.find((w) => w.originalName === 'block1_attn/query_kernel')!;
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(model.apply(x) as tf.Tensor, tf.tensor(r, [2, 5, SMALL.vocabSize]))) as tf.Scalar, [q.read() as tf.Variable]);
      const entry = weights.get(q.originalName)!;
      const picks = [3, 17, 40];
      const fd = finiteDifference((v) => {
        const values = Float64Array.from(entry.values);
        picks.forEach((p, i) => (values[p] = v[i]));
        return referenceLM(new Map([...weights, [q.originalName, { values, shape: entry.shape }]]), cfg, TOKENS).reduce((s, u, i) => s + u * r[i], 0);
      }, Float64Array.from(picks.map((p) => entry.values[p])), 1e-5);
      const g = f64(grads[(q.read() as tf.Variable).name]);
      assertClose(picks.map((p) => g[p]), fd, { atol: 2e-3, rtol: 2e-3 }, 'd/d query_kernel');
      tf.dispose([x, value, ...Object.values(grads)]);
      assertThrowsMentioning(() => nk.buildTransformerLM({ ...SMALL, dModel: 6, heads: 2, positional: 'rope' }), ["'positional'", 'odd']);
      model.dispose();
    });

    it("builds with 'rms' (RMSNormalization) and matches the float64 RMSNorm reference", () => {
      const model = nk.buildTransformerLM({ ...SMALL, placement: 'pre', norm: 'rms', seed: 13 });
      assert.equal(model.layers.filter((l) => l instanceof nk.RMSNormalization).length, 2 * SMALL.layers + 1);
      const weights = randomizeWeights(model, 400);
      tf.tidy(() => assertClose(f64(model.predict(tokensTensor()) as tf.Tensor), referenceLM(weights, refConfig('pre', 'rms'), TOKENS), { atol: 2e-4, rtol: 2e-4 }, 'logits'));
      model.dispose();
    });

    it('trains with model.fit (loss falls) and leaks no tensors', async () => {
      const model = nk.buildTransformerLM({ ...SMALL, placement: 'pre', seed: 7 });
      model.compile({ optimizer: tf.train.adam(1e-2), loss: nk.lmCrossEntropy });
      const xs = tf.tensor([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]], [2, 6], 'int32');
      const ys = tf.oneHot(tf.tensor([[1, 2, 3, 4, 5, 6], [4, 3, 2, 1, 0, 6]], [2, 6], 'int32'), SMALL.vocabSize);
      const first = await model.fit(xs, ys, { epochs: 1, verbose: 0 });
      const before = tf.memory().numTensors;
      const h = await model.fit(xs, ys, { epochs: 30, verbose: 0 });
      assert.equal(tf.memory().numTensors, before, 'model.fit leaked tensors');
      const last = h.history.loss[29] as number;
      assert.ok(last < (first.history.loss[0] as number) * 0.5, `loss ${first.history.loss[0]} -> ${last}`);
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it("output 'probabilities' trains with tfjs's sparseCategoricalCrossentropy and ids [B, T, 1]", async () => {
      const model = nk.buildTransformerLM({ ...SMALL, output: 'probabilities', seed: 8 });
      model.compile({ optimizer: 'adam', loss: 'sparseCategoricalCrossentropy' });
      const xs = tf.tensor([[0, 1, 2, 3]], [1, 4], 'int32');
      const ys = tf.tensor([[[1], [2], [3], [4]]], [1, 4, 1]);
      const h = await model.fit(xs, ys, { epochs: 2, verbose: 0 });
      assert.ok(Number.isFinite(h.history.loss[1] as number));
      const p = model.predict(xs) as tf.Tensor;
      assertClose(f64(tf.sum(p, -1)), [1, 1, 1, 1], { atol: 1e-5 }, 'probabilities sum to 1');
      tf.dispose([xs, ys, p]);
      model.dispose();
    });

    it('forward and gradient leak no tensors', async () => {
      const model = nk.buildTransformerLM({ ...SMALL, placement: 'normformer', seed: 9 });
      const x = tokensTensor();
      await assertNoLeak(() => (model.predict(x) as tf.Tensor).dispose(), 'predict');
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      await assertNoLeak(() => {
        const { value, grads } = tf.variableGrads(() => tf.mean(model.apply(x) as tf.Tensor) as tf.Scalar, vars);
        tf.dispose([value, ...Object.values(grads)]);
      }, 'gradient');
      x.dispose();
      model.dispose();
    });

    it('rejects bad configs before building, naming the argument', () => {
      assertThrowsMentioning(() => nk.buildTransformerLM({ ...SMALL, placement: 'middle' as never }), ["'placement'", '"peri"', 'middle']);
      assertThrowsMentioning(() => nk.buildTransformerLM({ ...SMALL, heads: 3 }), ["'heads'", 'divisor', '8']);
      assertThrowsMentioning(() => nk.buildTransformerLM({ ...SMALL, norm: 'nope' }), ['createNorm', "'name'", "'layer'"]);
      assertThrowsMentioning(() => nk.buildTransformerLM({ ...SMALL, dModel: 0 }), ["'dModel'", 'integer']);
      assertThrowsMentioning(() => nk.buildTransformerLM({ ...SMALL, layer: 2 } as never), ["'layer'", 'unknown option']);
      assertThrowsMentioning(() => nk.buildTransformerLM({ ...SMALL, dropout: 1 }), ["'dropout'"]);
      assertThrowsMentioning(() => nk.buildTransformerLM({ ...SMALL, scaleResiduals: true }), ["'scaleResiduals'", 'normformer']);
      assertThrowsMentioning(() => nk.buildTransformerLM(undefined as never), ["'config'"]);
    });
  });

  describe('lmCrossEntropy', () => {
    it('matches the float64 reference for ids, ids [B,T,1] and one-hot targets', () => {
      const logits = randn(2 * 3 * 5, 11, 0, 3);
      const ids = [4, 0, 2, 1, 3, 3];
      const expected = referenceCrossEntropy(logits, ids, 5);
      tf.tidy(() => {
        const z = tf.tensor(logits, [2, 3, 5]);
        const t = tf.tensor(ids, [2, 3], 'int32');
        assertClose(f64(nk.lmCrossEntropy(t, z)), [expected], { rtol: 1e-5 }, 'ids');
        assertClose(f64(nk.lmCrossEntropy(tf.reshape(t, [2, 3, 1]), z)), [expected], { rtol: 1e-5 }, 'ids [B,T,1]');
        assertClose(f64(nk.lmCrossEntropy(tf.oneHot(t, 5), z)), [expected], { rtol: 1e-5 }, 'one-hot');
        assertThrowsMentioning(() => nk.lmCrossEntropy(tf.zeros([2, 3, 4]), z), ["'targets'", '5']);
      });
    });
  });

  describe('DeepNorm', () => {
    it('constants follow the DeepNet formulas', () => {
      const dec = nk.deepNormConstants({ decoder: 12 });
      assertClose([dec.alpha, dec.beta], [24 ** 0.25, 96 ** -0.25], { rtol: 1e-14 }, 'decoder-only');
      const enc = nk.deepNormConstants({ encoder: 6, decoder: 6 }, 'encoder');
      assertClose([enc.alpha, enc.beta], [0.81 * (6 ** 4 * 6) ** (1 / 16), 0.87 * (6 ** 4 * 6) ** (-1 / 16)], { rtol: 1e-14 }, 'encoder');
      const ed = nk.deepNormConstants({ encoder: 6, decoder: 6 }, 'decoder');
      assertClose([ed.alpha, ed.beta], [18 ** 0.25, 72 ** -0.25], { rtol: 1e-14 }, 'decoder');
      assertThrowsMentioning(() => nk.deepNormConstants({}), ["'layers'"]);
    });

    it('scales W_v, W_o and the FFN by beta at init, not W_q or W_k, and up-weights the residual by alpha', () => {
      const layers = 3;
      const model = nk.buildTransformerLM({ vocabSize: 5, seqLen: 4, dModel: 64, heads: 4, layers, mlpRatio: 1, placement: 'deepnorm', seed: 10 });
      const { alpha, beta } = nk.deepNormConstants({ decoder: layers });
      const std = (name: string) => {
        const v = f64(model.weights.find((w) => w.originalName === name)!.read());
        const m = v.reduce((a, b) => a + b, 0) / v.length;
        return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length);
      };
      for (let i = 0; i < layers; i++) {
        const q = std(`block${i}_attn/query_kernel`);
        // Same Xavier-normal fan (64 x 64) for q, k, v, o and both FFN kernels (mlpRatio 1).
        for (const n of ['value_kernel', 'output_kernel']) assertClose([std(`block${i}_attn/${n}`) / q], [beta], { rtol: 0.1 }, n);
        for (const n of ['fc1', 'fc2']) assertClose([std(`block${i}_${n}/kernel`) / q], [beta], { rtol: 0.1 }, n);
        assertClose([std(`block${i}_attn/key_kernel`) / q], [1], { rtol: 0.1 }, 'key');
      }
      const adds = model.layers.filter((l) => l instanceof nk.ResidualAdd) as nk.ResidualAdd[];
      assert.equal(adds.length, 2 * layers);
      assert.ok(adds.every((a) => a.residualScale === alpha));
      model.dispose();
    });
  });

  describe('nGPT', () => {
    const norms = (t: tf.Tensor, axis: number) => f64(tf.tidy(() => tf.sqrt(tf.sum(tf.square(t), axis))));
    const checkUnit = (model: tfl.LayersModel) => {
      const byName = (n: string) => model.weights.find((w) => w.originalName === n)!.read();
      const ones = (t: tf.Tensor, axis: number, what: string) => {
        const n = norms(t, axis);
        assertClose(n, new Float64Array(n.length).fill(1), { atol: 1e-5 }, what);
      };
      ones(byName('embed/token_embeddings'), 1, 'token embedding rows');
      for (let i = 0; i < SMALL.layers; i++) {
        for (const k of ['query', 'key', 'value']) ones(byName(`block${i}_attn/${k}_kernel`), 0, `${k} columns`);
        ones(byName(`block${i}_attn/output_kernel`), 1, 'output rows');
        ones(byName(`block${i}_fc1/kernel`), 0, 'fc1 columns');
        ones(byName(`block${i}_fc2/kernel`), 1, 'fc2 rows');
      }
      ones(byName('lm_head/kernel'), 0, 'lm head columns');
    };

    it('starts with unit-norm matrices and keeps them unit-norm after model.fit with ngptWeightNormalizer', async () => {
      const model = nk.buildTransformerLM({ ...SMALL, placement: 'ngpt', seed: 12 });
      checkUnit(model);
      assert.ok(model.layers.every((l) => !(l instanceof nk.LayerNormalization)), 'no norm layers');
      model.compile({ optimizer: tf.train.adam(1e-2), loss: nk.lmCrossEntropy });
      const xs = tokensTensor();
      const ys = tf.oneHot(tf.tensor([[4, 2, 6, 0, 1], [3, 5, 1, 2, 0]], [2, 5], 'int32'), SMALL.vocabSize);
      const callback = nk.ngptWeightNormalizer(model);
      await model.fit(xs, ys, { epochs: 1, verbose: 0, callbacks: [callback] });
      const before = tf.memory().numTensors;
      await model.fit(xs, ys, { epochs: 3, verbose: 0, callbacks: [callback] });
      assert.equal(tf.memory().numTensors, before, 'fit + normalizer leaked');
      checkUnit(model);
      // The hidden state entering each block is on the unit sphere.
      const probe = tfl.model({ inputs: model.inputs, outputs: model.getLayer('block1_attn_residual').output as tfl.SymbolicTensor });
      tf.tidy(() => {
        const n = norms(probe.predict(xs) as tf.Tensor, -1);
        assertClose(n, new Float64Array(n.length).fill(1), { atol: 1e-5 }, 'hidden-state norms');
      });
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it('ngptNormalizeWeights rejects a model that is not an nGPT model', () => {
      const model = nk.buildTransformerLM({ ...SMALL, placement: 'none', layers: 1 });
      const plain = tfl.sequential({ layers: [tfl.layers.dense({ units: 2, inputShape: [3] })] });
      assertThrowsMentioning(() => nk.ngptNormalizeWeights(plain), ["'model'", 'ngpt']);
      assertThrowsMentioning(() => nk.ngptNormalizeWeights({} as never), ["'model'", 'LayersModel']);
      // Layers named block0_fc1 and lm_head do not make a model an nGPT model: only a declaration does.
      assert.ok(model.layers.some((l) => l.name === 'lm_head') && model.layers.some((l) => l.name === 'block0_fc1'));
      assertThrowsMentioning(() => nk.ngptNormalizeWeights(model), ["'model'", 'ngpt']);
      plain.dispose();
      model.dispose();
    });

    it('ngptNormalizeWeights projects exactly the declared matrices, whatever the layer names', () => {
      const free = tfl.layers.dense({ units: 3, useBias: false, name: 'lm_head', kernelInitializer: 'ones' });
      const unit = tfl.layers.dense({ units: 2, useBias: false, name: 'renamed', kernelInitializer: 'ones' });
      const input = tfl.input({ shape: [4] });
      const model = tfl.model({ inputs: input, outputs: unit.apply(free.apply(input)) as tfl.SymbolicTensor });
      assert.equal(nk.ngptMatrices(model).length, 0);
      nk.declareNGPTMatrices(model, [{ variable: unit.weights[0], axis: 0 }]);
      nk.ngptNormalizeWeights(model);
      // unit's kernel [3, 2] of ones: each column has norm sqrt(3).
      assertClose(f64(unit.weights[0].read()), new Float64Array(6).fill(1 / Math.sqrt(3)), { atol: 1e-6 }, 'declared kernel');
      assert.deepEqual([...f64(free.weights[0].read())], new Array(12).fill(1), 'lm_head is not declared and stays');
      assertThrowsMentioning(() => nk.declareNGPTMatrices(model, []), ["'matrices'"]);
      assertThrowsMentioning(() => nk.declareNGPTMatrices(model, [{ variable: unit.weights[0], axis: 2 as never }]), ["'matrices'", 'axis']);
      model.dispose();
    });

    it('unitNormalize maps zero vectors to zero instead of NaN', () => {
      tf.tidy(() => assertClose(f64(nk.unitNormalize(tf.tensor([[0, 0], [3, 4]]))), [0, 0, 0.6, 0.8], { atol: 1e-7 }, 'y'));
    });

    it('unitNormalize equals x / max(||x||, eps) in float64 for magnitudes from 1e-30 to 1e30', () => {
      for (const scale of [1e-30, 1e-14, 1e-6, 1, 1e6, 1e19, 1e30]) {
        const xv = randn(4 * 16, 17).map((v) => v * scale);
        const expected = new Float64Array(xv.length);
        for (let r = 0; r < 4; r++) {
          let n = 0;
          for (let j = 0; j < 16; j++) n += Number(xv[r * 16 + j]) ** 2;
          const denom = Math.max(Math.sqrt(n), 1e-12);
          for (let j = 0; j < 16; j++) expected[r * 16 + j] = xv[r * 16 + j] / denom;
        }
        tf.tidy(() => assertClose(f64(nk.unitNormalize(tf.tensor(xv, [4, 16]))), expected, { rtol: 1e-5, atol: 1e-30 }, `scale ${scale}`));
      }
    });
  });

  describe('Transformer layers', () => {
    it('CausalSelfAttention with [x, xV] reads the value path from xV (float64 reference)', () => {
      const a = tfl.input({ shape: [4, 8] });
      const b = tfl.input({ shape: [4, 8] });
      const layer = new nk.CausalSelfAttention({ heads: 2, name: 'att' });
      const model = tfl.model({ inputs: [a, b], outputs: layer.apply([a, b]) as tfl.SymbolicTensor });
      const weights = randomizeWeights(model, 600);
      const av = randn(32, 61);
      const bv = randn(32, 62);
      const rows = (v: Float32Array) => Array.from({ length: 4 }, (_, t) => Float64Array.from(v.slice(t * 8, t * 8 + 8)));
      const expected = attention(weights, { ...refConfig('pre'), dModel: 8, heads: 2 }, 'att', rows(av), rows(bv)).flatMap((r) => Array.from(r));
      tf.tidy(() => {
        const [ta, tb] = [tf.tensor(av, [1, 4, 8]), tf.tensor(bv, [1, 4, 8])];
        assertClose(f64(model.predict([ta, tb]) as tf.Tensor), expected, { atol: 1e-5, rtol: 1e-5 }, 'two inputs');
        assert.deepEqual(Array.from((layer.apply([ta, ta]) as tf.Tensor).dataSync()), Array.from((layer.apply(ta) as tf.Tensor).dataSync()));
        assertThrowsMentioning(() => layer.apply([ta, tf.zeros([1, 3, 8])]), ["'inputs'", 'value input']);
      });
      model.dispose();
    });

    it('TokenPositionEmbedding looks rows up (float64 reference; ids outside the vocabulary give zeros) and scatter-adds the gradient', () => {
      const [V, T, d] = [5, 4, 3];
      const layer = new nk.TokenPositionEmbedding({ vocabSize: V, maxLength: T, dModel: d });
      const ids = [
        [0, 4, 4, 2],
        [1, 5, -1, 4],
      ];
      const tokens = tf.tensor(ids, [2, T], 'int32');
      tf.dispose(layer.apply(tokens) as tf.Tensor);
      const tok = randn(V * d, 71);
      const pos = randn(T * d, 72);
      layer.setWeights([tf.tensor(tok, [V, d]), tf.tensor(pos, [T, d])]);
      const dyv = randn(2 * T * d, 73);
      const expected: number[] = [];
      const dTok = new Float64Array(V * d);
      const dPos = new Float64Array(T * d);
      ids.forEach((row, b) => row.forEach((id, t) => {
        for (let j = 0; j < d; j++) {
          const inVocab = id >= 0 && id < V;
          expected.push((inVocab ? tok[id * d + j] : 0) + pos[t * d + j]);
          const g = dyv[(b * T + t) * d + j];
          if (inVocab) dTok[id * d + j] += g;
          dPos[t * d + j] += g;
        }
      }));
      tf.tidy(() => {
        assertClose(f64(layer.apply(tokens) as tf.Tensor), expected, { atol: 1e-6, rtol: 1e-6 }, 'lookup');
        const { grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(tokens) as tf.Tensor, tf.tensor(dyv, [2, T, d]))) as tf.Scalar);
        const byName = (end: string) => f64(Object.entries(grads).find(([n]) => n.endsWith(end))![1]);
        assertClose(byName('token_embeddings'), dTok, { atol: 1e-6, rtol: 1e-6 }, 'dE_tok');
        assertClose(byName('position_embeddings'), dPos, { atol: 1e-6, rtol: 1e-6 }, 'dE_pos');
      });
      tokens.dispose();
      layer.dispose();
    });

    it('reject bad arguments, naming them', () => {
      assertThrowsMentioning(() => new nk.CausalSelfAttention({ heads: 0 }), ["'heads'"]);
      assertThrowsMentioning(() => new nk.ResidualAdd({ residualScale: -1 }), ["'residualScale'"]);
      assertThrowsMentioning(() => new nk.TokenPositionEmbedding({ vocabSize: 2, maxLength: 0, dModel: 2 }), ["'maxLength'"]);
      assertThrowsMentioning(() => new nk.NGPTResidual({ alphaInitValue: 0 }), ["'alphaInitValue'"]);
      const attn = new nk.CausalSelfAttention({ heads: 3 });
      assertThrowsMentioning(() => attn.apply(tf.zeros([1, 2, 8])), ["'heads'", 'divisor', '8']);
    });

    it('registers the placements in the registry without layers', () => {
      const names = nk.listNorms().filter((e) => e.kind === 'architecture').map((e) => e.name);
      for (const n of ['post-ln', 'pre-ln', 'peri-ln', 'deepnorm', 'normformer', 'ngpt']) assert.ok(names.includes(n), n);
      assertThrowsMentioning(() => nk.createNorm('peri-ln'), ["'name'", 'architecture']);
    });
  });
});

forEachBackend(() => {
  describe('transformerStreamStats', () => {
    it('reports the RMS of the stream and of each branch, equal to a direct float64 computation', async () => {
      const model = nk.buildTransformerLM({ ...SMALL, placement: 'pre', seed: 21 });
      const x = tokensTensor();
      const stats = nk.transformerStreamStats(model, x);
      assert.deepEqual(stats.map((s) => `${s.layer}:${s.role}`), [
        'embed:stream',
        'block0_attn_add:branch', 'block0_attn_add:stream', 'block0_mlp_add:branch', 'block0_mlp_add:stream',
        'block1_attn_add:branch', 'block1_attn_add:stream', 'block1_mlp_add:branch', 'block1_mlp_add:stream',
      ]);
      // The stream after an add is residual + branch: check that and the embedding directly.
      const probe = tfl.model({ inputs: model.inputs, outputs: [model.getLayer('embed').output as tfl.SymbolicTensor, model.getLayer('block0_attn_add').output as tfl.SymbolicTensor] });
      const [e, s] = (probe.predict(x) as tf.Tensor[]).map(f64);
      const rms = (v: Float64Array) => Math.sqrt(v.reduce((a, b) => a + b * b, 0) / v.length);
      assertClose([stats[0].rms, stats[2].rms], [rms(e), rms(s)], { rtol: 1e-5 }, 'rms');
      await assertNoLeak(() => nk.transformerStreamStats(model, x), 'stats');
      assertThrowsMentioning(() => nk.transformerStreamStats(model, tf.zeros([3])), ["'tokens'"]);
      x.dispose();
      model.dispose();
    });
  });
});

// The Transformer's layers through the layer harness (which runs on every backend itself).
const ids = (n: number, seed: number): tf.Tensor[] => [tf.tensor(Array.from({ length: n * 4 }, (_, i) => (i * 3 + seed) % 5), [n, 4], 'int32')];
runLayerTest(nk.TokenPositionEmbedding, {
  make: () => new nk.TokenPositionEmbedding({ vocabSize: 5, maxLength: 4, dModel: 6 }), inputShape: [4], inputs: ids,
  trainable: 2, nonTrainable: 0, weights: [['token_embeddings', [5, 6]], ['position_embeddings', [4, 6]]], supportsMasking: false,
});
runLayerTest(nk.TokenPositionEmbedding, {
  make: () => new nk.TokenPositionEmbedding({ vocabSize: 5, maxLength: 4, dModel: 6, positional: false, embeddingsInitializer: 'glorotUniform' }),
  inputShape: [4], inputs: ids, trainable: 1, nonTrainable: 0, weights: [['token_embeddings', [5, 6]]], supportsMasking: false, label: 'no positions',
});
runLayerTest(nk.CausalSelfAttention, {
  make: () => new nk.CausalSelfAttention({ heads: 2 }), inputShape: [4, 8], trainable: 8, nonTrainable: 0,
  weights: [
    ['query_kernel', [8, 8]], ['key_kernel', [8, 8]], ['value_kernel', [8, 8]], ['output_kernel', [8, 8]],
    ['query_bias', [8]], ['key_bias', [8]], ['value_bias', [8]], ['output_bias', [8]],
  ],
  // q . (k + b_k) adds the same q . b_k to every score of a query, which the softmax cancels: b_k gets no gradient.
  frozen: ['key_bias'], supportsMasking: false,
});
runLayerTest(nk.CausalSelfAttention, {
  make: () => new nk.CausalSelfAttention({ heads: 2, useBias: false, headScale: true, qkNormalize: true, qkScaleInitScaling: 0.5, outputInitializer: 'zeros', rotary: true, rotaryBase: 500 }),
  inputShape: [[4, 8], [4, 8]], trainable: 6, nonTrainable: 0,
  weights: [['query_kernel', [8, 8]], ['key_kernel', [8, 8]], ['value_kernel', [8, 8]], ['output_kernel', [8, 8]], ['head_scale', [2]], ['qk_scale', [8]]],
  supportsMasking: false, label: 'value input, head scales, q/k normalization, rotary',
});
runLayerTest(nk.ResidualAdd, { make: () => new nk.ResidualAdd(), inputShape: [[3, 4], [3, 4]], trainable: 0, nonTrainable: 0, supportsMasking: false });
runLayerTest(nk.ResidualAdd, {
  make: () => new nk.ResidualAdd({ residualScale: 1.5, learnedScale: true }), inputShape: [[3, 4], [3, 4]], trainable: 1, nonTrainable: 0,
  weights: [['residual_scale', [4]]], supportsMasking: false, label: 'learned scale',
});
runLayerTest(nk.SwiGLU, { make: () => new nk.SwiGLU({}), inputShape: [3, 6], trainable: 0, nonTrainable: 0, supportsMasking: false });
runLayerTest(nk.LearnedScale, {
  make: () => new nk.LearnedScale({ initValue: 2, initScaling: 0.25, extraFactor: 3 }), inputShape: [3, 4], trainable: 1, nonTrainable: 0,
  weights: [['scale', [4]]], supportsMasking: false,
});
