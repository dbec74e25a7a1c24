import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/index.js';
import { normalizeAxes, broadcastShape, paramShape, complementAxes, areTrailing } from '../../src/core/axes.js';
import { shiftedMoments, stableMoments } from '../../src/core/moments.js';
import { checkRequiredInteger, checkRequiredParam, checkScalarParam } from '../../src/core/checks.js';
import * as tfl from '@tensorflow/tfjs-layers';
import { resolveConstraint, resolveRegularizer, resolveInitializer, serializeObject } from '../../src/core/serialization.js';
import { forEachBackend } from '../helpers/backends.js';
import { assertClose, assertThrowsMentioning, f64, randn } from '../helpers/numeric.js';

describe('axes', () => {
  it('normalizes negative axes, sorts them, and rejects bad ones with the rank in the message', () => {
    assert.deepEqual(normalizeAxes('f', -1, 3), [2]);
    assert.deepEqual(normalizeAxes('f', [2, -3], 3), [0, 2]);
    assertThrowsMentioning(() => normalizeAxes('f', 3, 3), ["'axis'", '[-3, 2]', 'rank 3']);
    assertThrowsMentioning(() => normalizeAxes('f', [1, -2], 3), ["'axis'", 'distinct']);
    assertThrowsMentioning(() => normalizeAxes('f', [], 3), ["'axis'", 'non-empty']);
    assertThrowsMentioning(() => normalizeAxes('f', 0.5, 3), ["'axis'"]);
  });

  it('derives parameter and broadcast shapes', () => {
    assert.deepEqual(paramShape([2, 3, 4, 5], [1, 3]), [3, 5]);
    assert.deepEqual(broadcastShape([2, 3, 4, 5], [1, 3]), [1, 3, 1, 5]);
    assert.deepEqual(complementAxes([1, 3], 4), [0, 2]);
    assert.equal(areTrailing([2, 3], 4), true);
    assert.equal(areTrailing([1, 3], 4), false);
  });
});

forEachBackend(() => {
  describe('stableMoments', () => {
    it('keeps every digit on a large common offset where E[x^2]-E[x]^2 in float32 fails', () => {
      const n = 4096;
      const xv = randn(n, 5, 1e4, 1e-2);
      let mean = 0;
      for (const v of xv) mean += v;
      mean /= n;
      let variance = 0;
      for (const v of xv) variance += (v - mean) ** 2;
      variance /= n;
      tf.tidy(() => {
        const x = tf.tensor(xv, [1, n]);
        const m = stableMoments(x, [1]);
        assertClose(f64(m.mean), [mean], { rtol: 1e-7 }, 'mean');
        assertClose(f64(m.variance), [variance], { rtol: 1e-3 }, 'variance');
        // The naive float32 formula is far off here: this is what the shift protects against.
        const naive = tf.sub(tf.mean(tf.square(x)), tf.square(tf.mean(x))).dataSync()[0];
        assert.ok(Math.abs(naive - variance) > 10 * variance * 1e-3, `naive formula unexpectedly accurate: ${naive} vs ${variance}`);
      });
    });

    it('shiftedMoments keeps the shift apart: shift + meanOffset is the mean, centered is x - mean', () => {
      const n = 512;
      const xv = randn(2 * n, 6, 1e4, 1e-2);
      const rows = [0, 1].map((r) => Array.from(xv.subarray(r * n, (r + 1) * n)));
      const means = rows.map((row) => row.reduce((a, v) => a + v, 0) / n);
      const variances = rows.map((row, r) => row.reduce((a, v) => a + (v - means[r]) ** 2, 0) / n);
      tf.tidy(() => {
        const m = shiftedMoments(tf.tensor(xv, [2, n]), [1]);
        assert.deepEqual(m.shift.shape, [2, 1]);
        assert.deepEqual(Array.from(f64(m.shift)), [xv[0], xv[n]], 'shift is the first element of each row');
        const shift = f64(m.shift);
        const offset = f64(m.meanOffset);
        // In float64, (K - mean) + m must vanish to the precision of m (|m| ~ 1e-2), not of the offset 1e4.
        assertClose([shift[0] - means[0] + offset[0], shift[1] - means[1] + offset[1]], [0, 0], { atol: 1e-8 }, 'shift + meanOffset');
        assertClose(f64(m.variance), variances, { rtol: 1e-3 }, 'variance');
        const centered = xv.reduce((out, v, i) => (out.push(v - means[Math.floor(i / n)]), out), [] as number[]);
        assertClose(f64(m.centered), centered, { atol: 1e-6 }, 'centered');
      });
    });
  });
});

describe('checks', () => {
  it('checkRequiredParam rejects a missing or misshapen tensor, naming it and the shape', () => {
    const t = tf.zeros([3]);
    checkRequiredParam('f', 'movingMean', t, [3]);
    assertThrowsMentioning(() => checkRequiredParam('f', 'movingMean', undefined, [3]), ['f', "'movingMean'", 'shape [3]']);
    assertThrowsMentioning(() => checkRequiredParam('f', 'movingMean', null, [3]), ["'movingMean'", 'shape [3]']);
    assertThrowsMentioning(() => checkRequiredParam('f', 'movingMean', t, [4]), ["'movingMean'", 'shape [4]']);
    t.dispose();
  });

  it('checkScalarParam takes a finite number or a tensor of shape [] or [1], nothing else', () => {
    const ok = [tf.scalar(2), tf.tensor([2])];
    checkScalarParam('f', 'alpha', 0.5);
    for (const t of ok) checkScalarParam('f', 'alpha', t);
    assertThrowsMentioning(() => checkScalarParam('f', 'alpha', Number.NaN), ["'alpha'", 'a finite number']);
    assertThrowsMentioning(() => checkScalarParam('f', 'alpha', Infinity), ["'alpha'", 'a finite number']);
    const bad = [tf.tensor([1, 2]), tf.tensor([[1]])];
    for (const t of bad) assertThrowsMentioning(() => checkScalarParam('f', 'alpha', t), ["'alpha'", 'shape [] or [1]']);
    assertThrowsMentioning(() => checkScalarParam('f', 'alpha', '1'), ["'alpha'"]);
    tf.dispose([...ok, ...bad]);
  });

  it('checkRequiredInteger rejects a missing or bad integer, saying when it is required', () => {
    checkRequiredInteger('f', 'iteration', 2, 1, 'when training is true');
    assertThrowsMentioning(() => checkRequiredInteger('f', 'iteration', undefined, 1, 'when training is true'), ["'iteration'", 'an integer >= 1 when training is true']);
    assertThrowsMentioning(() => checkRequiredInteger('f', 'iteration', 0, 1, 'when training is true'), ["'iteration'"]);
    assertThrowsMentioning(() => checkRequiredInteger('f', 'iteration', 1.5, 1, 'when training is true'), ["'iteration'"]);
  });
});

describe('registry', () => {
  it('lists every method with a description, a paper and an existing docs page', () => {
    const all = nk.listNorms();
    assert.ok(all.length >= 1);
    const names = new Set<string>();
    for (const e of all) {
      assert.ok(!names.has(e.name), `duplicate registry name ${e.name}`);
      names.add(e.name);
      assert.ok(e.description.length > 10, `${e.name}: description`);
      assert.ok(e.paper.length > 10, `${e.name}: paper`);
      assert.ok(existsSync(e.doc), `${e.name}: docs page ${e.doc} is missing`);
      assert.match(readFileSync(e.doc, 'utf8'), /^# /, `${e.name}: ${e.doc} starts with a title`);
    }
  });

  it('creates layers by name and alias, and explains unknown names', () => {
    assert.ok(nk.createNorm('ln') instanceof nk.LayerNormalization);
    assertThrowsMentioning(() => nk.createNorm('no-such-norm'), ['createNorm', "'name'", 'no-such-norm']);
  });

  it('refuses unknown and misspelt layer config keys, naming the layer, the key and the closest accepted key', () => {
    assertThrowsMentioning(() => nk.createNorm('layer', { epsilion: 0.5 }), ['LayerNormalization', "'epsilion'", "did you mean 'epsilon'", 'gammaInitializer']);
    assertThrowsMentioning(() => nk.createNorm('group', { group: 3 }), ['GroupNormalization', "'group'", "did you mean 'groups'"]);
    assertThrowsMentioning(() => new nk.InstanceNormalization({ foo: 1 } as never), ['InstanceNormalization', "unknown argument 'foo'"]);
    assertThrowsMentioning(() => nk.createNorm('layer', null as never), ['createNorm', "'config'", 'null']);
    assertThrowsMentioning(() => nk.createNorm('layer', 'epsilon' as never), ['createNorm', "'config'", '"epsilon"']);
    assertThrowsMentioning(() => new nk.LayerNormalization(null as never), ['LayerNormalization', "'args'", 'null']);
    assertThrowsMentioning(() => nk.createNorm('layer', { betaInitializer: 42 }), ['LayerNormalization', "'betaInitializer'", '42']);
    // What tfjs adds when loading, and Keras base-layer keys that change nothing, are accepted.
    assert.ok(nk.createNorm('layer', { customObjects: {}, autocast: true, activityRegularizer: null, name: 'ln1', trainable: false }) instanceof nk.LayerNormalization);
    assertThrowsMentioning(() => nk.createNorm('layer', { activityRegularizer: 'l2' }), ["'activityRegularizer'", 'null']);
    // tfjs's own constructor behaviour: LayerNormalization checks its axis before any input is seen.
    assertThrowsMentioning(() => nk.createNorm('layer', { axis: 'last' }), ["'axis'", 'integer']);
    assertThrowsMentioning(() => nk.createNorm('layer', { axis: [1, 1] }), ["'axis'", 'distinct']);
  });

  it('refuses non-tensor, non-float32 and misfitting inputs at apply, leaving no tensors', () => {
    const layer = nk.createNorm('layer');
    const fake = nk.createNorm('ln-removal');
    const x = tf.zeros([4, 6]);
    tf.dispose(fake.apply(x) as tf.Tensor);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      assertThrowsMentioning(() => layer.apply(undefined as never), ['LayerNormalization', "'inputs'", 'undefined']);
      assertThrowsMentioning(() => layer.apply(tf.zeros([2, 3], 'int32')), ['LayerNormalization', "'inputs'", 'int32']);
      // Built for 6 features: a [4, 1] input would broadcast to a [4, 6] output of zeros.
      assertThrowsMentioning(() => fake.apply(tf.zeros([4, 1])), ['FakeLayerNormalization', "'inputs'", '[4, 1]']);
    });
    assert.equal(tf.memory().numTensors, before);
    x.dispose();
    fake.dispose();
  });
});

describe('serialization', () => {
  it('resolves Keras identifiers and L1/L2 classes that tfjs only knows as L1L2', () => {
    const l2 = resolveRegularizer('T', 'r', 'l2');
    assert.deepEqual(serializeObject(l2), { className: 'L1L2', config: { l1: 0, l2: 0.01 } });
    const l1 = resolveRegularizer('T', 'r', { className: 'L1', config: { l1: 0.5 } });
    assert.deepEqual(serializeObject(l1)?.config, { l1: 0.5, l2: 0 });
    assert.equal(resolveRegularizer('T', 'r', undefined), null);
    assert.equal(serializeObject(resolveInitializer('T', 'i', 'he_normal', 'zeros'))?.className, 'VarianceScaling');
    assert.equal(serializeObject(resolveInitializer('T', 'i', undefined, 'ones'))?.className, 'Ones');
  });

  it('refuses a bad initializer, regularizer or constraint with a NormkitError naming the argument and the value', () => {
    assertThrowsMentioning(() => resolveInitializer('GroupNormalization', 'betaInitializer', 'no_such_init', 'ones'), ['GroupNormalization', "'betaInitializer'", 'no_such_init']);
    assertThrowsMentioning(() => resolveInitializer('LayerNormalization', 'betaInitializer', 42, 'ones'), ['LayerNormalization', "'betaInitializer'", '42']);
    // Right name, wrong kind: a regularizer is not an initializer, an initializer is not a constraint.
    assertThrowsMentioning(() => resolveInitializer('X', 'gammaInitializer', 'l2', 'ones'), ["'gammaInitializer'", 'l2', 'initializer']);
    assertThrowsMentioning(() => resolveConstraint('X', 'gammaConstraint', tfl.initializers.ones()), ["'gammaConstraint'", 'constraint']);
    assertThrowsMentioning(() => resolveRegularizer('X', 'betaRegularizer', [1, 2]), ["'betaRegularizer'", '[1, 2]']);
    assertThrowsMentioning(() => resolveRegularizer('X', 'betaRegularizer', { className: 'L2', config: { l2: 'big' } }), ["'betaRegularizer'", 'L2']);
    assertThrowsMentioning(() => resolveConstraint('X', 'betaConstraint', { className: 'MaxNorm', config: 3 }), ["'betaConstraint'", 'MaxNorm']);
    for (const bad of [42, 'nope', [1], { className: 5 }, true]) {
      assert.throws(() => resolveInitializer('X', 'i', bad, 'ones'), (e: Error) => e instanceof nk.NormkitError && (e as nk.NormkitError).argument === 'i');
    }
  });
});
