/**
 * Float64 summary statistics for tests that check initialization scales and signal propagation.
 */

/** Population standard deviation sqrt(mean((v - mean(v))^2)), two-pass, in float64. */
export function populationStd(v: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m += v[i];
  m /= v.length;
  let s = 0;
  for (let i = 0; i < v.length; i++) s += (v[i] - m) ** 2;
  return Math.sqrt(s / v.length);
}
