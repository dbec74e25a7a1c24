/**
 * Where the lab's runs execute. A run is a pure function of (experiment, variant, seed, setup): an executor only
 * decides where it happens (this process, a pool of worker processes, or workers behind a queue) and reports
 * starts, steps and results back to the runner, which stores each result as it arrives.
 */
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { loadFashionMnist, type ImageSet } from './data/fashion-mnist.js';
import { loadCharCorpus, type CharCorpus } from './data/text.js';
import type { Experiment, RunContext, RunOutput } from './experiment.js';
import { EXPERIMENTS } from './experiments/index.js';

/** One run to execute: its place in the suite's schedule and its identity. */
export interface RunTask {
  /** Position in the schedule (0-based). */
  index: number;
  experiment: string;
  variant: string;
  seed: number;
  steps: number;
}

/** What a process needs, besides the task, to execute a run: the same for every run of a lab invocation. */
export interface RunSetup {
  backend: string;
  quick: boolean;
  /** Fashion-MNIST folder as resolved by the runner. */
  dataDir: string;
  textPath: string;
  /** Modules (paths or URLs) exporting `experiments: Experiment[]` beyond the built-in ones. */
  modules: string[];
}

/** Callbacks from an executor to the runner. `worker` numbers the executing worker from 1 (0: this process). */
export interface ExecutorEvents {
  start(task: RunTask, worker: number): void;
  step(task: RunTask, worker: number, step: number, loss: number): void;
  /** A finished run; the runner stores it. */
  done(task: RunTask, output: RunOutput, wallSeconds: number, worker: number): void;
  /** A run that failed for good (after its retry, where the executor retries). */
  failed(task: RunTask, reason: string, worker: number): void;
  log(line: string): void;
}

/** Runs a list of tasks somewhere. */
export interface RunExecutor {
  /** How many runs can execute at once (for the ETA). */
  readonly workers: number;
  /** Executes `tasks` (in order as far as the workers allow); resolves when all finished or the lab was stopped. */
  execute(tasks: RunTask[], events: ExecutorEvents, shouldStop: () => boolean): Promise<{ interrupted: boolean }>;
}

/** A module specifier for `import()`: file paths become file URLs, URLs and package names stay. */
export function moduleSpecifier(module: string): string {
  return /^[a-z][a-z0-9+.-]*:/i.test(module) || !/[\\/]/.test(module) ? module : pathToFileURL(resolve(module)).href;
}

/** The experiments known to a worker: the built-in ones, then those exported by `modules`. */
export async function loadExperiments(modules: readonly string[]): Promise<Map<string, Experiment>> {
  const known = new Map<string, Experiment>(EXPERIMENTS.map((e) => [e.id, e]));
  for (const m of modules) {
    const loaded = (await import(moduleSpecifier(m))) as { experiments?: unknown };
    if (!Array.isArray(loaded.experiments)) throw new Error(`normkit lab: module '${m}' does not export 'experiments' (an array of experiments)`);
    for (const e of loaded.experiments as Experiment[]) known.set(e.id, e);
  }
  return known;
}

/**
 * The data a run reads, loaded lazily once per process and shared by its runs (images and the text corpus are
 * read-only for the runs).
 */
export function dataContext(setup: Pick<RunSetup, 'quick' | 'dataDir' | 'textPath'>): Pick<RunContext, 'quick' | 'images' | 'text'> {
  let images: { train: ImageSet; test: ImageSet } | undefined;
  let text: CharCorpus | undefined;
  return {
    quick: setup.quick,
    images: () => (images ??= { train: loadFashionMnist(setup.dataDir, 'train'), test: loadFashionMnist(setup.dataDir, 'test') }),
    text: () => (text ??= loadCharCorpus(setup.textPath)),
  };
}

/** Executes one run of `experiment` in this process; returns its output and wall time in seconds. */
export async function executeRun(
  experiment: Experiment, variantId: string, seed: number, data: Pick<RunContext, 'quick' | 'images' | 'text'>,
  hooks: Pick<RunContext, 'onStep' | 'shouldStop'>,
): Promise<{ output: RunOutput; wallSeconds: number }> {
  const variant = experiment.plan(data.quick).variants.find((v) => v.id === variantId);
  if (variant === undefined) throw new Error(`normkit lab: experiment '${experiment.id}' has no variant '${variantId}'`);
  const started = Date.now();
  const output = await experiment.run(variant, seed, { ...data, ...hooks });
  return { output, wallSeconds: (Date.now() - started) / 1000 };
}

/** Strips what an Error carries over a process boundary down to a one-line reason. */
export function errorReason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
