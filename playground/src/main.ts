/**
 * The playground page: two CNNs, one normalization each, trained side by side on the same batches in the
 * browser, with live loss/accuracy curves, per-layer activation histograms and the norms' running statistics.
 * State for tests and curious users is exposed as `window.playground` (see {@link PlaygroundState}).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
// normkit imports no backend: the page brings the four it offers.
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as nk from 'normkit';
import { LiveChart, MODEL_COLORS, curveSpec, histogramSpec, movingStatsSpec, stateSpec, type CurveRow } from './charts.js';
import { loadFashionMnist } from './data.js';
import { Run, gather, layerTitle, type ImageData, type TrainSettings } from './trainer.js';

/** What the page exposes on `window.playground`. */
export interface PlaygroundState {
  ready: boolean;
  running: boolean;
  backend: string;
  steps: number;
  /** Training-batch loss per step, one array per model. */
  trainLoss: number[][];
  /** Held-out accuracy at each evaluation, one array per model. */
  testAccuracy: number[][];
  /** How many times the histograms were redrawn. */
  histogramUpdates: number;
  /** A signature of the latest histograms (changes when they do). */
  histogramSignature: string;
  /** tf.memory().numTensors after each evaluation: constant once training runs (no leaked tensors). */
  tensorCounts: number[];
  errors: string[];
}

const state: PlaygroundState = {
  ready: false, running: false, backend: '', steps: 0, trainLoss: [[], []], testAccuracy: [[], []],
  histogramUpdates: 0, histogramSignature: '', tensorCounts: [], errors: [],
};
(window as unknown as { playground: PlaygroundState }).playground = state;

/** Norms offered: the registry's activation normalizations that fit a CNN's feature maps (and DyT, and none). */
const OFFERED = [
  'batch', 'group', 'layer', 'instance', 'rms', 'srms', 'crms', 'bcn', 'evonorm-b0', 'evonorm-s0', 'frn', 'scale',
  'power', 'online', 'unified', 'lrn', 'ibn-a', 'dyt', 'none',
];
const EVAL_EVERY = 25;
const TEST_COUNT = 500;
const SMOOTHING = 0.9;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const normA = $<HTMLSelectElement>('norm-a');
const normB = $<HTMLSelectElement>('norm-b');
const batchInput = $<HTMLInputElement>('batch-size');
const lrInput = $<HTMLInputElement>('learning-rate');
const optimizerSelect = $<HTMLSelectElement>('optimizer');
const backendSelect = $<HTMLSelectElement>('backend');
const startButton = $<HTMLButtonElement>('start');
const stopButton = $<HTMLButtonElement>('stop');
const resetButton = $<HTMLButtonElement>('reset');
const statusLine = $<HTMLParagraphElement>('status');
const backendInfo = $<HTMLParagraphElement>('backend-info');

function setStatus(text: string): void {
  statusLine.textContent = text;
}

function reportError(e: unknown): void {
  const message = e instanceof Error ? e.message : String(e);
  state.errors.push(message);
  setStatus(`Error: ${message}`);
  console.warn(e);
}

// ---- norms from the registry ----
const registry = new Map(nk.listNorms().map((n) => [n.name, n]));
for (const select of [normA, normB]) {
  for (const name of OFFERED) {
    const info = registry.get(name);
    if (name !== 'none' && info === undefined) continue;
    const option = document.createElement('option');
    option.value = name;
    option.textContent = name === 'none' ? 'none (no normalization)' : `${name} (${info?.layerClass ?? name})`;
    select.append(option);
  }
}
normA.value = 'batch';
normB.value = 'group';

/** What to expect from a norm in this particular model, where that differs from its general description. */
const NOTES: Record<string, string> = {
  instance: 'In this model the last norm is followed by ReLU and global average pooling, so each pooled feature keeps only the shape of its map\'s value distribution, not its level or spread: it learns slowly.',
  batch: 'At small batches its statistics get noisy and its moving averages, used at test time, stop matching them.',
};

function describeNorms(): void {
  const line = (select: HTMLSelectElement, tag: string) => {
    const info = registry.get(select.value);
    const note = NOTES[select.value] ? ` ${NOTES[select.value]}` : '';
    return `${tag}: ${info ? info.description : 'convolutions with a bias and no normalization.'}${note}`;
  };
  $<HTMLParagraphElement>('norm-help').textContent = `${line(normA, 'A')} ${line(normB, 'B')}`;
}

// ---- backends ----
const params = new URLSearchParams(location.search);

async function startBackend(wanted: string): Promise<string> {
  const order = [wanted, ...['webgpu', 'webgl', 'wasm', 'cpu'].filter((b) => b !== wanted)];
  for (const name of order) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch {
      // Not available here (no WebGPU adapter, no WebGL2 context, ...): try the next one.
    }
  }
  throw new Error('no tfjs backend could start');
}

function describeBackend(wanted: string, got: string): string {
  let detail = '';
  if (got === 'webgl') {
    const gl = (tf.backend() as unknown as { gpgpu?: { gl?: WebGLRenderingContext } }).gpgpu?.gl;
    const ext = gl?.getExtension('WEBGL_debug_renderer_info');
    const renderer = gl && ext ? String(gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)) : '';
    if (renderer) detail = ` (renderer: ${renderer}${/swiftshader|llvmpipe|software/i.test(renderer) ? ', a software renderer' : ''})`;
  } else if (got === 'wasm') {
    const threads = (tf.backend() as unknown as { getThreadsCount?: () => number }).getThreadsCount?.();
    detail = ` (${tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'SIMD' : 'no SIMD'}${threads ? `, ${threads} thread${threads > 1 ? 's' : ''}` : ''})`;
  }
  const fallback = got === wanted ? '' : ` ${wanted} could not start here, so it fell back to ${got}.`;
  return `Backend: ${got}${detail}; normkit fused kernels ${nk.fusedKernelsEnabled() ? 'on' : 'off'}.${fallback}`;
}

// ---- data ----
let raw: Awaited<ReturnType<typeof loadFashionMnist>> | null = null;
let train: ImageData | null = null;
let test: ImageData | null = null;

/** Averages 2x2 blocks (28x28 -> 14x14) with tfjs once, so small CNNs train fast in any backend. */
function pool(split: { images: Float32Array; labels: Int32Array; n: number; size: number }): ImageData {
  const pooled = tf.tidy(() => tf.avgPool(tf.tensor4d(split.images, [split.n, split.size, split.size, 1]), 2, 2, 'valid'));
  const images = pooled.dataSync() as Float32Array;
  pooled.dispose();
  return { images: Float32Array.from(images), labels: split.labels, n: split.n, side: split.size / 2 };
}

// ---- charts and runs ----
let runs: Run[] = [];
let lossChart: LiveChart | null = null;
let accuracyChart: LiveChart | null = null;
let histogramCharts: LiveChart[][] = [];
let stateCharts: LiveChart[][] = [];
let smoothed: { loss: number; accuracy: number }[] = [];
let pending: { loss: CurveRow[]; accuracy: CurveRow[] } = { loss: [], accuracy: [] };
let lastFlush = 0;
let probe: ReturnType<typeof gather> | null = null;

/** A deterministic sampler (mulberry32), so both models see the same batches and a reset replays them. */
function sampler(seed: number, n: number): (k: number) => number[] {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (k) => Array.from({ length: k }, () => Math.floor(next() * n));
}
let sample = sampler(1, 1);

function settings(): TrainSettings {
  return { learningRate: Number(lrInput.value), optimizer: optimizerSelect.value === 'adamp' ? 'adamp' : 'adam' };
}

function disposeRuns(): void {
  for (const run of runs) run.dispose();
  runs = [];
  for (const c of [lossChart, accuracyChart, ...histogramCharts.flat(), ...stateCharts.flat()]) c?.finalize();
  if (probe) tf.dispose([probe.x, probe.y, probe.labels]);
  probe = null;
}

function buildRuns(): void {
  if (!train || !test) return;
  disposeRuns();
  const norms = [normA.value, normB.value];
  const labels = norms.map((n, i) => `${'AB'[i]}: ${n}`);
  runs = norms.map((n, i) => new Run(labels[i], n, train!.side, settings()));
  state.steps = 0;
  state.trainLoss = [[], []];
  state.testAccuracy = [[], []];
  state.histogramUpdates = 0;
  state.histogramSignature = '';
  state.tensorCounts = [];
  smoothed = [];
  pending = { loss: [], accuracy: [] };
  sample = sampler(1, train.n);
  probe = gather(test, Array.from({ length: 64 }, (_, k) => (k * 7) % test!.n));
  lossChart = new LiveChart($('loss-chart'), curveSpec('Loss (cross-entropy)', labels, 'loss', [0, 3]));
  accuracyChart = new LiveChart($('accuracy-chart'), curveSpec('Accuracy', labels, 'accuracy', [0, 1]));
  histogramCharts = runs.map((run, r) => {
    const box = $(`hist-${'ab'[r]}`);
    $(`hist-${'ab'[r]}-title`).textContent = run.label;
    box.replaceChildren();
    if (run.normLayers.length === 0) {
      box.innerHTML = '<p class="note">No normalization layers.</p>';
      return [];
    }
    // Per layer: a title, then the norm's input (grey) and output (the model's color) side by side, each on
    // its own value axis, since the point of a norm is that the two scales differ.
    return run.normLayers.flatMap((layer, i) => {
      const title = document.createElement('h4');
      title.textContent = layerTitle(layer, i);
      const pair = document.createElement('div');
      pair.className = 'pair';
      const before = document.createElement('div');
      const after = document.createElement('div');
      pair.append(before, after);
      box.append(title, pair);
      return [new LiveChart(before, histogramSpec('before: convolution output', '#8d8d8d')), new LiveChart(after, histogramSpec('after: normalized', MODEL_COLORS[r]))];
    });
  });
  stateCharts = runs.map((_, r) => {
    $(`stats-${'ab'[r]}-title`).textContent = runs[r].label;
    $(`stats-${'ab'[r]}`).replaceChildren();
    return [];
  });
  describeNorms();
}

async function refreshProbes(): Promise<void> {
  if (!probe) return;
  for (const [r, run] of runs.entries()) {
    const hist = await run.histograms(probe.x);
    hist.forEach((h, i) => {
      histogramCharts[r][2 * i]?.replace(h.before);
      histogramCharts[r][2 * i + 1]?.replace(h.after);
    });
    if (hist.length > 0) state.histogramSignature = `${state.steps}:${hist[0].after.map((h) => h.fraction.toFixed(4)).join(',')}`;
    const states = await run.states();
    const box = $(`stats-${'ab'[r]}`);
    if (states.length === 0) {
      if (box.childElementCount === 0) box.innerHTML = '<p class="note">This normalization keeps no running statistics: it normalizes each example (or each batch) with its own statistics, in training and inference alike.</p>';
      continue;
    }
    if (stateCharts[r].length === 0) {
      box.replaceChildren();
      stateCharts[r] = states.map((s) => {
        const el = document.createElement('div');
        box.append(el);
        return new LiveChart(el, s.moments ? movingStatsSpec(s.layer, MODEL_COLORS[r]) : stateSpec(s.layer));
      });
    }
    states.forEach((s, i) => stateCharts[r][i]?.replace(s.moments ?? s.other ?? []));
  }
  state.histogramUpdates++;
}

function flushCurves(force: boolean): void {
  const now = performance.now();
  if (!force && now - lastFlush < 300) return;
  lastFlush = now;
  lossChart?.insert(pending.loss);
  accuracyChart?.insert(pending.accuracy);
  pending = { loss: [], accuracy: [] };
}

async function evaluate(): Promise<void> {
  if (!test) return;
  for (const [r, run] of runs.entries()) {
    const { loss, accuracy } = await run.evaluate(test, TEST_COUNT);
    pending.loss.push({ model: run.label, step: state.steps, kind: 'test', value: loss });
    pending.accuracy.push({ model: run.label, step: state.steps, kind: 'test', value: accuracy });
    state.testAccuracy[r].push(accuracy);
  }
  await refreshProbes();
  flushCurves(true);
  state.tensorCounts.push(tf.memory().numTensors);
}

/** Yields to the browser between steps (a message, not a timer: timers are clamped to 4 ms when nested). */
function yieldToBrowser(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}

async function trainLoop(): Promise<void> {
  if (!train) return;
  const batchSize = Number(batchInput.value);
  const started = performance.now();
  const startStep = state.steps;
  while (state.running) {
    const batch = gather(train, sample(batchSize));
    const results = runs.map((run) => run.step(batch.x, batch.y, batch.labels));
    const values = await Promise.all(results.flatMap((r) => [r.loss.data(), r.accuracy.data()]));
    tf.dispose([batch.x, batch.y, batch.labels, ...results.flatMap((r) => [r.loss, r.accuracy])]);
    state.steps++;
    runs.forEach((run, r) => {
      const loss = values[2 * r][0];
      const accuracy = values[2 * r + 1][0];
      state.trainLoss[r].push(loss);
      const prev = smoothed[r];
      // A NaN loss (divergence) is kept in trainLoss but not smoothed into the curve.
      if (Number.isFinite(loss)) {
        smoothed[r] = prev === undefined ? { loss, accuracy } : {
          loss: SMOOTHING * prev.loss + (1 - SMOOTHING) * loss,
          accuracy: SMOOTHING * prev.accuracy + (1 - SMOOTHING) * accuracy,
        };
      }
      const s = smoothed[r];
      if (s) {
        pending.loss.push({ model: run.label, step: state.steps, kind: 'train', value: s.loss });
        pending.accuracy.push({ model: run.label, step: state.steps, kind: 'train', value: s.accuracy });
      }
    });
    if (state.steps % EVAL_EVERY === 0) await evaluate();
    flushCurves(false);
    const rate = (state.steps - startStep) / ((performance.now() - started) / 1000);
    setStatus(`Training: step ${state.steps}, batch ${batchSize}, ${rate.toFixed(1)} steps/s. ` +
      runs.map((run, r) => `${run.label} loss ${(smoothed[r]?.loss ?? NaN).toFixed(3)}`).join(', '));
    await yieldToBrowser();
  }
  flushCurves(true);
}

// ---- controls ----
function setRunning(running: boolean): void {
  state.running = running;
  startButton.disabled = running;
  stopButton.disabled = !running;
  for (const el of [normA, normB, batchInput, lrInput, optimizerSelect, backendSelect]) el.disabled = running;
  for (const id of ['preset-default', 'preset-small']) $<HTMLButtonElement>(id).disabled = running;
  document.body.dataset.state = running ? 'training' : 'idle';
}

function validBatch(): boolean {
  const b = Number(batchInput.value);
  const lr = Number(lrInput.value);
  if (!Number.isInteger(b) || b < 1 || b > 256) {
    setStatus('Batch size must be a whole number from 1 to 256.');
    batchInput.focus();
    return false;
  }
  if (!(lr > 0 && lr <= 1)) {
    setStatus('Learning rate must be a number in (0, 1].');
    lrInput.focus();
    return false;
  }
  return true;
}

/** The training loop in progress, if any (Reset waits for it before replacing the models). */
let loop: Promise<void> | null = null;

startButton.addEventListener('click', () => {
  if (!state.ready || state.running || !validBatch()) return;
  setRunning(true);
  const first = state.steps === 0 ? evaluate() : Promise.resolve();
  loop = first.then(trainLoop)
    .catch(reportError)
    .finally(() => {
      setRunning(false);
      loop = null;
      if (state.errors.length === 0) setStatus(`Stopped at step ${state.steps}. Start continues; Reset starts over.`);
      if (document.activeElement === stopButton || document.activeElement === document.body) startButton.focus();
    });
});
stopButton.addEventListener('click', () => {
  state.running = false;
});
resetButton.addEventListener('click', () => {
  state.running = false;
  void (loop ?? Promise.resolve()).then(() => {
    try {
      buildRuns();
      setStatus('Reset: new models with the same initial weights. Press Start to train.');
    } catch (e) {
      reportError(e);
    }
  });
});
// Enter in a field must not submit (and reload) the page.
$<HTMLFormElement>('controls').addEventListener('submit', (e) => e.preventDefault());
for (const el of [normA, normB, optimizerSelect, lrInput]) {
  el.addEventListener('change', () => {
    if (state.running) return;
    try {
      buildRuns();
      setStatus('Settings changed: models rebuilt. Press Start to train.');
    } catch (e) {
      reportError(e);
    }
  });
}
backendSelect.addEventListener('change', () => {
  void switchBackend(backendSelect.value);
});

function preset(batch: number): void {
  normA.value = 'batch';
  normB.value = 'group';
  batchInput.value = String(batch);
  lrInput.value = '0.003';
  buildRuns();
  setStatus(batch <= 4
    ? `Batch ${batch}: BatchNorm normalizes with statistics of 2 images, noisy, and tests with moving averages of them; GroupNorm does not depend on the batch. Press Start and give it 500 steps or more: GroupNorm's held-out accuracy pulls ahead (one run of this preset: 0.67 against 0.59 at step 600).`
    : `Batch ${batch}: BatchNorm and GroupNorm both train well. Press Start.`);
}
$('preset-default').addEventListener('click', () => preset(32));
$('preset-small').addEventListener('click', () => preset(2));

async function switchBackend(wanted: string): Promise<void> {
  state.ready = false;
  startButton.disabled = true;
  setStatus(`Starting ${wanted}…`);
  try {
    disposeRuns();
    const got = await startBackend(wanted);
    state.backend = got;
    if (raw && (!train || !test)) {
      train = pool(raw.train);
      test = pool(raw.test);
    }
    backendSelect.value = got;
    backendInfo.textContent = describeBackend(wanted, got);
    buildRuns();
    state.ready = true;
    startButton.disabled = false;
    setStatus(`Ready on ${got}. Press Start to train both models on the same batches.`);
  } catch (e) {
    reportError(e);
  }
}

async function init(): Promise<void> {
  // tfjs's wasm binaries are copied next to the page (see vite.config.ts). Single-threaded: the threaded build
  // needs a cross-origin isolated page (special headers most static hosts do not send), and its worker script
  // does not survive bundling.
  setWasmPaths(new URL('./wasm/', location.href).href);
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  const batch = params.get('batch');
  if (batch) batchInput.value = batch;
  // normkit's WebAssembly SIMD kernels compile asynchronously on a browser's main thread.
  [raw] = await Promise.all([loadFashionMnist(new URL('./data/', location.href).href), nk.ready()]);
  await switchBackend(params.get('backend') ?? ('gpu' in navigator ? 'webgpu' : 'webgl'));
}

setRunning(false);
startButton.disabled = true;
init().catch(reportError);
