#!/usr/bin/env node
/**
 * The `normkit` command.
 *
 *   normkit lab [experiment...] [--quick | --long] [--seeds N] [--out DIR] [--data DIR] [--backend cpu|wasm] [--resume]
 *               [--workers N | --queue redis://HOST:PORT] [--module FILE]
 *   normkit lab worker --queue redis://HOST:PORT [--module FILE] [--data DIR] [--lock-seconds S]
 *   normkit lab --list
 *   normkit norms
 *   normkit demo            (= normkit lab --quick)
 *   normkit playground [--port N] [--host ADDRESS]
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
// Every method registers itself in the registry that `normkit norms` lists.
import '../index.js';
import { listNorms } from '../core/registry.js';
import { EXPERIMENTS, selectExperiments } from '../lab/experiments/index.js';
import { PlainProgress, TtyProgress } from '../lab/progress.js';
import { runLab } from '../lab/runner.js';
import { servePlayground } from './playground.js';
import { DEFAULT_LOCK_MS, runQueueWorker } from '../lab/queue.js';
import { loadExperiments } from '../lab/execute.js';
import { planSeconds } from '../lab/experiment.js';

const USAGE = `normkit: every deep-learning normalization method for TensorFlow.js

Usage:
  normkit lab [experiment...] [options]   train small models with each normalization and test the papers' claims
  normkit lab worker --queue URL          take runs from a lab's queue (on any number of machines)
  normkit lab --list                      list the experiments and their claims
  normkit norms                           list the registered normalization methods
  normkit demo                            the quick lab suite (same as: normkit lab --quick)
  normkit playground [--port N] [--host A] serve the playground page: train two small CNNs with different
                                          normalizations in the browser and watch curves and activations

Lab options:
  --quick            small, short runs (the quick suite: about 7 minutes on 2 cores)
                     without it, the default suite (longer runs, 28x28 images; about 45 minutes on 2 cores)
  --long             the default suite plus the long tier: claims that need long runs (times in --list)
  --seeds N          seeds per variant (default: each experiment's own, 5 for image classifiers, 3 otherwise)
  --out DIR          output folder (default ./lab-out): report.html, results.json, summary.md, runs/
  --data DIR         Fashion-MNIST IDX folder (default: the embedded subset with --quick, else the Debian
                     package dataset-fashion-mnist's /usr/share/datasets/fashion-mnist when installed)
  --backend NAME     tfjs backend: wasm (default, fastest here) or cpu
  --resume           keep finished runs in DIR and continue (after Ctrl-C or a crash)
  --workers N        worker processes running the runs (default: one per core, here ${availableParallelism()});
                     1 runs them in this process. Results are the same whatever N.
  --queue URL        put the runs on a BullMQ queue in Redis (redis://HOST:PORT) instead, for
                     'normkit lab worker' processes on any number of machines; results land in --out
  --module FILE      a module exporting \`experiments\` (your own experiments; also for workers); its
                     experiments are the default then, and any built-in one can be named too

Worker options (normkit lab worker):
  --queue URL        the Redis URL the lab was started with (required)
  --module FILE      a module exporting \`experiments\`, when the lab runs your own experiments
  --data DIR         this machine's Fashion-MNIST folder when the lab's path does not exist here
  --lock-seconds S   a dead worker's run goes back to the queue after about S seconds (default ${DEFAULT_LOCK_MS / 1000})
`;

function fail(message: string): never {
  process.stderr.write(`normkit: ${message}\n\n${USAGE}`);
  process.exit(2);
}

async function lab(args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        quick: { type: 'boolean', default: false },
        seeds: { type: 'string' },
        long: { type: 'boolean', default: false },
        out: { type: 'string', default: 'lab-out' },
        data: { type: 'string' },
        backend: { type: 'string', default: 'wasm' },
        resume: { type: 'boolean', default: false },
        list: { type: 'boolean', default: false },
        workers: { type: 'string' },
        queue: { type: 'string' },
        module: { type: 'string', multiple: true, default: [] },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (values.list) {
    for (const e of EXPERIMENTS) {
      const missing = await e.missing();
      const tier = e.tier === 'long' ? 'long tier (--long)' : e.tier === 'default' ? 'default suite (too short to have power in --quick)' : 'quick and default suites';
      // Compute minutes from the plans' measured seconds per step; 2 workers share them on 2 cores.
      const minutes = (quick: boolean) => planSeconds(e.plan(quick)) / 60;
      const time = Number.isFinite(minutes(false)) ? `; about ${minutes(true).toFixed(1)} min quick, ${Math.round(minutes(false))} min at ${e.tier === 'long' ? 'long' : 'default'} size (compute on one core; halve for the wall time of 2 workers)` : '';
      process.stdout.write(`${e.id}${missing.length ? ` (pending: waits for ${missing.join(', ')})` : ''}\n  ${e.title}\n  claim: ${e.claim}\n  ${tier}${time}\n\n`);
    }
    const total = (quick: boolean, long: boolean) => selectExperiments([], { long, quick }).reduce((s, e) => s + planSeconds(e.plan(quick)), 0) / 60;
    const wall = (minutes: number) => `${Math.round(minutes)} min of compute, about ${Math.round(minutes / 2)} min of wall time with 2 workers on 2 cores`;
    process.stdout.write(`suites: --quick ${wall(total(true, false))}; default ${wall(total(false, false))}; --long ${wall(total(false, true))}\n`);
    return;
  }
  const seeds = values.seeds === undefined ? undefined : Number(values.seeds);
  if (seeds !== undefined && (!Number.isInteger(seeds) || seeds < 1)) fail(`--seeds must be a positive integer, got '${values.seeds}'`);
  if (values.backend !== 'cpu' && values.backend !== 'wasm') fail(`--backend must be cpu or wasm, got '${values.backend}'`);
  const workers = values.workers === undefined ? availableParallelism() : Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1) fail(`--workers must be a positive integer, got '${values.workers}'`);
  if (values.queue !== undefined && values.workers !== undefined) fail('--workers and --queue exclude each other (queue workers are started with: normkit lab worker)');
  if (values.queue !== undefined && !/^rediss?:\/\/\S+/.test(values.queue)) fail(`--queue must be a Redis URL such as redis://HOST:PORT, got '${values.queue}'`);
  let experiments;
  try {
    if (values.module.length === 0) {
      experiments = selectExperiments(positionals, { long: values.long, quick: values.quick });
    } else {
      // With --module: its experiments by default, and any built-in or module experiment by id.
      const known = await loadExperiments(values.module.map((m) => resolve(m)));
      const own = [...known.values()].filter((e) => !EXPERIMENTS.includes(e));
      experiments = positionals.length === 0 ? own : positionals.map((id) => {
        const found = known.get(id);
        if (found === undefined) throw new Error(`normkit lab: unknown experiment '${id}'; known: ${[...known.keys()].join(', ')}`);
        return found;
      });
    }
  } catch (e) {
    fail((e as Error).message);
  }
  const outDir = resolve(values.out);
  const progress = process.stdout.isTTY ? new TtyProgress() : new PlainProgress();
  let stopRequested = false;
  const onSigint = () => {
    if (stopRequested) process.exit(130);
    stopRequested = true;
    progress.log('\nstopping after the current step (Ctrl-C again to quit at once); finished runs are kept, continue with --resume');
  };
  process.on('SIGINT', onSigint);
  const where = values.queue !== undefined ? `queue ${values.queue}` : workers === 1 ? 'in this process' : `${workers} worker processes`;
  progress.log(`normkit lab: ${experiments.length} experiment(s), ${seeds ?? 'per-experiment'} seeds, ${values.quick ? 'quick' : values.long ? 'long' : 'default'} mode, backend ${values.backend}, ${where}, output ${outDir}`);
  const results = await runLab({
    experiments, seeds, quick: values.quick, outDir, dataDir: values.data, backend: values.backend, resume: values.resume,
    progress, shouldStop: () => stopRequested, workers, queue: values.queue, experimentModules: values.module.map((m) => resolve(m)),
  });
  process.off('SIGINT', onSigint);
  process.stdout.write('\n');
  for (const e of results.experiments) {
    const note = e.status === 'pending' ? `pending (waits for ${e.waitsFor.join(', ')})` : `${e.verdict}${e.status === 'incomplete' ? ' (incomplete)' : ''}`;
    process.stdout.write(`${e.id.padEnd(12)} ${note}\n`);
    for (const c of e.checks) process.stdout.write(`  ${c.verdict.padEnd(15)} ${c.description}\n`);
  }
  process.stdout.write(`\nreport: ${resolve(outDir, 'report.html')}\nsummary: ${resolve(outDir, 'summary.md')}\nresults: ${resolve(outDir, 'results.json')}\n`);
  for (const f of results.meta.failedRuns ?? []) process.stdout.write(`failed: ${f.experiment} ${f.variant} seed ${f.seed}: ${f.reason}\n`);
  if ((results.meta.failedRuns ?? []).length > 0 && !results.meta.interrupted) process.exitCode = 1;
  if (results.meta.interrupted) {
    process.stdout.write(`interrupted: continue with  normkit lab ${args.filter((a) => a !== '--resume').join(' ')} --resume\n`);
    process.exitCode = 130;
  }
}

async function playground(args: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        port: { type: 'string', default: '8080' },
        host: { type: 'string', default: '127.0.0.1' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (e) {
    fail((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535) fail(`--port must be an integer in 0..65535 (0: any free port), got '${values.port}'`);
  const { url } = await servePlayground({ port, host: values.host });
  process.stdout.write(`normkit playground: ${url}\n(Ctrl-C to stop)\n`);
}

/** `normkit lab worker`: takes runs from a lab's queue until Ctrl-C. */
async function labWorker(args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        queue: { type: 'string' },
        module: { type: 'string', multiple: true, default: [] },
        data: { type: 'string' },
        'lock-seconds': { type: 'string', default: String(DEFAULT_LOCK_MS / 1000) },
      },
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const { values } = parsed;
  if (values.queue === undefined || !/^rediss?:\/\/\S+/.test(values.queue)) fail(`lab worker needs --queue redis://HOST:PORT, got '${values.queue ?? ''}'`);
  const lockSeconds = Number(values['lock-seconds']);
  if (!Number.isFinite(lockSeconds) || lockSeconds < 0.5) fail(`--lock-seconds must be a number of seconds >= 0.5, got '${values['lock-seconds']}'`);
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  const worker = await runQueueWorker(values.queue, {
    lockMs: lockSeconds * 1000, modules: values.module.map((m) => resolve(m)), dataDir: values.data, log,
  });
  log(`normkit lab worker ${worker.name}: waiting for runs on ${values.queue} (Ctrl-C to stop after the current run)`);
  let stopping = false;
  process.on('SIGINT', () => {
    // A second Ctrl-C quits at once: the run's lock then expires and another worker retries it.
    if (stopping) process.exit(130);
    stopping = true;
    log('stopping after the current run (Ctrl-C again to quit now; the run then goes back to the queue)');
    void worker.close().then(() => process.exit(0));
  });
}

function norms(): void {
  for (const n of listNorms()) process.stdout.write(`${n.name.padEnd(32)} ${n.kind.padEnd(18)} ${n.description}\n`);
}

async function main(argv: string[]): Promise<void> {
  // Production mode: no debug checks, and no "install tfjs-node" banner in the command's output.
  tf.enableProdMode();
  const [command, ...rest] = argv;
  switch (command) {
    case 'lab':
      return rest[0] === 'worker' ? labWorker(rest.slice(1)) : lab(rest);
    case 'demo':
      return lab(['--quick', ...rest]);
    case 'norms':
      return norms();
    case 'playground':
      return playground(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      fail(`unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`normkit: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
