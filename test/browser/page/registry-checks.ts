/**
 * Every layer of normkit's registry (`nk.listNorms()` entries with a layer) on one backend against the same
 * computation on the cpu backend in the same page (cpu itself is checked against float64 references by the
 * Node suite): the forward output in training mode and the gradients of sum(y * w), for a fixed random w,
 * with respect to the input(s) and every trainable weight. Both sides start from the same weights (cpu's
 * initial values, copied), the same inputs and the same state.
 *
 * Tolerance: |got - cpu| <= tol * max(1, max |cpu|) + tol * |cpu| with tol 1e-4 (wasm) or 2e-3 (webgl,
 * webgpu: different summation order, SwiftShader's transcendental functions) for the forward, and 5x that
 * for gradients.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../../src/index.js';
import { randn } from '../../helpers/random.js';
import { check, expectClose } from './checks.js';

/** How to build and feed one registry layer: its minimal config and input shape(s). */
interface LayerCase {
  config?: Record<string, unknown>;
  /** Input shape (default [2, 3, 3, 4], channels last). */
  shape?: number[];
  /** Integer token ids in [0, 10) instead of float data (embeddings). */
  ids?: boolean;
  /** A second float input of the same shape (two-input layers). */
  second?: boolean;
  /** A second input: a 0/1 mask of this shape (not differentiated). */
  mask?: number[];
}

const conv = { layer: { className: 'Conv2D', config: { filters: 3, kernelSize: 2 } } };

/** Minimal settings for layers whose defaults do not fit [2, 3, 3, 4]; every other layer uses {}. */
const CASES: Record<string, LayerCase> = {
  adab2n: { config: { numTasks: 2 } },
  'alpha-bn': { config: { sourceWeight: 0.5 } },
  bcn: { config: { groups: 2 } },
  'evonorm-s0': { config: { groups: 2 } },
  fix: { config: { inputDim: 10, outputDim: 4 }, shape: [2, 3], ids: true },
  group: { config: { groups: 2 } },
  'ibn-b': { second: true },
  nap: { config: { layer: { className: 'Dense', config: { units: 3 } } }, shape: [2, 5] },
  'region-b': { mask: [2, 3, 3, 1] },
  'scaled-weight-standardization': { config: conv, shape: [2, 4, 4, 2] },
  'spectral-norm': { config: conv, shape: [2, 4, 4, 2] },
  'weight-compander': { config: conv, shape: [2, 4, 4, 2] },
  'weight-norm': { config: conv, shape: [2, 4, 4, 2] },
  'weight-standardization': { config: conv, shape: [2, 4, 4, 2] },
};

/** What one backend computed for one layer. */
interface LayerRun {
  y: Float32Array;
  /** Gradients by role: 'x0', 'x1' for inputs, the weight's own name (without the layer prefix) otherwise. */
  grads: Map<string, Float32Array>;
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

function inputValues(name: string, c: LayerCase): { values: Float32Array | Int32Array; shape: number[]; dtype: 'float32' | 'int32'; diff: boolean }[] {
  const shape = c.shape ?? [2, 3, 3, 4];
  const seed = [...name].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) >>> 0, 7);
  if (c.ids) return [{ values: Int32Array.from(randn(size(shape), seed), (v) => Math.abs(Math.floor(v * 4)) % 10), shape, dtype: 'int32', diff: false }];
  const out: ReturnType<typeof inputValues> = [{ values: randn(size(shape), seed, 0.5, 1.5), shape, dtype: 'float32', diff: true }];
  if (c.second) out.push({ values: randn(size(shape), seed + 1), shape, dtype: 'float32', diff: true });
  if (c.mask) out.push({ values: Float32Array.from(randn(size(c.mask), seed + 2), (v) => (v > 0 ? 1 : 0)), shape: c.mask, dtype: 'float32', diff: false });
  return out;
}

/** Builds the layer on symbolic inputs (no computation, no state change). */
function buildLayer(name: string, c: LayerCase): tfl.layers.Layer {
  const layer = nk.createNorm(name, c.config ?? {});
  const inputs = inputValues(name, c).map((i) => tfl.input({ batchShape: i.shape, dtype: i.dtype }));
  layer.apply(inputs.length === 1 ? inputs[0] : inputs);
  return layer;
}

const shortName = (w: { name: string }) => w.name.slice(w.name.lastIndexOf('/') + 1);

let cpuInitial: Map<string, Promise<Float32Array[]>> | undefined;

/** The cpu backend's initial weights of a layer (created once per page, copied to the other backends). */
async function initialWeights(name: string, c: LayerCase, enterCPU: () => Promise<void>): Promise<Float32Array[]> {
  cpuInitial ??= new Map();
  let p = cpuInitial.get(name);
  if (!p) {
    p = (async () => {
      await enterCPU();
      const layer = buildLayer(name, c);
      const values = await Promise.all(layer.getWeights().map((w) => w.data() as Promise<Float32Array>));
      layer.dispose();
      return values;
    })();
    cpuInitial.set(name, p);
  }
  return p;
}

/**
 * Builds the layer on the active backend, sets the given weights, runs one training step and disposes the
 * layer; fails when tensors are left behind (layers may hold state between steps, so the count is taken
 * around the whole life of the layer).
 */
async function runLayer(name: string, c: LayerCase, weights: Float32Array[]): Promise<LayerRun> {
  const before = tf.memory().numTensors;
  const layer = buildLayer(name, c);
  tf.tidy(() => {
    const current = layer.getWeights();
    layer.setWeights(weights.map((v, i) => tf.tensor(v, current[i].shape, current[i].dtype)));
  });
  const specs = inputValues(name, c);
  const inputs = specs.map((s) => tf.tidy(() => (s.diff ? tf.variable(tf.tensor(s.values, s.shape, s.dtype), true) : tf.tensor(s.values, s.shape, s.dtype))));
  const trainable = layer.trainableWeights.map((w) => w.read());
  const vars = [...inputs.filter((_, i) => specs[i].diff), ...trainable] as tf.Variable[];
  let yT: tf.Tensor | undefined;
  let wT: tf.Tensor | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const out = layer.apply(inputs.length === 1 ? inputs[0] : inputs, { training: true }) as tf.Tensor;
    yT = tf.keep(out);
    wT = tf.keep(tf.tensor(randn(size(out.shape), 99, 0, 1), out.shape));
    return tf.sum(tf.mul(out, wT));
  }, vars);
  const result: LayerRun = { y: (await (yT as tf.Tensor).data()) as Float32Array, grads: new Map() };
  // A variable the loss does not depend on gets no entry: its gradient is zero.
  const gradOf = async (v: tf.Variable) => (grads[v.name] ? ((await grads[v.name].data()) as Float32Array) : new Float32Array(v.size));
  let k = 0;
  for (let i = 0; i < specs.length; i++) {
    if (specs[i].diff) result.grads.set(`x${i}`, await gradOf(vars[k++]));
  }
  for (const w of layer.trainableWeights) result.grads.set(shortName(w), await gradOf(vars[k++]));
  tf.dispose([value, yT as tf.Tensor, wT as tf.Tensor, ...Object.values(grads), ...inputs]);
  layer.dispose();
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`${name}: a training step and dispose() leaked ${after - before} tensor(s)`);
  return result;
}

/** Registers `[label] registry <name>` for every registry layer; cpu results are computed once and cached. */
export function registerRegistryChecks(label: string, backend: string, enter: () => Promise<void>, enterCPU: () => Promise<void>): void {
  const gpu = backend === 'webgl' || backend === 'webgpu';
  const tol = gpu ? 2e-3 : 1e-4;
  for (const info of nk.listNorms()) {
    if (!info.hasLayer) continue;
    const c = CASES[info.name] ?? {};
    check(`[${label}] registry ${info.name}`, async () => {
      const weights = await initialWeights(info.name, c, enterCPU);
      await enterCPU();
      const want = await runLayer(info.name, c, weights);
      if (backend === 'cpu') {
        if (!want.y.every(Number.isFinite)) throw new Error(`${info.name}: non-finite output on cpu`);
        return `${want.grads.size} gradients`;
      }
      await enter();
      const got = await runLayer(info.name, c, weights);
      const scaledTol = (ref: Float32Array, t: number) => {
        let m = 1;
        for (const v of ref) m = Math.max(m, Math.abs(v));
        return { atol: t * m, rtol: t };
      };
      expectClose(got.y, want.y, scaledTol(want.y, tol), `${info.name} y`);
      for (const [role, g] of want.grads) {
        const h = got.grads.get(role);
        if (!h) throw new Error(`${info.name}: no gradient for ${role} on ${backend}`);
        expectClose(h, g, scaledTol(g, 5 * tol), `${info.name} d/d${role}`);
      }
      return `y and ${want.grads.size} gradients`;
    });
  }
}
