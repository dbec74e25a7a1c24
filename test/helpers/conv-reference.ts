/**
 * Float64 reference convolution, written from the definition and independent of normkit's code.
 */

/** 'same' stride-1 cross-correlation of x [N, H, W, Ci] with kernel [k, k, Ci, Co] (tfjs layout, k odd), float64. */
export function conv2dSame(x: ArrayLike<number>, n: number, h: number, w: number, ci: number, kernel: ArrayLike<number>, k: number, co: number): Float64Array {
  const out = new Float64Array(n * h * w * co);
  const pad = (k - 1) / 2;
  for (let b = 0; b < n; b++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++)
        for (let o = 0; o < co; o++) {
          let acc = 0;
          for (let di = 0; di < k; di++)
            for (let dj = 0; dj < k; dj++) {
              const yi = i + di - pad;
              const xj = j + dj - pad;
              if (yi < 0 || yi >= h || xj < 0 || xj >= w) continue;
              for (let q = 0; q < ci; q++) acc += x[((b * h + yi) * w + xj) * ci + q] * kernel[((di * k + dj) * ci + q) * co + o];
            }
          out[((b * h + i) * w + j) * co + o] = acc;
        }
  return out;
}
