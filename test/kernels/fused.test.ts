import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/index.js';
import { fusedKernelAvailable } from '../../src/core/dispatch.js';
import { FUSED_KERNELS } from '../../src/kernels/fused.js';
import { setSIMDKernels, simdForWasmBackend, simdKernelsEnabled } from '../../src/kernels/simd.js';
import { CPU_CHUNK_FLOATS, simdForCPUBackend } from '../../src/kernels/backends/cpu.js';
import { forEachBackend, withFused } from '../helpers/backends.js';
import { asWasmBackend } from '../../src/kernels/backends/wasm.js';
import { assertClose, assertNoLeak, f64, randn } from '../helpers/numeric.js';
import { refNormalize, refNormalizeBackward } from '../helpers/reference.js';
import { trainingBatchNorm } from '../helpers/training-ops.js';

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * One fused method: how to call its op, and how the float64 reference sees it (a shape whose `axes` are the
 * slice axes and whose `paramAxes` index gamma/beta; GroupNorm splits C into [G, C/G] for the reference).
 */
interface MethodCase {
  name: string;
  kernel: string;
  shape: number[];
  refShape: number[];
  axes: number[];
  paramAxes: number[];
  /** Shape of gamma and beta as the op takes them. */
  paramShape: number[];
  center: boolean;
  eps: number;
  hasBeta: boolean;
  op: (x: tf.Tensor, gamma?: tf.Tensor, beta?: tf.Tensor) => tf.Tensor;
}

/** BatchNorm in training mode over [N, S, C] (slices over N and S); `note` is added to the case's name. */
function batchNormCase(shape: [number, number, number], note = ''): MethodCase {
  const c = shape[2];
  return {
    name: `batchNorm (training) [${shape.join(', ')}]${note ? ' ' + note : ''}`,
    kernel: FUSED_KERNELS.batchNorm,
    shape,
    refShape: shape,
    axes: [0, 1],
    paramAxes: [2],
    paramShape: [c],
    center: true,
    eps: 1e-5,
    hasBeta: true,
    op: trainingBatchNorm,
  };
}

const METHODS: MethodCase[] = [
  {
    name: 'layerNorm [6, 33]',
    kernel: FUSED_KERNELS.layerNorm,
    shape: [6, 33],
    refShape: [6, 33],
    axes: [1],
    paramAxes: [1],
    paramShape: [33],
    center: true,
    eps: 1e-5,
    hasBeta: true,
    op: (x, gamma, beta) => nk.layerNorm(x, { gamma, beta }),
  },
  {
    name: 'layerNorm [3, 4, 5] over axes [1, 2]',
    kernel: FUSED_KERNELS.layerNorm,
    shape: [3, 4, 5],
    refShape: [3, 4, 5],
    axes: [1, 2],
    paramAxes: [1, 2],
    paramShape: [4, 5],
    center: true,
    eps: 1e-5,
    hasBeta: true,
    op: (x, gamma, beta) => nk.layerNorm(x, { axis: [1, 2], gamma, beta }),
  },
  {
    name: 'rmsNorm [5, 17]',
    kernel: FUSED_KERNELS.rmsNorm,
    shape: [5, 17],
    refShape: [5, 17],
    axes: [1],
    paramAxes: [1],
    paramShape: [17],
    center: false,
    eps: 1e-6,
    hasBeta: false,
    op: (x, gamma) => nk.rmsNorm(x, { gamma }),
  },
  {
    name: 'groupNorm [2, 3, 4, 6] with 3 groups',
    kernel: FUSED_KERNELS.groupNorm,
    shape: [2, 3, 4, 6],
    refShape: [2, 3, 4, 3, 2],
    axes: [1, 2, 4],
    paramAxes: [3, 4],
    paramShape: [6],
    center: true,
    eps: 1e-5,
    hasBeta: true,
    op: (x, gamma, beta) => nk.groupNorm(x, { groups: 3, gamma, beta }),
  },
  {
    name: 'instanceNorm [2, 5, 3, 4]',
    kernel: FUSED_KERNELS.instanceNorm,
    shape: [2, 5, 3, 4],
    refShape: [2, 5, 3, 4],
    axes: [1, 2],
    paramAxes: [3],
    paramShape: [4],
    center: true,
    eps: 1e-5,
    hasBeta: true,
    op: (x, gamma, beta) => nk.instanceNorm(x, { gamma, beta }),
  },
  batchNormCase([4, 3, 6]),
  // An odd number of positions (the SIMD backward's pairs of positions leave one), channels a multiple of 4.
  batchNormCase([5, 9, 8]),
  {
    name: 'groupNorm [2, 7, 6, 8] with 2 groups',
    kernel: FUSED_KERNELS.groupNorm,
    shape: [2, 7, 6, 8],
    refShape: [2, 7, 6, 2, 4],
    axes: [1, 2, 4],
    paramAxes: [3, 4],
    paramShape: [8],
    center: true,
    eps: 1e-5,
    hasBeta: true,
    op: (x, gamma, beta) => nk.groupNorm(x, { groups: 2, gamma, beta }),
  },
  // 135 positions of 70 channels: several of the SIMD forward's position chunks (4096 / 70 = 58 positions),
  // an odd count, and 2 channels past the last multiple of 4 (scalar tail).
  batchNormCase([3, 45, 70]),
  {
    // As above per batch element (135 positions, 70 channels), with groups of 10 channels that straddle the
    // vector / scalar-tail boundary.
    name: 'groupNorm [2, 9, 15, 70] with 7 groups',
    kernel: FUSED_KERNELS.groupNorm,
    shape: [2, 9, 15, 70],
    refShape: [2, 9, 15, 7, 10],
    axes: [1, 2, 4],
    paramAxes: [3, 4],
    paramShape: [70],
    center: true,
    eps: 1e-5,
    hasBeta: true,
    op: (x, gamma, beta) => nk.groupNorm(x, { groups: 7, gamma, beta }),
  },
];

/**
 * Larger cases, checked against the reference only. The cpu backend runs the SIMD module in chunks of CPU_CHUNK_FLOATS (65536)
 * floats of whole slices: 70 rows of 1000 go through as 65 + 5 rows; a row of 140000 floats is larger than a
 * chunk and than the arena kept between calls (1 MiB), so it goes alone through a memory made for the call.
 */
const CHUNKED_METHODS: MethodCase[] = [
  {
    name: 'layerNorm [70, 1000] (several cpu chunks, the last one partial)',
    kernel: FUSED_KERNELS.layerNorm,
    shape: [70, 1000],
    refShape: [70, 1000],
    axes: [1],
    paramAxes: [1],
    paramShape: [1000],
    center: true,
    eps: 1e-5,
    hasBeta: true,
    op: (x, gamma, beta) => nk.layerNorm(x, { gamma, beta }),
  },
  {
    name: 'rmsNorm [2, 140000] (rows longer than a cpu chunk and its kept arena)',
    kernel: FUSED_KERNELS.rmsNorm,
    shape: [2, 140000],
    refShape: [2, 140000],
    axes: [1],
    paramAxes: [1],
    paramShape: [140000],
    center: false,
    eps: 1e-6,
    hasBeta: false,
    op: (x, gamma) => nk.rmsNorm(x, { gamma }),
  },
  {
    // Per batch element a slab of 8 * 8 * 16 = 1024 floats: 64 slabs a chunk, so 64 + 16.
    name: 'groupNorm [80, 8, 8, 16] with 4 groups (several cpu chunks)',
    kernel: FUSED_KERNELS.groupNorm,
    shape: [80, 8, 8, 16],
    refShape: [80, 8, 8, 4, 4],
    axes: [1, 2, 4],
    paramAxes: [3, 4],
    paramShape: [16],
    center: true,
    eps: 1e-5,
    hasBeta: true,
    op: (x, gamma, beta) => nk.groupNorm(x, { groups: 4, gamma, beta }),
  },
  // One slab of 800 positions * 90 channels = 72000 floats: chunks of 728 + 72 positions.
  batchNormCase([4, 200, 90], '(a slab larger than a cpu chunk)'),
  {
    // Slabs of 45 * 40 * 40 = 72000 floats in chunks of 1638 + 162 positions, groups of 10 channels.
    name: 'groupNorm [2, 45, 40, 40] with 4 groups (slabs larger than a cpu chunk)',
    kernel: FUSED_KERNELS.groupNorm,
    shape: [2, 45, 40, 40],
    refShape: [2, 45, 40, 4, 10],
    axes: [1, 2, 4],
    paramAxes: [3, 4],
    paramShape: [40],
    center: true,
    eps: 1e-5,
    hasBeta: true,
    op: (x, gamma, beta) => nk.groupNorm(x, { groups: 4, gamma, beta }),
  },
  {
    // Slabs of 20 * 20 * 90 = 36000 floats, more than half a chunk: one per chunk.
    name: 'instanceNorm [3, 20, 20, 90] (one slab per cpu chunk)',
    kernel: FUSED_KERNELS.instanceNorm,
    shape: [3, 20, 20, 90],
    refShape: [3, 20, 20, 90],
    axes: [1, 2],
    paramAxes: [3],
    paramShape: [90],
    center: true,
    eps: 1e-5,
    hasBeta: true,
    op: (x, gamma, beta) => nk.instanceNorm(x, { gamma, beta }),
  },
];

const widthOf = (m: MethodCase) => size(m.paramAxes.map((a) => m.refShape[a]));

/** Runs `fn` in a tfjs scope that disposes every tensor it made, returning its plain (non-tensor) result. */
function scoped<T>(fn: () => T): T {
  let out: T | undefined;
  tf.tidy(() => {
    out = fn();
  });
  return out as T;
}

interface Outputs {
  y: Float64Array;
  dx: Float64Array;
  dgamma: Float64Array;
  dbeta: Float64Array;
}

/** Forward output and gradients of sum(y * dy) with respect to x, gamma and beta. */
function run(m: MethodCase, xv: Float32Array, gv: Float32Array, bv: Float32Array, dyv: Float32Array): Outputs {
  return scoped(() => {
    const x = tf.tensor(xv, m.shape);
    const gamma = tf.tensor(gv, m.paramShape);
    const beta = tf.tensor(bv, m.paramShape);
    const dy = tf.tensor(dyv, m.shape);
    const y = f64(m.op(x, gamma, m.hasBeta ? beta : undefined));
    if (!m.hasBeta) {
      const [dx, dg] = tf.grads((a: tf.Tensor, g: tf.Tensor) => tf.sum(tf.mul(m.op(a, g), dy)))([x, gamma]);
      return { y, dx: f64(dx), dgamma: f64(dg), dbeta: new Float64Array(bv.length) };
    }
    const [dx, dg, db] = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(m.op(a, g, b), dy)))([x, gamma, beta]);
    return { y, dx: f64(dx), dgamma: f64(dg), dbeta: f64(db) };
  });
}

function reference(m: MethodCase, xv: Float32Array, gv: Float32Array, bv: Float32Array | undefined, dyv: Float32Array) {
  const opts = { center: m.center, gamma: gv, beta: bv, paramAxes: m.paramAxes };
  const y = refNormalize(xv, m.refShape, m.axes, m.eps, opts).y;
  const back = refNormalizeBackward(xv, dyv, m.refShape, m.axes, m.eps, { center: m.center, gamma: gv, paramAxes: m.paramAxes });
  return { y, ...back };
}

function compare(actual: Outputs, expected: Outputs | ReturnType<typeof reference>, tol: { atol: number; rtol: number }, gradTol: { atol: number; rtol: number }, what: string, hasBeta: boolean) {
  assertClose(actual.y, expected.y, tol, `${what} y`);
  assertClose(actual.dx, expected.dx, gradTol, `${what} dx`);
  assertClose(actual.dgamma, expected.dgamma, gradTol, `${what} dgamma`);
  if (hasBeta) assertClose(actual.dbeta, expected.dbeta, gradTol, `${what} dbeta`);
}

function matchesReference(m: MethodCase): void {
  const n = size(m.shape);
  const w = widthOf(m);
  const xv = randn(n, 2, 0.5, 2);
  const gv = randn(w, 3, 1, 0.5);
  const bv = randn(w, 4);
  const dyv = randn(n, 5);
  const fused = withFused(true, () => run(m, xv, gv, bv, dyv));
  const composite = withFused(false, () => run(m, xv, gv, bv, dyv));
  const ref = reference(m, xv, gv, m.hasBeta ? bv : undefined, dyv);
  compare(fused, ref, { atol: 2e-5, rtol: 2e-5 }, { atol: 1e-4, rtol: 1e-4 }, 'fused vs float64', m.hasBeta);
  compare(fused, composite, { atol: 2e-5, rtol: 2e-5 }, { atol: 1e-4, rtol: 1e-4 }, 'fused vs composite', m.hasBeta);
}

function exactOnOffset(m: MethodCase): void {
  const n = size(m.shape);
  const xv = randn(n, 8, 1e4, 1e-2);
  const dyv = randn(n, 9);
  const ones = new Float32Array(widthOf(m)).fill(1);
  const zeros = new Float32Array(widthOf(m));
  const fused = withFused(true, () => run(m, xv, ones, zeros, dyv));
  const ref = reference(m, xv, ones, m.hasBeta ? zeros : undefined, dyv);
  assertClose(fused.y, ref.y, { atol: 1e-4, rtol: 1e-4 }, 'y');
  assertClose(fused.dx, ref.dx, { atol: 1e-2, rtol: 1e-3 }, 'dx');
}

function suite(backend: string, simd: boolean) {
  describe(`fused kernels (${simd ? 'SIMD module' : 'scalar JavaScript'})`, () => {
    let previousSIMD = true;
    before(() => {
      previousSIMD = simdKernelsEnabled();
      setSIMDKernels(simd);
    });
    after(() => setSIMDKernels(previousSIMD));

    it(simd ? 'the SIMD module is built and loaded for this backend' : 'the SIMD path is switched off', () => {
      const kernels = backend === 'wasm' ? simdForWasmBackend(asWasmBackend(tf.backend())) : simdForCPUBackend();
      assert.equal(kernels !== null, simd);
    });

    for (const m of METHODS) {
      it(`${m.name}: runs the fused kernel when on and the composite when off`, async () => {
        const x = tf.tensor(randn(size(m.shape), 1), m.shape);
        for (const on of [true, false]) {
          const previous = nk.fusedKernelsEnabled();
          nk.setFusedKernels(on);
          try {
            assert.equal(fusedKernelAvailable(m.kernel), on);
            const info = await tf.profile(() => m.op(x));
            tf.dispose(info.result as tf.Tensor);
            assert.equal(info.kernelNames.includes(m.kernel), on, `kernels run: ${info.kernelNames.join(', ')}`);
          } finally {
            nk.setFusedKernels(previous);
          }
        }
        x.dispose();
      });

      it(`${m.name}: forward and gradients match the float64 reference and the composite path`, () => matchesReference(m));

      it(`${m.name}: without gamma and beta`, () => {
        const n = size(m.shape);
        const xv = randn(n, 6);
        const dyv = randn(n, 7);
        const out = withFused(true, () =>
          scoped(() => {
            const x = tf.tensor(xv, m.shape);
            const y = f64(m.op(x));
            const dx = f64(tf.grad((a: tf.Tensor) => tf.sum(tf.mul(m.op(a), tf.tensor(dyv, m.shape))))(x));
            return { y, dx };
          }),
        );
        assertClose(out.y, refNormalize(xv, m.refShape, m.axes, m.eps, { center: m.center }).y, { atol: 2e-5, rtol: 2e-5 }, 'y');
        assertClose(out.dx, refNormalizeBackward(xv, dyv, m.refShape, m.axes, m.eps, { center: m.center, paramAxes: m.paramAxes }).dx, { atol: 1e-4, rtol: 1e-4 }, 'dx');
      });

      it(`${m.name}: exact on a large common offset (mean 1e4, std 1e-2)`, () => exactOnOffset(m));

      it(`${m.name}: constant slices give beta and finite gradients`, () => {
        const n = size(m.shape);
        const xv = new Float32Array(n).fill(-3.5);
        const gv = randn(widthOf(m), 10, 1, 0.5);
        const bv = randn(widthOf(m), 11);
        const dyv = randn(n, 12);
        const fused = withFused(true, () => run(m, xv, gv, bv, dyv));
        const ref = reference(m, xv, gv, m.hasBeta ? bv : undefined, dyv);
        assertClose(fused.y, ref.y, { atol: 1e-5, rtol: 1e-5 }, 'y');
        assert.ok(fused.dx.every(Number.isFinite), 'finite dx');
        assertClose(fused.dx, ref.dx, { atol: 1e-2, rtol: 1e-4 }, 'dx');
      });

      it(`${m.name}: holds on magnitudes from 1e-20 to 1e15`, () => {
        for (const scale of [1e-20, 1e-10, 1e-3, 1, 1e6, 1e15]) {
          const xv = randn(size(m.shape), 13).map((v) => v * scale);
          const y = withFused(true, () => scoped(() => f64(m.op(tf.tensor(xv, m.shape)))));
          const expected = refNormalize(xv, m.refShape, m.axes, m.eps, { center: m.center }).y;
          assertClose(y, expected, { atol: 1e-25, rtol: 1e-4 }, `y at scale ${scale}`);
        }
      });

      it(`${m.name}: leaks no tensors in forward or gradient`, async () => {
        const x = tf.tensor(randn(size(m.shape), 14), m.shape);
        const g = tf.tensor(randn(widthOf(m), 15), m.paramShape);
        const b = tf.tensor(randn(widthOf(m), 16), m.paramShape);
        await withFused(true, async () => {
          await assertNoLeak(() => m.op(x, g).dispose(), 'forward');
          await assertNoLeak(() => tf.dispose(gradients(m, x, g, b)), 'gradient');
        });
        tf.dispose([x, g, b]);
      });
    }

    it('memory does not grow over 1000 forward+gradient calls (all methods in turn)', () => {
      const inputs = METHODS.map((m, i) => [
        tf.tensor(randn(size(m.shape), 20 + i), m.shape),
        tf.tensor(randn(widthOf(m), 30 + i), m.paramShape),
        tf.tensor(randn(widthOf(m), 40 + i), m.paramShape),
      ]);
      const call = (i: number) => {
        const m = METHODS[i % METHODS.length];
        const [x, g, b] = inputs[i % METHODS.length];
        tf.dispose(gradients(m, x, g, b));
      };
      withFused(true, () => {
        for (let i = 0; i < 2 * METHODS.length; i++) call(i);
        const tensors = tf.memory().numTensors;
        const bytes = tf.memory().numBytes;
        const heap = wasmHeapBytes();
        for (let i = 0; i < 1000; i++) call(i);
        assert.equal(tf.memory().numTensors, tensors, 'live tensors after 1000 calls');
        assert.equal(tf.memory().numBytes, bytes, 'tfjs bytes after 1000 calls');
        assert.equal(wasmHeapBytes(), heap, 'wasm heap size after 1000 calls');
      });
      tf.dispose(inputs);
    });

    for (const m of CHUNKED_METHODS) {
      it(`${m.name}: forward and gradients match the float64 reference and the composite path`, () => matchesReference(m));
      it(`${m.name}: exact on a large common offset (mean 1e4, std 1e-2)`, () => exactOnOffset(m));
    }

    it('the larger cases span the cpu chunks their comments count', () => {
      assert.equal(CPU_CHUNK_FLOATS, 65536);
    });

    it('layerNorm over an axis of length 1 gives beta and a zero gradient', () => {
      withFused(true, () =>
        tf.tidy(() => {
          const x = tf.tensor([[3], [-2], [1e6]]);
          assertClose(f64(nk.layerNorm(x, { beta: tf.tensor([0.5]) })), [0.5, 0.5, 0.5], { atol: 1e-6 }, 'y');
          assertClose(f64(tf.grad((v: tf.Tensor) => tf.sum(nk.layerNorm(v)))(x)), [0, 0, 0], { atol: 1e-6 }, 'dx');
        }),
      );
    });

    it('layerNorm over non-trailing axes falls back to the composite path with the same answer', () => {
      const shape = [3, 4, 5];
      const xv = randn(60, 17);
      const y = withFused(true, () => scoped(() => f64(nk.layerNorm(tf.tensor(xv, shape), { axis: 1 }))));
      assertClose(y, refNormalize(xv, shape, [1], 1e-5).y, { atol: 2e-5, rtol: 2e-5 }, 'y');
    });
  });
}

/** Gradients of sum(op(x, gamma, beta)) with respect to every input the op uses. */
function gradients(m: MethodCase, x: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor[] {
  return m.hasBeta
    ? tf.grads((a: tf.Tensor, p: tf.Tensor, q: tf.Tensor) => tf.sum(m.op(a, p, q)))([x, g, b])
    : tf.grads((a: tf.Tensor, p: tf.Tensor) => tf.sum(m.op(a, p)))([x, g]);
}

/** Bytes of WebAssembly memory the kernels use on the active backend: the wasm heap, or the cpu kernels' arena. */
function wasmHeapBytes(): number {
  const b = tf.backend() as unknown as { wasm?: { HEAPF32: Float32Array } };
  return b.wasm ? b.wasm.HEAPF32.byteLength : (simdForCPUBackend()?.arenaBytes() ?? 0);
}

forEachBackend((backend) => {
  suite(backend, true);
  suite(backend, false);
});
