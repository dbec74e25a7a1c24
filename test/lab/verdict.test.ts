import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as nk from '../../src/lab/index.js';

const spec = (over: Partial<nk.ComparisonSpec> = {}): nk.ComparisonSpec => ({
  description: 'A beats B', metric: 'accuracy', better: 'higher', kind: 'better', margin: 0.01, labelA: 'A', labelB: 'B', ...over,
});

describe('summarize', () => {
  it('gives the mean, the sample std and counts non-finite values apart', () => {
    const s = nk.summarize([1, 2, 3, 4, NaN]);
    assert.equal(s.mean, 2.5);
    // sum of squared deviations 5, n - 1 = 3
    assert.ok(Math.abs(s.std - Math.sqrt(5 / 3)) < 1e-15);
    assert.deepEqual([s.n, s.nonFinite, s.min, s.max], [4, 1, 1, 4]);
    assert.equal(nk.summarize([7]).std, 0);
    assert.ok(Number.isNaN(nk.summarize([]).mean));
  });
});

describe('compareGroups', () => {
  it('reproduced when A is better by more than the margin and two standard errors', () => {
    const r = nk.compareGroups(spec(), [0.80, 0.81, 0.82], [0.70, 0.71, 0.72]);
    assert.equal(r.verdict, 'reproduced');
    assert.ok(Math.abs(r.difference - 0.1) < 1e-12);
    // Welch: sqrt(0.01^2/3 + 0.01^2/3)
    assert.ok(Math.abs(r.standardError - Math.sqrt(2e-4 / 3)) < 1e-12);
  });

  it('orients the difference for lower-is-better metrics', () => {
    const r = nk.compareGroups(spec({ better: 'lower', margin: 0 }), [1.0, 1.1, 0.9], [2.0, 2.1, 1.9]);
    assert.equal(r.verdict, 'reproduced');
    assert.ok(Math.abs(r.difference - 1) < 1e-12);
  });

  it('not reproduced when even d + 2 se stays below the margin (including the opposite effect)', () => {
    assert.equal(nk.compareGroups(spec(), [0.70, 0.71, 0.72], [0.80, 0.81, 0.82]).verdict, 'not reproduced');
    assert.equal(nk.compareGroups(spec({ margin: 0.05 }), [0.701, 0.702, 0.703], [0.70, 0.70, 0.70]).verdict, 'not reproduced');
  });

  it('inconclusive when the spread straddles the margin, or with fewer than 3 seeds', () => {
    assert.equal(nk.compareGroups(spec(), [0.6, 0.9, 0.75], [0.7, 0.72, 0.71]).verdict, 'inconclusive');
    const few = nk.compareGroups(spec(), [0.9, 0.9], [0.1, 0.1]);
    assert.equal(few.verdict, 'inconclusive');
    assert.match(few.reason, /at least 3/);
  });

  it('no-worse claims: within the margin is reproduced, clearly worse is not', () => {
    const noWorse = spec({ kind: 'no-worse', margin: 0.05 });
    assert.equal(nk.compareGroups(noWorse, [0.79, 0.80, 0.81], [0.80, 0.81, 0.82]).verdict, 'reproduced');
    assert.equal(nk.compareGroups(noWorse, [0.60, 0.61, 0.62], [0.80, 0.81, 0.82]).verdict, 'not reproduced');
    assert.equal(nk.compareGroups(noWorse, [0.70, 0.80, 0.90], [0.80, 0.81, 0.82]).verdict, 'inconclusive');
  });

  it('failed runs: all of B failing and all of A succeeding reproduces a better-claim; the reverse refutes it', () => {
    assert.equal(nk.compareGroups(spec({ better: 'lower' }), [2, 2.1, 2.2], [NaN, NaN, NaN]).verdict, 'reproduced');
    assert.equal(nk.compareGroups(spec({ better: 'lower' }), [NaN, NaN, NaN], [2, 2.1, 2.2]).verdict, 'not reproduced');
    assert.equal(nk.compareGroups(spec(), [0.8, NaN, 0.8], [NaN, NaN, NaN]).verdict, 'inconclusive');
  });

  it('combineVerdicts: all reproduced, any not reproduced, else inconclusive', () => {
    assert.equal(nk.combineVerdicts(['reproduced', 'reproduced']), 'reproduced');
    assert.equal(nk.combineVerdicts(['reproduced', 'not reproduced', 'inconclusive']), 'not reproduced');
    assert.equal(nk.combineVerdicts(['reproduced', 'inconclusive']), 'inconclusive');
    assert.equal(nk.combineVerdicts([]), 'inconclusive');
  });
});
