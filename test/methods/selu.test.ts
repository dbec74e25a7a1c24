import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertModelTrainsAndReloads } from '../helpers/layer-roundtrip.js';
import { assertClose, assertThrowsMentioning, f64, finiteDifference, randn } from '../helpers/numeric.js';
import { runLayerTest } from '../helpers/run-layer-test.js';

// The paper's constants (bioinf-jku/SNNs selu.py: 1.6732632423543772848170429916717, 1.0507009873554804934193349852946) as float64.
const ALPHA = 1.6732632423543772;
const LAMBDA = 1.0507009873554805;
const seluRef = (x: number) => (x > 0 ? LAMBDA * x : LAMBDA * ALPHA * Math.expm1(x));

/** E[f(z)] for z ~ N(mu, sigma^2) by Simpson's rule over mu ± 12 sigma. */
function gaussianExpectation(f: (x: number) => number, mu = 0, sigma = 1): number {
  const n = 20000;
  const lo = mu - 12 * sigma;
  const h = (24 * sigma) / n;
  let s = 0;
  for (let i = 0; i <= n; i++) {
    const x = lo + i * h;
    const w = i === 0 || i === n ? 1 : i % 2 === 1 ? 4 : 2;
    s += w * f(x) * Math.exp(-0.5 * ((x - mu) / sigma) ** 2);
  }
  return (s * h) / 3 / (sigma * Math.sqrt(2 * Math.PI));
}

function meanVar(v: ArrayLike<number>): [number, number] {
  let m = 0;
  for (let i = 0; i < v.length; i++) m += v[i];
  m /= v.length;
  let s = 0;
  for (let i = 0; i < v.length; i++) s += (v[i] - m) ** 2;
  return [m, s / v.length];
}

describe('SELU fixed point (float64)', () => {
  it('the constants give E[selu(z)] = 0 and E[selu(z)^2] = 1 for z ~ N(0, 1)', () => {
    assert.equal(nk.SELU_ALPHA, ALPHA);
    assert.equal(nk.SELU_LAMBDA, LAMBDA);
    assertClose([gaussianExpectation(seluRef), gaussianExpectation((x) => seluRef(x) ** 2)], [0, 1], { atol: 1e-6 }, 'moments');
  });

  it('AlphaDropout constants restore mean 0 / variance 1 (exact mixture moments)', () => {
    for (const rate of [0.05, 0.1, 0.5]) {
      const { alphaPrime, a, b } = nk.alphaDropoutConstants(rate);
      assertClose([alphaPrime], [-1.7580993408473766], { rtol: 1e-14 }, "alpha'");
      // x ~ (mean 0, var 1) kept with prob q, else alpha': mixture moments, then y = a x + b.
      const q = 1 - rate;
      const mean = q * 0 + (1 - q) * alphaPrime;
      const second = q * 1 + (1 - q) * alphaPrime ** 2;
      assertClose([a * mean + b, a * a * (second - mean * mean)], [0, 1], { atol: 1e-12 }, `rate ${rate}`);
    }
  });
});

forEachBackend(() => {
  describe('self-normalizing networks', () => {
    it('tfjs selu matches the float64 formula and its finite-difference gradient', () => {
      const xv = randn(64, 1, 0, 3);
      tf.tidy(() => {
        const x = tf.tensor(xv);
        assertClose(f64(tf.selu(x)), Array.from(xv, seluRef), { rtol: 1e-6, atol: 1e-6 }, 'selu');
        const fd = finiteDifference((v) => v.reduce((s, u) => s + seluRef(u), 0), Float64Array.from(xv));
        assertClose(f64(tf.grad((t: tf.Tensor) => tf.sum(tf.selu(t)))(x)), fd, { rtol: 1e-4, atol: 1e-5 }, 'dselu');
      });
    });

    it('lecunNormal has variance 1/fan_in (tfjs leCunNormal has 0.774/fan_in)', () => {
      tf.tidy(() => {
        const w = nk.lecunNormal(1).apply([300, 200]);
        const [m, v] = meanVar(w.dataSync());
        assert.ok(Math.abs(m) < 0.002, `mean ${m}`);
        assertClose([v * 300], [1], { rtol: 0.03 }, 'variance * fan_in');
        const [, vt] = meanVar(tfl.initializers.leCunNormal({ seed: 1 }).apply([300, 200]).dataSync());
        assertClose([vt * 300], [0.774], { rtol: 0.03 }, 'tfjs leCunNormal variance * fan_in');
      });
    });

    it('AlphaDropout keeps mean 0 / variance 1 on SELU activations in training, identity at inference', () => {
      const rate = 0.1;
      const layer = new nk.AlphaDropout({ rate });
      const { alphaPrime, a, b } = nk.alphaDropoutConstants(rate);
      tf.tidy(() => {
        const x = tf.selu(tf.tensor(randn(200000, 2), [1000, 200]));
        const y = layer.apply(x, { training: true }) as tf.Tensor;
        const [m, v] = meanVar(y.dataSync());
        assert.ok(Math.abs(m) < 0.01, `mean ${m}`);
        assert.ok(Math.abs(v - 1) < 0.02, `variance ${v}`);
        const droppedValue = a * alphaPrime + b;
        const dropped = f64(y).filter((u) => Math.abs(u - droppedValue) < 1e-5).length / 200000;
        assert.ok(Math.abs(dropped - rate) < 0.005, `dropped share ${dropped}`);
        assert.deepEqual(Array.from((layer.apply(x) as tf.Tensor).dataSync()), Array.from(x.dataSync()));
      });
      assertThrowsMentioning(() => new nk.AlphaDropout({ rate: 1 }), ["'rate'"]);
    });

    it('a 12-layer SELU MLP keeps every layer near mean 0 / variance 1, also from a shifted input', () => {
      const model = nk.buildSeluMLP({ inputDim: 128, hiddenUnits: Array(12).fill(128), outputUnits: 4, seed: 3 });
      const probe = tfl.model({ inputs: model.inputs, outputs: model.layers.slice(0, 12).map((l) => l.output as tfl.SymbolicTensor) });
      for (const [mu, sd, tol] of [[0, 1, 0.1], [1, Math.sqrt(3), 0.15]] as const) {
        tf.tidy(() => {
          const outs = probe.predict(tf.tensor(randn(512 * 128, 4, mu, sd), [512, 128])) as tf.Tensor[];
          const last = meanVar(outs[11].dataSync());
          assert.ok(Math.abs(last[0]) < tol && Math.abs(last[1] - 1) < 2 * tol, `input (${mu}, ${sd ** 2}): layer 12 mean ${last[0]} var ${last[1]}`);
          if (mu === 0) {
            for (const [i, o] of outs.entries()) {
              const [m, v] = meanVar(o.dataSync());
              assert.ok(Math.abs(m) < tol && Math.abs(v - 1) < 2 * tol, `layer ${i + 1}: mean ${m} var ${v}`);
            }
          }
        });
      }
      model.dispose();
    });

    it('buildSeluMLP trains with AlphaDropout in model.fit without leaking and saves/loads', async () => {
      const model = nk.buildSeluMLP({ inputDim: 6, hiddenUnits: [16, 16], outputUnits: 1, dropoutRate: 0.05, seed: 5 });
      assert.equal(model.layers.filter((l) => l instanceof nk.AlphaDropout).length, 2);
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      const xs = tf.tensor(randn(48, 6), [8, 6]);
      const ys = tf.tensor(randn(8, 7), [8, 1]);
      const loaded = await assertModelTrainsAndReloads(model, xs, ys);
      assert.ok(loaded.layers[1] instanceof nk.AlphaDropout);
      tf.dispose([xs, ys]);
      model.dispose();
      loaded.dispose();
    });

    it('buildSeluMLP rejects bad configs', () => {
      assertThrowsMentioning(() => nk.buildSeluMLP({ inputDim: 0, hiddenUnits: [], outputUnits: 1 }), ["'inputDim'"]);
      assertThrowsMentioning(() => nk.buildSeluMLP({ inputDim: 2, hiddenUnits: [3, -1], outputUnits: 1 }), ["'hiddenUnits'"]);
      assertThrowsMentioning(() => nk.buildSeluMLP({ inputDim: 2, hiddenUnits: [], outputUnits: 1, dropout: 0.1 } as never), ["'dropout'"]);
    });
  });
});
runLayerTest(nk.AlphaDropout, { make: () => new nk.AlphaDropout({ rate: 0.2 }), inputShape: [3, 4], trainable: 0, nonTrainable: 0, supportsMasking: false });
