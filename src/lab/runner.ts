/**
 * Runs experiments: every (variant, seed) run in a fixed order (in this process, on a pool of worker processes or
 * through a queue), each stored as soon as it finishes; `resume`
 * skips runs whose stored file is intact and made with the same plan, and redoes corrupt or stale ones. After the
 * runs, computes each experiment's checks and verdict and writes results.json, summary.md and report.html.
 */
import { readFileSync, rmSync } from 'node:fs';
import { cpus, platform } from 'node:os';
import { join, relative } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { LAB_BACKENDS, loadLabBackend } from './backends.js';
import { resolveFashionMnistDir, PACKAGE_ROOT } from './data/fashion-mnist.js';
import { DEFAULT_TEXT_PATH } from './data/text.js';
import { planSecondsPerStep, planSteps, type Experiment } from './experiment.js';
import { silentProgress, type ProgressSink } from './progress.js';
import {
  metricValue, readRunRecord, sha256, finiteJSON, writeAtomic, writeRunRecord,
  type ExperimentResult, type LabMeta, type LabResults, type RunRecord, RUN_FILE_SCHEMA,
} from './results.js';
import { LabInterrupted } from './train.js';
import { NormkitError } from '../core/errors.js';
import { dataContext, executeRun, type ExecutorEvents, type RunExecutor, type RunSetup, type RunTask } from './execute.js';
import { ProcessPool } from './pool.js';
import { QueueExecutor, type QueueOptions } from './queue.js';
import { compareGroups, describeRollUp, pickBest, rollUp } from './verdict.js';
import { renderReport, renderSummary } from './report.js';

/** Options of {@link runLab}. */
export interface LabOptions {
  experiments: Experiment[];
  /** Seeds 0..seeds-1 for every experiment (default: each experiment's own `plan.seeds`, else 3). */
  seeds?: number;
  quick?: boolean;
  outDir: string;
  /** Fashion-MNIST folder (default: the embedded subset in quick mode, else the Debian set when installed). */
  dataDir?: string;
  textPath?: string;
  /** tfjs backend the runs use: 'wasm' (default, as the CLI: the fastest in Node) or 'cpu'. */
  backend?: string;
  resume?: boolean;
  progress?: ProgressSink;
  /** Polled between steps: true stops the lab cleanly (finished runs are kept). */
  shouldStop?: () => boolean;
  /**
   * Worker processes that execute the runs (default 1: in this process). With more, each worker process loads
   * the experiments by id: the built-in ones and those exported (as `experiments`) by `experimentModules`.
   */
  workers?: number;
  /** Modules (paths or URLs) exporting `experiments`, for worker processes and queue workers. */
  experimentModules?: string[];
  /** A Redis URL (redis://HOST:PORT): the runs go to a BullMQ queue and `normkit lab worker`s execute them. */
  queue?: string;
  queueOptions?: QueueOptions;
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The plan's fingerprint: runs made under another setup are not reused on resume. */
function planHash(experiment: Experiment, quick: boolean, dataDir: string, textPath: string): string {
  const plan = experiment.plan(quick);
  return sha256(finiteJSON({ id: experiment.id, quick, setup: plan.setup, variants: plan.variants, steps: plan.steps, dataDir, textPath })).slice(0, 16);
}

/**
 * Runs the lab and writes `outDir/results.json`, `outDir/summary.md`, `outDir/report.html` (also after an
 * interruption, with what finished). Returns the results; `meta.interrupted` tells whether it stopped early.
 */
export async function runLab(options: LabOptions): Promise<LabResults> {
  const started = Date.now();
  const quick = options.quick ?? false;
  const backend = options.backend ?? 'wasm';
  const workers = options.workers ?? 1;
  const progress = options.progress ?? silentProgress;
  const shouldStop = options.shouldStop ?? (() => false);
  const dataDir = resolveFashionMnistDir(options.dataDir, !quick);
  const textPath = options.textPath ?? DEFAULT_TEXT_PATH;
  if (!Number.isInteger(workers) || workers < 1) throw new NormkitError('runLab', 'workers', 'a positive integer', workers);
  if (!(LAB_BACKENDS as readonly string[]).includes(backend)) throw new NormkitError('lab', 'backend', `one of ${LAB_BACKENDS.join(', ')}`, backend);
  // Worker processes load the backend themselves; this process needs it only to run the runs itself.
  if (workers === 1 && options.queue === undefined) await loadLabBackend(backend);
  if (!options.resume) rmSync(join(options.outDir, 'runs'), { recursive: true, force: true });

  // Which experiments can run, and the ordered list of runs.
  const runnable: Array<{ experiment: Experiment; hash: string }> = [];
  const waiting = new Map<string, string[]>();
  for (const experiment of options.experiments) {
    const missing = await experiment.missing();
    if (missing.length > 0) {
      waiting.set(experiment.id, missing);
      progress.log(`${experiment.id}: pending (waits for ${missing.join(', ')})`);
    } else {
      runnable.push({ experiment, hash: planHash(experiment, quick, dataDir, textPath) });
    }
  }
  const hashes = new Map(runnable.map((r) => [r.experiment.id, r.hash]));
  const queue = schedule(runnable.map(({ experiment }) => {
    const plan = experiment.plan(quick);
    return { experiment: experiment.id, variants: plan.variants.map((v) => v.id), steps: plan.variants.map((v) => planSteps(plan, v.id)), seeds: options.seeds ?? plan.seeds ?? 3 };
  }));
  const todo = queue.filter((r) => {
    const state = readRunRecord(options.outDir, r.experiment, r.variant, r.seed, hashes.get(r.experiment) ?? '');
    if (state.state === 'corrupt' || state.state === 'stale') progress.log(`redoing ${r.experiment} ${r.variant} seed ${r.seed}: ${state.reason}`);
    return state.state !== 'ok';
  }).map((r, index) => ({ ...r, index }));
  if (options.resume && todo.length < queue.length) progress.log(`resuming: ${queue.length - todo.length} of ${queue.length} runs already done`);

  const setup: RunSetup = { backend, quick, dataDir, textPath, modules: options.experimentModules ?? [] };
  const executor: RunExecutor = options.queue !== undefined
    ? new QueueExecutor(options.queue, setup, planHashOf(hashes), options.queueOptions)
    : workers > 1 ? new ProcessPool(workers, setup) : new InProcessExecutor(runnable.map((r) => r.experiment), setup);
  const plans = new Map(runnable.map(({ experiment }) => [experiment.id, experiment.plan(quick)]));
  const planned = todo.map((t) => {
    const plan = plans.get(t.experiment);
    return { ...t, secondsPerStep: plan === undefined ? undefined : planSecondsPerStep(plan, t.variant) };
  });
  progress.setPlan?.({ runs: planned, workers: executor.workers });
  const failedRuns: NonNullable<LabMeta['failedRuns']> = [];
  const label = (t: RunTask) => ({ experiment: t.experiment, variant: t.variant, seed: t.seed, runIndex: t.index + 1, runCount: todo.length, steps: t.steps });
  const events: ExecutorEvents = {
    start: (task, worker) => progress.startRun({ ...label(task), worker }),
    step: (_task, worker, step, loss) => progress.step(step, loss, worker),
    done: (task, output, wallSeconds, worker) => {
      const record: RunRecord = {
        schema: RUN_FILE_SCHEMA, experiment: task.experiment, variant: task.variant, seed: task.seed, planHash: hashes.get(task.experiment) ?? '',
        output, wallSeconds, finishedAt: new Date().toISOString(),
      };
      writeRunRecord(options.outDir, record);
      const shown = Object.entries(output.metrics).map(([k, v]) => `${k}=${v === null || !Number.isFinite(v) ? 'n/a' : Number(v.toPrecision(4))}`).join(' ');
      progress.endRun(`done in ${wallSeconds.toFixed(1)}s: ${shown}`, worker);
    },
    failed: (task, reason, worker) => {
      failedRuns.push({ experiment: task.experiment, variant: task.variant, seed: task.seed, reason });
      progress.endRun(`failed: ${reason}`, worker);
    },
    log: (line) => progress.log(line),
  };
  let interrupted: boolean;
  try {
    ({ interrupted } = await executor.execute(todo, events, shouldStop));
  } finally {
    progress.stop();
  }
  if (interrupted) progress.log('interrupted; finished runs are kept (continue with --resume)');

  const meta: LabMeta = {
    normkitVersion: packageVersion(),
    tfjsVersion: tf.version_core,
    node: process.version,
    platform: `${platform()} ${process.arch}`,
    cpus: cpus().length,
    backend,
    quick,
    seeds: options.seeds ?? Math.max(0, ...options.experiments.map((e) => e.plan(quick).seeds ?? 3)),
    data: dataDir,
    text: textPath,
    startedAt: new Date(started).toISOString(),
    wallSeconds: (Date.now() - started) / 1000,
    runSeconds: 0,
    interrupted,
    workers: options.queue !== undefined ? 'queue' : workers,
    failedRuns,
    docsBase: relative(options.outDir, join(PACKAGE_ROOT, 'docs')).split('\\').join('/'),
  };
  const results: LabResults = { meta, experiments: options.experiments.map((e) => collect(e, options.outDir, quick, options.seeds ?? e.plan(quick).seeds ?? 3, waiting, runnable)) };
  meta.runSeconds = results.experiments.reduce((s, e) => s + e.runs.reduce((t, r) => t + r.wallSeconds, 0), 0);
  await writeLabOutputs(options.outDir, results);
  return results;
}

function planHashOf(hashes: Map<string, string>): (experiment: string) => string {
  return (experiment) => hashes.get(experiment) ?? '';
}

/**
 * The order of the runs: seed by seed (an interrupted suite keeps whole seeds, which paired comparisons need),
 * and within a seed the experiments' variants interleaved, so that the first runs of a suite sample every
 * experiment and the ETA learns each one's cost early. Each experiment runs `seeds` seeds (its own, else the
 * given default).
 */
export function schedule(experiments: Array<{ experiment: string; variants: string[]; steps: number | number[]; seeds?: number }>, seeds = 3): Array<Omit<RunTask, 'index'>> {
  const out: Array<Omit<RunTask, 'index'>> = [];
  const most = Math.max(0, ...experiments.map((e) => e.variants.length));
  const mostSeeds = Math.max(0, ...experiments.map((e) => e.seeds ?? seeds));
  for (let seed = 0; seed < mostSeeds; seed++) {
    for (let v = 0; v < most; v++) {
      for (const e of experiments) if (v < e.variants.length && seed < (e.seeds ?? seeds)) out.push({ experiment: e.experiment, variant: e.variants[v], seed, steps: typeof e.steps === 'number' ? e.steps : e.steps[v] });
    }
  }
  return out;
}

/** Runs in this process, one after the other (`--workers 1`): the experiments' own objects are used. */
class InProcessExecutor implements RunExecutor {
  readonly workers = 1;
  constructor(private readonly experiments: Experiment[], private readonly setup: RunSetup) {}

  async execute(tasks: RunTask[], events: ExecutorEvents, shouldStop: () => boolean): Promise<{ interrupted: boolean }> {
    const data = dataContext(this.setup);
    for (const task of tasks) {
      if (shouldStop()) return { interrupted: true };
      const experiment = this.experiments.find((e) => e.id === task.experiment) as Experiment;
      events.start(task, 0);
      try {
        const { output, wallSeconds } = await executeRun(experiment, task.variant, task.seed, data, {
          shouldStop, onStep: (step, loss) => events.step(task, 0, step, loss),
        });
        events.done(task, output, wallSeconds, 0);
      } catch (e) {
        if (e instanceof LabInterrupted) return { interrupted: true };
        throw e;
      }
    }
    return { interrupted: false };
  }
}

function collect(
  experiment: Experiment, outDir: string, quick: boolean, seeds: number,
  waiting: Map<string, string[]>, runnable: Array<{ experiment: Experiment; hash: string }>,
): ExperimentResult {
  const plan = experiment.plan(quick);
  const base = {
    id: experiment.id, title: experiment.title, claim: experiment.claim, papers: experiment.papers,
    methodPages: experiment.methodPages, metric: experiment.metric, setup: plan.setup, regime: plan.regime ?? '', variants: plan.variants, plots: experiment.plots,
  };
  const waitsFor = waiting.get(experiment.id);
  if (waitsFor !== undefined) return { ...base, seeds, status: 'pending', waitsFor, runs: [], checks: [], rollup: rollUp([]), verdict: 'pending' };
  const hash = runnable.find((r) => r.experiment === experiment)?.hash ?? '';
  const runs: RunRecord[] = [];
  for (const variant of plan.variants) {
    for (let seed = 0; seed < seeds; seed++) {
      const state = readRunRecord(outDir, experiment.id, variant.id, seed, hash);
      if (state.state === 'ok') runs.push(state.record);
    }
  }
  const label = (id: string) => plan.variants.find((v) => v.id === id)?.label ?? id;
  const checks = plan.checks.map((c) => {
    const { variantA, variantB, metricB, labelA, labelB, pick, ...spec } = c;
    const notes: string[] = [];
    // A sweep (several candidate variants) is reduced to its best by the median of `pick`'s metric.
    const choose = (ids: string | string[], sideLabel: string): string => {
      if (!Array.isArray(ids)) return ids;
      const by = pick ?? { metric: c.metric, better: c.better };
      const perSeed = ids.map((id) => runs.filter((r) => r.variant === id).map((r) => {
        const v = metricValue(r, by.metric);
        return !Number.isFinite(v) && c.censoredAt !== undefined && by.metric === c.metric ? c.censoredAt : v;
      }));
      const { index, medians } = pickBest(perSeed, by.better);
      notes.push(`${sideLabel}: ${label(ids[index])} picked by median ${by.metric} (${ids.map((id, i) => `${label(id)} ${Number(medians[i].toPrecision(3))}`).join(', ')})`);
      return ids[index];
    };
    const idA = choose(variantA, 'A');
    const idB = choose(variantB, 'B');
    // Values by seed, over the seeds where both variants have a finished run, so index i pairs seed i's runs.
    const both = Array.from({ length: seeds }, (_, s) => s).filter((s) => runs.some((r) => r.variant === idA && r.seed === s) && runs.some((r) => r.variant === idB && r.seed === s));
    const values = (id: string, metric: string) => both.map((s) => metricValue(runs.find((r) => r.variant === id && r.seed === s) as RunRecord, metric));
    const result = compareGroups(
      { ...spec, labelA: labelA ?? label(idA), labelB: labelB ?? label(idB) },
      values(idA, c.metric), values(idB, metricB ?? c.metric),
    );
    return notes.length ? { ...result, reason: `${result.reason}. ${notes.join('; ')}` } : result;
  });
  const complete = runs.length === plan.variants.length * seeds;
  const rollup = rollUp(checks.map((c) => c.verdict));
  return { ...base, seeds, status: complete ? 'done' : 'incomplete', waitsFor: [], runs, checks, rollup, verdict: describeRollUp(rollup) };
}

/** Writes results.json, summary.md and report.html for `results` into `outDir`. */
export async function writeLabOutputs(outDir: string, results: LabResults): Promise<void> {
  writeAtomic(join(outDir, 'results.json'), `${finiteJSON(results, 1)}\n`);
  writeAtomic(join(outDir, 'summary.md'), renderSummary(results));
  writeAtomic(join(outDir, 'report.html'), await renderReport(results));
}
