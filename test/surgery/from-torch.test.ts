import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertThrowsMentioning, f64, randn } from '../helpers/numeric.js';

const weightsByName = (layer: tfl.layers.Layer) => new Map(layer.weights.map((w) => [w.originalName.split('/').pop() as string, f64(w.read())]));

forEachBackend(() => {
  describe('fromTorchStateDict', () => {
    it('loads BatchNorm2d weights and running statistics; eval outputs match PyTorch\'s eval formula', () => {
      const C = 4;
      const layer = new nk.BatchNormalization(nk.torchNormArgs('BatchNorm', { momentum: 0.1, eps: 1e-5 }) as nk.BatchNormalizationArgs);
      assert.equal(layer.momentum, 0.9, 'Keras momentum = 1 - m_torch');
      assert.equal(layer.epsilon, 1e-5);
      const x = tf.tensor(randn(2 * 3 * 3 * C, 1), [2, 3, 3, C]);
      tf.tidy(() => { layer.apply(x); });
      const sd = {
        'features.1.weight': tf.tensor(randn(C, 2, 1, 0.3)),
        'features.1.bias': tf.tensor(randn(C, 3)),
        'features.1.running_mean': tf.tensor(randn(C, 4)),
        'features.1.running_var': tf.tensor(randn(C, 5).map((v) => 0.2 + v * v)),
        'features.1.num_batches_tracked': tf.scalar(7, 'int32'),
        'features.0.weight': tf.zeros([C, 3, 3, 3]),
      };
      const before = tf.memory().numTensors;
      nk.fromTorchStateDict(layer, sd, { prefix: 'features.1', momentum: 0.1, eps: 1e-5 });
      assert.equal(tf.memory().numTensors, before, 'no tensors leaked or consumed');
      const w = weightsByName(layer);
      assert.deepEqual(w.get('gamma'), f64(sd['features.1.weight']));
      assert.deepEqual(w.get('moving_variance'), f64(sd['features.1.running_var']));
      const [g, b, m, v, xv] = [sd['features.1.weight'], sd['features.1.bias'], sd['features.1.running_mean'], sd['features.1.running_var'], x].map(f64);
      const expected = xv.map((val, i) => ((val - m[i % C]) / Math.sqrt(v[i % C] + 1e-5)) * g[i % C] + b[i % C]);
      tf.tidy(() => assertClose(f64(layer.apply(x, { training: false }) as tf.Tensor), expected, { atol: 1e-5, rtol: 1e-5 }, 'eval output'));
      const torchConv = new nk.BatchNormalization(nk.torchNormArgs('BatchNorm', { momentum: 0.2 }, { convention: 'pytorch' }) as nk.BatchNormalizationArgs);
      assert.equal(torchConv.momentum, 0.2);
      assert.equal(torchConv.convention, 'pytorch');
      tf.dispose([x, ...Object.values(sd)]);
      layer.dispose();
    });

    it('transposes a channels-first LayerNorm([C, H, W]) weight to channels-last and accepts nested arrays', () => {
      const [C, H, W] = [3, 2, 2];
      const args = nk.torchNormArgs('LayerNorm', { normalized_shape: [C, H, W] });
      assert.deepEqual(args.axis, [-3, -2, -1]);
      const layer = new nk.LayerNormalization(args as nk.LayerNormalizationArgs);
      tf.tidy(() => { layer.apply(tf.zeros([1, H, W, C])); });
      const weight = randn(C * H * W, 6);
      const bias = randn(C * H * W, 7);
      const nested = (v: Float32Array) => Array.from({ length: C }, (_, c) => Array.from({ length: H }, (_, h) => Array.from({ length: W }, (_, w) => v[(c * H + h) * W + w])));
      const before = tf.memory().numTensors;
      nk.fromTorchStateDict(layer, { weight: nested(weight), bias: nested(bias) });
      assert.equal(tf.memory().numTensors, before);
      const gamma = weightsByName(layer).get('gamma')!;
      const beta = weightsByName(layer).get('beta')!;
      for (let c = 0; c < C; c++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) {
        assert.equal(gamma[(h * W + w) * C + c], weight[(c * H + h) * W + w]);
        assert.equal(beta[(h * W + w) * C + c], bias[(c * H + h) * W + w]);
      }
      layer.dispose();
    });

    it('loads GroupNorm, InstanceNorm (affine) and RMSNorm weights by class name', () => {
      const gn = new nk.GroupNormalization(nk.torchNormArgs('GroupNorm', { num_groups: 2 }) as nk.GroupNormalizationArgs);
      const inorm = new nk.InstanceNormalization(nk.torchNormArgs('InstanceNorm', { affine: true }) as nk.InstanceNormalizationArgs);
      const rms = new nk.RMSNormalization(nk.torchNormArgs('RMSNorm', { eps: 1e-6 }) as nk.RMSNormalizationArgs);
      for (const l of [gn, inorm, rms]) tf.tidy(() => { l.apply(tf.zeros([1, 2, 2, 4])); });
      const w = tf.tensor(randn(4, 8));
      const b = tf.tensor(randn(4, 9));
      nk.fromTorchStateDict(gn, { 'gn.weight': w, 'gn.bias': b }, { prefix: 'gn.', eps: 1e-5 });
      nk.fromTorchStateDict(inorm, { weight: w, bias: b });
      nk.fromTorchStateDict(rms, { 'norm.weight': w }, { prefix: 'norm' });
      assert.deepEqual(weightsByName(gn).get('gamma'), f64(w));
      assert.deepEqual(weightsByName(gn).get('beta'), f64(b));
      assert.deepEqual(weightsByName(inorm).get('beta'), f64(b));
      assert.deepEqual(weightsByName(rms).get('scale'), f64(w));
      tf.dispose([w, b]);
      for (const l of [gn, inorm, rms]) l.dispose();
    });

    it('rejects missing keys, wrong shapes, unexpected keys and mismatched hyperparameters before writing anything', () => {
      const layer = new nk.BatchNormalization();
      assertThrowsMentioning(() => nk.fromTorchStateDict(layer, {}), ["'layer'", 'built']);
      tf.tidy(() => { layer.apply(tf.zeros([2, 3])); });
      const good = { weight: tf.ones([3]), bias: tf.zeros([3]), running_mean: tf.zeros([3]), running_var: tf.ones([3]) };
      const gammaBefore = weightsByName(layer).get('gamma');
      assertThrowsMentioning(() => nk.fromTorchStateDict(layer, { ...good, running_var: undefined as never }), ["'running_var'", 'missing']);
      assertThrowsMentioning(() => nk.fromTorchStateDict(layer, { ...good, weight: tf.tensor(randn(3, 1)), bias: tf.ones([4]) }), ["'bias'", '[3]', '[4]']);
      assert.deepEqual(weightsByName(layer).get('gamma'), gammaBefore, 'nothing written after an error');
      assertThrowsMentioning(() => nk.fromTorchStateDict(layer, good, { prefix: 'bn' }), ["'bn.weight'", 'missing']);
      assertThrowsMentioning(() => nk.fromTorchStateDict(layer, good, { eps: 1e-5 }), ["'eps'", '0.001']);
      assertThrowsMentioning(() => nk.fromTorchStateDict(layer, good, { momentum: 0.1 }), ["'momentum'", '1 - m_torch']);
      assertThrowsMentioning(() => nk.fromTorchStateDict(layer, good, { layout: 'nhwc' as never }), ["'layout'"]);
      const gn = new nk.GroupNormalization({ groups: 1 });
      tf.tidy(() => { gn.apply(tf.zeros([1, 3])); });
      assertThrowsMentioning(() => nk.fromTorchStateDict(gn, good), ["'running_mean'", 'no weight for']);
      assertThrowsMentioning(() => nk.fromTorchStateDict(gn, { weight: good.weight, bias: good.bias }, { momentum: 0.1 }), ["'momentum'", 'without moving statistics']);
      const dense = tfl.layers.dense({ units: 2 });
      assertThrowsMentioning(() => nk.fromTorchStateDict(dense, good), ["'layer'", 'Dense']);
      assertThrowsMentioning(() => nk.torchNormArgs('BatchNorm', { momentum: null }), ["'momentum'", 'cumulative']);
      tf.dispose(Object.values(good));
      layer.dispose();
      gn.dispose();
    });
  });
});
