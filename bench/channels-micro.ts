/**
 * Micro-benchmark of the SIMD module's channels kernels alone (no tfjs, no copies): BatchNorm, GroupNorm
 * (32 groups) and InstanceNorm on [32, 32, 32, 64], forward and backward, median of 21 runs, against a plain
 * copy of the same floats. Used to compare kernel versions while tuning:
 *
 *   node dist/bench/channels-micro.js [path/to/norm.wasm ...]
 *
 * (default: the built dist/src/kernels/wasm/norm.wasm). With several modules it also checks that their
 * outputs agree (largest difference, relative to the output's largest magnitude).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { NormExports } from '../src/kernels/simd.js';

const N = 32;
const S = 32 * 32;
const C = 64;
const total = N * S * C;
const RUNS = 21;

interface Case {
  name: string;
  batches: number;
  positions: number;
  perGroup: number;
}
const CASES: Case[] = [
  { name: 'BatchNorm', batches: 1, positions: N * S, perGroup: 1 },
  { name: 'GroupNorm', batches: N, positions: S, perGroup: C / 32 },
  { name: 'InstanceNorm', batches: N, positions: S, perGroup: 1 },
];

/** Minimum of the last timed runs of median(), reported next to the medians (the machine is shared). */
const mins: number[] = [];

function median(fn: () => void): number {
  for (let i = 0; i < 3; i++) fn();
  const t: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    fn();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  mins.push(t[0]);
  return t[t.length >> 1];
}

const paths = process.argv.slice(2);
if (paths.length === 0) paths.push(new URL('../src/kernels/wasm/norm.wasm', import.meta.url).pathname);

// Layout (bytes): x, dy, y, dx, gamma, beta, stats x4, dgamma, dbeta, scratch.
const f = 4;
const X = 0;
const DY = X + total * f;
const Y = DY + total * f;
const DX = Y + total * f;
// Parameters and statistics sized for the LayerNorm case too (1024 wide, 4096 rows).
const PW = 1024;
const G = DX + total * f;
const B = G + PW * f;
const STATS = B + PW * f;
const STAT_FLOATS = 4096;
const DG = STATS + 4 * STAT_FLOATS * f;
const DB = DG + PW * f;
const SCRATCH = DB + PW * f;
const END = SCRATCH + 64 * C;

const outputs: Float32Array[][] = [];
for (const path of paths) {
  const memory = new WebAssembly.Memory({ initial: Math.ceil(END / 65536) });
  const k = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(path)), { env: { memory } }).exports as unknown as NormExports;
  const heap = new Float32Array(memory.buffer);
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  for (let i = 0; i < total; i++) {
    heap[X / 4 + i] = 3 + rand();
    heap[DY / 4 + i] = rand();
  }
  for (let c = 0; c < PW; c++) {
    heap[G / 4 + c] = 1 + 0.1 * rand();
    heap[B / 4 + c] = 0.1 * rand();
  }
  const [M, R, PM, PV] = [0, 1, 2, 3].map((i) => STATS + i * STAT_FLOATS * f);
  const copySrc = heap.subarray(X / 4, X / 4 + total);
  const copyDst = heap.subarray(Y / 4, Y / 4 + total);
  const copyMs = median(() => copyDst.set(copySrc));
  const line: string[] = [`${path}: copy ${copyMs.toFixed(3)} ms`];
  const outs: Float32Array[] = [];
  for (const cs of CASES) {
    const fwd = () => k.channelsForward(X, Y, G, B, M, R, PM, PV, cs.batches, cs.positions, C, cs.perGroup, 1e-5, SCRATCH);
    const bwd = () => k.channelsBackward(X, DY, G, M, R, DX, DG, DB, cs.batches, cs.positions, C, cs.perGroup, SCRATCH);
    const fMs = median(fwd);
    const fMin = mins[mins.length - 1];
    fwd();
    const bMs = median(bwd);
    const bMin = mins[mins.length - 1];
    outs.push(heap.slice(Y / 4, Y / 4 + total), heap.slice(DX / 4, DX / 4 + total), heap.slice(DG / 4, DG / 4 + 2 * C));
    // Forward: 2 floats moved per element (x in, y out), as the copy; fwd+bwd: 2 + 3 (x, dy in, dx out).
    const fPct = (100 * copyMs) / fMs;
    const fbPct = (100 * (copyMs * 2.5)) / (fMs + bMs);
    line.push(`${cs.name} fwd ${fMs.toFixed(3)} ms (min ${fMin.toFixed(3)}; ${fPct.toFixed(0)} % of copy), bwd ${bMs.toFixed(3)} ms (min ${bMin.toFixed(3)}), fwd+bwd ${fbPct.toFixed(0)} %`);
  }
  // LayerNorm [4096, 1024] (rows layout, 4M floats): x spans the x and dy buffers, y the y and dx buffers;
  // the backward takes y as dy and writes dx over it (in place, as on the cpu backend).
  const rows = 4096;
  const n = 1024;
  {
    const fwd = () => k.rowsForward(X, Y, G, B, M, R, PM, PV, rows, n, 1e-5, 1);
    const bwd = () => k.rowsBackward(X, Y, G, M, R, Y, DG, DB, rows, n, 1);
    const fMs = median(fwd);
    const fMin = mins[mins.length - 1];
    const bMs = median(bwd);
    const bMin = mins[mins.length - 1];
    line.push(`LayerNorm [4096, 1024] fwd ${fMs.toFixed(3)} ms (min ${fMin.toFixed(3)}), bwd ${bMs.toFixed(3)} ms (min ${bMin.toFixed(3)})`);
  }
  outputs.push(outs);
  console.log(line.join('\n  '));
}
for (let i = 1; i < outputs.length; i++) {
  let worst = 0;
  outputs[i].forEach((a, j) => {
    const ref = outputs[0][j];
    let scale = 0;
    let diff = 0;
    for (let e = 0; e < a.length; e++) {
      scale = Math.max(scale, Math.abs(ref[e]));
      diff = Math.max(diff, Math.abs(a[e] - ref[e]));
    }
    worst = Math.max(worst, diff / scale);
  });
  console.log(`${paths[i]} vs ${paths[0]}: largest relative difference ${worst.toExponential(2)}`);
}
