/**
 * Shared fixtures for the weight-reparametrization tests: one small layer of every supported kernel type
 * with its kernel layout written out by hand (independent of src/core/kernel-layout.ts), float64 per-unit
 * grouping, a plain twin layer to compute expected outputs, and a model.fit check (the layer checks are
 * runLayerTest's).
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { assertClose, f64, randn } from './numeric.js';
import { paramIndex, slices } from './reference.js';

export interface KernelCase {
  name: string;
  /** A fresh, unbuilt layer. */
  make: () => tfl.layers.Layer;
  /** Input shape without the batch axis. */
  inputShape: number[];
  /** Expected kernel shape in tfjs layout. */
  kernelShape: number[];
  /** Kernel axes of one output unit, by hand from the tfjs layout. */
  unitAxes: number[];
}

/** A seeded Glorot-uniform initializer, so every test kernel is the same from run to run. */
const seeded = (seed: number) => tfl.initializers.glorotUniform({ seed });

export const KERNEL_CASES: KernelCase[] = [
  { name: 'Dense', make: () => tfl.layers.dense({ units: 3, kernelInitializer: seeded(1) }), inputShape: [4], kernelShape: [4, 3], unitAxes: [1] },
  { name: 'Conv1D', make: () => tfl.layers.conv1d({ filters: 3, kernelSize: 2, kernelInitializer: seeded(2) }), inputShape: [5, 2], kernelShape: [2, 2, 3], unitAxes: [2] },
  { name: 'Conv2D', make: () => tfl.layers.conv2d({ filters: 3, kernelSize: 2, kernelInitializer: seeded(3) }), inputShape: [4, 4, 2], kernelShape: [2, 2, 2, 3], unitAxes: [3] },
  { name: 'Conv3D', make: () => tfl.layers.conv3d({ filters: 2, kernelSize: 2, kernelInitializer: seeded(4) }), inputShape: [3, 3, 3, 2], kernelShape: [2, 2, 2, 2, 2], unitAxes: [4] },
  // Output channel c * multiplier + m is fed only by kernel[:, :, c, m].
  { name: 'DepthwiseConv2D', make: () => tfl.layers.depthwiseConv2d({ kernelSize: 2, depthMultiplier: 2, depthwiseInitializer: seeded(5) }), inputShape: [4, 4, 3], kernelShape: [2, 2, 3, 2], unitAxes: [2, 3] },
  // Conv2DTranspose kernels are [kh, kw, out, in]: output channel o is kernel[:, :, o, :].
  { name: 'Conv2DTranspose', make: () => tfl.layers.conv2dTranspose({ filters: 3, kernelSize: 2, kernelInitializer: seeded(6) }), inputShape: [3, 3, 2], kernelShape: [2, 2, 3, 2], unitAxes: [2] },
];

/** For each output unit (indexed like a parameter over `unitAxes`), the flat kernel indices of its weights. */
export function unitGroups(shape: number[], unitAxes: number[]): number[][] {
  const fanIn = shape.map((_, i) => i).filter((a) => !unitAxes.includes(a));
  const units = unitAxes.reduce((n, a) => n * shape[a], 1);
  const out: number[][] = new Array(units);
  for (const idx of slices(shape, fanIn)) out[paramIndex(idx[0], shape, unitAxes)] = idx;
  return out;
}


type KernelVariable = { shape: number[]; read(): tf.Tensor; write(v: tf.Tensor): void };

/** The kernel variable's values of a built layer of a supported type. */
export function kernelOf(layer: tfl.layers.Layer): KernelVariable {
  const l = layer as unknown as { kernel?: KernelVariable; depthwiseKernel?: KernelVariable };
  return (l.depthwiseKernel ?? l.kernel) as KernelVariable;
}

/**
 * Output of a plain, freshly built layer of the same config as `inner` whose kernel is `kernel` and bias is
 * inner's bias: what the wrapped layer must compute when the reparametrized kernel is `kernel`.
 */
export function plainOutput(inner: tfl.layers.Layer, kernel: Float64Array | Float32Array, x: tf.Tensor): tf.Tensor {
  const cls = tf.serialization.SerializationMap.getMap().classNameMap[inner.getClassName()];
  const twin = cls[1](cls[0], { ...inner.getConfig(), name: undefined } as unknown as tf.serialization.ConfigDict) as unknown as tfl.layers.Layer;
  tf.dispose(twin.apply(x) as tf.Tensor);
  const kShape = kernelOf(inner).shape as number[];
  const bias = (inner as unknown as { bias?: { read(): tf.Tensor } | null }).bias;
  const weights = [tf.tensor(Float32Array.from(kernel), kShape)];
  if (bias) weights.push(bias.read());
  twin.setWeights(weights);
  tf.dispose(weights[0]);
  const y = tf.tidy(() => twin.call(x, {}) as tf.Tensor);
  twin.dispose();
  return y;
}

/** What {@link assertKernelAndOutput} needs of a kernel wrapper. */
type KernelWrapperLike = Pick<tfl.layers.Layer, 'apply'> & { layer: tfl.layers.Layer; effectiveKernel(): tf.Tensor };

/**
 * Asserts that the built `wrapper`'s effectiveKernel() equals the float64 `expected` kernel (within
 * `tol.kernel`, reported as `what`) and that its output on `x` equals that of a plain twin layer holding
 * `expected` (plainOutput, within `tol.output`).
 */
export function assertKernelAndOutput(
  wrapper: KernelWrapperLike,
  x: tf.Tensor,
  expected: Float64Array,
  tol: { kernel: { atol?: number; rtol?: number }; output: { atol?: number; rtol?: number } },
  what = 'kernel',
): void {
  const k = wrapper.effectiveKernel();
  assertClose(f64(k), expected, tol.kernel, what);
  const y = wrapper.apply(x) as tf.Tensor;
  const yRef = plainOutput(wrapper.layer, expected, x);
  assertClose(f64(y), f64(yRef), tol.output, 'output');
  tf.dispose([k, y, yRef]);
}

/**
 * Trains a small model [layer, (flatten), dense(1)] with model.fit and asserts that, after a warm-up epoch,
 * two more epochs leave tf.memory().numTensors unchanged, and that the loss went down over the run.
 */
export async function assertWrapperFits(layer: tfl.layers.Layer, inputShape: number[], xs: tf.Tensor, ys: tf.Tensor, optimizer: tf.Optimizer | string = 'adam'): Promise<void> {
  const model = tfl.sequential();
  model.add(tfl.layers.inputLayer({ inputShape }));
  model.add(layer);
  if (inputShape.length > 1) model.add(tfl.layers.flatten());
  model.add(tfl.layers.dense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: 11 }) }));
  model.compile({ optimizer, loss: 'meanSquaredError' });
  const first = await model.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0, shuffle: false });
  const before = tf.memory().numTensors;
  const h = await model.fit(xs, ys, { epochs: 8, batchSize: 4, verbose: 0, shuffle: false });
  assert.equal(tf.memory().numTensors, before, 'model.fit leaked tensors');
  const start = first.history.loss[0] as number;
  const end = h.history.loss[h.history.loss.length - 1] as number;
  assert.ok(Number.isFinite(end) && end < start, `loss should go down: ${start} -> ${end}`);
  model.dispose();
}

/**
 * {@link assertWrapperFits} for `wrap` around a seeded tanh Dense(3) on 8 seeded samples of 4 features
 * (Dense, so the check does not depend on the conv gradient kernels of the backend).
 */
export async function assertWrapperFitsDense(wrap: (inner: tfl.layers.Layer) => tfl.layers.Layer): Promise<void> {
  const xs = tf.tensor(randn(8 * 4, 11), [8, 4]);
  const ys = tf.tensor(randn(8, 12), [8, 1]);
  await assertWrapperFits(wrap(tfl.layers.dense({ units: 3, activation: 'tanh', kernelInitializer: tfl.initializers.glorotUniform({ seed: 12 }) })), [4], xs, ys);
  tf.dispose([xs, ys]);
}
