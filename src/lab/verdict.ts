/**
 * Verdicts from measured numbers only: summary statistics over seeds, Student-t intervals (paired by seed where
 * variants share init and data order, Welch otherwise), ratios with intervals for steps-to-target, censoring,
 * the smallest effect a check could detect, and the roll-up of an experiment's checks as "k of n".
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

// ---------------------------------------------------------------------------------------------------------------
// Student's t distribution: CDF through the regularized incomplete beta function, quantiles by bisection.

/** log Gamma(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error about 1e-15). */
function logGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = c[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-15) break;
  }
  return h;
}

/** Regularized incomplete beta I_x(a, b). */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaContinuedFraction(x, a, b)) / a : 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

/**
 * P(T <= t) for Student's t with `df` degrees of freedom (df > 0, not necessarily an integer):
 * 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2 for t >= 0, by symmetry below.
 */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/**
 * The p-quantile of Student's t with `df` degrees of freedom (0 < p < 1), by bisection on {@link studentTCdf}
 * to about 1e-12. Example: `tQuantile(0.975, 4)` = 2.7764 (the 95 % two-sided critical value for 5 seeds).
 */
export function tQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) return NaN;
  if (p === 0.5) return 0;
  if (p < 0.5) return -tQuantile(1 - p, df);
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, hi); i++) {
    const mid = 0.5 * (lo + hi);
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/** Two-sided confidence level of every interval the lab reports. */
export const CONFIDENCE = 0.95;
/** Power at which the smallest detectable effect is stated. */
export const POWER = 0.8;

// ---------------------------------------------------------------------------------------------------------------

/** A claim about two groups of per-seed values of one metric. */
export interface ComparisonSpec {
  /** What is being checked, in words (e.g. "BN reaches 60% test accuracy in fewer steps than no norm"). */
  description: string;
  metric: string;
  /** `'higher'` when larger values of the metric are better. */
  better: 'higher' | 'lower';
  /**
   * `'better'`: A beats B by at least `margin`; `'no-worse'`: A is at most `margin` worse than B
   * (an equivalence-style claim such as "RMSNorm trains like LayerNorm").
   */
  kind: 'better' | 'no-worse';
  /**
   * The smallest effect that counts: a difference in metric units (>= 0), or with `scale: 'ratio'` a factor
   * (>= 1, e.g. 2 for "at least twice as fast").
   */
  margin: number;
  labelA: string;
  labelB: string;
  /**
   * Pair the values by seed (index i of A with index i of B): right when both variants of a seed share the
   * initialization and the data order. Default false (Welch's unpaired comparison).
   */
  paired?: boolean;
  /** `'ratio'`: compare on a log scale and report the ratio B/A (lower is better) or A/B (higher is better). */
  scale?: 'difference' | 'ratio';
  /**
   * For a metric such as steps-to-target: a missing (null/NaN) value means "not reached by step `censoredAt`",
   * and is analysed as `censoredAt` (a bound: the true value is larger).
   */
  censoredAt?: number;
  /**
   * For a higher-is-better metric such as accuracy: a value at or below this marks a run that failed to train
   * (a classifier at chance level), counted as a failed run like a diverged one, never averaged into the values.
   */
  failedAtOrBelow?: number;
}

/** A check's numbers and verdict, as shown in the report's table. */
export interface ComparisonResult extends ComparisonSpec {
  a: Stats;
  b: Stats;
  /** Runs that failed (diverged or failed to train), per side; their values take no part in the statistics. */
  failedA: number;
  failedB: number;
  /** Runs whose value is a censoring bound ("not reached by step N"), per side. */
  censoredA: number;
  censoredB: number;
  /** Number of seeds (paired) or values (unpaired) the interval is computed from. */
  n: number;
  /**
   * The effect in A's favour: a difference (A - B when higher is better, B - A when lower is better) or, with
   * `scale: 'ratio'`, a ratio > 1 when A is better (B/A for lower-is-better metrics).
   */
  estimate: number;
  /** The 95 % confidence interval of `estimate` (t-based; on the log scale, then exponentiated, for ratios). */
  interval: [number, number];
  /** Degrees of freedom of the t interval (n - 1 paired; Welch-Satterthwaite unpaired). */
  df: number;
  /** Standard error on the analysis scale (metric units, or natural log of the ratio). */
  standardError: number;
  /**
   * The smallest effect this check could detect with the spread it saw: (t_{0.975} + t_{0.8}) * se, i.e. 80 %
   * power at a two-sided 5 % level, on the same scale as `estimate` (a factor for ratios).
   */
  detectable: number;
  verdict: Verdict;
  reason: string;
}

/** Minimum number of seeds (pairs) for a verdict other than inconclusive. */
export const MIN_SEEDS = 3;

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : String(Number(v.toPrecision(3)));
}

/**
 * Decides a claim from per-seed values (`rawA[i]`, `rawB[i]` from seed i when paired). With e the effect in
 * A's favour (on the log scale for ratios), its 95 % t interval [lo, hi] and the margin m (log m for ratios):
 * - 'better':   reproduced if lo > 0 and e >= m; not reproduced if hi < m; else inconclusive.
 * - 'no-worse': reproduced if lo > -m; not reproduced if hi < -m; else inconclusive.
 * Paired: e is the mean of the per-seed differences d_i over seeds where both values exist, se = s_d / sqrt(n),
 * df = n - 1. Unpaired: Welch, se = sqrt(s_A^2/n_A + s_B^2/n_B), Welch-Satterthwaite df.
 * Failed runs (NaN without `censoredAt`, or at most `failedAtOrBelow`) are outcomes, not values: when every run of B failed and none of A did,
 * a claim in A's favour is reproduced (and the reverse refutes it); when A failed more often than B, the
 * comparison of the survivors cannot reproduce the claim. Censored values (`censoredAt`) are bounds: censoring
 * on B's side only understates A's advantage (so "reproduced" stands, "not reproduced" cannot), on A's side only
 * overstates it (so "reproduced" cannot stand). Fewer than {@link MIN_SEEDS} values per side is inconclusive.
 *
 * @example
 * compareGroups({ description: 'BN faster', metric: 'steps to target', better: 'lower', kind: 'better', margin: 2,
 *   labelA: 'BN', labelB: 'none', paired: true, scale: 'ratio', censoredAt: 150 }, [40, 50, 45], [NaN, 140, NaN]);
 */
export function compareGroups(spec: ComparisonSpec, rawA: readonly number[], rawB: readonly number[]): ComparisonResult {
  const floor = spec.failedAtOrBelow;
  const outcome = (v: number) => (floor !== undefined && Number.isFinite(v) && v <= floor ? NaN : v);
  const valuesA = rawA.map(outcome);
  const valuesB = rawB.map(outcome);
  const ratio = spec.scale === 'ratio';
  const censor = spec.censoredAt;
  const prepare = (values: readonly number[]) => {
    let censored = 0;
    const out = values.map((v) => {
      if (!Number.isFinite(v) && censor !== undefined) {
        censored++;
        return censor;
      }
      return v;
    });
    return { out, censored, failed: out.filter((v) => !Number.isFinite(v)).length };
  };
  const pa = prepare(valuesA);
  const pb = prepare(valuesB);
  const a = summarize(valuesA.map((v) => (Number.isFinite(v) ? v : NaN)));
  const b = summarize(valuesB.map((v) => (Number.isFinite(v) ? v : NaN)));
  const sign = spec.better === 'higher' ? 1 : -1;
  const transform = (v: number) => (ratio ? (v > 0 ? Math.log(v) : NaN) : v);
  const ta = pa.out.map(transform);
  const tb = pb.out.map(transform);
  const margin = ratio ? Math.log(Math.max(spec.margin, 1e-300)) : spec.margin;

  let n: number;
  let mean: number;
  let se: number;
  let df: number;
  const paired = spec.paired === true && ta.length === tb.length;
  if (paired) {
    const diffs: number[] = [];
    for (let i = 0; i < ta.length; i++) if (Number.isFinite(ta[i]) && Number.isFinite(tb[i])) diffs.push(sign * (ta[i] - tb[i]));
    const s = summarize(diffs);
    n = s.n;
    mean = s.mean;
    se = n > 0 ? s.std / Math.sqrt(n) : NaN;
    df = n - 1;
  } else {
    const sa = summarize(ta);
    const sb = summarize(tb);
    n = Math.min(sa.n, sb.n);
    mean = sign * (sa.mean - sb.mean);
    const va = sa.n > 0 ? (sa.std * sa.std) / sa.n : 0;
    const vb = sb.n > 0 ? (sb.std * sb.std) / sb.n : 0;
    se = Math.sqrt(va + vb);
    const denominator = (sa.n > 1 ? (va * va) / (sa.n - 1) : 0) + (sb.n > 1 ? (vb * vb) / (sb.n - 1) : 0);
    // Both spreads zero: no information on df; the interval is a point either way.
    df = denominator > 0 ? ((va + vb) ** 2) / denominator : Math.max(1, sa.n + sb.n - 2);
  }
  const tCrit = df >= 1 ? tQuantile(0.5 + CONFIDENCE / 2, df) : NaN;
  const lo = mean - tCrit * se;
  const hi = mean + tCrit * se;
  const detect = df >= 1 ? (tCrit + tQuantile(POWER, df)) * se : NaN;
  const show = (v: number) => (ratio ? Math.exp(v) : v);
  const base = {
    ...spec, a, b, failedA: pa.failed, failedB: pb.failed, censoredA: pa.censored, censoredB: pb.censored,
    n, estimate: show(mean), interval: [show(lo), show(hi)] as [number, number], df, standardError: se, detectable: show(detect),
  };
  const result = (verdict: Verdict, reason: string): ComparisonResult => ({ ...base, verdict, reason });

  const total = (values: readonly number[]) => values.length;
  if (total(valuesA) >= MIN_SEEDS && total(valuesB) >= MIN_SEEDS) {
    if (pa.failed === 0 && pb.failed === total(valuesB)) {
      return result('reproduced', `every ${spec.labelB} run failed (${pb.failed} of ${pb.failed}); every ${spec.labelA} run succeeded`);
    }
    if (pa.failed === total(valuesA) && pb.failed === 0) {
      return result('not reproduced', `every ${spec.labelA} run failed (${pa.failed} of ${pa.failed}); every ${spec.labelB} run succeeded`);
    }
  }
  if (n < MIN_SEEDS) {
    return result('inconclusive', `needs at least ${MIN_SEEDS} ${paired ? 'seeds with both values' : 'values per group'} (got ${n})`);
  }
  const unit = ratio ? 'ratio' : 'difference';
  const ci = `${unit} ${fmt(show(mean))}, 95% CI [${fmt(show(lo))}, ${fmt(show(hi))}]`;
  let verdict: Verdict;
  let why: string;
  if (spec.kind === 'better') {
    if (lo > 0 && mean >= margin) {
      verdict = 'reproduced';
      why = `${ci} excludes ${ratio ? 1 : 0} and the estimate reaches the margin ${fmt(spec.margin)}`;
    } else if (hi < margin) {
      verdict = 'not reproduced';
      why = `${ci} lies below the margin ${fmt(spec.margin)}`;
    } else {
      verdict = 'inconclusive';
      why = `${ci} does not decide against the margin ${fmt(spec.margin)}`;
    }
  } else if (lo > -margin) {
    verdict = 'reproduced';
    why = `${ci} stays above -margin ${ratio ? fmt(1 / spec.margin) : fmt(-spec.margin)}`;
  } else if (hi < -margin) {
    verdict = 'not reproduced';
    why = `${ci} lies below -margin ${ratio ? fmt(1 / spec.margin) : fmt(-spec.margin)}`;
  } else {
    verdict = 'inconclusive';
    why = `${ci} straddles -margin ${ratio ? fmt(1 / spec.margin) : fmt(-spec.margin)}`;
  }
  // Failures and censoring: which conclusions the survivors' numbers can still support.
  if (verdict === 'reproduced' && pa.failed > pb.failed) {
    verdict = 'inconclusive';
    why += `, but ${spec.labelA} failed in more runs (${pa.failed}) than ${spec.labelB} (${pb.failed})`;
  }
  if (verdict === 'reproduced' && pa.censored > 0) {
    verdict = 'inconclusive';
    why += `, but ${spec.labelA} was censored in ${pa.censored} runs (its true values are larger)`;
  }
  if (verdict === 'not reproduced' && pb.censored > 0) {
    verdict = 'inconclusive';
    why += `, but ${spec.labelB} was censored in ${pb.censored} runs (the ${unit} shown is a lower bound)`;
  }
  if (pb.censored > 0 && verdict === 'reproduced') why += ` (a lower bound: ${spec.labelB} not reached by step ${fmt(censor ?? NaN)} in ${pb.censored} of ${valuesB.length})`;
  if (pb.failed > 0 || pa.failed > 0) why += `; failed runs left out: ${spec.labelA} ${pa.failed} of ${valuesA.length}, ${spec.labelB} ${pb.failed} of ${valuesB.length}`;
  return result(verdict, why);
}

/** An experiment's checks counted by verdict. */
export interface RollUp {
  reproduced: number;
  notReproduced: number;
  inconclusive: number;
  total: number;
}

/** Counts verdicts: the roll-up of an experiment is "k of n checks reproduced", never a single all-or-nothing word. */
export function rollUp(verdicts: readonly Verdict[]): RollUp {
  return {
    reproduced: verdicts.filter((v) => v === 'reproduced').length,
    notReproduced: verdicts.filter((v) => v === 'not reproduced').length,
    inconclusive: verdicts.filter((v) => v === 'inconclusive').length,
    total: verdicts.length,
  };
}

/** "2 of 3 checks reproduced (1 inconclusive)". */
export function describeRollUp(r: RollUp): string {
  const rest = [r.notReproduced ? `${r.notReproduced} not reproduced` : '', r.inconclusive ? `${r.inconclusive} inconclusive` : ''].filter(Boolean);
  return `${r.reproduced} of ${r.total} checks reproduced${rest.length ? ` (${rest.join(', ')})` : ''}`;
}

/**
 * Picks the best of several candidates (e.g. one variant per learning rate) by the median of their per-seed
 * values; missing (NaN) values count as the worst, so a learning rate that diverges in most seeds is not picked.
 * Returns the index of the winner (the first on ties) and each candidate's median.
 */
export function pickBest(values: ReadonlyArray<readonly number[]>, better: 'higher' | 'lower'): { index: number; medians: number[] } {
  const worst = better === 'higher' ? -Infinity : Infinity;
  const medians = values.map((vs) => {
    const v = vs.map((x) => (Number.isFinite(x) ? x : worst)).sort((a, b) => a - b);
    if (v.length === 0) return worst;
    const mid = Math.floor(v.length / 2);
    return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  });
  let index = 0;
  for (let i = 1; i < medians.length; i++) if (better === 'higher' ? medians[i] > medians[index] : medians[i] < medians[index]) index = i;
  return { index, medians };
}
