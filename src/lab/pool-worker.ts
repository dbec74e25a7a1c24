/**
 * Entry point of a lab worker process (forked by the pool): selects the backend, then executes the runs it is
 * sent, one at a time, reporting steps and results over the IPC channel. It stops its current run at the next
 * step on a 'stop' message or SIGINT (a terminal's Ctrl-C reaches the whole process group), and exits when the
 * parent goes away.
 */
import * as tf from '@tensorflow/tfjs-core';
// The package root registers every normalization method (the experiments look them up by name).
import '../index.js';
import { loadLabBackend } from './backends.js';
import { dataContext, errorReason, executeRun, loadExperiments, type RunSetup } from './execute.js';
import type { Experiment } from './experiment.js';
import { LabInterrupted } from './train.js';
import type { ParentMessage, WorkerMessage } from './pool.js';

let stopping = false;
let experiments: Map<string, Experiment> | undefined;
let data: ReturnType<typeof dataContext> | undefined;
// Step messages are rate-limited: the progress display needs a few per second, not one per step.
const STEP_MESSAGE_MS = 200;

function send(message: WorkerMessage): void {
  process.send?.(message);
}

async function init(setup: RunSetup): Promise<void> {
  tf.enableProdMode();
  await loadLabBackend(setup.backend);
  experiments = await loadExperiments(setup.modules);
  data = dataContext(setup);
  send({ type: 'ready' });
}

async function run(id: number, experimentId: string, variant: string, seed: number): Promise<void> {
  const experiment = experiments?.get(experimentId);
  if (experiment === undefined || data === undefined) {
    send({ type: 'failed', id, reason: `experiment '${experimentId}' is not known to the worker processes (pass its module to the lab)` });
    return;
  }
  let lastSent = 0;
  try {
    const { output, wallSeconds } = await executeRun(experiment, variant, seed, data, {
      shouldStop: () => stopping,
      onStep: (step, loss) => {
        const now = Date.now();
        if (now - lastSent < STEP_MESSAGE_MS) return;
        lastSent = now;
        send({ type: 'step', id, step, loss });
      },
    });
    send({ type: 'done', id, output, wallSeconds });
  } catch (e) {
    send(e instanceof LabInterrupted ? { type: 'interrupted', id } : { type: 'failed', id, reason: errorReason(e) });
  }
}

process.on('SIGINT', () => {
  stopping = true;
});
process.on('disconnect', () => process.exit(0));
process.on('message', (message: ParentMessage) => {
  switch (message.type) {
    case 'init':
      init(message.setup).catch((e: unknown) => {
        send({ type: 'fatal', reason: errorReason(e) });
        process.exit(1);
      });
      break;
    case 'run':
      void run(message.id, message.experiment, message.variant, message.seed);
      break;
    case 'stop':
      stopping = true;
      break;
    case 'exit':
      process.disconnect();
      break;
  }
});
