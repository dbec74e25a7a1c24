/**
 * On tfjs's cpu backend tensors live in JavaScript Float32Arrays, so the SIMD module can only be used after
 * copying x (and dy) into its own memory and the results out again. This measures whole-tensor copies around
 * the module against the scalar JavaScript kernels (float64 accumulators); the cpu adapter itself copies in
 * cache-sized chunks (backends/cpu.ts), which the kernel rows of the bench time.
 */
import { normBackward, normForward, type NormLayout } from '../src/kernels/norm-math.js';
import { instantiateSIMD } from '../src/kernels/simd.js';
import { timeIt, type Timing } from './timing.js';

/** One comparison row. */
export interface EngineComparison {
  method: string;
  shape: number[];
  pass: 'forward' | 'forward+backward';
  scalar: Timing;
  simdWithCopies?: Timing;
  copiesOnly?: Timing;
}

function randomArray(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    a[i] = (s / 4294967296) * 4 - 2;
  }
  return a;
}

/** Scalar JS vs SIMD-with-copies for LayerNorm rows and BatchNorm channels on the cpu backend's data layout. */
export function cpuEngineComparison(quick: boolean, runs: number): EngineComparison[] {
  const cases: Array<{ method: string; shape: number[]; layout: NormLayout }> = [
    { method: 'layerNorm', shape: [4096, 1024], layout: { kind: 'rows', outer: 4096, inner: 1, width: 1024, channelsPerGroup: 1024, center: true } },
    { method: 'batchNorm', shape: [32, 32, 32, 64], layout: { kind: 'channels', outer: 1, inner: 32 * 32 * 32, width: 64, channelsPerGroup: 1, center: true } },
  ];
  const out: EngineComparison[] = [];
  for (const c of quick ? cases.slice(0, 1) : cases) {
    const n = c.shape.reduce((a, b) => a * b, 1);
    const w = c.layout.width;
    const stats = c.layout.kind === 'rows' ? c.layout.outer : c.layout.outer * (w / c.layout.channelsPerGroup);
    const x = randomArray(n, 1);
    const dy = randomArray(n, 2);
    const gamma = randomArray(w, 3);
    const beta = randomArray(w, 4);
    // Scalar JavaScript, allocating outputs as the cpu backend does.
    const scalarFwd = () => {
      const y = new Float32Array(n);
      const m = new Float32Array(stats);
      const r = new Float32Array(stats);
      normForward(c.layout, 1e-5, x, gamma, beta, y, m, r, { mean: new Float32Array(stats), variance: new Float32Array(stats) });
      return { m, r };
    };
    const saved = scalarFwd();
    const scalarBwd = () => {
      normBackward(c.layout, x, dy, gamma, saved.m, saved.r, new Float32Array(n), new Float32Array(w), new Float32Array(w));
    };
    const row = (pass: 'forward' | 'forward+backward', scalar: () => void): EngineComparison => ({
      method: c.method,
      shape: c.shape,
      pass,
      scalar: timeIt(scalar, { runs, warmup: 2 }),
    });
    const fwdRow = row('forward', scalarFwd);
    const fbRow = row('forward+backward', () => {
      scalarFwd();
      scalarBwd();
    });
    // The SIMD module in its own memory: x, y, dy, dx, gamma, beta, 4 stats arrays, scratch.
    const bytes = 4 * (4 * n + 2 * w + 4 * stats) + 64 * w + 1024;
    const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) + 1 });
    const k = instantiateSIMD(memory);
    if (k) {
      const X = 0;
      const Y = X + 4 * n;
      const DY = Y + 4 * n;
      const DX = DY + 4 * n;
      const G = DX + 4 * n;
      const B = G + 4 * w;
      const M = B + 4 * w;
      const R = M + 4 * stats;
      const PM = R + 4 * stats;
      const PV = PM + 4 * stats;
      const DG = PV + 4 * stats;
      const DB = DG + 4 * w;
      const S = (DB + 4 * w + 15) & ~15;
      const heap = new Float32Array(memory.buffer);
      heap.set(gamma, G / 4);
      heap.set(beta, B / 4);
      const fwd = () => {
        if (c.layout.kind === 'rows') k.rowsForward(X, Y, G, B, M, R, PM, PV, c.layout.outer, w, 1e-5, 1);
        else k.channelsForward(X, Y, G, B, M, R, PM, PV, c.layout.outer, c.layout.inner, w, c.layout.channelsPerGroup, 1e-5, S);
      };
      const bwd = () => {
        if (c.layout.kind === 'rows') k.rowsBackward(X, DY, G, M, R, DX, DG, DB, c.layout.outer, w, 1);
        else k.channelsBackward(X, DY, G, M, R, DX, DG, DB, c.layout.outer, c.layout.inner, w, c.layout.channelsPerGroup, S);
      };
      fwdRow.simdWithCopies = timeIt(() => {
        heap.set(x, X / 4);
        fwd();
        heap.slice(Y / 4, Y / 4 + n);
      }, { runs, warmup: 2 });
      fwdRow.copiesOnly = timeIt(() => {
        heap.set(x, X / 4);
        heap.slice(Y / 4, Y / 4 + n);
      }, { runs, warmup: 2 });
      fbRow.simdWithCopies = timeIt(() => {
        heap.set(x, X / 4);
        fwd();
        heap.slice(Y / 4, Y / 4 + n);
        heap.set(dy, DY / 4);
        bwd();
        heap.slice(DX / 4, DX / 4 + n);
      }, { runs, warmup: 2 });
      fbRow.copiesOnly = timeIt(() => {
        heap.set(x, X / 4);
        heap.slice(Y / 4, Y / 4 + n);
        heap.set(dy, DY / 4);
        heap.slice(DX / 4, DX / 4 + n);
      }, { runs, warmup: 2 });
    }
    out.push(fwdRow, fbRow);
  }
  return out;
}
