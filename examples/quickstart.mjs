// The README's Node quick start, runnable as is: node examples/quickstart.mjs (after npm ci), or in a project
// after `npm install @tensorflow/tfjs @tensorflow/tfjs-backend-wasm normkit`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
// Backends are the application's choice: normkit registers its kernels for whichever are loaded.
import '@tensorflow/tfjs-backend-wasm';
// normkit/node is normkit plus the file-system IO handler (nk.io.fileSystem); browsers import 'normkit'.
import * as nk from 'normkit/node';

await tf.setBackend('wasm'); // or 'cpu'

// 1. Functional ops, differentiable under tf.grad.
const x = tf.randomNormal([8, 16]);
const gamma = tf.ones([16]);
const y = nk.layerNorm(x, { axis: -1, epsilon: 1e-5, gamma });
const dx = tf.grad((v) => tf.sum(tf.square(nk.rmsNorm(v, { gamma }))))(x);
const bn = nk.batchNorm(tf.randomNormal([4, 6, 6, 8]), {
  training: true,
  movingMean: tf.zeros([8]),
  movingVariance: tf.ones([8]),
});
console.log('layerNorm', y.shape, 'rmsNorm grad', dx.shape, 'batchNorm', bn.y.shape, bn.movingMean.shape);

// 2. Layers, by class or by registry name, in a tfjs model.
const model = tf.sequential({
  layers: [
    tf.layers.conv2d({ inputShape: [12, 12, 1], filters: 8, kernelSize: 3, padding: 'same' }),
    nk.createNorm('group', { groups: 4 }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 16 }),
    new nk.RMSNormalization(),
    tf.layers.dense({ units: 3, activation: 'softmax' }),
  ],
});
model.compile({ optimizer: new nk.AdamP({ learningRate: 1e-3 }), loss: 'categoricalCrossentropy' });
const xs = tf.randomNormal([32, 12, 12, 1]);
const ys = tf.oneHot(tf.tensor1d(Array.from({ length: 32 }, (_, i) => i % 3), 'int32'), 3);
const history = await model.fit(xs, ys, { epochs: 2, batchSize: 8, verbose: 0 });
console.log('loss', history.history.loss.map((v) => Number(v).toFixed(4)).join(' -> '));

// 3. Save and load on disk in Node, without tfjs-node.
const dir = mkdtempSync(join(tmpdir(), 'normkit-quickstart-'));
await model.save(nk.io.fileSystem(dir));
const loaded = await tf.loadLayersModel(nk.io.fileSystem(join(dir, 'model.json')));
const same = tf.tidy(() => tf.max(tf.abs(tf.sub(model.predict(xs), loaded.predict(xs)))).dataSync()[0]);
console.log('reloaded, max output difference', same);
rmSync(dir, { recursive: true, force: true });

// 4. Every method, by name.
console.log(nk.listNorms().length, 'methods:', nk.listNorms().map((e) => e.name).join(', '));
