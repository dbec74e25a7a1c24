/**
 * Verdicts from measured numbers only: summary statistics over seeds and the rule that turns two groups of
 * per-seed values into reproduced / not reproduced / inconclusive.
 */

/** The outcome of a claim check. */
export type Verdict = 'reproduced' | 'not reproduced' | 'inconclusive';

/** Mean, sample standard deviation, min, max and count of finite values (non-finite values are counted apart). */
export interface Stats {
  mean: number;
  std: number;
  min: number;
  max: number;
  n: number;
  /** Values that were NaN or infinite (e.g. a diverged run's final loss). */
  nonFinite: number;
}

/** Summary statistics of `values`; `std` is the sample standard deviation (n - 1), 0 for a single value. */
export function summarize(values: readonly number[]): Stats {
  const finite = values.filter((v) => Number.isFinite(v));
  const n = finite.length;
  const mean = n === 0 ? NaN : finite.reduce((a, b) => a + b, 0) / n;
  const std = n < 2 ? 0 : Math.sqrt(finite.reduce((a, b) => a + (b - mean) * (b - mean), 0) / (n - 1));
  return {
    mean, std, n,
    min: n === 0 ? NaN : Math.min(...finite),
    max: n === 0 ? NaN : Math.max(...finite),
    nonFinite: values.length - n,
  };
}

/** A claim about two groups of per-seed values of one metric. */
export interface ComparisonSpec {
  /** What is being checked, in words (e.g. "BN reaches 70% test accuracy in fewer steps than no norm"). */
  description: string;
  metric: string;
  /** `'higher'` when larger values of the metric are better. */
  better: 'higher' | 'lower';
  /**
   * `'better'`: A beats B by at least `margin`; `'no-worse'`: A is at most `margin` worse than B
   * (an equivalence-style claim such as "GN holds at batch 2").
   */
  kind: 'better' | 'no-worse';
  /** The smallest difference that counts (in metric units, >= 0). */
  margin: number;
  labelA: string;
  labelB: string;
}

/** A check's numbers and verdict, as shown in the report's table. */
export interface ComparisonResult extends ComparisonSpec {
  a: Stats;
  b: Stats;
  /** Mean difference oriented so that positive favours A (A - B for 'higher', B - A for 'lower'). */
  difference: number;
  /** Standard error of the difference (Welch): sqrt(sA^2/nA + sB^2/nB). */
  standardError: number;
  verdict: Verdict;
  reason: string;
}

/** Minimum number of seeds per group for a verdict other than inconclusive. */
export const MIN_SEEDS = 3;

/**
 * Decides a claim from per-seed values. With d the mean difference oriented in A's favour and se its Welch
 * standard error (spread across seeds), using a two-standard-error band:
 * - 'better':   reproduced if d > margin and d - 2 se > 0 (A is better, beyond the seed noise, by more than the
 *               margin); not reproduced if d + 2 se < margin (confidently smaller than claimed); else inconclusive.
 * - 'no-worse': reproduced if d - 2 se > -margin; not reproduced if d + 2 se < -margin; else inconclusive.
 * Fewer than {@link MIN_SEEDS} finite values in either group is inconclusive, except that when A's runs are all
 * finite and B's runs are all non-finite (diverged) a 'better' claim is reproduced (and the reverse refutes it).
 */
export function compareGroups(spec: ComparisonSpec, valuesA: readonly number[], valuesB: readonly number[]): ComparisonResult {
  const a = summarize(valuesA);
  const b = summarize(valuesB);
  const sign = spec.better === 'higher' ? 1 : -1;
  const difference = sign * (a.mean - b.mean);
  const standardError = Math.sqrt((a.n > 0 ? (a.std * a.std) / a.n : 0) + (b.n > 0 ? (b.std * b.std) / b.n : 0));
  const base = { ...spec, a, b, difference, standardError };
  if (valuesA.length >= MIN_SEEDS && valuesB.length >= MIN_SEEDS) {
    if (a.nonFinite === 0 && b.n === 0) {
      return { ...base, verdict: 'reproduced', reason: `every ${spec.labelB} run failed (diverged or never reached the target); every ${spec.labelA} run succeeded` };
    }
    if (a.n === 0 && b.nonFinite === 0) {
      return { ...base, verdict: 'not reproduced', reason: `every ${spec.labelA} run failed; every ${spec.labelB} run succeeded` };
    }
  }
  if (a.n < MIN_SEEDS || b.n < MIN_SEEDS) {
    return { ...base, verdict: 'inconclusive', reason: `needs at least ${MIN_SEEDS} finite values per group (got ${a.n} and ${b.n})` };
  }
  const lo = difference - 2 * standardError;
  const hi = difference + 2 * standardError;
  const fmt = (v: number) => v.toPrecision(3);
  if (spec.kind === 'better') {
    if (difference > spec.margin && lo > 0) {
      return { ...base, verdict: 'reproduced', reason: `difference ${fmt(difference)} > margin ${fmt(spec.margin)} and d - 2se = ${fmt(lo)} > 0` };
    }
    if (hi < spec.margin) {
      return { ...base, verdict: 'not reproduced', reason: `d + 2se = ${fmt(hi)} < margin ${fmt(spec.margin)}` };
    }
    return { ...base, verdict: 'inconclusive', reason: `difference ${fmt(difference)} +- ${fmt(2 * standardError)} straddles the margin ${fmt(spec.margin)}` };
  }
  if (lo > -spec.margin) {
    return { ...base, verdict: 'reproduced', reason: `d - 2se = ${fmt(lo)} > -margin ${fmt(-spec.margin)}` };
  }
  if (hi < -spec.margin) {
    return { ...base, verdict: 'not reproduced', reason: `d + 2se = ${fmt(hi)} < -margin ${fmt(-spec.margin)}` };
  }
  return { ...base, verdict: 'inconclusive', reason: `difference ${fmt(difference)} +- ${fmt(2 * standardError)} straddles -margin ${fmt(-spec.margin)}` };
}

/** An experiment's overall verdict: reproduced if every check is; not reproduced if any check is; else inconclusive. */
export function combineVerdicts(verdicts: readonly Verdict[]): Verdict {
  if (verdicts.length === 0) return 'inconclusive';
  if (verdicts.some((v) => v === 'not reproduced')) return 'not reproduced';
  if (verdicts.every((v) => v === 'reproduced')) return 'reproduced';
  return 'inconclusive';
}
