/**
 * Memory peaks of the fused ops: the most memory a forward, or a forward+backward (gradients given dy), adds
 * while it runs, as a multiple of the input's size. Two parts are counted:
 *
 * - tfjs's accounting: `tf.profile` snapshots `tf.memory().numBytes` after every kernel; the peak minus the
 *   bytes live before the call is what the call's tensors (outputs, saved intermediates, gradients) add.
 * - WebAssembly memory the kernels use outside tfjs: on the cpu backend the SIMD kernels' memory of the
 *   latest call (the arena kept between calls, or a memory made for a call whose slices exceed it; counted in
 *   full), on the wasm backend the growth of the backend's heap during the call
 *   (its tensors are already in tfjs's count).
 *
 * Each figure is taken on a second call, after one warm-up that builds layers and sizes the arena. tfjs's own
 * layers (LayerNormalization, BatchNormalization) are measured the same way as the baseline.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../src/index.js';
import { simdForCPUBackend } from '../src/kernels/backends/cpu.js';
import { baselineOp, normkitGrads, normkitOp, type Case } from './ops.js';

/** One memory row. */
export interface MemoryRow {
  backend: string;
  method: string;
  shape: number[];
  pass: 'forward' | 'forward+backward';
  /** 'normkit' or the tfjs baseline's name. */
  impl: string;
  /** Peak of tfjs's bytes during the call, minus the bytes live before it, over the input's bytes. */
  tfjsPeak: number;
  /** WebAssembly memory held or grown for the call, over the input's bytes. */
  wasmExtra: number;
  /** tfjsPeak + wasmExtra. */
  total: number;
}

function wasmBytes(): number {
  const b = tf.backend() as unknown as { wasm?: { HEAPF32: Float32Array } };
  return b.wasm ? b.wasm.HEAPF32.byteLength : (simdForCPUBackend()?.lastCallBytes() ?? 0);
}

/** `normkitCall`: on cpu, whether the call runs normkit's kernels (whose arena is then counted). */
async function peak(fn: () => tf.Tensor | tf.Tensor[], inputBytes: number, normkitCall: boolean): Promise<{ tfjsPeak: number; wasmExtra: number }> {
  tf.dispose(fn());
  const before = tf.memory().numBytes;
  const heapBefore = wasmBytes();
  const info = await tf.profile(fn);
  tf.dispose(info.result as tf.Tensor | tf.Tensor[]);
  const held = tf.getBackend() === 'cpu' ? (normkitCall ? wasmBytes() : 0) : wasmBytes() - heapBefore;
  return { tfjsPeak: (info.peakBytes - before) / inputBytes, wasmExtra: held / inputBytes };
}

/** Memory peaks of normkit's fused ops and of tfjs's layers for `cases` on each backend. */
export async function memoryPeaks(cases: Case[], backends: string[], log: (s: string) => void): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = [];
  for (const backend of backends) {
    await nk.useBackend(backend);
    nk.setFusedKernels(true);
    for (const c of cases) {
      const width = c.shape[c.shape.length - 1];
      const x = tf.randomNormal(c.shape, 0.5, 2, 'float32', 1);
      const dy = tf.randomNormal(c.shape, 0, 1, 'float32', 2);
      const gamma = tf.randomNormal([width], 1, 0.2, 'float32', 3);
      const beta = tf.randomNormal([width], 0, 0.2, 'float32', 4);
      const inputBytes = 4 * x.size;
      const base = baselineOp(c);
      const impls: Array<[string, () => tf.Tensor, () => tf.Tensor[]]> = [['normkit', () => normkitOp(c, x, gamma, beta), () => normkitGrads(c, x, gamma, beta, dy)]];
      // Only the tfjs layers: the composite baselines are normkit's own ops.
      if (c.method === 'layerNorm' || c.method === 'batchNorm') {
        const name = c.method === 'layerNorm' ? 'tf.layers.layerNormalization' : 'tf.layers.batchNormalization';
        impls.push([name, () => base.forward(x, gamma, beta), () => base.grads(x, gamma, beta, dy)]);
      }
      for (const [impl, fwd, fwdBwd] of impls) {
        for (const [pass, fn] of [
          ['forward', fwd],
          ['forward+backward', fwdBwd],
        ] as const) {
          const p = await peak(fn, inputBytes, impl === 'normkit');
          const row: MemoryRow = { backend, method: c.method, shape: c.shape, pass, impl, ...p, total: p.tfjsPeak + p.wasmExtra };
          rows.push(row);
          log(`  ${backend} ${c.method} [${c.shape}] ${pass} ${impl}: ${row.total.toFixed(2)}x input (tfjs ${row.tfjsPeak.toFixed(2)}x, wasm ${row.wasmExtra.toFixed(2)}x)`);
        }
      }
      base.dispose();
      tf.dispose([x, dy, gamma, beta]);
    }
  }
  return rows;
}
