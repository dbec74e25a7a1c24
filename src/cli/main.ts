#!/usr/bin/env node
/**
 * The `normkit` command.
 *
 *   normkit lab [experiment...] [--quick | --long] [--seeds N] [--out DIR] [--data DIR] [--backend cpu|wasm] [--resume]
 *   normkit lab --list
 *   normkit norms
 *   normkit demo            (= normkit lab --quick)
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
// Every method registers itself in the registry that `normkit norms` lists.
import '../index.js';
import { listNorms } from '../core/registry.js';
import { EXPERIMENTS, selectExperiments } from '../lab/experiments/index.js';
import { PlainProgress, TtyProgress } from '../lab/progress.js';
import { runLab } from '../lab/runner.js';

const USAGE = `normkit: every deep-learning normalization method for TensorFlow.js

Usage:
  normkit lab [experiment...] [options]   train small models with each normalization and test the papers' claims
  normkit lab --list                      list the experiments and their claims
  normkit norms                           list the registered normalization methods
  normkit demo                            the quick lab suite (same as: normkit lab --quick)

Lab options:
  --quick            small, short runs (the quick suite: at most 10 minutes on 2 cores)
                     without it, the default suite (longer runs, 28x28 images; about 2 hours on 2 cores)
  --long             the default suite plus the long tier: claims that need long runs (times in --list)
  --seeds N          seeds per variant (default: each experiment's own, 5 for image classifiers, 3 otherwise)
  --out DIR          output folder (default ./lab-out): report.html, results.json, summary.md, runs/
  --data DIR         Fashion-MNIST IDX folder (default: the embedded subset with --quick, else the Debian
                     package dataset-fashion-mnist's /usr/share/datasets/fashion-mnist when installed)
  --backend NAME     tfjs backend: wasm (default, fastest here) or cpu
  --resume           keep finished runs in DIR and continue (after Ctrl-C or a crash)
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
      const tier = e.tier === 'long' ? 'long tier (--long)' : 'quick and default suites';
      const time = e.estimatedMinutes !== undefined ? `; about ${e.estimatedMinutes} min at default size on 2 cores` : '';
      process.stdout.write(`${e.id}${missing.length ? ` (pending: waits for ${missing.join(', ')})` : ''}\n  ${e.title}\n  claim: ${e.claim}\n  ${tier}${time}\n\n`);
    }
    return;
  }
  const seeds = values.seeds === undefined ? undefined : Number(values.seeds);
  if (seeds !== undefined && (!Number.isInteger(seeds) || seeds < 1)) fail(`--seeds must be a positive integer, got '${values.seeds}'`);
  if (values.backend !== 'cpu' && values.backend !== 'wasm') fail(`--backend must be cpu or wasm, got '${values.backend}'`);
  let experiments;
  try {
    experiments = selectExperiments(positionals, { long: values.long });
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
  progress.log(`normkit lab: ${experiments.length} experiment(s), ${seeds ?? 'per-experiment'} seeds, ${values.quick ? 'quick' : values.long ? 'long' : 'default'} mode, backend ${values.backend}, output ${outDir}`);
  const results = await runLab({
    experiments, seeds, quick: values.quick, outDir, dataDir: values.data, backend: values.backend, resume: values.resume,
    progress, shouldStop: () => stopRequested,
  });
  process.off('SIGINT', onSigint);
  process.stdout.write('\n');
  for (const e of results.experiments) {
    const note = e.status === 'pending' ? `pending (waits for ${e.waitsFor.join(', ')})` : `${e.verdict}${e.status === 'incomplete' ? ' (incomplete)' : ''}`;
    process.stdout.write(`${e.id.padEnd(12)} ${note}\n`);
    for (const c of e.checks) process.stdout.write(`  ${c.verdict.padEnd(15)} ${c.description}\n`);
  }
  process.stdout.write(`\nreport: ${resolve(outDir, 'report.html')}\nsummary: ${resolve(outDir, 'summary.md')}\nresults: ${resolve(outDir, 'results.json')}\n`);
  if (results.meta.interrupted) {
    process.stdout.write(`interrupted: continue with  normkit lab ${args.filter((a) => a !== '--resume').join(' ')} --resume\n`);
    process.exitCode = 130;
  }
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
      return lab(rest);
    case 'demo':
      return lab(['--quick', ...rest]);
    case 'norms':
      return norms();
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
