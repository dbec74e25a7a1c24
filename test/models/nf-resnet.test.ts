import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertModelTrainsAndReloads } from '../helpers/layer-roundtrip.js';
import { runLayerTest } from '../helpers/run-layer-test.js';
import { populationStd } from '../helpers/stats.js';
import { assertClose, assertThrowsMentioning, f64, randn } from '../helpers/numeric.js';

/** float64 'same' conv, stride 1, of x [H, W, Cin] with kernel [k, k, Cin, Cout] and bias. */
function conv(x: Float64Array, h: number, w: number, cin: number, kernel: Float64Array, k: number, cout: number, bias: Float64Array): Float64Array {
  const y = new Float64Array(h * w * cout);
  const pad = (k - 1) / 2;
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) for (let o = 0; o < cout; o++) {
    let s = bias[o];
    for (let di = 0; di < k; di++) for (let dj = 0; dj < k; dj++) {
      const ii = i + di - pad;
      const jj = j + dj - pad;
      if (ii < 0 || jj < 0 || ii >= h || jj >= w) continue;
      for (let c = 0; c < cin; c++) s += x[(ii * w + jj) * cin + c] * kernel[((di * k + dj) * cin + c) * cout + o];
    }
    y[(i * w + j) * cout + o] = s;
  }
  return y;
}

/** Scaled WS in float64: per output unit o over its fan-in N, gain * (W - mean) / sqrt(max(N var, 1e-4)). */
function standardize(kernel: Float64Array, cout: number, gain: Float64Array): Float64Array {
  const n = kernel.length / cout;
  const out = new Float64Array(kernel.length);
  for (let o = 0; o < cout; o++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += kernel[i * cout + o];
    m /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (kernel[i * cout + o] - m) ** 2;
    const scale = gain[o] / Math.sqrt(Math.max(v, 1e-4));
    for (let i = 0; i < n; i++) out[i * cout + o] = (kernel[i * cout + o] - m) * scale;
  }
  return out;
}

forEachBackend(() => {
  describe('NF-ResNet', () => {
    it('nfExpectedStds follows beta^2 <- beta^2 + alpha^2 with a reset after each first block', () => {
      const a2 = 0.04;
      const got = nk.nfExpectedStds([3, 2], 0.2);
      const want = [[1, Math.sqrt(1 + a2), Math.sqrt(1 + 2 * a2)], [Math.sqrt(1 + 3 * a2), Math.sqrt(1 + a2)]];
      assertClose(got.flat(), want.flat(), { rtol: 1e-15 }, 'betas');
    });

    it('the activation gains make gamma * act(z) unit-variance for z ~ N(0, 1) (float64 integration)', () => {
      const phi = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
      // Var[relu(z)] = 1/2 - 1/(2 pi); GELU by Simpson's rule with erf from the relation Phi' = phi.
      const reluGain = 1 / Math.sqrt(0.5 - 1 / (2 * Math.PI));
      assertClose([nk.NF_ACTIVATION_GAINS.relu], [reluGain], { rtol: 2e-3 }, 'relu');
      const n = 20000;
      const h = 24 / n;
      let cdf = 0;
      let m1 = 0;
      let m2 = 0;
      let prev = -12;
      for (let i = 0; i <= n; i++) {
        const x = -12 + i * h;
        cdf += i === 0 ? 0 : ((phi(prev) + phi(x)) / 2) * h;
        prev = x;
        const g = x * cdf;
        const wgt = (i === 0 || i === n ? 1 : i % 2 ? 4 : 2) * phi(x);
        m1 += wgt * g;
        m2 += wgt * g * g;
      }
      m1 *= h / 3;
      m2 *= h / 3;
      assertClose([nk.NF_ACTIVATION_GAINS.gelu], [1 / Math.sqrt(m2 - m1 * m1)], { rtol: 2e-3 }, 'gelu');
    });

    it('an NF block equals the float64 formula h + alpha * WS3(gamma act(WS3(gamma act(h) / beta)))', () => {
      const [H, W, C] = [4, 4, 3];
      const input = tfl.input({ shape: [H, W, C] });
      const model = tfl.model({ inputs: input, outputs: nk.nfBlock(input, { units: C, beta: 1.3, alpha: 0.3, name: 'b', seed: 1 }) });
      const named = new Map<string, Float64Array>();
      model.weights.forEach((w, i) => {
        const nv = w.shape.reduce((a: number, b) => a * (b as number), 1);
        const v = randn(nv, 5 + i, /gain$/.test(w.originalName) ? 1 : 0, 0.5);
        tf.tidy(() => {
          w.write(tf.tensor(v, w.shape as number[]));
        });
        named.set(w.originalName, Float64Array.from(v));
      });
      const find = (name: string) => named.get(name)!;
      const g = nk.NF_ACTIVATION_GAINS.relu;
      const xv = randn(H * W * C, 9);
      const a = Float64Array.from(xv, (v) => (g * Math.max(v, 0)) / 1.3);
      const k1 = standardize(find('b_conv1/kernel'), C, find('b_conv1/gain'));
      let f = conv(a, H, W, C, k1, 3, C, find('b_conv1/bias'));
      f = f.map((v) => g * Math.max(v, 0));
      const k2 = standardize(find('b_conv2/kernel'), C, find('b_conv2/gain'));
      f = conv(f, H, W, C, k2, 3, C, find('b_conv2/bias'));
      const expected = Float64Array.from(xv, (v, i) => v + 0.3 * f[i]);
      tf.tidy(() => assertClose(f64(model.predict(tf.tensor(xv, [1, H, W, C])) as tf.Tensor), expected, { atol: 1e-4, rtol: 1e-4 }, 'block'));
      model.dispose();
    });

    it('at init the residual stream std follows the predicted beta through the stages', () => {
      const stages = [{ units: 16, blocks: 3 }, { units: 24, blocks: 2 }];
      const model = nk.buildNFResNet({ inputShape: [16, 16, 8], classes: 4, stages, alpha: 0.4, seed: 3 });
      const betas = nk.nfExpectedStds([3, 2], 0.4);
      const adds = stages.flatMap((s, si) => Array.from({ length: s.blocks }, (_, b) => `stage${si}_block${b}_add`));
      const probe = tfl.model({ inputs: model.inputs, outputs: adds.map((n) => model.getLayer(n).output as tfl.SymbolicTensor) });
      tf.tidy(() => {
        const outs = probe.predict(tf.tensor(randn(8 * 16 * 16 * 8, 4), [8, 16, 16, 8])) as tf.Tensor[];
        // Expected std after block b = the next block's beta (or sqrt(beta^2 + alpha^2) for the last one).
        const after = [betas[0][1], betas[0][2], betas[1][0], betas[1][1], Math.sqrt(betas[1][1] ** 2 + 0.16)];
        outs.forEach((o, i) => assertClose([populationStd(o.dataSync())], [after[i]], { rtol: 0.15 }, `std after ${adds[i]}`));
      });
      model.dispose();
    });

    it('trains with AGC in model.fit without leaking, saves and loads; SkipInit starts branches at zero', async () => {
      const model = nk.buildNFResNet({ inputShape: [6, 6, 2], classes: 3, stages: [{ units: 4, blocks: 1 }, { units: 6, blocks: 1 }], skipInit: true, seed: 4 });
      assert.equal(model.layers.filter((l) => l instanceof nk.ScalarAffine).length, 2);
      assert.equal(model.layers.filter((l) => l instanceof nk.LayerNormalization || l.getClassName() === 'BatchNormalization').length, 0);
      model.compile({ optimizer: nk.withAGC(tf.train.sgd(0.1), { exclude: ['classifier/'] }), loss: (yt: tf.Tensor, yp: tf.Tensor) => tf.losses.softmaxCrossEntropy(yt, yp) });
      const xs = tf.tensor(randn(4 * 72, 6), [4, 6, 6, 2]);
      const ys = tf.oneHot(tf.tensor([0, 1, 2, 1], [4], 'int32'), 3);
      const loaded = await assertModelTrainsAndReloads(model, xs, ys);
      tf.dispose([xs, ys]);
      model.dispose();
      loaded.dispose();
    });

    it('rejects bad arguments', () => {
      assertThrowsMentioning(() => nk.buildNFResNet({ inputShape: [4, 4], classes: 2, stages: [{ units: 2, blocks: 1 }] }), ["'inputShape'"]);
      assertThrowsMentioning(() => new nk.ScaledActivation({ activation: 'tanh' as never, gain: 1 }), ["'activation'"]);
      assertThrowsMentioning(() => nk.nfExpectedStds([1], 0), ["'alpha'"]);
      const input = tfl.input({ shape: [4] });
      assertThrowsMentioning(() => nk.nfBlock(input, { units: 2, beta: 1, name: 'x' }), ["'h'"]);
    });
  });
});

runLayerTest(nk.ScaledActivation, { make: () => new nk.ScaledActivation({ activation: 'gelu', gain: 2 }), inputShape: [3, 4], trainable: 0, nonTrainable: 0, supportsMasking: false });
runLayerTest(nk.ScaledActivation, { make: () => new nk.ScaledActivation({ activation: 'relu', gain: 1.7 }), inputShape: [3, 4], trainable: 0, nonTrainable: 0, supportsMasking: false, label: 'relu' });
