/**
 * Model-level figures: one training step (forward, backward, Adam update) of a Pre-LN Transformer LM
 * (d = 256, 4 layers, sequence 128, batch 16; normkit's buildTransformerLM) with normkit's LayerNormalization
 * versus tf.layers.layerNormalization, and of a small CNN (normkit's buildCNN) with normkit's
 * BatchNormalization versus tf.layers.batchNormalization. The tfjs layers are plugged in through a
 * bench-only registry entry, so the two models differ only in the normalization layer. A third variant puts an
 * identity layer in the normalization's place: the difference between a step and that step is the time the
 * step spends in normalization (forward, backward and the optimizer's update of gamma and beta). PyTorch runs
 * the same two models, with their norm and with an identity, on one thread (bench/torch_models.py).
 */
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../src/index.js';
import { buildCNN } from '../src/models/cnn.js';
import { timeIt, type Timing } from './timing.js';

/** One model-level row. */
export interface ModelStepResult {
  backend: string;
  model: string;
  variant: string;
  timing: Timing;
  /** tfjs variant time / this time (absent on the tfjs and identity rows). */
  speedup?: number;
  /** Step time minus the identity variant's: the time in normalization (absent on the identity row). */
  normMs?: number;
  /** normMs / step time. */
  normShare?: number;
}

let registered = false;
function registerTfjsNorms(): void {
  if (registered) return;
  registered = true;
  const common = { kind: 'activation' as const, paper: '(tfjs built-in, for the benchmark only)', doc: 'docs/performance.md' };
  nk.registerNorm({
    ...common,
    name: 'bench-tfjs-layer',
    description: "tfjs's own tf.layers.layerNormalization",
    create: (cfg) => tfl.layers.layerNormalization({ axis: -1, epsilon: (cfg.epsilon as number) ?? 1e-5, name: cfg.name as string | undefined }),
  });
  nk.registerNorm({
    ...common,
    name: 'bench-identity',
    description: 'no normalization: an identity layer in its place, to split a step into normalization and the rest',
    create: (cfg) => tfl.layers.activation({ activation: 'linear', name: cfg.name as string | undefined }),
  });
  nk.registerNorm({
    ...common,
    name: 'bench-tfjs-batch',
    description: "tfjs's own tf.layers.batchNormalization",
    create: (cfg) => tfl.layers.batchNormalization({ axis: -1, name: cfg.name as string | undefined }),
  });
}

function trainStep(model: tfl.LayersModel, optimizer: tf.Optimizer, loss: () => tf.Scalar): void {
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  tf.tidy(() => {
    optimizer.minimize(loss, false, vars);
  });
}

function timeSteps(name: string, build: () => { model: tfl.LayersModel; loss: (m: tfl.LayersModel) => tf.Scalar; dispose: () => void }, runs: number): Timing {
  const { model, loss, dispose } = build();
  const optimizer = tf.train.adam(1e-4);
  const t = timeIt(() => trainStep(model, optimizer, () => loss(model)), { runs, warmup: 1, minRuns: runs, slowMs: 1e9 });
  optimizer.dispose();
  model.dispose();
  dispose();
  void name;
  return t;
}

function transformer(norm: string) {
  return () => {
    const model = nk.buildTransformerLM({ vocabSize: 256, seqLen: 128, dModel: 256, heads: 4, layers: 4, placement: 'pre', norm, seed: 1 });
    const tokens = tf.tidy(() => tf.cast(tf.mul(tf.randomUniform([16, 128], 0, 1, 'float32', 1), 255), 'int32'));
    const targets = tf.tidy(() => tf.cast(tf.mul(tf.randomUniform([16, 128], 0, 1, 'float32', 2), 255), 'int32'));
    return {
      model,
      loss: (m: tfl.LayersModel) => nk.lmCrossEntropy(targets, m.apply(tokens) as tf.Tensor),
      dispose: () => tf.dispose([tokens, targets]),
    };
  };
}

function cnn(norm: string) {
  return () => {
    const { model } = buildCNN({ inputShape: [32, 32, 16], numClasses: 10, norm, widths: [32, 64], blocksPerStage: 1, seed: 1 });
    const x = tf.randomNormal([32, 32, 32, 16], 0, 1, 'float32', 3);
    const labels = tf.tidy(() => tf.oneHot(tf.cast(tf.mul(tf.randomUniform([32], 0, 1, 'float32', 4), 9.99), 'int32'), 10));
    return {
      model,
      loss: (m: tfl.LayersModel) => tf.losses.softmaxCrossEntropy(labels, m.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
      dispose: () => tf.dispose([x, labels]),
    };
  };
}

/**
 * Times the steps on each backend: `runs` runs (default 5) after one warm-up. Returns rows and notes (a backend whose single
 * step would take too long for the shared machine is reported as skipped, with the measured time).
 */
export async function modelSteps(backends: string[], log: (s: string) => void, runs = 5, python?: string): Promise<{ results: ModelStepResult[]; notes: string[] }> {
  registerTfjsNorms();
  const results: ModelStepResult[] = [];
  const notes: string[] = [];
  for (const backend of backends) {
    await nk.useBackend(backend);
    for (const [modelName, make, ours, theirs] of [
      ['Pre-LN Transformer d=256 L=4 T=128 B=16', transformer, 'layer', 'bench-tfjs-layer'],
      ['CNN 2 residual stages [32, 64], 32x32x16 input, batch 32', cnn, 'batch', 'bench-tfjs-batch'],
    ] as const) {
      const base = timeSteps(modelName, make(theirs), runs);
      const mine = timeSteps(modelName, make(ours), runs);
      const none = timeSteps(modelName, make('bench-identity'), runs);
      const split = (t: Timing) => ({ normMs: t.median - none.median, normShare: (t.median - none.median) / t.median });
      results.push({ backend, model: modelName, variant: `tfjs ${theirs === 'bench-tfjs-layer' ? 'tf.layers.layerNormalization' : 'tf.layers.batchNormalization'}`, timing: base, ...split(base) });
      results.push({ backend, model: modelName, variant: `normkit ${ours === 'layer' ? 'LayerNormalization' : 'BatchNormalization'} (fused)`, timing: mine, speedup: base.median / mine.median, ...split(mine) });
      results.push({ backend, model: modelName, variant: 'identity in place of the normalization', timing: none });
      log(
        `  ${backend} ${modelName}: tfjs ${base.median.toFixed(0)} ms, normkit ${mine.median.toFixed(0)} ms -> ${(base.median / mine.median).toFixed(2)}x; ` +
          `identity ${none.median.toFixed(0)} ms, so normalization ${(100 * split(base).normShare).toFixed(0)} % (tfjs) and ${(100 * split(mine).normShare).toFixed(0)} % (normkit) of a step`,
      );
    }
  }
  if (python) results.push(...torchModelSteps(python, runs, log, notes));
  else notes.push('PyTorch model steps skipped: no python that imports torch (or --no-torch).');
  return { results, notes };
}

const TORCH_MODELS: Record<string, string> = {
  transformer: 'Pre-LN Transformer d=256 L=4 T=128 B=16',
  cnn: 'CNN 2 residual stages [32, 64], 32x32x16 input, batch 32',
};

/** The same models' steps in PyTorch on one thread, with the norm and with an identity in its place. */
function torchModelSteps(python: string, runs: number, log: (s: string) => void, notes: string[]): ModelStepResult[] {
  log('PyTorch model steps (1 thread)...');
  const r = spawnSync(python, ['bench/torch_models.py', String(runs)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) {
    notes.push(`PyTorch model steps skipped: bench/torch_models.py failed (${r.stderr.trim().split('\n').pop()}).`);
    return [];
  }
  const parsed = JSON.parse(r.stdout) as { torch: string; results: Array<{ model: string; variant: string; timing: Timing }> };
  const rows: ModelStepResult[] = [];
  for (const model of Object.keys(TORCH_MODELS)) {
    const none = parsed.results.find((q) => q.model === model && q.variant === 'identity');
    for (const q of parsed.results.filter((p) => p.model === model)) {
      const row: ModelStepResult = { backend: `PyTorch ${parsed.torch}, 1 thread`, model: TORCH_MODELS[model], variant: q.variant === 'identity' ? 'identity in place of the normalization' : `torch.nn.${q.variant}`, timing: q.timing };
      if (none && q !== none) {
        row.normMs = q.timing.median - none.timing.median;
        row.normShare = row.normMs / q.timing.median;
      }
      rows.push(row);
      log(`  PyTorch ${TORCH_MODELS[model]} ${q.variant}: ${q.timing.median.toFixed(0)} ms`);
    }
  }
  return rows;
}
