/**
 * The composites stay clear of the tfjs kernels that are broken on webgl/webgpu (docs/tfjs-backends.md):
 * checked on cpu by profiling which kernels a forward and backward pass runs, so a regression shows here even
 * where no browser runs. The browser suite (test/browser) checks the values on the GPU backends.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/index.js';
import { centeredMoments, shiftedMoments } from '../../src/core/moments.js';
import { randnTensor } from '../helpers/numeric.js';

/** Kernels run by `fn` and its gradient with respect to x (name and the ranks of their inputs and outputs). */
async function kernelsOf(fn: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor): Promise<{ name: string; maxRank: number }[]> {
  const info = await tf.profile(() => {
    const g = tf.grad((t: tf.Tensor) => {
      const y = fn(t);
      return tf.sum(tf.mul(y, tf.reshape(tf.range(1, y.size + 1), y.shape)));
    })(x);
    g.dispose();
  });
  return info.kernels.map((k) => ({ name: k.name, maxRank: Math.max(0, ...[...(k.inputShapes ?? []), ...(k.outputShapes ?? [])].map((s) => (s ?? []).length)) }));
}

describe('composites avoid kernels broken on webgl/webgpu', () => {
  before(async () => {
    await tf.setBackend('cpu');
    nk.setFusedKernels(false);
  });
  after(() => nk.setFusedKernels(!['0', 'false', 'off'].includes(process.env.NORMKIT_FUSED ?? '1')));

  it('the shifted moments run no pad (the gradient of their slice) on a rank-5 input', async () => {
    const x = randnTensor([2, 2, 2, 2, 3], 1);
    for (const f of [(t: tf.Tensor) => centeredMoments(t, [1, 2, 3]).centered, (t: tf.Tensor) => shiftedMoments(t, [1, 2, 3]).variance]) {
      const names = (await kernelsOf(f, x)).map((k) => k.name);
      assert.ok(!names.some((n) => n.startsWith('Pad')), `kernels: ${names.join(', ')}`);
    }
    x.dispose();
  });

  it('the profile sees ranks and pads (control: a rank-5 view and a plain slice show up)', async () => {
    const x = randnTensor([2, 3, 3, 4], 3);
    const kernels = await kernelsOf((t) => tf.reshape(tf.slice(tf.reshape(t, [2, 3, 3, 2, 2]), [0, 0, 0, 0, 0], [2, 3, 3, 2, 1]), [2, 3, 3, 2]), x);
    assert.ok(kernels.some((k) => k.maxRank === 5));
    assert.ok(kernels.some((k) => k.name.startsWith('Pad')));
    x.dispose();
  });

  const rank4: Array<[string, (x: tf.Tensor) => tf.Tensor]> = [
    ['groupNorm channels last', (x) => nk.groupNorm(x, { groups: 2 })],
    ['groupNorm channels first', (x) => nk.groupNorm(x, { groups: 3, axis: 1 })],
    ['evoNormS0', (x) => nk.evoNormS0(x, { groups: 2 })],
    ['powerNorm with groups', (x) => nk.powerNorm(x, { groups: 2 }).y],
  ];
  for (const [name, fn] of rank4) {
    it(`${name} on a rank-4 input uses no tensor above rank 4, forward and backward`, async () => {
      const x = randnTensor([2, 3, 3, 4], 2);
      const kernels = await kernelsOf(fn, x);
      const high = kernels.filter((k) => k.maxRank > 4).map((k) => `${k.name} (rank ${k.maxRank})`);
      assert.deepEqual(high, []);
      x.dispose();
    });
  }
});
