/**
 * Fused normalization kernels as plain functions over Float32Arrays (no tfjs import): the scalar JavaScript
 * path. Every normalization normkit fuses is one of two memory layouts:
 *
 * - `rows`: x is `[rows, n]` and each row is one slice (LayerNorm / RMSNorm over trailing axes). Parameters
 *   have length n.
 * - `channels`: x is `[B, S, C]` (channels last, S = product of the spatial/batch axes that are reduced) and
 *   the channels are split into G = C / K groups of K consecutive channels; each (b, group) is one slice of
 *   S * K elements (BatchNorm: B = 1, K = 1; InstanceNorm: K = 1; GroupNorm: K = C / groups). Parameters
 *   have length C.
 *
 * Statistics take one pass over x with float64 accumulators of shifted values: with K the slice's first
 * element and d = x - K, m = mean(d), var = mean(d^2) - m^2. The shift makes m of the order of the standard
 * deviation (a large common offset cancels exactly in x - K), so the float64 difference loses nothing that
 * matters; the output is computed as ((x - K) - m) * rstd for the same reason. The `mean` output of the
 * forward kernels is m, the mean relative to that shift; backward recomputes the shift from x.
 *
 * Backward takes two passes over x and dy (the first for the slice sums, the second for dx) and, per
 * parameter, accumulates dgamma = sum(dy * xhat) and dbeta = sum(dy) in float64.
 */

/** Layout of a fused normalization; see the file comment. */
export interface NormLayout {
  kind: 'rows' | 'channels';
  /** rows: number of rows; channels: B. */
  outer: number;
  /** rows: 1; channels: S, the reduced positions per channel. */
  inner: number;
  /** rows: n (row length); channels: C. */
  width: number;
  /** rows: n; channels: channels per group K (1 for BatchNorm / InstanceNorm). */
  channelsPerGroup: number;
  /** Subtract the mean (LayerNorm, BatchNorm, GroupNorm, InstanceNorm) or not (RMSNorm). */
  center: boolean;
}

/** Number of statistics (slices) of a layout: rows, or B * C / K. */
export function statCount(layout: NormLayout): number {
  return layout.kind === 'rows' ? layout.outer : layout.outer * (layout.width / layout.channelsPerGroup);
}

/** Elements per slice: n, or S * K. */
export function sliceSize(layout: NormLayout): number {
  return layout.kind === 'rows' ? layout.width : layout.inner * layout.channelsPerGroup;
}

/**
 * The indexing of a layout as the GPU kernels use it: a rows layout is a channels layout with S = 1 and
 * C = K = n. B batches of S positions of C channels in G groups of K; slice s = (b, g) holds `count` = S * K
 * elements; `slices` = B * G statistics; `total` = B * S * C elements.
 */
export interface SliceGeometry {
  B: number;
  S: number;
  C: number;
  K: number;
  G: number;
  count: number;
  slices: number;
  total: number;
}

/** The {@link SliceGeometry} of a layout. */
export function sliceGeometry(layout: NormLayout): SliceGeometry {
  const rows = layout.kind === 'rows';
  const S = rows ? 1 : layout.inner;
  const C = layout.width;
  const K = rows ? layout.width : layout.channelsPerGroup;
  return { B: layout.outer, S, C, K, G: C / K, count: sliceSize(layout), slices: statCount(layout), total: layout.outer * S * C };
}

/**
 * Forward: y = ((x - K) - m) * rstd * gamma + beta per slice, rstd = 1 / sqrt(var + eps) (center), or
 * y = x * rstd * gamma + beta with rstd = 1 / sqrt(mean(x^2) + eps) (RMS). Writes y, the shifted means m
 * (0 for RMS) and rstd, one per slice, and in `moments` the plain mean and the biased variance (mean(x^2)
 * for RMS) of each slice.
 */
export function normForward(
  layout: NormLayout,
  eps: number,
  x: Float32Array,
  gamma: Float32Array | null,
  beta: Float32Array | null,
  y: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  moments: { mean: Float32Array; variance: Float32Array },
): void {
  if (layout.kind === 'rows') rowsForward(layout, eps, x, gamma, beta, y, mean, rstd, moments);
  else channelsForward(layout, eps, x, gamma, beta, y, mean, rstd, moments);
}

/**
 * Backward of {@link normForward} with the statistics of the same batch: with g = gamma * dy and
 * xhat = (x - mean) * rstd, dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (RMS drops mean(g)),
 * dgamma = sum(dy * xhat), dbeta = sum(dy). `mean` and `rstd` are the forward's outputs.
 */
export function normBackward(
  layout: NormLayout,
  x: Float32Array,
  dy: Float32Array,
  gamma: Float32Array | null,
  mean: Float32Array,
  rstd: Float32Array,
  dx: Float32Array,
  dgamma: Float32Array,
  dbeta: Float32Array,
): void {
  if (layout.kind === 'rows') rowsBackward(layout, x, dy, gamma, mean, rstd, dx, dgamma, dbeta);
  else channelsBackward(layout, x, dy, gamma, mean, rstd, dx, dgamma, dbeta);
}

function rowsForward(
  layout: NormLayout,
  eps: number,
  x: Float32Array,
  gamma: Float32Array | null,
  beta: Float32Array | null,
  y: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  moments: { mean: Float32Array; variance: Float32Array },
): void {
  const n = layout.width;
  const center = layout.center;
  for (let r = 0, base = 0; r < layout.outer; r++, base += n) {
    const shift = center ? x[base] : 0;
    let s1 = 0;
    let s2 = 0;
    for (let i = base, end = base + n; i < end; i++) {
      const d = x[i] - shift;
      s1 += d;
      s2 += d * d;
    }
    const m = center ? s1 / n : 0;
    const variance = Math.max(s2 / n - m * m, 0);
    const rs = 1 / Math.sqrt(variance + eps);
    mean[r] = m;
    rstd[r] = rs;
    moments.mean[r] = shift + m;
    moments.variance[r] = variance;
    if (gamma && beta) for (let i = 0; i < n; i++) y[base + i] = (x[base + i] - shift - m) * rs * gamma[i] + beta[i];
    else if (gamma) for (let i = 0; i < n; i++) y[base + i] = (x[base + i] - shift - m) * rs * gamma[i];
    else if (beta) for (let i = 0; i < n; i++) y[base + i] = (x[base + i] - shift - m) * rs + beta[i];
    else if (!center) for (let i = 0; i < n; i++) y[base + i] = x[base + i] * rs;
    else for (let i = 0; i < n; i++) y[base + i] = (x[base + i] - shift - m) * rs;
  }
}

function rowsBackward(
  layout: NormLayout,
  x: Float32Array,
  dy: Float32Array,
  gamma: Float32Array | null,
  mean: Float32Array,
  rstd: Float32Array,
  dx: Float32Array,
  dgamma: Float32Array,
  dbeta: Float32Array,
): void {
  const n = layout.width;
  const center = layout.center;
  const dg = new Float64Array(n);
  const db = new Float64Array(n);
  for (let r = 0, base = 0; r < layout.outer; r++, base += n) {
    const shift = center ? x[base] : 0;
    const m = mean[r];
    const rs = rstd[r];
    let sg = 0;
    let sgx = 0;
    for (let i = 0; i < n; i++) {
      const d = dy[base + i];
      const xh = (x[base + i] - shift - m) * rs;
      const g = gamma ? gamma[i] * d : d;
      sg += g;
      sgx += g * xh;
      dg[i] += d * xh;
      db[i] += d;
    }
    const mg = center ? sg / n : 0;
    const mgx = sgx / n;
    for (let i = 0; i < n; i++) {
      const xh = (x[base + i] - shift - m) * rs;
      const g = gamma ? gamma[i] * dy[base + i] : dy[base + i];
      dx[base + i] = rs * (g - mg - xh * mgx);
    }
  }
  for (let i = 0; i < n; i++) {
    dgamma[i] = dg[i];
    dbeta[i] = db[i];
  }
}

function channelsForward(
  layout: NormLayout,
  eps: number,
  x: Float32Array,
  gamma: Float32Array | null,
  beta: Float32Array | null,
  y: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  moments: { mean: Float32Array; variance: Float32Array },
): void {
  const { outer: batches, inner: positions, width: channels, channelsPerGroup: perGroup, center } = layout;
  const groups = channels / perGroup;
  const count = positions * perGroup;
  const s1 = new Float64Array(channels);
  const s2 = new Float64Array(channels);
  const shift = new Float64Array(channels);
  const groupMean = new Float64Array(channels);
  const scale = new Float64Array(channels);
  const bias = new Float64Array(channels);
  const slab = positions * channels;
  for (let b = 0; b < batches; b++) {
    const base = b * slab;
    for (let c = 0; c < channels; c++) {
      shift[c] = center ? x[base + c - (c % perGroup)] : 0;
      s1[c] = 0;
      s2[c] = 0;
    }
    for (let p = 0, o = base; p < positions; p++, o += channels) {
      for (let c = 0; c < channels; c++) {
        const d = x[o + c] - shift[c];
        s1[c] += d;
        s2[c] += d * d;
      }
    }
    for (let g = 0; g < groups; g++) {
      let t1 = 0;
      let t2 = 0;
      for (let c = g * perGroup; c < (g + 1) * perGroup; c++) {
        t1 += s1[c];
        t2 += s2[c];
      }
      const m = center ? t1 / count : 0;
      const variance = Math.max(t2 / count - m * m, 0);
      const rs = 1 / Math.sqrt(variance + eps);
      mean[b * groups + g] = m;
      rstd[b * groups + g] = rs;
      moments.mean[b * groups + g] = shift[g * perGroup] + m;
      moments.variance[b * groups + g] = variance;
      for (let c = g * perGroup; c < (g + 1) * perGroup; c++) {
        groupMean[c] = m;
        scale[c] = gamma ? rs * gamma[c] : rs;
        bias[c] = beta ? beta[c] : 0;
      }
    }
    for (let p = 0, o = base; p < positions; p++, o += channels) {
      for (let c = 0; c < channels; c++) y[o + c] = (x[o + c] - shift[c] - groupMean[c]) * scale[c] + bias[c];
    }
  }
}

function channelsBackward(
  layout: NormLayout,
  x: Float32Array,
  dy: Float32Array,
  gamma: Float32Array | null,
  mean: Float32Array,
  rstd: Float32Array,
  dx: Float32Array,
  dgamma: Float32Array,
  dbeta: Float32Array,
): void {
  const { outer: batches, inner: positions, width: channels, channelsPerGroup: perGroup, center } = layout;
  const groups = channels / perGroup;
  const count = positions * perGroup;
  const shift = new Float64Array(channels);
  const m = new Float64Array(channels);
  const rs = new Float64Array(channels);
  const sumDy = new Float64Array(channels);
  const sumDyXh = new Float64Array(channels);
  const gam = new Float64Array(channels);
  const coefA = new Float64Array(channels);
  const coefB = new Float64Array(channels);
  const dg = new Float64Array(channels);
  const db = new Float64Array(channels);
  for (let c = 0; c < channels; c++) gam[c] = gamma ? gamma[c] : 1;
  const slab = positions * channels;
  for (let b = 0; b < batches; b++) {
    const base = b * slab;
    for (let c = 0; c < channels; c++) {
      const g = (c - (c % perGroup)) / perGroup;
      shift[c] = center ? x[base + c - (c % perGroup)] : 0;
      m[c] = mean[b * groups + g];
      rs[c] = rstd[b * groups + g];
      sumDy[c] = 0;
      sumDyXh[c] = 0;
    }
    for (let p = 0, o = base; p < positions; p++, o += channels) {
      for (let c = 0; c < channels; c++) {
        const d = dy[o + c];
        sumDy[c] += d;
        sumDyXh[c] += d * (x[o + c] - shift[c] - m[c]) * rs[c];
      }
    }
    for (let g = 0; g < groups; g++) {
      let sg = 0;
      let sgx = 0;
      for (let c = g * perGroup; c < (g + 1) * perGroup; c++) {
        sg += gam[c] * sumDy[c];
        sgx += gam[c] * sumDyXh[c];
        dg[c] += sumDyXh[c];
        db[c] += sumDy[c];
      }
      for (let c = g * perGroup; c < (g + 1) * perGroup; c++) {
        // dx = rs * gamma * dy - coefA - xhat * coefB, with the group constants folded per channel.
        coefA[c] = center ? (rs[c] * sg) / count : 0;
        coefB[c] = (rs[c] * sgx) / count;
      }
    }
    for (let p = 0, o = base; p < positions; p++, o += channels) {
      for (let c = 0; c < channels; c++) {
        const xh = (x[o + c] - shift[c] - m[c]) * rs[c];
        dx[o + c] = rs[c] * gam[c] * dy[o + c] - coefA[c] - xh * coefB[c];
      }
    }
    // A slice of one element normalizes to a constant: its dx is exactly 0 (not one rounding of the terms).
    if (count === 1 && center) dx.fill(0, base, base + slab);
  }
  for (let c = 0; c < channels; c++) {
    dgamma[c] = dg[c];
    dbeta[c] = db[c];
  }
}
