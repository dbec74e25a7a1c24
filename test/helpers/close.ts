/**
 * Elementwise closeness without assertions or Node imports, shared by the Node tests (numeric.ts) and the
 * browser test pages.
 */

/** The worst element outside |actual - expected| <= atol + rtol * |expected|, or null when all are inside. */
export interface Violation {
  index: number;
  actual: number;
  expected: number;
}

/**
 * Finds the element that exceeds the tolerance most (NaN against a number, or a non-finite value against a
 * finite one, counts as a violation), or returns null. Arrays of different lengths are a violation at -1.
 */
export function findViolation(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: { rtol?: number; atol?: number }): Violation | null {
  if (actual.length !== expected.length) return { index: -1, actual: actual.length, expected: expected.length };
  const rtol = tol.rtol ?? 0;
  const atol = tol.atol ?? 0;
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(a) !== Number.isNaN(e)) return { index: i, actual: a, expected: e };
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (excess > worstExcess || !Number.isFinite(a) !== !Number.isFinite(e)) {
      worstExcess = excess;
      worst = i;
    }
  }
  return worst >= 0 ? { index: worst, actual: actual[worst], expected: expected[worst] } : null;
}
