/**
 * Float64 reference implementations of normalization over slices, written from the textbook formulas and
 * independent of normkit's code. A "slice" is the set of elements that share one mean and variance: all
 * elements whose coordinates agree outside the normalized axes.
 */

/** Row-major strides of a shape. */
export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Coordinates of a flat index. */
export function coords(index: number, shape: readonly number[]): number[] {
  const st = strides(shape);
  return shape.map((_, i) => Math.floor(index / st[i]) % shape[i]);
}

/** Groups flat indices into slices: elements agreeing on every axis outside `axes` share a slice. */
export function slices(shape: readonly number[], axes: readonly number[]): number[][] {
  const size = shape.reduce((a, b) => a * b, 1);
  const groups = new Map<string, number[]>();
  for (let i = 0; i < size; i++) {
    const c = coords(i, shape);
    const key = c.filter((_, a) => !axes.includes(a)).join(',');
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(i);
  }
  return [...groups.values()];
}

/** Flat index into a parameter laid out over `paramAxes` of `shape` (Keras layout) for element `index`. */
export function paramIndex(index: number, shape: readonly number[], paramAxes: readonly number[]): number {
  const c = coords(index, shape);
  let p = 0;
  for (const a of paramAxes) p = p * shape[a] + c[a];
  return p;
}

export interface RefNormResult {
  y: Float64Array;
  /** Per slice, in order of {@link slices}. */
  mean: number[];
  variance: number[];
}

/**
 * y = (x - mean) / sqrt(var + eps) per slice (center = true), or y = x / sqrt(mean(x^2) + eps) (center =
 * false, RMS), then y * gamma + beta with the parameters laid out over `paramAxes`.
 */
export function refNormalize(
  x: ArrayLike<number>,
  shape: readonly number[],
  axes: readonly number[],
  eps: number,
  opts: { center?: boolean; gamma?: ArrayLike<number>; beta?: ArrayLike<number>; paramAxes?: readonly number[] } = {},
): RefNormResult {
  const center = opts.center ?? true;
  const y = new Float64Array(x.length);
  const means: number[] = [];
  const vars: number[] = [];
  for (const idx of slices(shape, axes)) {
    let mean = 0;
    if (center) {
      for (const i of idx) mean += x[i];
      mean /= idx.length;
    }
    let v = 0;
    for (const i of idx) v += (x[i] - mean) ** 2;
    v /= idx.length;
    const r = 1 / Math.sqrt(v + eps);
    for (const i of idx) y[i] = (x[i] - mean) * r;
    means.push(mean);
    vars.push(v);
  }
  applyAffine(y, shape, opts);
  return { y, mean: means, variance: vars };
}

function applyAffine(y: Float64Array, shape: readonly number[], opts: { gamma?: ArrayLike<number>; beta?: ArrayLike<number>; paramAxes?: readonly number[] }): void {
  if (!opts.gamma && !opts.beta) return;
  const pa = opts.paramAxes ?? [shape.length - 1];
  for (let i = 0; i < y.length; i++) {
    const p = paramIndex(i, shape, pa);
    if (opts.gamma) y[i] *= opts.gamma[p];
    if (opts.beta) y[i] += opts.beta[p];
  }
}

/**
 * Gradient of sum(dy * y) for {@link refNormalize} with statistics from the same batch:
 * with g = gamma * dy, xhat the normalized value and s = sqrt(var + eps),
 * dx = (g - mean(g) - xhat * mean(g * xhat)) / s   (center; RMS drops the mean(g) term),
 * dgamma = sum(dy * xhat), dbeta = sum(dy) over everything outside `paramAxes`.
 */
export function refNormalizeBackward(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  shape: readonly number[],
  axes: readonly number[],
  eps: number,
  opts: { center?: boolean; gamma?: ArrayLike<number>; paramAxes?: readonly number[]; paramSize?: number } = {},
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const center = opts.center ?? true;
  const pa = opts.paramAxes ?? [shape.length - 1];
  const pSize = opts.paramSize ?? pa.reduce((n, a) => n * shape[a], 1);
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(pSize);
  const dbeta = new Float64Array(pSize);
  for (const idx of slices(shape, axes)) {
    const n = idx.length;
    let mean = 0;
    if (center) {
      for (const i of idx) mean += x[i];
      mean /= n;
    }
    let v = 0;
    for (const i of idx) v += (x[i] - mean) ** 2;
    v /= n;
    const s = Math.sqrt(v + eps);
    let mg = 0;
    let mgx = 0;
    for (const i of idx) {
      const p = paramIndex(i, shape, pa);
      const g = (opts.gamma ? opts.gamma[p] : 1) * dy[i];
      const xh = (x[i] - mean) / s;
      mg += g;
      mgx += g * xh;
      dgamma[p] += dy[i] * xh;
      dbeta[p] += dy[i];
    }
    mg /= n;
    mgx /= n;
    for (const i of idx) {
      const p = paramIndex(i, shape, pa);
      const g = (opts.gamma ? opts.gamma[p] : 1) * dy[i];
      const xh = (x[i] - mean) / s;
      dx[i] = (g - (center ? mg : 0) - xh * mgx) / s;
    }
  }
  return { dx, dgamma, dbeta };
}
