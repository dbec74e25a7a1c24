// AssemblyScript source of normkit's WebAssembly SIMD normalization kernels (built by `npm run build` with
// the npm-installed assemblyscript compiler into dist/src/kernels/wasm/norm.wasm; see package.json).
//
// The module imports its memory: on tfjs's wasm backend it is instantiated with that backend's own
// WebAssembly.Memory and works in place on the tensors' byte offsets, so nothing is copied. It has no static
// data and allocates nothing (scratch space is passed in by the caller), so it never writes outside the
// buffers it is given. The math is the one of norm-math.ts (shifted sums with float64 accumulators; see there),
// with changes for speed where float32 rounding does not reach the outputs: the squares of the forward and
// the two sums of the backward are first summed in float32 SIMD lanes over short blocks (at most BLOCK terms
// per lane) and only the block sums are added in float64 (the float32 lanes do four terms per instruction
// where float64 does two; a block of a few terms rounds like a few float32 additions, relative 1e-6 of the
// block, which the variance and the backward's means tolerate). The forward's sum for the mean, whose error
// would reach every element near the mean through y = x - mean, stays in float64: over channels it is the sum
// of x itself (exact terms, and cheaper than x - shift in float64); over rows, where x - shift is a float32
// difference, sums of four such differences go to float64 (rounding like the differences themselves).
//
//   rows layout [rows, n]:          one slice per row (LayerNorm, RMSNorm)
//   channels layout [B, S, C]:      one slice per (b, group of K consecutive channels) (BatchNorm, GroupNorm,
//                                   InstanceNorm)

// Terms per float32 lane before its block sum goes to float64: small enough that the float32 sum stays accurate.
const BLOCK: i32 = 16;

function promoteHigh(v: v128): v128 {
  return f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1));
}

// Adds the 4 float32 lanes of v into the float64 pair (lo, hi) at p (4 doubles).
function flush(p: usize, v: v128): void {
  v128.store(p, f64x2.add(v128.load(p), f64x2.promote_low_f32x4(v)));
  v128.store(p + 16, f64x2.add(v128.load(p + 16), promoteHigh(v)));
}

// Sum of the 4 float32 lanes of v, in float64.
function laneSum(v: v128): f64 {
  const lo = f64x2.add(f64x2.promote_low_f32x4(v), promoteHigh(v));
  return f64x2.extract_lane(lo, 0) + f64x2.extract_lane(lo, 1);
}

// ---------------------------------------------------------------------------------------------- rows

/** Forward over rows; writes y, the shifted means, rstd, the plain means and the biased variances. */
export function rowsForward(
  x: usize, y: usize, gamma: usize, beta: usize,
  mean: usize, rstd: usize, plainMean: usize, variance: usize,
  rows: i32, n: i32, eps: f64, center: i32,
): void {
  const rowBytes = <usize>n << 2;
  const n4 = n & ~3;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * rowBytes;
    const yr = y + <usize>r * rowBytes;
    const shift: f32 = center ? load<f32>(xr) : 0;
    const sv = f32x4.splat(shift);
    let s1: f64 = 0;
    let s2: f64 = 0;
    let i = 0;
    // Blocks of 16 * BLOCK elements: four float32 accumulators of squares (independent additions), each
    // taking BLOCK terms per lane; the sums of four vectors go to float64 at once.
    let s1a = f64x2.splat(0);
    let s1b = f64x2.splat(0);
    while (i < n4) {
      const end = min(n4, i + 16 * BLOCK);
      let a2 = f32x4.splat(0);
      let b2 = f32x4.splat(0);
      let c2 = f32x4.splat(0);
      let d2 = f32x4.splat(0);
      for (; i + 16 <= end; i += 16) {
        const o = xr + (<usize>i << 2);
        const d = f32x4.sub(v128.load(o), sv);
        const e = f32x4.sub(v128.load(o + 16), sv);
        const f = f32x4.sub(v128.load(o + 32), sv);
        const g = f32x4.sub(v128.load(o + 48), sv);
        const q = f32x4.add(f32x4.add(d, e), f32x4.add(f, g));
        s1a = f64x2.add(s1a, f64x2.promote_low_f32x4(q));
        s1b = f64x2.add(s1b, promoteHigh(q));
        a2 = f32x4.add(a2, f32x4.mul(d, d));
        b2 = f32x4.add(b2, f32x4.mul(e, e));
        c2 = f32x4.add(c2, f32x4.mul(f, f));
        d2 = f32x4.add(d2, f32x4.mul(g, g));
      }
      for (; i < end; i += 4) {
        const d = f32x4.sub(v128.load(xr + (<usize>i << 2)), sv);
        s1a = f64x2.add(s1a, f64x2.promote_low_f32x4(d));
        s1b = f64x2.add(s1b, promoteHigh(d));
        a2 = f32x4.add(a2, f32x4.mul(d, d));
      }
      s2 += laneSum(f32x4.add(f32x4.add(a2, b2), f32x4.add(c2, d2)));
    }
    const s1v = f64x2.add(s1a, s1b);
    s1 += f64x2.extract_lane(s1v, 0) + f64x2.extract_lane(s1v, 1);
    for (; i < n; i++) {
      const d = <f64>load<f32>(xr + (<usize>i << 2)) - <f64>shift;
      s1 += d;
      s2 += d * d;
    }
    const m: f64 = center ? s1 / <f64>n : 0;
    let v = s2 / <f64>n - m * m;
    if (v < 0) v = 0;
    const rs = 1.0 / Math.sqrt(v + eps);
    store<f32>(mean + (<usize>r << 2), <f32>m);
    store<f32>(rstd + (<usize>r << 2), <f32>rs);
    store<f32>(plainMean + (<usize>r << 2), <f32>(<f64>shift + m));
    store<f32>(variance + (<usize>r << 2), <f32>v);
    const plain = <f64>shift + m;
    const mHi = <f32>plain;
    rowOutput(xr, yr, gamma, beta, n, mHi, <f32>(plain - <f64>mHi), <f32>rs);
  }
}

// y = (x - mean) * rs * gamma + beta for one row (gamma / beta skipped when their pointer is 0). The plain
// float64 mean (shift + m) is passed as m + mLo (two float32s) and subtracted in two steps: x - m is exact for
// an element within a factor 2 of the mean (Sterbenz), so an element close to the mean keeps its relative
// precision, which subtracting the shift first would lose where x - shift rounds.
function rowOutput(xr: usize, yr: usize, gamma: usize, beta: usize, n: i32, m: f32, mLo: f32, rs: f32): void {
  const n4 = n & ~3;
  const mv = f32x4.splat(m);
  const lv = f32x4.splat(mLo);
  const rv = f32x4.splat(rs);
  let i = 0;
  if (gamma != 0 && beta != 0) {
    for (; i < n4; i += 4) {
      const o = <usize>i << 2;
      const c = f32x4.sub(f32x4.sub(v128.load(xr + o), mv), lv);
      v128.store(yr + o, f32x4.add(f32x4.mul(f32x4.mul(c, rv), v128.load(gamma + o)), v128.load(beta + o)));
    }
  } else if (gamma != 0) {
    for (; i < n4; i += 4) {
      const o = <usize>i << 2;
      const c = f32x4.sub(f32x4.sub(v128.load(xr + o), mv), lv);
      v128.store(yr + o, f32x4.mul(f32x4.mul(c, rv), v128.load(gamma + o)));
    }
  } else if (beta != 0) {
    for (; i < n4; i += 4) {
      const o = <usize>i << 2;
      const c = f32x4.sub(f32x4.sub(v128.load(xr + o), mv), lv);
      v128.store(yr + o, f32x4.add(f32x4.mul(c, rv), v128.load(beta + o)));
    }
  } else {
    for (; i < n4; i += 4) {
      const o = <usize>i << 2;
      v128.store(yr + o, f32x4.mul(f32x4.sub(f32x4.sub(v128.load(xr + o), mv), lv), rv));
    }
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    let v = (load<f32>(xr + o) - m - mLo) * rs;
    if (gamma != 0) v *= load<f32>(gamma + o);
    if (beta != 0) v += load<f32>(beta + o);
    store<f32>(yr + o, v);
  }
}

/**
 * Backward over rows. dgamma / dbeta (n floats each, 0 when not wanted) are zeroed and accumulated here;
 * gamma is 0 when absent.
 */
export function rowsBackward(
  x: usize, dy: usize, gamma: usize, mean: usize, rstd: usize,
  dx: usize, dgamma: usize, dbeta: usize,
  rows: i32, n: i32, center: i32,
): void {
  const rowBytes = <usize>n << 2;
  if (dgamma != 0) memory.fill(dgamma, 0, rowBytes);
  if (dbeta != 0) memory.fill(dbeta, 0, rowBytes);
  // The common case (gamma, dgamma and dbeta all wanted) takes two rows per step, so dgamma and dbeta are
  // loaded and stored once for both; every other case goes row by row.
  const full = gamma != 0 && dgamma != 0 && dbeta != 0;
  let r = 0;
  if (full) {
    for (; r + 1 < rows; r += 2) rowPairBackward(x, dy, gamma, mean, rstd, dx, dgamma, dbeta, r, n, center);
  }
  for (; r < rows; r++) rowBackward(x, dy, gamma, mean, rstd, dx, dgamma, dbeta, r, n, center);
}

// The sums of one row's backward, given its shift, m and rs: returns (sum(g), sum(g * xhat)) as a float64
// pair, g = gamma * dy (dy where gamma is 0), and adds dy * xhat and dy into dgamma / dbeta where wanted.
function rowSums(xr: usize, dyr: usize, gamma: usize, dgamma: usize, dbeta: usize, n: i32, shift: f32, m: f32, rs: f32): v128 {
  const n4 = n & ~3;
  const sv = f32x4.splat(shift);
  const mv = f32x4.splat(m);
  const rv = f32x4.splat(rs);
  let sg: f64 = 0;
  let sx: f64 = 0;
  let i = 0;
  while (i < n4) {
    const end = min(n4, i + 4 * BLOCK);
    let ag = f32x4.splat(0);
    let ax = f32x4.splat(0);
    for (; i < end; i += 4) {
      const o = <usize>i << 2;
      const d = v128.load(dyr + o);
      const xh = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(xr + o), sv), mv), rv);
      const g = gamma != 0 ? f32x4.mul(d, v128.load(gamma + o)) : d;
      ag = f32x4.add(ag, g);
      ax = f32x4.add(ax, f32x4.mul(g, xh));
      if (dgamma != 0) v128.store(dgamma + o, f32x4.add(v128.load(dgamma + o), f32x4.mul(d, xh)));
      if (dbeta != 0) v128.store(dbeta + o, f32x4.add(v128.load(dbeta + o), d));
    }
    sg += laneSum(ag);
    sx += laneSum(ax);
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const d = load<f32>(dyr + o);
    const xh = (load<f32>(xr + o) - shift - m) * rs;
    const g = gamma != 0 ? d * load<f32>(gamma + o) : d;
    sg += <f64>g;
    sx += <f64>g * <f64>xh;
    if (dgamma != 0) store<f32>(dgamma + o, load<f32>(dgamma + o) + d * xh);
    if (dbeta != 0) store<f32>(dbeta + o, load<f32>(dbeta + o) + d);
  }
  return f64x2.replace_lane(f64x2.splat(sg), 1, sx);
}

// dx of one row from its sums: dx = rs * g - a - xhat * b with a = rs * mean(g) (0 for RMS) and
// b = rs * mean(g * xhat), written as dx = (rs * gamma) * dy - (a' + (x - hi) * bb), bb = rs * b, where the
// plain mean P = shift + m is hi + lo (x - hi exact near the mean) and a' = a - lo * bb.
function rowDx(xr: usize, dyr: usize, dxr: usize, gamma: usize, n: i32, shift: f32, m: f32, rs: f32, sums: v128, center: i32): void {
  const n4 = n & ~3;
  const sg = f64x2.extract_lane(sums, 0);
  const sx = f64x2.extract_lane(sums, 1);
  const plain: f64 = center ? <f64>shift + <f64>m : 0;
  const hi = <f32>plain;
  const bb: f64 = (<f64>rs * <f64>rs * sx) / <f64>n;
  const a: f64 = (center ? (<f64>rs * sg) / <f64>n : 0) - (plain - <f64>hi) * bb;
  const hv = f32x4.splat(hi);
  const bv = f32x4.splat(<f32>bb);
  const av = f32x4.splat(<f32>a);
  const rv = f32x4.splat(rs);
  let i = 0;
  if (gamma != 0) {
    for (; i < n4; i += 4) {
      const o = <usize>i << 2;
      const t = f32x4.add(av, f32x4.mul(f32x4.sub(v128.load(xr + o), hv), bv));
      v128.store(dxr + o, f32x4.sub(f32x4.mul(f32x4.mul(v128.load(dyr + o), v128.load(gamma + o)), rv), t));
    }
  } else {
    for (; i < n4; i += 4) {
      const o = <usize>i << 2;
      const t = f32x4.add(av, f32x4.mul(f32x4.sub(v128.load(xr + o), hv), bv));
      v128.store(dxr + o, f32x4.sub(f32x4.mul(v128.load(dyr + o), rv), t));
    }
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    let g = load<f32>(dyr + o);
    if (gamma != 0) g *= load<f32>(gamma + o);
    store<f32>(dxr + o, g * rs - (<f32>a + (load<f32>(xr + o) - hi) * <f32>bb));
  }
}

function rowBackward(x: usize, dy: usize, gamma: usize, mean: usize, rstd: usize, dx: usize, dgamma: usize, dbeta: usize, r: i32, n: i32, center: i32): void {
  const off = <usize>r * (<usize>n << 2);
  const shift: f32 = center ? load<f32>(x + off) : 0;
  const m = load<f32>(mean + (<usize>r << 2));
  const rs = load<f32>(rstd + (<usize>r << 2));
  const sums = rowSums(x + off, dy + off, gamma, dgamma, dbeta, n, shift, m, rs);
  rowDx(x + off, dy + off, dx + off, gamma, n, shift, m, rs, sums, center);
}

// Rows r and r + 1 with gamma, dgamma and dbeta: one load and store of dgamma / dbeta per vector for both.
function rowPairBackward(x: usize, dy: usize, gamma: usize, mean: usize, rstd: usize, dx: usize, dgamma: usize, dbeta: usize, r: i32, n: i32, center: i32): void {
  const rowBytes = <usize>n << 2;
  const n4 = n & ~3;
  const xr = x + <usize>r * rowBytes;
  const dyr = dy + <usize>r * rowBytes;
  const xq = xr + rowBytes;
  const dyq = dyr + rowBytes;
  const shiftR: f32 = center ? load<f32>(xr) : 0;
  const shiftQ: f32 = center ? load<f32>(xq) : 0;
  const mR = load<f32>(mean + (<usize>r << 2));
  const mQ = load<f32>(mean + (<usize>(r + 1) << 2));
  const rsR = load<f32>(rstd + (<usize>r << 2));
  const rsQ = load<f32>(rstd + (<usize>(r + 1) << 2));
  const sR = f32x4.splat(shiftR);
  const sQ = f32x4.splat(shiftQ);
  const mvR = f32x4.splat(mR);
  const mvQ = f32x4.splat(mQ);
  const rvR = f32x4.splat(rsR);
  const rvQ = f32x4.splat(rsQ);
  let sgR: f64 = 0;
  let sxR: f64 = 0;
  let sgQ: f64 = 0;
  let sxQ: f64 = 0;
  let i = 0;
  while (i < n4) {
    const end = min(n4, i + 4 * BLOCK);
    let agR = f32x4.splat(0);
    let axR = f32x4.splat(0);
    let agQ = f32x4.splat(0);
    let axQ = f32x4.splat(0);
    for (; i < end; i += 4) {
      const o = <usize>i << 2;
      const gm = v128.load(gamma + o);
      const d = v128.load(dyr + o);
      const e = v128.load(dyq + o);
      const xhR = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(xr + o), sR), mvR), rvR);
      const xhQ = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(xq + o), sQ), mvQ), rvQ);
      const gR = f32x4.mul(d, gm);
      const gQ = f32x4.mul(e, gm);
      agR = f32x4.add(agR, gR);
      axR = f32x4.add(axR, f32x4.mul(gR, xhR));
      agQ = f32x4.add(agQ, gQ);
      axQ = f32x4.add(axQ, f32x4.mul(gQ, xhQ));
      v128.store(dgamma + o, f32x4.add(v128.load(dgamma + o), f32x4.add(f32x4.mul(d, xhR), f32x4.mul(e, xhQ))));
      v128.store(dbeta + o, f32x4.add(v128.load(dbeta + o), f32x4.add(d, e)));
    }
    sgR += laneSum(agR);
    sxR += laneSum(axR);
    sgQ += laneSum(agQ);
    sxQ += laneSum(axQ);
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const gm = load<f32>(gamma + o);
    const d = load<f32>(dyr + o);
    const e = load<f32>(dyq + o);
    const xhR = (load<f32>(xr + o) - shiftR - mR) * rsR;
    const xhQ = (load<f32>(xq + o) - shiftQ - mQ) * rsQ;
    sgR += <f64>(d * gm);
    sxR += <f64>(d * gm) * <f64>xhR;
    sgQ += <f64>(e * gm);
    sxQ += <f64>(e * gm) * <f64>xhQ;
    store<f32>(dgamma + o, load<f32>(dgamma + o) + (d * xhR + e * xhQ));
    store<f32>(dbeta + o, load<f32>(dbeta + o) + (d + e));
  }
  const dxr = dx + <usize>r * rowBytes;
  rowDx(xr, dyr, dxr, gamma, n, shiftR, mR, rsR, f64x2.replace_lane(f64x2.splat(sgR), 1, sxR), center);
  rowDx(xq, dyq, dxr + rowBytes, gamma, n, shiftQ, mQ, rsQ, f64x2.replace_lane(f64x2.splat(sgQ), 1, sxQ), center);
}

// ------------------------------------------------------------------------------------------ channels
//
// Scratch layout (bytes from `scratch`, C channels): f64 acc1[C], f64 acc2[C], then f32 arrays of C:
// forward shift, centre, scale, bias; backward shift, m, rs, then the dx coefficients centre, k, a, bb (see
// channelsDx): at most 44 * C bytes.
//
// Statistics: the positions of one batch are walked in chunks (about 16 KiB of each array read,
// chunkPositions), and each chunk in column strips of 4 channels: a strip's float64 accumulators and float32
// block sums live in locals (registers) for the whole chunk, and the chunk stays in L1 while its strips are
// read. Two positions per step feed two independent sets of sums. The element-wise passes (the forward's y,
// the backward's dx) stream the rows in memory order with the per-channel constants read from scratch (L1):
// measured faster than column strips there, whose scattered 16-byte writes cost more than the loads of the
// constants. Channels past the last multiple of 4 run a scalar loop per position.

/** Bytes of scratch the channels kernels need for C channels. */
export function channelsScratchBytes(channels: i32): i32 {
  return channels * 48;
}

// Positions per chunk: about `bytes` of one [positions, C] array, at least 8.
function chunkPositions(channels: i32, bytes: i32): i32 {
  const p = bytes / (channels << 2);
  return p < 8 ? 8 : p;
}

// Forward statistics of one 4-channel strip over positions [p0, p1): acc1 += sum(x), acc2 += sum(d^2),
// d = x - shift (4 doubles each at a1, a2).
function statsStrip(xc: usize, rowBytes: usize, p0: i32, p1: i32, sv: v128, a1: usize, a2: usize): void {
  let q = xc + <usize>p0 * rowBytes;
  let p = p0;
  // The plain sum of x in float64: every float32 x is exact there, and with 53 bits its rounding stays far
  // below the float32 quantization of x itself even for a large common offset; it costs two operations
  // less per 4 elements than a float64 sum of x - shift. (A float32 x - shift rounds with a bias where x is
  // far from the shift, which reached the mean at 1e-8 of the spread: too much for elements near the mean.)
  let s1a = v128.load(a1);
  let s1b = v128.load(a1 + 16);
  let t1a = f64x2.splat(0);
  let t1b = f64x2.splat(0);
  while (p < p1) {
    const end = min(p1, p + 2 * BLOCK);
    let s2 = f32x4.splat(0);
    let t2 = f32x4.splat(0);
    for (; p + 1 < end; p += 2) {
      const xd = v128.load(q);
      const xe = v128.load(q + rowBytes);
      const d = f32x4.sub(xd, sv);
      const e = f32x4.sub(xe, sv);
      s1a = f64x2.add(s1a, f64x2.promote_low_f32x4(xd));
      s1b = f64x2.add(s1b, promoteHigh(xd));
      t1a = f64x2.add(t1a, f64x2.promote_low_f32x4(xe));
      t1b = f64x2.add(t1b, promoteHigh(xe));
      s2 = f32x4.add(s2, f32x4.mul(d, d));
      t2 = f32x4.add(t2, f32x4.mul(e, e));
      q += rowBytes << 1;
    }
    if (p < end) {
      const xd = v128.load(q);
      const d = f32x4.sub(xd, sv);
      s1a = f64x2.add(s1a, f64x2.promote_low_f32x4(xd));
      s1b = f64x2.add(s1b, promoteHigh(xd));
      s2 = f32x4.add(s2, f32x4.mul(d, d));
      q += rowBytes;
      p++;
    }
    flush(a2, f32x4.add(s2, t2));
  }
  v128.store(a1, f64x2.add(s1a, t1a));
  v128.store(a1 + 16, f64x2.add(s1b, t1b));
}

/**
 * Adds the statistics sums of one [positions, C] slab to `sums` (float64, 2C: sum(x) per channel, then
 * sum((x - shift)^2) per channel); `shift` holds C float32 shifts. The forward's first pass; also run on chunks
 * by the cpu backend's adapter, whose BatchNorm slab spans more than one chunk.
 */
export function channelsSums(x: usize, positions: i32, channels: i32, shift: usize, sums: usize): void {
  const C = <usize>channels;
  const acc1 = sums;
  const acc2 = sums + (C << 3);
  const c4 = channels & ~3;
  const rowBytes = C << 2;
  const chunk = chunkPositions(channels, 16384);
  for (let p0 = 0; p0 < positions; p0 += chunk) {
    const p1 = min(positions, p0 + chunk);
    for (let c = 0; c < c4; c += 4) {
      statsStrip(x + (<usize>c << 2), rowBytes, p0, p1, v128.load(shift + (<usize>c << 2)), acc1 + (<usize>c << 3), acc2 + (<usize>c << 3));
    }
    if (c4 < channels) {
      for (let p = p0; p < p1; p++) {
        const xp = x + <usize>p * rowBytes;
        for (let c = c4; c < channels; c++) {
          const v = <f64>load<f32>(xp + (<usize>c << 2));
          const d = v - <f64>load<f32>(shift + (<usize>c << 2));
          store<f64>(acc1 + (<usize>c << 3), load<f64>(acc1 + (<usize>c << 3)) + v);
          store<f64>(acc2 + (<usize>c << 3), load<f64>(acc2 + (<usize>c << 3)) + d * d);
        }
      }
    }
  }
}

/**
 * y = (x - centre) * k + bias over [positions, C], per-channel coefficients as 3 float32 arrays of C at
 * `coefs` (centre, k, bias). The forward's second pass; also run on chunks by the cpu backend's adapter.
 */
export function channelsApply(x: usize, y: usize, positions: i32, channels: i32, coefs: usize): void {
  const C = <usize>channels;
  const centreP = coefs;
  const kP = centreP + (C << 2);
  const biasP = kP + (C << 2);
  const rowBytes = C << 2;
  const vecBytes = <usize>(channels & ~3) << 2;
  const end = <usize>positions * rowBytes;
  for (let q: usize = 0; q < end; q += rowBytes) {
    const xp = x + q;
    const yp = y + q;
    for (let o: usize = 0; o < vecBytes; o += 16) {
      const cen = f32x4.sub(v128.load(xp + o), v128.load(centreP + o));
      v128.store(yp + o, f32x4.add(f32x4.mul(cen, v128.load(kP + o)), v128.load(biasP + o)));
    }
    for (let o = vecBytes; o < rowBytes; o += 4) {
      store<f32>(yp + o, (load<f32>(xp + o) - load<f32>(centreP + o)) * load<f32>(kP + o) + load<f32>(biasP + o));
    }
  }
}

/** Forward over [B, S, C] with groups of K channels. */
export function channelsForward(
  x: usize, y: usize, gamma: usize, beta: usize,
  mean: usize, rstd: usize, plainMean: usize, variance: usize,
  batches: i32, positions: i32, channels: i32, perGroup: i32, eps: f64, scratch: usize,
): void {
  const C = <usize>channels;
  const acc1 = scratch;
  const acc2 = scratch + (C << 3);
  const shiftP = scratch + (C << 4);
  const coefs = shiftP + (C << 2);
  const centreP = coefs;
  const kP = centreP + (C << 2);
  const biasP = kP + (C << 2);
  const groups = channels / perGroup;
  const count = <f64>positions * <f64>perGroup;
  const rowBytes = C << 2;
  for (let b = 0; b < batches; b++) {
    const xb = x + <usize>b * <usize>positions * rowBytes;
    const yb = y + <usize>b * <usize>positions * rowBytes;
    memory.fill(acc1, 0, C << 4);
    for (let c = 0; c < channels; c++) store<f32>(shiftP + (<usize>c << 2), load<f32>(xb + (<usize>(c - (c % perGroup)) << 2)));
    channelsSums(xb, positions, channels, shiftP, acc1);
    for (let g = 0; g < groups; g++) {
      let t1: f64 = 0;
      let t2: f64 = 0;
      for (let c = g * perGroup; c < (g + 1) * perGroup; c++) {
        t1 += load<f64>(acc1 + (<usize>c << 3));
        t2 += load<f64>(acc2 + (<usize>c << 3));
      }
      const plain = t1 / count;
      const m = plain - <f64>load<f32>(shiftP + (<usize>(g * perGroup) << 2));
      let v = t2 / count - m * m;
      if (v < 0) v = 0;
      const rs = 1.0 / Math.sqrt(v + eps);
      const s = <usize>(b * groups + g) << 2;
      store<f32>(mean + s, <f32>m);
      store<f32>(rstd + s, <f32>rs);
      store<f32>(variance + s, <f32>v);
      store<f32>(plainMean + s, <f32>plain);
      // The plain mean as two float32s, hi + lo: x - hi is exact for an element within a factor 2 of the mean
      // (Sterbenz), so an element close to the mean keeps its relative precision; lo folds into the bias.
      const hi = <f32>plain;
      const lo = plain - <f64>hi;
      for (let c = g * perGroup; c < (g + 1) * perGroup; c++) {
        const o = <usize>c << 2;
        const k = gamma != 0 ? rs * <f64>load<f32>(gamma + o) : rs;
        store<f32>(centreP + o, hi);
        store<f32>(kP + o, <f32>k);
        // y = (x - hi - lo) k + beta = (x - hi) k + (beta - lo k)
        store<f32>(biasP + o, <f32>((beta != 0 ? <f64>load<f32>(beta + o) : 0) - lo * k));
      }
    }
    channelsApply(xb, yb, positions, channels, coefs);
  }
}

// Backward sums of one 4-channel strip over positions [p0, p1) (offset o of the channels in a row):
// sumDy += sum(dy), sumDyXh += sum(dy * xhat), 4 doubles each.
function gradSumsStrip(xb: usize, dyb: usize, o: usize, rowBytes: usize, p0: i32, p1: i32, sv: v128, mv: v128, rv: v128, sumDy: usize, sumDyXh: usize): void {
  let q = <usize>p0 * rowBytes + o;
  let p = p0;
  while (p < p1) {
    const end = min(p1, p + 2 * BLOCK);
    let s1 = f32x4.splat(0);
    let s2 = f32x4.splat(0);
    let t1 = f32x4.splat(0);
    let t2 = f32x4.splat(0);
    for (; p + 1 < end; p += 2) {
      const d = v128.load(dyb + q);
      const e = v128.load(dyb + q + rowBytes);
      const xd = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(xb + q), sv), mv), rv);
      const xe = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(xb + q + rowBytes), sv), mv), rv);
      s1 = f32x4.add(s1, d);
      s2 = f32x4.add(s2, f32x4.mul(d, xd));
      t1 = f32x4.add(t1, e);
      t2 = f32x4.add(t2, f32x4.mul(e, xe));
      q += rowBytes << 1;
    }
    if (p < end) {
      const d = v128.load(dyb + q);
      const xd = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(xb + q), sv), mv), rv);
      s1 = f32x4.add(s1, d);
      s2 = f32x4.add(s2, f32x4.mul(d, xd));
      q += rowBytes;
      p++;
    }
    flush(sumDy, f32x4.add(s1, t1));
    flush(sumDyXh, f32x4.add(s2, t2));
  }
}

/**
 * Adds the gradient sums of one [positions, C] slab to `sums` (float64, 2C: sum(dy) per channel, then
 * sum(dy * xhat)), xhat = ((x - shift) - m) * rs with 3 float32 arrays of C at `norm` (shift, m, rs). The
 * backward's first pass; also run on chunks by the cpu backend's adapter.
 */
export function channelsGradSums(x: usize, dy: usize, positions: i32, channels: i32, norm: usize, sums: usize): void {
  const C = <usize>channels;
  const shiftP = norm;
  const mP = shiftP + (C << 2);
  const rsP = mP + (C << 2);
  const sumDy = sums;
  const sumDyXh = sums + (C << 3);
  const c4 = channels & ~3;
  const rowBytes = C << 2;
  // Two arrays are read per chunk: half the forward's chunk keeps them in L1.
  const chunk = chunkPositions(channels, 8192);
  for (let p0 = 0; p0 < positions; p0 += chunk) {
    const p1 = min(positions, p0 + chunk);
    for (let c = 0; c < c4; c += 4) {
      const o = <usize>c << 2;
      gradSumsStrip(x, dy, o, rowBytes, p0, p1, v128.load(shiftP + o), v128.load(mP + o), v128.load(rsP + o), sumDy + (<usize>c << 3), sumDyXh + (<usize>c << 3));
    }
    if (c4 < channels) {
      for (let p = p0; p < p1; p++) {
        const xp = x + <usize>p * rowBytes;
        const dyp = dy + <usize>p * rowBytes;
        for (let c = c4; c < channels; c++) {
          const o = <usize>c << 2;
          const d = load<f32>(dyp + o);
          const xh = (load<f32>(xp + o) - load<f32>(shiftP + o) - load<f32>(mP + o)) * load<f32>(rsP + o);
          store<f64>(sumDy + (<usize>c << 3), load<f64>(sumDy + (<usize>c << 3)) + <f64>d);
          store<f64>(sumDyXh + (<usize>c << 3), load<f64>(sumDyXh + (<usize>c << 3)) + <f64>d * <f64>xh);
        }
      }
    }
  }
}

/**
 * dx over [positions, C] from per-channel coefficients (4 float32 arrays of C at `coefs`: centre, k, a, bb):
 * dx = dy * k - a - (x - centre) * bb. The backward's second pass; also run on chunks by the cpu backend's
 * adapter, whose BatchNorm slab spans more than one chunk.
 */
export function channelsDx(x: usize, dy: usize, dx: usize, positions: i32, channels: i32, coefs: usize): void {
  const C = <usize>channels;
  const centreP = coefs;
  const kP = centreP + (C << 2);
  const aP = kP + (C << 2);
  const bbP = aP + (C << 2);
  const rowBytes = C << 2;
  const vecBytes = <usize>(channels & ~3) << 2;
  const end = <usize>positions * rowBytes;
  for (let q: usize = 0; q < end; q += rowBytes) {
    const xp = x + q;
    const dyp = dy + q;
    const dxp = dx + q;
    for (let o: usize = 0; o < vecBytes; o += 16) {
      const cen = f32x4.sub(v128.load(xp + o), v128.load(centreP + o));
      const t = f32x4.add(v128.load(aP + o), f32x4.mul(cen, v128.load(bbP + o)));
      v128.store(dxp + o, f32x4.sub(f32x4.mul(v128.load(dyp + o), v128.load(kP + o)), t));
    }
    for (let o = vecBytes; o < rowBytes; o += 4) {
      store<f32>(dxp + o, load<f32>(dyp + o) * load<f32>(kP + o) - (load<f32>(aP + o) + (load<f32>(xp + o) - load<f32>(centreP + o)) * load<f32>(bbP + o)));
    }
  }
}

/**
 * Backward over [B, S, C]. dgamma / dbeta (C floats each, 0 when not wanted) are written here; gamma is 0
 * when absent. Scratch as for the forward.
 */
export function channelsBackward(
  x: usize, dy: usize, gamma: usize, mean: usize, rstd: usize,
  dx: usize, dgamma: usize, dbeta: usize,
  batches: i32, positions: i32, channels: i32, perGroup: i32, scratch: usize,
): void {
  const C = <usize>channels;
  const sumDy = scratch;
  const sumDyXh = scratch + (C << 3);
  const shiftP = scratch + (C << 4);
  const mP = shiftP + (C << 2);
  const rsP = mP + (C << 2);
  const coefs = rsP + (C << 2);
  const centreP = coefs;
  const kP = centreP + (C << 2);
  const aP = kP + (C << 2);
  const bbP = aP + (C << 2);
  const groups = channels / perGroup;
  const count = <f64>positions * <f64>perGroup;
  const rowBytes = C << 2;
  if (dgamma != 0) memory.fill(dgamma, 0, C << 2);
  if (dbeta != 0) memory.fill(dbeta, 0, C << 2);
  for (let b = 0; b < batches; b++) {
    const xb = x + <usize>b * <usize>positions * rowBytes;
    const dyb = dy + <usize>b * <usize>positions * rowBytes;
    const dxb = dx + <usize>b * <usize>positions * rowBytes;
    memory.fill(sumDy, 0, C << 4);
    for (let c = 0; c < channels; c++) {
      const o = <usize>c << 2;
      const s = <usize>(b * groups + c / perGroup) << 2;
      store<f32>(shiftP + o, load<f32>(xb + (<usize>(c - (c % perGroup)) << 2)));
      store<f32>(mP + o, load<f32>(mean + s));
      store<f32>(rsP + o, load<f32>(rstd + s));
    }
    channelsGradSums(xb, dyb, positions, channels, shiftP, sumDy);
    // Per group: a = rs * mean(gamma * dy), bb = rs^2 * mean(gamma * dy * xhat); per channel the coefficients
    // of dx = rs * gamma * dy - a - (x - P) * bb with the plain mean P = shift + m as hi + lo (hi exact to
    // subtract from an element near the mean, lo folded into a).
    for (let g = 0; g < groups; g++) {
      let sg: f64 = 0;
      let sx: f64 = 0;
      for (let c = g * perGroup; c < (g + 1) * perGroup; c++) {
        const gm: f64 = gamma != 0 ? <f64>load<f32>(gamma + (<usize>c << 2)) : 1;
        const a = load<f64>(sumDy + (<usize>c << 3));
        const bx = load<f64>(sumDyXh + (<usize>c << 3));
        sg += gm * a;
        sx += gm * bx;
        if (dgamma != 0) store<f32>(dgamma + (<usize>c << 2), load<f32>(dgamma + (<usize>c << 2)) + <f32>bx);
        if (dbeta != 0) store<f32>(dbeta + (<usize>c << 2), load<f32>(dbeta + (<usize>c << 2)) + <f32>a);
      }
      const o0 = <usize>(g * perGroup) << 2;
      const rs = <f64>load<f32>(rsP + o0);
      const plain = <f64>load<f32>(shiftP + o0) + <f64>load<f32>(mP + o0);
      const hi = <f32>plain;
      const lo = plain - <f64>hi;
      const bb = (rs * rs * sx) / count;
      const a = (rs * sg) / count - lo * bb;
      for (let c = g * perGroup; c < (g + 1) * perGroup; c++) {
        const o = <usize>c << 2;
        const gm: f64 = gamma != 0 ? <f64>load<f32>(gamma + o) : 1;
        store<f32>(centreP + o, hi);
        store<f32>(kP + o, <f32>(rs * gm));
        store<f32>(aP + o, <f32>a);
        store<f32>(bbP + o, <f32>bb);
      }
    }
    // A slice of one element normalizes to a constant: its dx is exactly 0, where the folded coefficients
    // leave one rounding of rs * gamma * dy.
    if (count == 1) memory.fill(dxb, 0, <usize>positions * rowBytes);
    else channelsDx(xb, dyb, dxb, positions, channels, coefs);
  }
}
