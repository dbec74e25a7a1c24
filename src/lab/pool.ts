/**
 * A pool of lab worker processes on this machine (tfjs's wasm backend is single-threaded in Node, so one process
 * per core is how the lab uses every core). Each worker executes one run at a time; a worker that dies during a
 * run is replaced and the run retried once, then reported failed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RunOutput } from './experiment.js';
import type { ExecutorEvents, RunExecutor, RunSetup, RunTask } from './execute.js';

/** Messages from the pool to a worker process. */
export type ParentMessage =
  | { type: 'init'; setup: RunSetup }
  | { type: 'run'; id: number; experiment: string; variant: string; seed: number }
  | { type: 'stop' }
  | { type: 'exit' };

/** Messages from a worker process to the pool. */
export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'step'; id: number; step: number; loss: number }
  | { type: 'done'; id: number; output: RunOutput; wallSeconds: number }
  | { type: 'interrupted'; id: number }
  | { type: 'failed'; id: number; reason: string }
  | { type: 'fatal'; reason: string };

const WORKER_ENTRY = fileURLToPath(new URL('./pool-worker.js', import.meta.url));
/** How often the pool polls `shouldStop` (ms). */
const STOP_POLL_MS = 100;
/** How long the first runs wait for every worker process to be ready. */
const STARTUP_WAIT_MS = 20_000;
/** Attempts per run when its worker process dies (the first try and one retry). */
const ATTEMPTS = 2;

interface Slot {
  worker: number;
  child: ChildProcess;
  ready: boolean;
  task?: RunTask;
  /** Set when the pool itself ends the process (no retry then). */
  retiring: boolean;
}

/** Runs tasks on `workers` forked processes. */
export class ProcessPool implements RunExecutor {
  constructor(readonly workers: number, private readonly setup: RunSetup) {}

  execute(tasks: RunTask[], events: ExecutorEvents, shouldStop: () => boolean): Promise<{ interrupted: boolean }> {
    const pending = [...tasks];
    const attempts = new Map<number, number>();
    const slots: Slot[] = [];
    let stopping = false;
    let finished = false;
    let dispatching = false;
    const startupDeadline = Date.now() + STARTUP_WAIT_MS;

    return new Promise((resolvePromise, reject) => {
      const finish = (error?: Error) => {
        if (finished) return;
        finished = true;
        clearInterval(poll);
        for (const s of slots) {
          s.retiring = true;
          if (error !== undefined) s.child.kill('SIGKILL');
          else if (s.child.connected) s.child.send({ type: 'exit' } satisfies ParentMessage);
        }
        // Resolve once every process has exited, so no worker outlives the lab.
        const alive = slots.filter((s) => s.child.exitCode === null && s.child.signalCode === null);
        let left = alive.length;
        const settle = () => (error !== undefined ? reject(error) : resolvePromise({ interrupted: stopping }));
        if (left === 0) settle();
        for (const s of alive) s.child.once('exit', () => --left === 0 && settle());
      };

      const dispatch = () => {
        if (finished) return;
        // The first runs wait until every worker is ready (at most STARTUP_WAIT_MS), so that they spread over all
        // workers instead of going to whichever booted first; a worker that is slower still joins when ready.
        if (!dispatching) {
          const booting = slots.some((s) => s !== undefined && !s.ready && s.child.exitCode === null && s.child.signalCode === null);
          if (booting && Date.now() < startupDeadline && !stopping) return;
          dispatching = true;
        }
        for (const s of slots) {
          if (stopping || !s.ready || s.task !== undefined || pending.length === 0) continue;
          const task = pending.shift() as RunTask;
          s.task = task;
          events.start(task, s.worker);
          s.child.send({ type: 'run', id: task.index, experiment: task.experiment, variant: task.variant, seed: task.seed } satisfies ParentMessage);
        }
        if (slots.every((s) => s.task === undefined) && (pending.length === 0 || stopping)) finish();
      };

      const spawn = (worker: number) => {
        const child = fork(WORKER_ENTRY, [], {
          // Node's test-runner flags must not turn a worker into a test process; other flags (--import) carry over.
          execArgv: process.execArgv.filter((a) => !a.startsWith('--test')),
          stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
          serialization: 'advanced',
        });
        const slot: Slot = { worker, child, ready: false, retiring: false };
        slots[worker - 1] = slot;
        const forward = (chunk: Buffer) => {
          for (const line of chunk.toString().split('\n')) if (line.trim().length > 0) events.log(`[worker ${worker}] ${line}`);
        };
        child.stdout?.on('data', forward);
        child.stderr?.on('data', forward);
        child.on('message', (m: WorkerMessage) => {
          if (m.type === 'ready') {
            slot.ready = true;
            dispatch();
            return;
          }
          if (m.type === 'fatal') {
            finish(new Error(`normkit lab: worker ${worker} could not start: ${m.reason}`));
            return;
          }
          const task = slot.task;
          if (task === undefined || task.index !== m.id) return;
          if (m.type === 'step') {
            events.step(task, worker, m.step, m.loss);
            return;
          }
          slot.task = undefined;
          if (m.type === 'done') events.done(task, m.output, m.wallSeconds, worker);
          else if (m.type === 'failed') events.failed(task, m.reason, worker);
          // 'interrupted': the run is simply not stored; --resume redoes it.
          dispatch();
        });
        child.on('exit', (code, signal) => {
          if (slot.retiring || finished) return;
          const task = slot.task;
          slot.task = undefined;
          const how = signal !== null ? `signal ${signal}` : `exit status ${code}`;
          if (task !== undefined) {
            const tries = (attempts.get(task.index) ?? 0) + 1;
            attempts.set(task.index, tries);
            if (tries < ATTEMPTS && !stopping) {
              events.log(`worker ${worker} died (${how}) during ${task.experiment} ${task.variant} seed ${task.seed}; retrying the run`);
              pending.unshift(task);
            } else {
              events.failed(task, `its worker process died (${how}) on ${tries} attempt(s)`, worker);
            }
          } else {
            events.log(`worker ${worker} died (${how}) between runs`);
          }
          if (!stopping && pending.length > 0) spawn(worker);
          dispatch();
        });
        child.send({ type: 'init', setup: this.setup } satisfies ParentMessage);
      };

      const poll = setInterval(() => {
        if (!dispatching) dispatch();
        if (stopping || !shouldStop()) return;
        stopping = true;
        for (const s of slots) if (s.child.connected) s.child.send({ type: 'stop' } satisfies ParentMessage);
        dispatch();
      }, STOP_POLL_MS);

      const count = Math.max(1, Math.min(this.workers, tasks.length));
      if (tasks.length === 0) {
        finish();
        return;
      }
      for (let w = 1; w <= count; w++) spawn(w);
    });
  }
}
