/**
 * The lab across machines through BullMQ (a Redis-backed job queue): `normkit lab --queue redis://HOST:PORT`
 * puts each run on the queue as a job and stores the results as the workers return them;
 * `normkit lab worker --queue redis://HOST:PORT` (on any number of machines) takes jobs one at a time and
 * executes them. A worker that dies mid-run stops renewing its job's lock; another worker's stalled-job check
 * then puts the job back on the queue (once; a job that stalls twice fails). Finished jobs are kept on the queue
 * with their results for a week, so a coordinator that was stopped collects them with --resume.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { Queue, QueueEvents, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import * as tf from '@tensorflow/tfjs-core';
import { loadLabBackend } from './backends.js';
import { NormkitError } from '../core/errors.js';
import { resolveFashionMnistDir } from './data/fashion-mnist.js';
import { DEFAULT_TEXT_PATH } from './data/text.js';
import { dataContext, errorReason, executeRun, loadExperiments, type ExecutorEvents, type RunExecutor, type RunSetup, type RunTask } from './execute.js';
import type { Experiment, RunOutput } from './experiment.js';

/** The queue's default name. */
export const DEFAULT_QUEUE_NAME = 'normkit-lab';
/** A job's lock lasts this long unless renewed; a dead worker's job is retried after about this time. */
export const DEFAULT_LOCK_MS = 30_000;
/** How long finished jobs (and their results) stay on the queue. */
const KEEP_SECONDS = 7 * 24 * 3600;

/** Options shared by the queue's coordinator and workers. */
export interface QueueOptions {
  /** Queue name (default 'normkit-lab'); coordinator and workers must agree. */
  name?: string;
  /** Job lock duration in ms (workers; default 30 s): a dead worker's run is retried after about this long. */
  lockMs?: number;
}

/** A job's payload: one run and the setup it runs under. */
interface JobData {
  experiment: string;
  variant: string;
  seed: number;
  setup: RunSetup;
}

/** A job's result. */
interface JobResult {
  output: RunOutput;
  wallSeconds: number;
  worker: string;
}

/** Progress a worker reports while a job runs. */
interface JobProgress {
  worker: string;
  step: number;
  loss: number;
}

/** Throws unless `url` is a Redis URL (redis:// or rediss://). */
export function checkQueueURL(where: string, url: string): void {
  if (!/^rediss?:\/\/[^/\s]+/.test(url)) throw new NormkitError(where, 'queue', 'a Redis URL such as redis://HOST:PORT', url);
}

/** Opens a connection to the queue's Redis (BullMQ requires maxRetriesPerRequest: null). */
function connectQueue(where: string, url: string): Redis {
  checkQueueURL(where, url);
  return new Redis(url, { maxRetriesPerRequest: null });
}

/** The queue's id for a run: identical runs of the same plan share one job (BullMQ ids must not contain ':'). */
function jobId(planHash: string, task: RunTask): string {
  return [planHash, task.experiment, task.variant, `s${task.seed}`].join('.');
}

/** Puts runs on a BullMQ queue and collects their results (the coordinator side). */
export class QueueExecutor implements RunExecutor {
  /** Unknown until workers report; the progress display counts the workers it sees. */
  readonly workers = 1;

  constructor(
    private readonly url: string,
    private readonly setup: RunSetup,
    private readonly planHash: (experiment: string) => string,
    private readonly options: QueueOptions = {},
  ) {
    checkQueueURL('runLab', url);
  }

  async execute(tasks: RunTask[], events: ExecutorEvents, shouldStop: () => boolean): Promise<{ interrupted: boolean }> {
    const name = this.options.name ?? DEFAULT_QUEUE_NAME;
    const connections = [connectQueue('runLab', this.url), connectQueue('runLab', this.url)];
    const queue = new Queue<JobData, JobResult>(name, { connection: connections[0] });
    const queueEvents = new QueueEvents(name, { connection: connections[1] });
    const byId = new Map<string, RunTask>();
    const workerNumbers = new Map<string, number>();
    const started = new Set<string>();
    const workerOf = (name: string) => {
      if (!workerNumbers.has(name)) {
        workerNumbers.set(name, workerNumbers.size + 1);
        events.log(`queue worker ${workerNumbers.size}: ${name}`);
      }
      return workerNumbers.get(name) as number;
    };
    try {
      await queueEvents.waitUntilReady();
      queueEvents.on('progress', ({ jobId, data }) => {
        const task = byId.get(jobId);
        const p = data as Partial<JobProgress>;
        if (task === undefined || typeof p.worker !== 'string') return;
        const worker = workerOf(p.worker);
        if (!started.has(jobId) || p.step === 0) {
          started.add(jobId);
          events.start(task, worker);
        }
        if (typeof p.step === 'number' && p.step > 0 && typeof p.loss === 'number') events.step(task, worker, p.step, p.loss);
      });
      const waits = [];
      for (const task of tasks) {
        const id = jobId(this.planHash(task.experiment), task);
        byId.set(id, task);
        const job = await queue.add('run', { experiment: task.experiment, variant: task.variant, seed: task.seed, setup: this.setup }, {
          jobId: id, attempts: 1, removeOnComplete: { age: KEEP_SECONDS }, removeOnFail: { age: KEEP_SECONDS },
        });
        // A job that failed in an earlier invocation is tried again (the same id would otherwise stay failed).
        if ((await job.getState()) === 'failed') await job.retry('failed');
        waits.push(job.waitUntilFinished(queueEvents).then(
          (result: JobResult) => {
            const worker = workerOf(result.worker);
            if (!started.has(id)) events.start(task, worker);
            started.add(id);
            events.done(task, result.output, result.wallSeconds, worker);
          },
          (e: unknown) => events.failed(task, errorReason(e), 0),
        ));
      }
      const all = Promise.all(waits).then(() => false);
      let poll: NodeJS.Timeout | undefined;
      const stop = new Promise<boolean>((resolve) => {
        poll = setInterval(() => shouldStop() && resolve(true), 100);
      });
      const interrupted = await Promise.race([all, stop]);
      clearInterval(poll);
      if (interrupted) events.log('the queued runs stay on the queue: workers keep executing them, and --resume collects their results');
      return { interrupted };
    } finally {
      await queueEvents.close();
      await queue.close();
      for (const c of connections) c.disconnect();
    }
  }
}

/** Options of {@link runQueueWorker}. */
export interface QueueWorkerOptions extends QueueOptions {
  /** Modules (paths or URLs) exporting `experiments`, beyond the built-in ones. */
  modules?: string[];
  /** This machine's Fashion-MNIST folder and text corpus when the coordinator's paths do not exist here. */
  dataDir?: string;
  textPath?: string;
  /** Called for every line worth showing (job start and end). */
  log?: (line: string) => void;
}

/** A running queue worker; `close()` lets it finish its current run, then disconnects. */
export interface QueueWorkerHandle {
  readonly name: string;
  close(): Promise<void>;
}

/**
 * Takes the lab's runs from the queue at `url`, one at a time, until closed. Each job runs under the setup the
 * coordinator sent (backend, quick, data); data paths that do not exist on this machine are replaced by this
 * machine's (`dataDir`, `textPath`, or the defaults).
 */
export async function runQueueWorker(url: string, options: QueueWorkerOptions = {}): Promise<QueueWorkerHandle> {
  const lockMs = options.lockMs ?? DEFAULT_LOCK_MS;
  if (!Number.isFinite(lockMs) || lockMs < 500) throw new NormkitError('runQueueWorker', 'lockMs', 'at least 500 (ms)', lockMs);
  const connection = connectQueue('runQueueWorker', url);
  const name = `${hostname()}/${process.pid}`;
  const log = options.log ?? (() => {});
  let experiments: Map<string, Experiment> | undefined;
  const dataBySetup = new Map<string, ReturnType<typeof dataContext>>();
  tf.enableProdMode();

  const processor = async (job: Job<JobData, JobResult>): Promise<JobResult> => {
    const { experiment: id, variant, seed, setup } = job.data;
    experiments ??= await loadExperiments([...setup.modules, ...(options.modules ?? [])]);
    const experiment = experiments.get(id);
    if (experiment === undefined) throw new Error(`experiment '${id}' is not known to this worker (start it with --module for custom experiments)`);
    await loadLabBackend(setup.backend);
    const local: RunSetup = {
      ...setup,
      dataDir: existsSync(setup.dataDir) ? setup.dataDir : options.dataDir ?? resolveFashionMnistDir(undefined, !setup.quick),
      textPath: existsSync(setup.textPath) ? setup.textPath : options.textPath ?? DEFAULT_TEXT_PATH,
    };
    const key = JSON.stringify([local.quick, local.dataDir, local.textPath]);
    if (!dataBySetup.has(key)) dataBySetup.set(key, dataContext(local));
    log(`${id} ${variant} seed ${seed}: start`);
    await job.updateProgress({ worker: name, step: 0, loss: NaN } satisfies JobProgress);
    let last = 0;
    const { output, wallSeconds } = await executeRun(experiment, variant, seed, dataBySetup.get(key) as ReturnType<typeof dataContext>, {
      shouldStop: () => false,
      onStep: (step, loss) => {
        const now = Date.now();
        if (now - last < 1000) return;
        last = now;
        void job.updateProgress({ worker: name, step, loss } satisfies JobProgress).catch(() => {});
      },
    });
    log(`${id} ${variant} seed ${seed}: done in ${wallSeconds.toFixed(1)}s`);
    return { output, wallSeconds, worker: name };
  };

  const worker = new Worker<JobData, JobResult>(options.name ?? DEFAULT_QUEUE_NAME, processor, {
    connection, concurrency: 1, lockDuration: lockMs, stalledInterval: Math.max(250, Math.floor(lockMs / 2)), maxStalledCount: 1,
  });
  worker.on('failed', (job, e) => {
    log(`${job?.data.experiment} ${job?.data.variant} seed ${job?.data.seed}: failed: ${e.message}`);
  });
  await worker.waitUntilReady();
  return {
    name,
    close: async () => {
      await worker.close();
      connection.disconnect();
    },
  };
}
