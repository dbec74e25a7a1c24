// normkit in a browser app: the tfjs umbrella brings the cpu and webgl backends, normkit brings the methods.
// Bundled as is by vite (`npm run build`) or esbuild (`esbuild main.js --bundle --format=esm`).
import * as tf from '@tensorflow/tfjs';
import * as nk from 'normkit';

// A fixed input [N, H, W, C] with a common offset, so that every backend sees the same numbers.
const shape = [2, 4, 4, 8];
const x = Array.from({ length: 2 * 4 * 4 * 8 }, (_, i) => 3 + 2 * Math.sin(0.7 * i) + 0.5 * Math.cos(1.3 * i));

async function runOn(backend) {
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not start`);
  await tf.ready();
  const input = tf.tensor(x, shape);
  const gamma = tf.linspace(0.5, 2, 8);
  // LayerNorm over the channels, with a scale per channel.
  const ln = nk.layerNorm(input, { axis: -1, epsilon: 1e-5, gamma });
  // GroupNormalization as a Keras layer: 4 groups of 2 channels, gamma = 1 and beta = 0 when built.
  const layer = new nk.GroupNormalization({ groups: 4, epsilon: 1e-3 });
  const gn = layer.apply(input);
  const out = { backend: tf.getBackend(), layerNorm: Array.from(await ln.data()), groupNorm: Array.from(await gn.data()) };
  tf.dispose([input, gamma, ln, gn]);
  layer.dispose();
  return out;
}

const results = { shape, x, backends: {} };
try {
  for (const backend of ['webgl', 'cpu']) results.backends[backend] = await runOn(backend);
  const { webgl, cpu } = results.backends;
  const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  document.querySelector('#out').textContent =
    `normkit ${nk.listNorms().length} methods\n` +
    `layerNorm: max |webgl - cpu| = ${maxDiff(webgl.layerNorm, cpu.layerNorm).toExponential(2)}\n` +
    `GroupNormalization: max |webgl - cpu| = ${maxDiff(webgl.groupNorm, cpu.groupNorm).toExponential(2)}`;
} catch (e) {
  results.error = String(e?.stack ?? e);
  document.querySelector('#out').textContent = results.error;
}
// Read by the repository's consumer test.
window.normkitResults = results;
