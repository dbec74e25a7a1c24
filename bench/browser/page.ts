/**
 * The page of `npm run bench:browser`: times normkit's fused kernels, its composite path and tfjs's built-in
 * layers on webgl and webgpu, forward and forward+backward. Each case registers as a named entry of the browser
 * test registry (test/browser/page/checks.ts) whose note is the case's figures as JSON; bench/browser/run.ts
 * runs them and writes the report. A benchmark, not a test: it asserts nothing.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import * as nk from '../../src/index.js';
import { check, param, publish } from '../../test/browser/page/checks.js';
import { randn } from '../../test/helpers/random.js';
import { normkitOp, type Case } from '../ops.js';

type Variant = 'fused' | 'composite' | 'tfjs';

const FULL = param('full', '0') === '1';
const RUNS = Number(param('runs', '7'));
const CASES: Case[] = FULL
  ? [
      { method: 'layerNorm', shape: [4096, 1024] },
      { method: 'rmsNorm', shape: [4096, 1024] },
      { method: 'batchNorm', shape: [32, 32, 32, 64] },
      { method: 'groupNorm', shape: [32, 32, 32, 64], groups: 32 },
      { method: 'instanceNorm', shape: [32, 32, 32, 64] },
    ]
  : [
      { method: 'layerNorm', shape: [1024, 1024] },
      { method: 'rmsNorm', shape: [1024, 1024] },
      { method: 'batchNorm', shape: [16, 32, 32, 32] },
      { method: 'groupNorm', shape: [16, 32, 32, 32], groups: 8 },
      { method: 'instanceNorm', shape: [16, 32, 32, 32] },
    ];

interface TfjsLayer {
  apply(x: tf.Tensor): tf.Tensor;
  weights: tf.Variable[];
}

/** tfjs's own layer for the method, where tfjs has one (LayerNormalization, BatchNormalization in training). */
function tfjsLayer(c: Case): TfjsLayer | null {
  if (c.method !== 'layerNorm' && c.method !== 'batchNorm') return null;
  const layer = c.method === 'layerNorm' ? tfl.layers.layerNormalization({ axis: -1, epsilon: 1e-5 }) : tfl.layers.batchNormalization({ axis: -1, epsilon: 1e-5 });
  layer.build(c.shape);
  return {
    apply: (x) => layer.apply(x, { training: true }) as tf.Tensor,
    weights: layer.trainableWeights.map((w) => w.read() as tf.Variable),
  };
}

/** Waits for the device: reads one element of `t` back (GPU queues run in order). */
async function sync(t: tf.Tensor): Promise<void> {
  const one = tf.tidy(() => tf.slice(tf.reshape(t, [-1]), [0], [1]));
  await one.data();
  one.dispose();
}

interface Timing {
  median: number;
  min: number;
  max: number;
  runs: number;
}

async function time(fn: () => tf.Tensor[]): Promise<Timing> {
  const once = async () => {
    const t0 = performance.now();
    const outs = fn();
    await sync(outs[outs.length - 1]);
    const ms = performance.now() - t0;
    tf.dispose(outs);
    return ms;
  };
  await once();
  await once();
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) times.push(await once());
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  return { median: times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2, min: times[0], max: times[times.length - 1], runs: times.length };
}

/** The adapter or renderer name of the active backend, and whether it is a software renderer. */
async function device(backend: string): Promise<{ name: string; software: boolean }> {
  if (backend === 'webgpu') {
    const adapter = await (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: Record<string, string> } | null> } }).gpu?.requestAdapter();
    const info = adapter?.info ?? {};
    const name = [info.vendor, info.architecture, info.device, info.description].filter((v) => v).join(' / ') || 'unknown adapter';
    return { name, software: /swiftshader|llvmpipe|software|cpu/i.test(name) };
  }
  const gl = document.createElement('canvas').getContext('webgl2');
  const ext = gl?.getExtension('WEBGL_debug_renderer_info');
  const name = gl ? String(ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER)) : 'no WebGL2';
  return { name, software: /swiftshader|llvmpipe|software/i.test(name) };
}

async function enter(backend: string): Promise<void> {
  if (tf.getBackend() === backend) return;
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend '${backend}' did not come up in this browser`);
  await tf.ready();
}

for (const backend of ['webgl', 'webgpu']) {
  check(`[${backend}] device`, async () => {
    await enter(backend);
    return JSON.stringify(await device(backend));
  });
  for (const c of CASES) {
    check(`[${backend}] ${c.method} [${c.shape}]`, async () => {
      await enter(backend);
      const size = c.shape.reduce((a, b) => a * b, 1);
      const width = c.shape[c.shape.length - 1];
      const x = tf.variable(tf.tensor(randn(size, 1), c.shape));
      const dy = tf.tensor(randn(size, 2), c.shape);
      const gamma = tf.variable(tf.tensor(randn(width, 3, 1, 0.1)));
      const beta = tf.variable(tf.tensor(randn(width, 4, 0, 0.1)));
      const layer = tfjsLayer(c);
      const figures: Record<string, Timing | null> = {};
      try {
        for (const variant of ['fused', 'composite', 'tfjs'] as Variant[]) {
          if (variant === 'tfjs' && layer === null) {
            figures['tfjs forward'] = null;
            figures['tfjs forward+backward'] = null;
            continue;
          }
          nk.setFusedKernels(variant !== 'composite');
          const forward = (v: tf.Tensor) => (variant === 'tfjs' && layer ? layer.apply(v) : normkitOp(c, v, gamma, beta));
          // Gradients with respect to x and every weight the variant uses (gamma and beta, or the layer's own).
          const vars = variant === 'tfjs' && layer ? [x, ...layer.weights] : c.method === 'rmsNorm' ? [x, gamma] : [x, gamma, beta];
          figures[`${variant} forward`] = await time(() => [tf.tidy(() => forward(x))]);
          figures[`${variant} forward+backward`] = await time(() =>
            tf.tidy(() => {
              const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(forward(x), dy)) as tf.Scalar, vars);
              return [...Object.values(grads), value];
            }),
          );
        }
      } finally {
        nk.setFusedKernels(true);
        tf.dispose([x, dy, gamma, beta]);
        if (layer) tf.disposeVariables();
      }
      return JSON.stringify({ method: c.method, shape: c.shape, groups: c.groups, figures });
    });
  }
}

await nk.ready();
publish();
