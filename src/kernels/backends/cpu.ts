/**
 * Fused normalization kernels for tfjs's `cpu` backend, and the one place normkit reaches that backend's
 * memory: tensors are JavaScript typed arrays, read in place (`data.get(dataId).values`); each output is one
 * new Float32Array, written once and handed to `makeTensorInfo`, which stores it as the tensor's values (no
 * further copy).
 *
 * The SIMD module (simd.ts) cannot read JavaScript arrays, so it runs in a small memory of its own (the
 * "arena", kept between calls) and the work goes through it in chunks of independent slices: copy a chunk of
 * x (and dy) in, run the kernel on it in place (y over x, dx over dy: every output element depends only on its
 * own input element and its slice's statistics), copy the results out into the outputs. A chunk stays in the
 * cache from copy-in to copy-out, so the copies cost a fraction of streaming whole tensors through memory, and
 * the arena holds one chunk, not the tensor. A channels slab larger than a chunk (BatchNorm's spans the whole
 * batch) goes through the module chunk by chunk in two passes (see slabForward and slabBackward); a row
 * larger than the kept arena goes through whole in a memory made for that call and dropped after it. Where the module is unavailable or switched off
 * the scalar kernels of norm-math.ts run on the arrays directly.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { NormkitError } from '../../core/errors.js';
import { narrowBackend, type NormBackwardOutputs, type NormForwardOutputs, type NormKernels } from '../contract.js';
import { normBackward, normForward, statCount, type NormLayout } from '../norm-math.js';
import { instantiateSIMD, simdKernelsEnabled, simdModule, type NormExports } from '../simd.js';

/** What normkit uses of tfjs's cpu backend. */
export interface CPUBackendLike {
  data: { get(dataId: tf.DataId): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

/** Narrows tfjs's backend object to {@link CPUBackendLike}, checking what normkit relies on. */
export function asCPUBackend(backend: unknown): CPUBackendLike {
  return narrowBackend<CPUBackendLike>(backend, 'cpu', 'a tfjs cpu backend', ['makeTensorInfo'], (b) => typeof b.data?.get === 'function');
}

/** The float32 values of a tensor on the cpu backend. */
export function cpuValues(backend: CPUBackendLike, t: tf.TensorInfo): Float32Array {
  const values = backend.data.get(t.dataId)?.values;
  if (!(values instanceof Float32Array)) throw new NormkitError('cpu kernel', 'tensor', 'a float32 tensor that lives on the cpu backend', t);
  return values;
}

/**
 * Floats of x per chunk: 256 KiB, so a backward chunk (x and dy, 512 KiB) stays in a core's L2 cache between
 * copy-in, kernel and copy-out, and a [32, 32, 64] feature map of one image is one chunk.
 */
export const CPU_CHUNK_FLOATS = 1 << 16;

/** Forward outputs of {@link CPUSIMDKernels}. */
export interface CPUForwardArrays {
  y: Float32Array;
  mean: Float32Array;
  rstd: Float32Array;
  plainMean: Float32Array;
  variance: Float32Array;
}

/** Backward outputs of {@link CPUSIMDKernels}; dgamma and dbeta have `width` elements. */
export interface CPUBackwardArrays {
  dx: Float32Array;
  dgamma: Float32Array;
  dbeta: Float32Array;
}

/**
 * The SIMD kernels over JavaScript arrays (see the file comment): they fill the given outputs and return
 * false where the module has no kernel for the layout (channels without centring).
 */
export interface CPUSIMDKernels {
  forward(layout: NormLayout, eps: number, x: Float32Array, gamma: Float32Array | null, beta: Float32Array | null, out: CPUForwardArrays): boolean;
  backward(layout: NormLayout, x: Float32Array, dy: Float32Array, gamma: Float32Array | null, mean: Float32Array, rstd: Float32Array, out: CPUBackwardArrays): boolean;
  /** Bytes the arena kept between calls holds now (at most {@link CPU_ARENA_KEEP_BYTES}). */
  arenaBytes(): number;
  /** Bytes of WebAssembly memory the latest call used: the kept arena, or the memory made for that call. */
  lastCallBytes(): number;
}

/** The largest arena kept between calls; a call that needs more gets a memory of its own. */
export const CPU_ARENA_KEEP_BYTES = 1 << 20;

let cpuKernels: CPUSIMDKernels | null | undefined;

/**
 * The chunked SIMD kernels for the cpu backend, or null when switched off or (not yet) available. They compute
 * what norm-math.ts's normForward / normBackward compute, on the same arrays.
 *
 * @example
 * const k = simdForCPUBackend();
 * const layout = { kind: 'rows', outer: 2, inner: 1, width: 3, channelsPerGroup: 3, center: true } as const;
 * const out = { y: new Float32Array(6), mean: new Float32Array(2), rstd: new Float32Array(2), plainMean: new Float32Array(2), variance: new Float32Array(2) };
 * k?.forward(layout, 1e-5, Float32Array.of(1, 2, 3, 4, 5, 6), null, null, out); // out.y ~ [-1.22, 0, 1.22, -1.22, 0, 1.22]
 */
export function simdForCPUBackend(): CPUSIMDKernels | null {
  if (!simdKernelsEnabled()) return null;
  if (cpuKernels !== undefined) return cpuKernels;
  // Null while a browser compiles the module asynchronously: ask again on the next call.
  if (simdModule() === null) return null;
  const memory = new WebAssembly.Memory({ initial: 1 });
  const k = instantiateSIMD(memory);
  cpuKernels = k ? chunkedKernels(k, memory) : null;
  return cpuKernels;
}

/**
 * How a layout splits into independent units (a row, or one batch element's [S, C] slab) and how many units
 * go through the arena together.
 */
function chunking(l: NormLayout): { unitFloats: number; unitStats: number; units: number; perChunk: number } {
  const unitFloats = l.kind === 'rows' ? l.width : l.inner * l.width;
  const unitStats = l.kind === 'rows' ? 1 : l.width / l.channelsPerGroup;
  return { unitFloats, unitStats, units: l.outer, perChunk: Math.max(1, Math.floor(CPU_CHUNK_FLOATS / unitFloats)) };
}

function chunkedKernels(kept: NormExports, memory: WebAssembly.Memory): CPUSIMDKernels {
  const align = (bytes: number) => (bytes + 15) & ~15;
  let lastCallBytes = 0;
  /**
   * Lays out arrays of `sizes` floats one after another in the kept arena (grown to fit) or, past
   * CPU_ARENA_KEEP_BYTES, in a memory made for this call; returns the kernels, their byte offsets and a view.
   */
  const reserve = (sizes: number[]): { k: NormExports; at: number[]; heap: Float32Array } | null => {
    const at: number[] = [];
    let end = 0;
    for (const s of sizes) {
      at.push(end);
      end = align(end + 4 * s);
    }
    const pages = Math.ceil(end / 65536);
    let k: NormExports | null = kept;
    let m = memory;
    if (end <= CPU_ARENA_KEEP_BYTES) {
      if (pages * 65536 > memory.buffer.byteLength) memory.grow(pages - memory.buffer.byteLength / 65536);
    } else {
      m = new WebAssembly.Memory({ initial: pages });
      k = instantiateSIMD(m);
    }
    lastCallBytes = m.buffer.byteLength;
    return k ? { k, at, heap: new Float32Array(m.buffer) } : null;
  };
  const scratchFloats = (l: NormLayout) => (l.kind === 'channels' ? Math.ceil(kept.channelsScratchBytes(l.width) / 4) : 0);
  /** Copies `length` floats from the arena at byte offset `from` into `to` at `toIndex`. */
  const out = (heap: Float32Array, from: number, length: number, to: Float32Array, toIndex: number) => to.set(heap.subarray(from >> 2, (from >> 2) + length), toIndex);
  /** Float64 view of `doubles` values at byte offset `at` of the arena behind `heap`. */
  const f64At = (heap: Float32Array, at: number, doubles: number) => new Float64Array(heap.buffer, at, doubles);
  /**
   * Runs `fn(n, first)` on each chunk of at most `step` positions of the [positions, C] slab whose first
   * element is at `base`, after copying the chunk of each input array into the arena at its byte offset.
   */
  const eachChunk = (heap: Float32Array, inputs: Array<[Float32Array, number]>, base: number, positions: number, C: number, step: number, fn: (n: number, first: number) => void) => {
    for (let p = 0; p < positions; p += step) {
      const n = Math.min(step, positions - p);
      const first = base + p * C;
      for (const [values, at] of inputs) heap.set(values.subarray(first, first + n * C), at >> 2);
      fn(n, first);
    }
  };
  /** The first value of each channel's group in the slab at `base`: the shift of the shifted sums. */
  const shifts = (heap: Float32Array, at: number, x: Float32Array, base: number, C: number, K: number) => {
    for (let c = 0; c < C; c++) heap[(at >> 2) + c] = x[base + c - (c % K)];
  };
  /**
   * Forward of a channels slab larger than a chunk ([S, C] of one batch element: BatchNorm's spans the
   * batch), in chunks of positions, twice, with the module's two passes: channelsSums adds each chunk's
   * float64 sums of x and (x - shift)^2 into the slab's, the statistics follow as in the module's forward,
   * and channelsApply writes y = (x - P) rstd gamma + beta chunk by chunk (P, the plain mean, as hi + lo).
   */
  const slabForward = (l: NormLayout, eps: number, x: Float32Array, gamma: Float32Array | null, beta: Float32Array | null, o: CPUForwardArrays): boolean => {
    const { outer: batches, inner: positions, width: C, channelsPerGroup: K } = l;
    const groups = C / K;
    const count = positions * K;
    const step = Math.max(1, Math.floor(CPU_CHUNK_FLOATS / C));
    const arena = reserve([step * C, 4 * C, C, 3 * C]);
    if (!arena) return false;
    const { k, at, heap } = arena;
    const [X, SUMS, SHIFT, COEF] = at;
    const sums = f64At(heap, SUMS, 2 * C);
    for (let b = 0; b < batches; b++) {
      const base = b * positions * C;
      sums.fill(0);
      shifts(heap, SHIFT, x, base, C, K);
      eachChunk(heap, [[x, X]], base, positions, C, step, (n) => k.channelsSums(X, n, C, SHIFT, SUMS));
      for (let g = 0; g < groups; g++) {
        let t1 = 0;
        let t2 = 0;
        for (let c = g * K; c < (g + 1) * K; c++) {
          t1 += sums[c];
          t2 += sums[C + c];
        }
        const plain = t1 / count;
        const m = plain - heap[(SHIFT >> 2) + g * K];
        const variance = Math.max(t2 / count - m * m, 0);
        const rs = 1 / Math.sqrt(variance + eps);
        const s = b * groups + g;
        o.mean[s] = m;
        o.rstd[s] = rs;
        o.plainMean[s] = plain;
        o.variance[s] = variance;
        const hi = Math.fround(plain);
        for (let c = g * K; c < (g + 1) * K; c++) {
          const scale = gamma ? rs * gamma[c] : rs;
          heap[(COEF >> 2) + c] = hi;
          heap[(COEF >> 2) + C + c] = scale;
          heap[(COEF >> 2) + 2 * C + c] = (beta ? beta[c] : 0) - (plain - hi) * scale;
        }
      }
      eachChunk(heap, [[x, X]], base, positions, C, step, (n, first) => {
        k.channelsApply(X, X, n, C, COEF);
        out(heap, X, n * C, o.y, first);
      });
    }
    return true;
  };

  /**
   * Backward of a channels slab larger than a chunk, in chunks of positions, twice, with the module's two
   * passes: channelsGradSums adds each chunk's float64 sums of dy and dy * xhat into the slab's, and
   * channelsDx writes dx = rstd gamma dy - a - (x - P) bb chunk by chunk, a = rstd mean(gamma dy) and
   * bb = rstd^2 mean(gamma dy xhat) over the group's slice (P as hi + lo, lo folded into a), as the module's
   * backward computes them.
   */
  const slabBackward = (l: NormLayout, x: Float32Array, dy: Float32Array, gamma: Float32Array | null, mean: Float32Array, rstd: Float32Array, o: CPUBackwardArrays): boolean => {
    const { outer: batches, inner: positions, width: C, channelsPerGroup: K } = l;
    const groups = C / K;
    const count = positions * K;
    const step = Math.max(1, Math.floor(CPU_CHUNK_FLOATS / C));
    const arena = reserve([step * C, step * C, 3 * C, 4 * C, 4 * C]);
    if (!arena) return false;
    const { k, at, heap } = arena;
    const [X, DY, NORM, SUMS, COEF] = at;
    const sums = f64At(heap, SUMS, 2 * C);
    const dg = new Float64Array(C);
    const db = new Float64Array(C);
    for (let b = 0; b < batches; b++) {
      const base = b * positions * C;
      sums.fill(0);
      shifts(heap, NORM, x, base, C, K);
      for (let c = 0; c < C; c++) {
        const s = b * groups + (c - (c % K)) / K;
        heap[(NORM >> 2) + C + c] = mean[s];
        heap[(NORM >> 2) + 2 * C + c] = rstd[s];
      }
      eachChunk(heap, [[x, X], [dy, DY]], base, positions, C, step, (n) => k.channelsGradSums(X, DY, n, C, NORM, SUMS));
      for (let g = 0; g < groups; g++) {
        const rs = rstd[b * groups + g];
        let sg = 0;
        let sgx = 0;
        for (let c = g * K; c < (g + 1) * K; c++) {
          const gm = gamma ? gamma[c] : 1;
          sg += gm * sums[c];
          sgx += gm * sums[C + c];
          dg[c] += sums[C + c];
          db[c] += sums[c];
        }
        const plain = heap[(NORM >> 2) + g * K] + mean[b * groups + g];
        const hi = Math.fround(plain);
        const bb = (rs * rs * sgx) / count;
        const a = (rs * sg) / count - (plain - hi) * bb;
        for (let c = g * K; c < (g + 1) * K; c++) {
          heap[(COEF >> 2) + c] = hi;
          heap[(COEF >> 2) + C + c] = gamma ? rs * gamma[c] : rs;
          heap[(COEF >> 2) + 2 * C + c] = a;
          heap[(COEF >> 2) + 3 * C + c] = bb;
        }
      }
      // A slice of one element normalizes to a constant: its dx is exactly 0.
      if (count === 1) {
        o.dx.fill(0, base, base + positions * C);
        continue;
      }
      eachChunk(heap, [[x, X], [dy, DY]], base, positions, C, step, (n, first) => {
        k.channelsDx(X, DY, DY, n, C, COEF);
        out(heap, DY, n * C, o.dx, first);
      });
    }
    o.dgamma.set(dg);
    o.dbeta.set(db);
    return true;
  };

  return {
    arenaBytes: () => memory.buffer.byteLength,
    lastCallBytes: () => lastCallBytes,
    forward(l, eps, x, gamma, beta, o) {
      if (l.kind === 'channels' && !l.center) return false;
      if (l.kind === 'channels' && l.inner * l.width > CPU_CHUNK_FLOATS) return slabForward(l, eps, x, gamma, beta, o);
      const { unitFloats, unitStats, units, perChunk } = chunking(l);
      const w = l.width;
      const cs = perChunk * unitStats;
      const arena = reserve([perChunk * unitFloats, w, w, cs, cs, cs, cs, scratchFloats(l)]);
      if (!arena) return false;
      const { k, at, heap } = arena;
      const [X, G, B, M, R, PM, PV, S] = at;
      if (gamma) heap.set(gamma, G >> 2);
      if (beta) heap.set(beta, B >> 2);
      for (let u = 0; u < units; u += perChunk) {
        const count = Math.min(perChunk, units - u);
        const floats = count * unitFloats;
        const stats = count * unitStats;
        heap.set(x.subarray(u * unitFloats, u * unitFloats + floats), X >> 2);
        if (l.kind === 'rows') k.rowsForward(X, X, gamma ? G : 0, beta ? B : 0, M, R, PM, PV, count, w, eps, l.center ? 1 : 0);
        else k.channelsForward(X, X, gamma ? G : 0, beta ? B : 0, M, R, PM, PV, count, l.inner, w, l.channelsPerGroup, eps, S);
        out(heap, X, floats, o.y, u * unitFloats);
        out(heap, M, stats, o.mean, u * unitStats);
        out(heap, R, stats, o.rstd, u * unitStats);
        out(heap, PM, stats, o.plainMean, u * unitStats);
        out(heap, PV, stats, o.variance, u * unitStats);
      }
      return true;
    },
    backward(l, x, dy, gamma, mean, rstd, o) {
      if (l.kind === 'channels' && !l.center) return false;
      if (l.kind === 'channels' && l.inner * l.width > CPU_CHUNK_FLOATS) return slabBackward(l, x, dy, gamma, mean, rstd, o);
      const { unitFloats, unitStats, units, perChunk } = chunking(l);
      const w = l.width;
      const cs = perChunk * unitStats;
      const chunkFloats = perChunk * unitFloats;
      const arena = reserve([chunkFloats, chunkFloats, w, cs, cs, w, w, scratchFloats(l)]);
      if (!arena) return false;
      const { k, at, heap } = arena;
      const [X, DY, G, M, R, DG, DB, S] = at;
      if (gamma) heap.set(gamma, G >> 2);
      // The kernels zero dgamma and dbeta on every call: the chunks' sums are added here, in float64.
      const dg = new Float64Array(w);
      const db = new Float64Array(w);
      for (let u = 0; u < units; u += perChunk) {
        const count = Math.min(perChunk, units - u);
        const first = u * unitFloats;
        const floats = count * unitFloats;
        const stats = count * unitStats;
        heap.set(x.subarray(first, first + floats), X >> 2);
        heap.set(dy.subarray(first, first + floats), DY >> 2);
        heap.set(mean.subarray(u * unitStats, u * unitStats + stats), M >> 2);
        heap.set(rstd.subarray(u * unitStats, u * unitStats + stats), R >> 2);
        if (l.kind === 'rows') k.rowsBackward(X, DY, gamma ? G : 0, M, R, DY, DG, DB, count, w, l.center ? 1 : 0);
        else k.channelsBackward(X, DY, gamma ? G : 0, M, R, DY, DG, DB, count, l.inner, w, l.channelsPerGroup, S);
        out(heap, DY, floats, o.dx, first);
        for (let i = 0, g = DG >> 2, b = DB >> 2; i < w; i++) {
          dg[i] += heap[g + i];
          db[i] += heap[b + i];
        }
      }
      o.dgamma.set(dg);
      o.dbeta.set(db);
      return true;
    },
  };
}

/** normkit's fused kernels on the cpu backend (see the file comment). */
export const cpuNormKernels: NormKernels<CPUBackendLike> = {
  forward({ inputs: { x, gamma, beta }, attrs: a, backend }): NormForwardOutputs {
    const read = (t: tf.TensorInfo) => cpuValues(backend, t);
    const stats = statCount(a);
    const xv = read(x);
    const g = a.hasGamma ? read(gamma) : null;
    const b = a.hasBeta ? read(beta) : null;
    const o: CPUForwardArrays = { y: new Float32Array(xv.length), mean: new Float32Array(stats), rstd: new Float32Array(stats), plainMean: new Float32Array(stats), variance: new Float32Array(stats) };
    if (!simdForCPUBackend()?.forward(a, a.epsilon, xv, g, b, o)) normForward(a, a.epsilon, xv, g, b, o.y, o.mean, o.rstd, { mean: o.plainMean, variance: o.variance });
    const make = (shape: number[], values: Float32Array) => backend.makeTensorInfo(shape, 'float32', values);
    return [make(x.shape, o.y), make([stats], o.mean), make([stats], o.rstd), make([stats], o.plainMean), make([stats], o.variance)];
  },

  backward({ inputs: { x, dy, gamma, mean, rstd }, attrs: a, backend }): NormBackwardOutputs {
    const read = (t: tf.TensorInfo) => cpuValues(backend, t);
    const xv = read(x);
    const g = a.hasGamma ? read(gamma) : null;
    // Parameter gradients are accumulated at full width; an absent parameter gets an empty gradient.
    const o: CPUBackwardArrays = { dx: new Float32Array(xv.length), dgamma: new Float32Array(a.width), dbeta: new Float32Array(a.width) };
    if (!simdForCPUBackend()?.backward(a, xv, read(dy), g, read(mean), read(rstd), o)) normBackward(a, xv, read(dy), g, read(mean), read(rstd), o.dx, o.dgamma, o.dbeta);
    const make = (shape: number[], values: Float32Array) => backend.makeTensorInfo(shape, 'float32', values);
    const param = (wanted: boolean, values: Float32Array) => (wanted ? make([a.width], values) : make([0], new Float32Array(0)));
    return [make(x.shape, o.dx), param(a.hasGamma, o.dgamma), param(a.hasBeta, o.dbeta)];
  },
};
