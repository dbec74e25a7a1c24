/**
 * The lab's live progress: cli-progress bars on a terminal (the suite, and one bar per worker showing its run),
 * plain lines otherwise (logs, CI), nothing in tests; and the suite's ETA.
 */
import cliProgress from 'cli-progress';

/** A run in the suite's plan, as the ETA sees it. */
export interface PlannedRun {
  experiment: string;
  variant: string;
  steps: number;
  /** The plan's measured seconds per step (ExperimentPlan.secondsPerStep), used until this lab measures its own. */
  secondsPerStep?: number;
}

/** Where the runner reports progress. `worker` numbers the worker running the run (0: this process). */
export interface ProgressSink {
  /** A run starts: `runIndex` of `runCount` runs in the suite (1-based, the plan's order). */
  startRun(info: { experiment: string; variant: string; seed: number; runIndex: number; runCount: number; steps: number; worker?: number }): void;
  step(step: number, loss: number, worker?: number): void;
  endRun(summary: string, worker?: number): void;
  log(line: string): void;
  stop(): void;
  /** The runs still to do, in order, and how many run at once (for the suite's ETA). */
  setPlan?(plan: { runs: PlannedRun[]; workers: number }): void;
}

/** A sink that prints nothing (tests). */
export const silentProgress: ProgressSink = { startRun() {}, step() {}, endRun() {}, log() {}, stop() {} };

/** Seconds as "3m05s" ("?" when unknown). */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const whole = Math.round(s);
  const m = Math.floor(whole / 60);
  return m > 0 ? `${m}m${String(whole % 60).padStart(2, '0')}s` : `${whole}s`;
}

interface Measured {
  seconds: number;
  steps: number;
}

/**
 * The suite's remaining time. Each run costs its steps times a seconds-per-step rate measured on the runs of the
 * same experiment and variant (finished runs and the steps done so far by running ones), else of the same
 * experiment, else the plan's own measured figure (the one `normkit lab --list` estimates from), else the rate of
 * every measured run. The runs left are then assigned in order to the first free worker
 * (each busy worker is free when its current run ends), and the ETA is when the last worker finishes. The plan
 * interleaves the experiments so that every experiment's cost is measured early in the suite.
 */
export class SuiteEta {
  private runs: PlannedRun[] = [];
  private workers = 1;
  private readonly started = new Set<number>();
  private readonly finished = new Map<string, Measured>();
  private readonly running = new Map<number, { run: number; since: number; step: number }>();

  constructor(private readonly now: () => number = () => Date.now() / 1000) {}

  setPlan(runs: PlannedRun[], workers: number): void {
    this.runs = runs;
    this.workers = Math.max(1, workers);
  }

  /** Run `run` (0-based index in the plan) starts on `worker`. */
  start(run: number, worker: number): void {
    this.started.add(run);
    this.running.set(worker, { run, since: this.now(), step: 0 });
    // A queue's workers are known only as they appear.
    this.workers = Math.max(this.workers, this.running.size);
  }

  step(worker: number, step: number): void {
    const r = this.running.get(worker);
    if (r !== undefined) r.step = step;
  }

  /** The run on `worker` ended after `step` steps (its last reported step when omitted). */
  finish(worker: number): void {
    const r = this.running.get(worker);
    if (r === undefined) return;
    this.running.delete(worker);
    const plan = this.runs[r.run];
    if (plan === undefined) return;
    // A finished run counts in full: its evaluations and set-up are part of its cost per step.
    for (const key of this.keys(plan)) {
      const m = this.finished.get(key) ?? { seconds: 0, steps: 0 };
      m.seconds += this.now() - r.since;
      m.steps += plan.steps;
      this.finished.set(key, m);
    }
  }

  private keys(p: PlannedRun): string[] {
    return [`${p.experiment}\u0000${p.variant}`, p.experiment, ''];
  }

  /** Seconds per step for `p`'s experiment and variant (NaN before anything was measured or planned). */
  rate(p: PlannedRun): number {
    const now = this.now();
    for (const key of this.keys(p)) {
      if (key === '' && p.secondsPerStep !== undefined && Number.isFinite(p.secondsPerStep)) return p.secondsPerStep;
      let { seconds, steps } = this.finished.get(key) ?? { seconds: 0, steps: 0 };
      for (const r of this.running.values()) {
        const q = this.runs[r.run];
        if (q !== undefined && r.step > 0 && this.keys(q).includes(key)) {
          seconds += now - r.since;
          steps += r.step;
        }
      }
      if (steps > 0) return seconds / steps;
    }
    return NaN;
  }

  /** Estimated seconds until the suite ends. */
  estimate(): number {
    const free: number[] = [];
    for (const r of this.running.values()) {
      const p = this.runs[r.run];
      free.push(p === undefined ? 0 : Math.max(0, (p.steps - r.step) * this.rate(p)));
    }
    while (free.length < this.workers) free.push(0);
    for (let i = 0; i < this.runs.length; i++) {
      if (this.started.has(i)) continue;
      let w = 0;
      for (let k = 1; k < free.length; k++) if (free[k] < free[w]) w = k;
      free[w] += this.runs[i].steps * this.rate(this.runs[i]);
    }
    return Math.max(0, ...free);
  }
}

/** Plain progress lines: a start and an end line per run, and a status line at most every `everySeconds`. */
export class PlainProgress implements ProgressSink {
  private last = 0;
  private readonly eta = new SuiteEta();
  private readonly current = new Map<number, { label: string; steps: number; step: number; loss: number }>();
  private runCount = 0;
  private done = 0;

  constructor(private readonly write: (line: string) => void = (l) => process.stdout.write(`${l}\n`), private readonly everySeconds = 5) {}

  setPlan(plan: { runs: PlannedRun[]; workers: number }): void {
    this.eta.setPlan(plan.runs, plan.workers);
  }

  startRun(info: Parameters<ProgressSink['startRun']>[0]): void {
    const worker = info.worker ?? 0;
    const label = `[${info.runIndex}/${info.runCount}]${worker > 0 ? ` w${worker}` : ''} ${info.experiment} ${info.variant} seed ${info.seed}`;
    this.runCount = info.runCount;
    this.current.set(worker, { label, steps: info.steps, step: 0, loss: NaN });
    this.eta.start(info.runIndex - 1, worker);
    this.write(`${label}: start (${info.steps} steps)`);
  }

  step(step: number, loss: number, worker = 0): void {
    const c = this.current.get(worker);
    if (c !== undefined) Object.assign(c, { step, loss });
    this.eta.step(worker, step);
    if (Date.now() - this.last < this.everySeconds * 1000) return;
    this.last = Date.now();
    const runs = [...this.current.values()].map((r) => `${r.label}: step ${r.step}/${r.steps} loss ${r.loss.toFixed(4)}`);
    this.write(`${runs.join(' | ')} | ${this.done}/${this.runCount} runs done, ETA suite ${formatSeconds(this.eta.estimate())}`);
  }

  endRun(summary: string, worker = 0): void {
    this.eta.finish(worker);
    this.done++;
    const c = this.current.get(worker);
    this.current.delete(worker);
    this.write(`${c?.label ?? `worker ${worker}`}: ${summary}`);
  }

  log(line: string): void {
    this.write(line);
  }

  stop(): void {}
}

/** Live bars on a terminal: the suite (runs done, ETA) and one bar per worker with its run's steps and loss. */
export class TtyProgress implements ProgressSink {
  private readonly multi = new cliProgress.MultiBar(
    {
      format: '{label} |{bar}| {value}/{total} {unit} {info}',
      hideCursor: true,
      clearOnComplete: true,
      barsize: 20,
      autopadding: true,
    },
    cliProgress.Presets.shades_classic,
  );
  private suite: cliProgress.SingleBar | undefined;
  private readonly bars = new Map<number, { bar: cliProgress.SingleBar; label: string }>();
  private readonly eta = new SuiteEta();
  private done = 0;
  private lastEta = 0;

  setPlan(plan: { runs: PlannedRun[]; workers: number }): void {
    this.eta.setPlan(plan.runs, plan.workers);
    this.suite = this.multi.create(plan.runs.length, 0, { label: 'suite', unit: 'runs', info: '| ETA ?' });
  }

  startRun(info: Parameters<ProgressSink['startRun']>[0]): void {
    const worker = info.worker ?? 0;
    const label = `${worker > 0 ? `w${worker} ` : ''}[${info.runIndex}/${info.runCount}] ${info.experiment} ${info.variant} s${info.seed}`;
    this.eta.start(info.runIndex - 1, worker);
    const existing = this.bars.get(worker);
    if (existing !== undefined) {
      existing.label = label;
      existing.bar.start(info.steps, 0, { label, unit: 'steps', info: 'loss -' });
    } else {
      this.bars.set(worker, { label, bar: this.multi.create(info.steps, 0, { label, unit: 'steps', info: 'loss -' }) });
    }
  }

  step(step: number, loss: number, worker = 0): void {
    this.eta.step(worker, step);
    this.bars.get(worker)?.bar.update(step, { info: `loss ${loss.toFixed(4)}` });
    if (Date.now() - this.lastEta > 1000) {
      this.lastEta = Date.now();
      this.suite?.update(this.done, { info: `| ETA ${formatSeconds(this.eta.estimate())}` });
    }
  }

  endRun(summary: string, worker = 0): void {
    this.eta.finish(worker);
    this.done++;
    this.suite?.update(this.done, { info: `| ETA ${formatSeconds(this.eta.estimate())}` });
    this.multi.log(`${this.bars.get(worker)?.label ?? `worker ${worker}`}: ${summary}\n`);
  }

  log(line: string): void {
    this.multi.log(`${line}\n`);
  }

  stop(): void {
    this.multi.stop();
  }
}
