/**
 * Inputs with no elements: every op returns an empty result of the right shape with correctly shaped zero
 * gradients, fused kernels on and off, without trapping in a WebAssembly module and without leaking tensors.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertThrowsMentioning } from '../helpers/numeric.js';

interface EmptyCase {
  name: string;
  shape: number[];
  /** Parameter shapes (gamma-like tensors the op takes), given the input shape. */
  params: number[][];
  op: (x: tf.Tensor, p: tf.Tensor[]) => tf.Tensor;
}

const CASES: EmptyCase[] = [
  { name: 'instanceNorm, no channels', shape: [4, 5, 0], params: [[0], [0]], op: (x, [g, b]) => nk.instanceNorm(x, { gamma: g, beta: b }) },
  { name: 'instanceNorm, no positions', shape: [4, 0, 3], params: [[3], [3]], op: (x, [g, b]) => nk.instanceNorm(x, { gamma: g, beta: b }) },
  { name: 'instanceNorm, no samples', shape: [0, 5, 3], params: [[3], [3]], op: (x, [g, b]) => nk.instanceNorm(x, { gamma: g, beta: b }) },
  { name: 'instanceNorm channels first, no samples', shape: [0, 3, 5], params: [[3]], op: (x, [g]) => nk.instanceNorm(x, { axis: 1, gamma: g }) },
  {
    name: 'batchNorm (training), no channels',
    shape: [4, 0],
    params: [[0], [0]],
    op: (x, [g, b]) => {
      const movingMean = tf.zeros([0]);
      const movingVariance = tf.ones([0]);
      const r = nk.batchNorm(x, { training: true, movingMean, movingVariance, gamma: g, beta: b });
      tf.dispose([movingMean, movingVariance, r.movingMean, r.movingVariance]);
      return r.y;
    },
  },
  { name: 'groupNorm, no positions', shape: [2, 0, 4], params: [[4], [4]], op: (x, [g, b]) => nk.groupNorm(x, { groups: 2, gamma: g, beta: b }) },
  { name: 'groupNorm, no samples', shape: [0, 3, 4], params: [[4]], op: (x, [g]) => nk.groupNorm(x, { groups: 2, gamma: g }) },
  { name: 'layerNorm, no features', shape: [3, 0], params: [[0], [0]], op: (x, [g, b]) => nk.layerNorm(x, { gamma: g, beta: b }) },
  { name: 'layerNorm, no rows', shape: [0, 3], params: [[3], [3]], op: (x, [g, b]) => nk.layerNorm(x, { gamma: g, beta: b }) },
  { name: 'layerNorm over a leading axis, no features', shape: [3, 0], params: [], op: (x) => nk.layerNorm(x, { axis: 0 }) },
  { name: 'rmsNorm, no features', shape: [3, 0], params: [[0]], op: (x, [g]) => nk.rmsNorm(x, { gamma: g }) },
  { name: 'rmsNorm, no rows', shape: [0, 3], params: [[3]], op: (x, [g]) => nk.rmsNorm(x, { gamma: g }) },
  { name: 'filterResponseNorm, no samples', shape: [0, 2, 2, 3], params: [[3], [3], [3]], op: (x, [g, b, t]) => nk.filterResponseNorm(x, { gamma: g, beta: b, tau: t }) },
  {
    name: 'evoNormB0 (training), no samples',
    shape: [0, 2, 2, 4],
    params: [[4], [4]],
    op: (x, [g, b]) => {
      const r = nk.evoNormB0(x, { training: true, gamma: g, beta: b });
      r.movingVariance.dispose();
      return r.y;
    },
  },
  { name: 'evoNormS0, no samples', shape: [0, 2, 2, 4], params: [[4], [4]], op: (x, [g, b]) => nk.evoNormS0(x, { groups: 2, gamma: g, beta: b }) },
];

forEachBackend(() => {
  for (const fused of [true, false]) {
    describe(`zero-size inputs, fused kernels ${fused ? 'on' : 'off'}`, () => {
      for (const c of CASES) {
        it(`${c.name}: empty output of the input's shape, zero gradients of each input's shape, no leak`, () => {
          const prev = nk.fusedKernelsEnabled();
          nk.setFusedKernels(fused);
          try {
            const x = tf.zeros(c.shape);
            const params = c.params.map((s) => tf.ones(s));
            const before = tf.memory().numTensors;
            const y = c.op(x, params);
            assert.deepEqual(y.shape, c.shape);
            y.dispose();
            const grads = tf.grads((a: tf.Tensor, ...p: tf.Tensor[]) => tf.sum(c.op(a, p)))([x, ...params]);
            grads.forEach((g, i) => {
              const want = i === 0 ? x : params[i - 1];
              assert.deepEqual(g.shape, want.shape, `gradient ${i} shape`);
              assert.ok((g.dataSync() as Float32Array).every((v) => v === 0), `gradient ${i} is zero`);
            });
            tf.dispose(grads);
            assert.equal(tf.memory().numTensors, before, 'tensors left behind');
            tf.dispose([x, ...params]);
          } finally {
            nk.setFusedKernels(prev);
          }
        });
      }
    });
  }

  describe('spectral-norm power iterations', () => {
    it('refuses a number of power iterations that would hang the first call', () => {
      assertThrowsMentioning(() => nk.createNorm('spectral-norm', { layer: tfl.layers.dense({ units: 2 }), powerIterations: 1e308 }), ["'powerIterations'", '1000']);
      assertThrowsMentioning(() => nk.createNorm('spectral-norm', { layer: tfl.layers.dense({ units: 2 }), powerIterations: 1001 }), ["'powerIterations'"]);
      const ok = nk.createNorm('spectral-norm', { layer: tfl.layers.dense({ units: 2 }), powerIterations: 1000 });
      assert.equal((ok as nk.SpectralNormalization).powerIterations, 1000);
    });
  });
});
