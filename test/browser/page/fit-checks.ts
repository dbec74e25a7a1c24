/**
 * Small `model.fit` runs on one backend against the same run on cpu in the same page: same initial weights
 * (cpu's, copied), same data, no shuffling, plain SGD. The loss after every epoch and the final weights must
 * agree within float32 noise: |got - cpu| <= 1e-3 * max(1, |cpu|) for losses, 2e-3 * max(1, max |w|) +
 * 2e-3 |w| for weights (webgl and webgpu sum in a different order, and the differences grow a little over
 * the steps).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../../src/index.js';
import { randn } from '../../helpers/random.js';
import { check, expectClose } from './checks.js';

interface FitModel {
  name: string;
  inputShape: number[];
  build: () => tfl.Sequential;
}

const MODELS: FitModel[] = [
  {
    name: 'Conv2D + GroupNormalization + Dense',
    inputShape: [4, 4, 2],
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.conv2d({ inputShape: [4, 4, 2], filters: 4, kernelSize: 3, padding: 'same' }),
          new nk.GroupNormalization({ groups: 2 }),
          tfl.layers.activation({ activation: 'relu' }),
          tfl.layers.flatten(),
          tfl.layers.dense({ units: 3, activation: 'softmax' }),
        ],
      }),
  },
  {
    name: 'Dense + BatchNormalization + LayerNormalization',
    inputShape: [5],
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.dense({ inputShape: [5], units: 6 }),
          new nk.BatchNormalization({}),
          tfl.layers.activation({ activation: 'relu' }),
          new nk.LayerNormalization({}),
          tfl.layers.dense({ units: 3, activation: 'softmax' }),
        ],
      }),
  },
];

const SAMPLES = 8;
const EPOCHS = 4;

interface FitRun {
  losses: number[];
  weights: Float32Array[];
}

/** Trains the model from `initial` weights (or its own, returned) on the active backend. */
async function fit(m: FitModel, initial?: Float32Array[]): Promise<{ run: FitRun; initial: Float32Array[] }> {
  const model = m.build();
  if (initial) {
    const shapes = model.getWeights().map((w) => w.shape);
    tf.tidy(() => model.setWeights(initial.map((v, i) => tf.tensor(v, shapes[i]))));
  }
  const start = initial ?? (await Promise.all(model.getWeights().map((w) => w.data() as Promise<Float32Array>)));
  const inSize = m.inputShape.reduce((a, b) => a * b, 1);
  const xs = tf.tensor(randn(SAMPLES * inSize, 41), [SAMPLES, ...m.inputShape]);
  const labels = Array.from(randn(SAMPLES, 42), (v) => Math.abs(Math.floor(v * 10)) % 3);
  const ys = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), 3), 'float32'));
  const optimizer = tf.train.sgd(0.1);
  model.compile({ optimizer, loss: 'categoricalCrossentropy' });
  const history = await model.fit(xs, ys, { epochs: EPOCHS, batchSize: SAMPLES, shuffle: false, verbose: 0 });
  const weights = await Promise.all(model.getWeights().map((w) => w.data() as Promise<Float32Array>));
  tf.dispose([xs, ys]);
  optimizer.dispose();
  model.dispose();
  return { run: { losses: history.history.loss as number[], weights }, initial: start };
}

let cpuRuns: Map<string, Promise<{ run: FitRun; initial: Float32Array[] }>> | undefined;

/** The cpu run of a model (once per page), which also fixes the initial weights every backend starts from. */
function cpuRun(m: FitModel, enterCPU: () => Promise<void>): Promise<{ run: FitRun; initial: Float32Array[] }> {
  cpuRuns ??= new Map();
  let p = cpuRuns.get(m.name);
  if (!p) {
    p = enterCPU().then(() => fit(m));
    cpuRuns.set(m.name, p);
  }
  return p;
}

/** Registers `[label] model.fit <model>` checks. */
export function registerFitChecks(label: string, backend: string, enter: () => Promise<void>, enterCPU: () => Promise<void>): void {
  for (const m of MODELS) {
    check(`[${label}] model.fit ${m.name}`, async () => {
      const want = await cpuRun(m, enterCPU);
      const losses = want.run.losses.map((l) => l.toFixed(4)).join(' -> ');
      if (backend === 'cpu') {
        if (!want.run.losses.every(Number.isFinite)) throw new Error(`non-finite loss on cpu: ${losses}`);
        if (!(want.run.losses[EPOCHS - 1] < want.run.losses[0])) throw new Error(`the loss does not decrease on cpu: ${losses}`);
        return `loss ${losses}`;
      }
      await enter();
      const got = (await fit(m, want.initial)).run;
      const lossTol = want.run.losses.map((l) => 1e-3 * Math.max(1, Math.abs(l)));
      want.run.losses.forEach((l, i) => {
        if (!(Math.abs(got.losses[i] - l) <= lossTol[i])) {
          throw new Error(`epoch ${i + 1} loss ${got.losses[i]} on ${backend}, ${l} on cpu (cpu curve ${losses})`);
        }
      });
      let worst = 0;
      want.run.weights.forEach((w, i) => {
        let scale = 1;
        for (const v of w) scale = Math.max(scale, Math.abs(v));
        expectClose(got.weights[i], w, { atol: 2e-3 * scale, rtol: 2e-3 }, `final weight ${i}`);
        for (let j = 0; j < w.length; j++) worst = Math.max(worst, Math.abs(got.weights[i][j] - w[j]));
      });
      const lossDiff = Math.max(...got.losses.map((l, i) => Math.abs(l - want.run.losses[i])));
      return `loss ${got.losses.map((l) => l.toFixed(4)).join(' -> ')}; max |loss - cpu| ${lossDiff.toExponential(1)}, max |w - cpu| ${worst.toExponential(1)}`;
    });
  }
}
