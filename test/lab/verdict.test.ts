import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as nk from '../../src/lab/index.js';

const spec = (over: Partial<nk.ComparisonSpec> = {}): nk.ComparisonSpec => ({
  description: 'A beats B', metric: 'accuracy', better: 'higher', kind: 'better', margin: 0.01, labelA: 'A', labelB: 'B', ...over,
});

const close = (a: number, b: number, tol: number, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

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

describe('Student t', () => {
  it('quantiles match closed forms (df 1: Cauchy tan(pi (p - 1/2)); df 2: (2p - 1) / sqrt(2 p (1 - p)))', () => {
    for (const p of [0.6, 0.8, 0.9, 0.975, 0.995]) {
      close(nk.tQuantile(p, 1), Math.tan(Math.PI * (p - 0.5)), 1e-8 * Math.tan(Math.PI * (p - 0.5)), `df 1, p ${p}`);
      close(nk.tQuantile(p, 2), (2 * p - 1) / Math.sqrt(2 * p * (1 - p)), 1e-9, `df 2, p ${p}`);
    }
  });

  it('quantiles match the printed table (4, 9, 30 degrees of freedom) and the normal limit', () => {
    close(nk.tQuantile(0.975, 4), 2.776445105, 1e-8, 't(0.975, 4)');
    close(nk.tQuantile(0.975, 9), 2.262157163, 1e-8, 't(0.975, 9)');
    close(nk.tQuantile(0.975, 30), 2.042272456, 1e-8, 't(0.975, 30)');
    close(nk.tQuantile(0.8, 4), 0.940964577, 1e-8, 't(0.8, 4)');
    close(nk.tQuantile(0.975, 1e6), 1.959963985, 1e-5, 'normal limit');
    close(nk.tQuantile(0.025, 4), -2.776445105, 1e-8, 'symmetry');
    assert.equal(nk.tQuantile(0.5, 3), 0);
    assert.ok(Number.isNaN(nk.tQuantile(1, 3)) && Number.isNaN(nk.tQuantile(0.9, 0)));
  });

  it('the CDF: 1/2 at 0, Cauchy at df 1, and inverts the quantile', () => {
    close(nk.studentTCdf(0, 5), 0.5, 1e-15, 'cdf(0)');
    close(nk.studentTCdf(1, 1), 0.75, 1e-12, 'Cauchy cdf(1)');
    close(nk.studentTCdf(-1, 1), 0.25, 1e-12, 'Cauchy cdf(-1)');
    close(nk.studentTCdf(nk.tQuantile(0.9, 7.5), 7.5), 0.9, 1e-10, 'non-integer df');
  });
});

describe('compareGroups', () => {
  it('paired by seed: the t interval of the per-seed differences (hand-computed)', () => {
    // differences 0.05 0.07 0.03 0.07 0.04: mean 0.052, sum of squared deviations 1.28e-3, s = sqrt(3.2e-4), se = 0.008
    const r = nk.compareGroups(spec({ paired: true }), [0.80, 0.83, 0.79, 0.85, 0.81], [0.75, 0.76, 0.76, 0.78, 0.77]);
    close(r.estimate, 0.052, 1e-12, 'estimate');
    close(r.standardError, 0.008, 1e-12, 'se');
    assert.equal(r.df, 4);
    assert.equal(r.n, 5);
    close(r.interval[0], 0.052 - 2.776445105 * 0.008, 1e-9, 'lo');
    close(r.interval[1], 0.052 + 2.776445105 * 0.008, 1e-9, 'hi');
    // 80 % power at a two-sided 5 % level: (t_0.975 + t_0.8) se with 4 df
    close(r.detectable, (2.776445105 + 0.940964577) * 0.008, 1e-9, 'detectable');
    assert.equal(r.verdict, 'reproduced');
  });

  it('pairing removes the between-seed spread that hides an effect unpaired', () => {
    const a = [0.70, 0.80, 0.90];
    const b = [0.68, 0.78, 0.88];
    assert.equal(nk.compareGroups(spec({ paired: true }), a, b).verdict, 'reproduced');
    assert.equal(nk.compareGroups(spec(), a, b).verdict, 'inconclusive');
  });

  it('unpaired: Welch standard error and Welch-Satterthwaite degrees of freedom (hand-computed)', () => {
    // A = 1, 2, 3 (var 1), B = 4, 6, 8 (var 4): se^2 = 1/3 + 4/3, df = (5/3)^2 / ((1/3)^2/2 + (4/3)^2/2) = 50/17
    const r = nk.compareGroups(spec({ margin: 0 }), [1, 2, 3], [4, 6, 8]);
    close(r.estimate, -4, 1e-12, 'estimate');
    close(r.standardError, Math.sqrt(5 / 3), 1e-12, 'se');
    close(r.df, 50 / 17, 1e-12, 'df');
    close(r.interval[1], -4 + nk.tQuantile(0.975, 50 / 17) * Math.sqrt(5 / 3), 1e-12, 'hi');
    // with under 3 degrees of freedom t_0.975 is about 3.2: the interval reaches above 0, so even d = -4 does not decide
    assert.ok(r.interval[1] > 0);
    assert.equal(r.verdict, 'inconclusive');
  });

  it('orients the effect for lower-is-better metrics', () => {
    const r = nk.compareGroups(spec({ better: 'lower', margin: 0 }), [1.0, 1.1, 0.9], [2.0, 2.1, 1.9]);
    assert.equal(r.verdict, 'reproduced');
    close(r.estimate, 1, 1e-12, 'estimate');
  });

  it('better: not reproduced when the interval lies below the margin, inconclusive when it straddles it or with < 3 seeds', () => {
    assert.equal(nk.compareGroups(spec(), [0.70, 0.71, 0.72], [0.80, 0.81, 0.82]).verdict, 'not reproduced');
    assert.equal(nk.compareGroups(spec({ margin: 0.05 }), [0.701, 0.702, 0.703], [0.70, 0.70, 0.70]).verdict, 'not reproduced');
    assert.equal(nk.compareGroups(spec(), [0.6, 0.9, 0.75], [0.7, 0.72, 0.71]).verdict, 'inconclusive');
    const few = nk.compareGroups(spec(), [0.9, 0.9], [0.1, 0.1]);
    assert.equal(few.verdict, 'inconclusive');
    assert.match(few.reason, /at least 3/);
    // significant but smaller than the margin: not reproduced only when the whole interval is below it
    assert.equal(nk.compareGroups(spec({ margin: 0.05, paired: true }), [0.83, 0.84, 0.85], [0.80, 0.81, 0.82]).verdict, 'not reproduced');
  });

  it('no-worse: within the margin is reproduced, clearly worse is not', () => {
    const noWorse = spec({ kind: 'no-worse', margin: 0.05 });
    assert.equal(nk.compareGroups(noWorse, [0.79, 0.80, 0.81], [0.80, 0.81, 0.82]).verdict, 'reproduced');
    assert.equal(nk.compareGroups(noWorse, [0.60, 0.61, 0.62], [0.80, 0.81, 0.82]).verdict, 'not reproduced');
    assert.equal(nk.compareGroups(noWorse, [0.70, 0.80, 0.90], [0.80, 0.81, 0.82]).verdict, 'inconclusive');
  });

  it('failed runs are outcomes: all of B failing reproduces, all of A failing refutes, more failures in A cannot reproduce', () => {
    assert.equal(nk.compareGroups(spec({ better: 'lower' }), [2, 2.1, 2.2], [NaN, NaN, NaN]).verdict, 'reproduced');
    assert.equal(nk.compareGroups(spec({ better: 'lower' }), [NaN, NaN, NaN], [2, 2.1, 2.2]).verdict, 'not reproduced');
    assert.equal(nk.compareGroups(spec(), [0.8, NaN, 0.8], [NaN, NaN, NaN]).verdict, 'inconclusive');
    const r = nk.compareGroups(spec({ paired: true }), [0.9, 0.91, 0.92, NaN, 0.93], [0.5, 0.51, 0.52, 0.53, 0.54]);
    assert.deepEqual([r.failedA, r.failedB, r.n], [1, 0, 4]);
    assert.equal(r.verdict, 'inconclusive');
    assert.match(r.reason, /failed in more runs/);
    // the survivors' mean never includes a failed run
    close(r.a.mean, 0.915, 1e-12, 'mean of finite A');
  });

  it('a value at or below failedAtOrBelow (a classifier at chance) is a failed run, not a value', () => {
    // NF without AGC: two of five seeds collapsed to chance (0.1); with AGC every seed trained.
    const a = [0.734, 0.759, 0.743, 0.697, 0.761];
    const b = [0.629, 0.602, 0.1, 0.1, 0.656];
    const averaged = nk.compareGroups(spec({ paired: true }), a, b);
    const outcome = nk.compareGroups(spec({ paired: true, failedAtOrBelow: 0.12 }), a, b);
    assert.deepEqual([averaged.failedB, outcome.failedB, outcome.failedA, outcome.n], [0, 2, 0, 3]);
    assert.equal(averaged.verdict, 'inconclusive');
    // the survivors: differences 0.105, 0.157, 0.105 over seeds 0, 1, 4 (hand-computed mean)
    close(outcome.estimate, (0.105 + 0.157 + 0.105) / 3, 1e-9, 'paired mean of the survivors');
    close(outcome.b.mean, (0.629 + 0.602 + 0.656) / 3, 1e-12, 'B mean without the collapsed runs');
    assert.equal(outcome.verdict, 'reproduced');
    // a value just above the floor stays a value
    assert.equal(nk.compareGroups(spec({ failedAtOrBelow: 0.12 }), [0.5, 0.5, 0.5], [0.121, 0.13, 0.125]).failedB, 0);
  });

  it('steps-to-target: a ratio with a log-scale t interval; censored B gives a lower bound (hand-computed)', () => {
    const r = nk.compareGroups(
      spec({ metric: 'steps', better: 'lower', margin: 2, scale: 'ratio', censoredAt: 150, paired: true }),
      [40, 50, 45], [NaN, 140, NaN],
    );
    const logs = [Math.log(150 / 40), Math.log(140 / 50), Math.log(150 / 45)];
    const mean = (logs[0] + logs[1] + logs[2]) / 3;
    const sd = Math.sqrt(logs.reduce((s, v) => s + (v - mean) ** 2, 0) / 2);
    close(r.estimate, Math.exp(mean), 1e-12, 'ratio');
    close(r.estimate, 3.27106631, 1e-7, 'ratio (printed)');
    close(r.interval[0], Math.exp(mean - 4.302652730 * sd / Math.sqrt(3)), 1e-7, 'lo');
    close(r.interval[0], 2.27050394, 1e-6, 'lo (printed)');
    assert.equal(r.censoredB, 2);
    assert.equal(r.failedB, 0);
    assert.equal(r.verdict, 'reproduced');
    assert.match(r.reason, /lower bound.*not reached by step 150 in 2 of 3/);
  });

  it('censoring: on A\'s side it cannot reproduce, on B\'s side it cannot refute', () => {
    const ratio = spec({ metric: 'steps', better: 'lower', margin: 1.5, scale: 'ratio', censoredAt: 100, paired: true });
    assert.equal(nk.compareGroups(ratio, [NaN, 20, 20], [100, 90, 95]).verdict, 'inconclusive');
    // B censored and barely slower than A: the interval is below the margin, but B's true values may be larger
    const bound = nk.compareGroups(ratio, [95, 96, 97], [NaN, NaN, 97]);
    assert.equal(bound.verdict, 'inconclusive');
    assert.match(bound.reason, /lower bound/);
  });
});

describe('roll-up and sweeps', () => {
  it('counts checks as "k of n"', () => {
    const r = nk.rollUp(['reproduced', 'not reproduced', 'inconclusive', 'reproduced']);
    assert.deepEqual(r, { reproduced: 2, notReproduced: 1, inconclusive: 1, total: 4 });
    assert.equal(nk.describeRollUp(r), '2 of 4 checks reproduced (1 not reproduced, 1 inconclusive)');
    assert.equal(nk.describeRollUp(nk.rollUp(['reproduced'])), '1 of 1 checks reproduced');
    assert.equal(nk.describeRollUp(nk.rollUp([])), '0 of 0 checks reproduced');
  });

  it('pickBest: the best median, failures counted as the worst', () => {
    // medians: 10, +Infinity (two failures of three count as the worst), 15
    assert.deepEqual(nk.pickBest([[9, 10, 11], [5, NaN, NaN], [14, 15, 16]], 'lower'), { index: 0, medians: [10, Infinity, 15] });
    assert.equal(nk.pickBest([[0.5, 0.6], [0.7, NaN, 0.8]], 'higher').index, 1);
  });
});
