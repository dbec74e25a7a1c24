/**
 * `npm run bench`: normkit's fused normalization kernels against the copy roofline, tfjs's built-ins and
 * PyTorch CPU, plus model-level training steps. A benchmark, not a test: it asserts nothing.
 *
 * Options: --quick (one shape per method, fewer runs, no model-level figures), --backends cpu,wasm,
 * --model-backends wasm (default: wasm only; one Transformer step takes minutes on the cpu backend),
 * --model-runs 5 (timed steps per model variant),
 * --baseline all|first|none (default all; first = measure the slow tfjs baselines only on each method's
 * first shape, for a loaded machine; none = not at all), --methods layerNorm,groupNorm,... (default: all),
 * --no-models, --no-memory, --no-torch, --out <dir> (default bench/results).
 *
 * Every figure is the median of at least 5 runs after warm-up, with min and max; every ratio is computed
 * inside this one process run (the copy roofline is measured here, per size), because the machine is shared
 * and absolute times drift. PyTorch runs interleaved with normkit (see torch.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
// The backends the bench measures: normkit imports none itself.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as nk from '../src/index.js';
import { copyRoofline, gbps, timeIt, type Timing } from './timing.js';
import { cpuEngineComparison, type EngineComparison } from './engines.js';
import { modelSteps, type ModelStepResult } from './models.js';
import { TorchServer, torchPython } from './torch.js';
import { BASELINE, baselineOp, normkitGrads, normkitOp, type Case, type Method } from './ops.js';
import { memoryPeaks, type MemoryRow } from './memory.js';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const QUICK = flag('--quick');
const BACKENDS = option('--backends', 'cpu,wasm').split(',');
const OUT = option('--out', 'bench/results');
const RUNS = QUICK ? 7 : 15;
const BASELINE_FIRST_ONLY = option('--baseline', 'all') === 'first';
const NO_BASELINE = option('--baseline', 'all') === 'none';
const WARMUP = 2;
/** Interleaved rounds against PyTorch, and runs per round on each side. */
const TORCH_ROUNDS = QUICK ? 3 : 7;
const TORCH_PER_ROUND = QUICK ? 3 : 5;

// [rows, D]: transformer activations ([B*T, D], a few MB each) and one long row.
const ROW_SHAPES = [
  [4096, 1024],
  [4096, 256],
  [4096, 768],
  [1024, 2048],
  [512, 4096],
  [256, 16384],
];
// Channels-last [N, H, W, C]: small CNN activations.
const NHWC_SHAPES = [
  [32, 32, 32, 64],
  [32, 14, 14, 16],
  [8, 56, 56, 64],
];
const ALL_CASES: Case[] = [
  ...ROW_SHAPES.map((shape): Case => ({ method: 'layerNorm', shape })),
  ...ROW_SHAPES.map((shape): Case => ({ method: 'rmsNorm', shape })),
  ...NHWC_SHAPES.map((shape): Case => ({ method: 'batchNorm', shape })),
  // 32 groups where the channels allow it, 4 groups everywhere.
  ...NHWC_SHAPES.flatMap((shape): Case[] => [32, 4].filter((g) => shape[3] % g === 0 && shape[3] > g).map((groups) => ({ method: 'groupNorm', shape, groups }))),
  ...NHWC_SHAPES.map((shape): Case => ({ method: 'instanceNorm', shape })),
];
const METHODS = option('--methods', '').split(',').filter(Boolean);
const caseKey = (c: Case) => `${c.method}/${c.groups ?? ''}`;
const CASES = ALL_CASES.filter((c) => METHODS.length === 0 || METHODS.includes(c.method)).filter(
  (c, i, all) => !QUICK || all.findIndex((d) => caseKey(d) === caseKey(c)) === i,
);

interface Row {
  backend: string;
  method: Method;
  shape: number[];
  groups?: number;
  pass: 'forward' | 'forward+backward';
  normkit: Timing;
  bytes: number;
  gbps: number;
  /** GB/s of a plain copy of the same number of floats, measured right before this case. */
  copyGbps: number;
  /** Effective GB/s over copyGbps. */
  rooflineFraction: number;
  baseline: string;
  /** Absent when the baseline was not run for this shape (--baseline first). */
  baselineTiming?: Timing;
  speedup?: number;
  /** PyTorch on one thread, interleaved with normkit's runs (torch.ts): per-round medians. */
  torch1?: Timing;
  /** Median over rounds of PyTorch time / normkit time. */
  vsTorch1?: number;
  /** The per-round ratios. */
  vsTorch1Rounds?: number[];
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

async function benchCase(backend: string, c: Case, withBaseline: boolean, copyGbps: (floats: number) => number, torch: TorchServer | null, log: (s: string) => void): Promise<Row[]> {
  const n = size(c.shape);
  const width = c.shape[c.shape.length - 1];
  const x = tf.randomNormal(c.shape, 0.5, 2, 'float32', 1);
  const dy = tf.randomNormal(c.shape, 0, 1, 'float32', 2);
  const gamma = tf.randomNormal([width], 1, 0.2, 'float32', 3);
  const beta = tf.randomNormal([width], 0, 0.2, 'float32', 4);
  const base = baselineOp(c);
  if (withBaseline) base.forward(x, gamma, beta).dispose();
  nk.setFusedKernels(true);

  const fwd = () => normkitOp(c, x, gamma, beta).dispose();
  const fwdBwd = () => tf.dispose(normkitGrads(c, x, gamma, beta, dy));
  const baseFwd = () => base.forward(x, gamma, beta).dispose();
  const baseFwdBwd = () => tf.dispose(base.grads(x, gamma, beta, dy));

  // The roofline is measured next to the kernel it judges: on a shared machine the load drifts over minutes.
  const copyBw = copyGbps(n);
  const rows: Row[] = [];
  for (const [pass, ours, theirs, floatsMoved] of [
    ['forward', fwd, baseFwd, 2 * n],
    ['forward+backward', fwdBwd, baseFwdBwd, 4 * n],
  ] as const) {
    const normkit = timeIt(ours, { runs: RUNS, warmup: WARMUP });
    const baselineTiming = withBaseline ? timeIt(theirs, { runs: QUICK ? 5 : 7, warmup: 1, minRuns: 5, slowMs: 200 }) : undefined;
    const bytes = floatsMoved * 4;
    const eff = gbps(bytes, normkit.median);
    const row: Row = {
      backend,
      method: c.method,
      shape: c.shape,
      groups: c.groups,
      pass,
      normkit,
      bytes,
      gbps: eff,
      copyGbps: copyBw,
      rooflineFraction: eff / copyBw,
      baseline: BASELINE[c.method],
      baselineTiming,
      speedup: baselineTiming ? baselineTiming.median / normkit.median : undefined,
    };
    if (torch) {
      const t = await torch.compare({ method: c.method, shape: c.shape, groups: c.groups }, pass, ours, TORCH_ROUNDS, TORCH_PER_ROUND);
      row.torch1 = t.torch;
      row.vsTorch1 = t.ratio;
      row.vsTorch1Rounds = t.ratios;
    }
    rows.push(row);
    log(
      `  ${backend} ${c.method} [${c.shape}] ${pass}: ${normkit.median.toFixed(2)} ms (${eff.toFixed(1)} GB/s, ${(100 * row.rooflineFraction).toFixed(0)}% of copy), ` +
        (baselineTiming && row.speedup ? `${BASELINE[c.method]} ${baselineTiming.median.toFixed(1)} ms -> ${row.speedup.toFixed(0)}x` : 'baseline not run') +
        (row.vsTorch1 && row.torch1 ? `, torch 1T ${row.torch1.median.toFixed(2)} ms -> ${row.vsTorch1.toFixed(2)}x` : ''),
    );
  }
  base.dispose();
  tf.dispose([x, dy, gamma, beta]);
  return rows;
}

/** The PyTorch child, or null with the reason in `note`. */
async function startTorch(log: (s: string) => void): Promise<{ server: TorchServer | null; note: string }> {
  if (flag('--no-torch')) return { server: null, note: 'PyTorch skipped (--no-torch).' };
  const server = await TorchServer.start();
  if (typeof server === 'string') return { server: null, note: `PyTorch CPU skipped: ${server}.` };
  log(`PyTorch ${server.version} (${server.python}), one thread, interleaved`);
  return {
    server,
    note: `PyTorch ${server.version} (CPU, ${server.python}), torch.set_num_threads(1), run in one persistent process interleaved with normkit: ${TORCH_ROUNDS} rounds of ${TORCH_PER_ROUND} normkit runs then ${TORCH_PER_ROUND} PyTorch runs of the same case; "torch 1T ms" is the median of the per-round medians, "vs torch 1T" the median of the per-round ratios.`,
  };
}

function fmt(t: Timing | undefined, digits = 2): string {
  if (!t) return 'n/a';
  return `${t.median.toFixed(digits)} (${t.min.toFixed(digits)}–${t.max.toFixed(digits)})`;
}

function markdown(report: Report): string {
  const lines: string[] = [];
  lines.push(`# normkit benchmark, ${report.date}${report.quick ? ' (quick)' : ''}`);
  lines.push('');
  lines.push(`Node ${report.node}, tfjs ${report.tfjs}, ${report.cpus} CPU(s) (${report.cpuModel}); shared machine, so compare the ratios (all measured in this one run) rather than raw ms.`);
  lines.push('Times in ms: median (min–max) of at least 5 runs after warm-up. GB/s counts bytes of x read + y written (forward) plus dy read + dx written (backward).');
  lines.push('Roofline = effective GB/s / GB/s of a plain copy (Float32Array.set between preallocated arrays) of the same number of floats, measured in this run right before each case (column "copy GB/s").');
  lines.push('');
  lines.push('| backend | method | shape | pass | normkit ms | GB/s | copy GB/s | roofline | tfjs baseline | baseline ms | speedup | torch 1T ms | vs torch 1T |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of report.rows) {
    lines.push(
      `| ${r.backend} | ${r.method}${r.groups ? ` (${r.groups} groups)` : ''} | [${r.shape.join(', ')}] | ${r.pass} | ${fmt(r.normkit)} | ${r.gbps.toFixed(1)} | ${r.copyGbps.toFixed(1)} | ${(100 * r.rooflineFraction).toFixed(0)}% | ${r.baseline} | ${r.baselineTiming ? fmt(r.baselineTiming, 0) : 'not run'} | ${r.speedup ? r.speedup.toFixed(0) + 'x' : 'n/a'} | ${fmt(r.torch1)} | ${r.vsTorch1 ? `${r.vsTorch1.toFixed(2)}x${r.vsTorch1Rounds ? ` (${Math.min(...r.vsTorch1Rounds).toFixed(2)}–${Math.max(...r.vsTorch1Rounds).toFixed(2)})` : ''}` : 'n/a'} |`,
    );
  }
  lines.push('');
  lines.push('"vs torch 1T" = median (min–max) over interleaved rounds of PyTorch time / normkit time (above 1: normkit faster). normkit runs on one thread (tfjs cpu and wasm backends are single-threaded in Node).');
  lines.push('');
  lines.push(`PyTorch: ${report.torchNote}`);
  lines.push('');
  if (report.engines.length) {
    lines.push('## cpu backend: scalar JavaScript vs the SIMD module with copies');
    lines.push('');
    lines.push('| method | shape | pass | scalar JS ms | SIMD incl. copy in/out ms | of which copies ms |');
    lines.push('|---|---|---|---|---|---|');
    for (const e of report.engines) {
      lines.push(`| ${e.method} | [${e.shape.join(', ')}] | ${e.pass} | ${fmt(e.scalar)} | ${fmt(e.simdWithCopies)} | ${fmt(e.copiesOnly)} |`);
    }
    lines.push('');
  }
  if (report.memory.length) {
    lines.push('## Memory: peak extra memory during the call, as a multiple of the input size');
    lines.push('');
    lines.push("tfjs = peak of tf.memory().numBytes during the call (tf.profile) minus the bytes live before it; wasm = the cpu kernels' arena (held between calls) or the wasm heap's growth during the call. Forward+backward = gradients given dy, so x and dy themselves are not counted.");
    lines.push('');
    lines.push('| backend | method | shape | pass | implementation | total | tfjs | wasm |');
    lines.push('|---|---|---|---|---|---|---|---|');
    for (const m of report.memory) {
      lines.push(`| ${m.backend} | ${m.method} | [${m.shape.join(', ')}] | ${m.pass} | ${m.impl} | ${m.total.toFixed(2)}x | ${m.tfjsPeak.toFixed(2)}x | ${m.wasmExtra.toFixed(2)}x |`);
    }
    lines.push('');
  }
  if (report.models.length) {
    lines.push('## Model level: one training step (forward, backward, optimizer)');
    lines.push('');
    lines.push('Time in normalization = step time minus the step with an identity layer in place of each normalization layer (medians; under load the difference carries the noise of both).');
    lines.push('');
    lines.push('| backend | model | normalization | step ms | speedup | in normalization ms | share of step |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const m of report.models) {
      const norm = m.normMs === undefined ? 'n/a' : m.normMs.toFixed(0);
      const share = m.normShare === undefined ? 'n/a' : `${(100 * m.normShare).toFixed(0)} %`;
      lines.push(`| ${m.backend} | ${m.model} | ${m.variant} | ${fmt(m.timing, 0)} | ${m.speedup ? m.speedup.toFixed(2) + 'x' : 'n/a'} | ${norm} | ${share} |`);
    }
    lines.push('');
  }
  if (report.notes.length) {
    lines.push('## Notes');
    lines.push('');
    for (const n of report.notes) lines.push(`- ${n}`);
    lines.push('');
  }
  return lines.join('\n');
}

interface Report {
  date: string;
  quick: boolean;
  node: string;
  tfjs: string;
  cpus: number;
  cpuModel: string;
  copy: Record<string, { timing: Timing; gbps: number }>;
  rows: Row[];
  torchNote: string;
  torchVersion?: string;
  engines: EngineComparison[];
  memory: MemoryRow[];
  models: ModelStepResult[];
  notes: string[];
}

async function main(): Promise<void> {
  const os = await import('node:os');
  const log = (s: string) => console.log(s);
  const copy: Report['copy'] = {};
  const copyGbps = (floats: number) => {
    copy[floats] = copyRoofline(floats, RUNS);
    return copy[floats].gbps;
  };
  const rows: Row[] = [];
  const torch = await startTorch(log);
  for (const backend of BACKENDS) {
    await nk.useBackend(backend);
    log(`backend ${backend}`);
    for (const c of CASES) {
      const first = CASES.find((d) => d.method === c.method) === c;
      rows.push(...(await benchCase(backend, c, !NO_BASELINE && (first || !BASELINE_FIRST_ONLY), copyGbps, torch.server, log)));
    }
  }
  torch.server?.close();
  // Memory ratios do not depend on the size: one shape per method, small enough for tfjs's layers.
  const memory = flag('--no-memory')
    ? []
    : await memoryPeaks(
        CASES.filter((c, i, all) => all.findIndex((d) => d.method === c.method) === i).map((c) => (c.shape.length === 2 ? { ...c, shape: [1024, 1024] } : c)),
        BACKENDS,
        log,
      );
  await nk.useBackend('cpu');
  const engines = cpuEngineComparison(QUICK, RUNS);
  const models: ModelStepResult[] = [];
  const notes: string[] = [];
  if (NO_BASELINE) notes.push('tfjs baselines not measured (--baseline none).');
  if (BASELINE_FIRST_ONLY) notes.push("tfjs baselines measured on each method's first shape only (--baseline first): one tf.layers.layerNormalization forward+backward takes tens of seconds on a loaded 2-core machine.");
  if (QUICK || flag('--no-models')) notes.push('Model-level figures skipped (--quick or --no-models).');
  else {
    const modelBackends = option('--model-backends', 'wasm').split(',');
    const m = await modelSteps(modelBackends, log, Number(option('--model-runs', '5')), flag('--no-torch') ? undefined : torchPython());
    if (!modelBackends.includes('cpu')) {
      notes.push('Model-level figures on the cpu backend are not run by default (--model-backends cpu,wasm): one Pre-LN Transformer training step takes over two minutes there (138 s measured once while writing the bench), dominated by the matmuls of tfjs-backend-cpu.');
    }
    models.push(...m.results);
    notes.push(...m.notes);
  }
  const date = new Date().toISOString().slice(0, 10);
  const report: Report = {
    date,
    quick: QUICK,
    node: process.version,
    tfjs: tf.version_core,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    copy,
    rows,
    torchNote: torch.note,
    torchVersion: torch.server?.version,
    engines,
    memory,
    models,
    notes,
  };
  mkdirSync(OUT, { recursive: true });
  const stem = join(OUT, `${date}${QUICK ? '-quick' : ''}`);
  writeFileSync(`${stem}.json`, JSON.stringify(report, null, 2));
  writeFileSync(`${stem}.md`, markdown(report));
  log(`wrote ${stem}.json and ${stem}.md`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
