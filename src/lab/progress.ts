/**
 * The lab's live progress: a cli-progress bar (experiment, run, step, loss, ETA) on a terminal, plain lines
 * otherwise (logs, CI), nothing in tests.
 */
import cliProgress from 'cli-progress';

/** Where the runner reports progress. */
export interface ProgressSink {
  /** A run starts: `runIndex` of `runCount` runs in the suite. */
  startRun(info: { experiment: string; variant: string; seed: number; runIndex: number; runCount: number; steps: number }): void;
  step(step: number, loss: number): void;
  endRun(summary: string): void;
  log(line: string): void;
  stop(): void;
  /** Tells the sink how many steps remain after run `runIndex` (for the suite ETA). */
  setStepsLeft?(stepsLeftAfter: (runIndex: number) => number): void;
}

/** A sink that prints nothing (tests). */
export const silentProgress: ProgressSink = { startRun() {}, step() {}, endRun() {}, log() {}, stop() {} };

function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

/** Tracks time per step across runs to estimate the suite's remaining time. */
class Eta {
  private doneSteps = 0;
  private doneSeconds = 0;
  private runStart = 0;
  private runSteps = 0;
  private remainingAfterRun = 0;

  start(steps: number, remainingStepsAfterThisRun: number): void {
    this.runStart = Date.now();
    this.runSteps = steps;
    this.remainingAfterRun = remainingStepsAfterThisRun;
  }

  /** Estimated seconds left in this run and in the whole suite after `step` steps of the current run. */
  estimate(step: number): { run: number; suite: number } {
    const elapsed = (Date.now() - this.runStart) / 1000;
    const totalSteps = this.doneSteps + step;
    const perStep = totalSteps > 0 ? (this.doneSeconds + elapsed) / totalSteps : NaN;
    const run = (this.runSteps - step) * perStep;
    return { run, suite: run + this.remainingAfterRun * perStep };
  }

  finish(step: number): void {
    this.doneSteps += step;
    this.doneSeconds += (Date.now() - this.runStart) / 1000;
  }
}

/** Plain progress lines, at most one every `everySeconds` per run (plus start and end lines). */
export class PlainProgress implements ProgressSink {
  private last = 0;
  private label = '';
  private steps = 0;
  private current = 0;
  private readonly eta = new Eta();

  private stepsLeft: (runIndex: number) => number = () => 0;

  constructor(private readonly write: (line: string) => void = (l) => process.stdout.write(`${l}\n`), private readonly everySeconds = 5) {}

  setStepsLeft(f: (runIndex: number) => number): void {
    this.stepsLeft = f;
  }

  startRun(info: Parameters<ProgressSink['startRun']>[0]): void {
    this.label = `[${info.runIndex}/${info.runCount}] ${info.experiment} ${info.variant} seed ${info.seed}`;
    this.steps = info.steps;
    this.current = 0;
    this.last = Date.now();
    this.eta.start(info.steps, this.stepsLeft(info.runIndex));
    this.write(`${this.label}: start (${info.steps} steps)`);
  }

  step(step: number, loss: number): void {
    this.current = step;
    if (Date.now() - this.last < this.everySeconds * 1000) return;
    this.last = Date.now();
    const eta = this.eta.estimate(step);
    this.write(`${this.label}: step ${step}/${this.steps} loss ${loss.toFixed(4)} ETA run ${formatSeconds(eta.run)} suite ${formatSeconds(eta.suite)}`);
  }

  endRun(summary: string): void {
    this.eta.finish(this.current);
    this.write(`${this.label}: ${summary}`);
  }

  log(line: string): void {
    this.write(line);
  }

  stop(): void {}
}

/** A live bar on a terminal. */
export class TtyProgress implements ProgressSink {
  private readonly bar = new cliProgress.SingleBar(
    {
      format: '{label} |{bar}| step {value}/{total} loss {loss} | ETA run {etaRun} suite {etaSuite}',
      hideCursor: true,
      clearOnComplete: true,
      barsize: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  private running = false;
  private label = '';
  private current = 0;
  private readonly eta = new Eta();
  private stepsLeft: (runIndex: number) => number = () => 0;

  setStepsLeft(f: (runIndex: number) => number): void {
    this.stepsLeft = f;
  }

  startRun(info: Parameters<ProgressSink['startRun']>[0]): void {
    this.label = `[${info.runIndex}/${info.runCount}] ${info.experiment} ${info.variant} s${info.seed}`;
    this.current = 0;
    this.eta.start(info.steps, this.stepsLeft(info.runIndex));
    this.bar.start(info.steps, 0, { label: this.label, loss: '-', etaRun: '?', etaSuite: '?' });
    this.running = true;
  }

  step(step: number, loss: number): void {
    this.current = step;
    const eta = this.eta.estimate(step);
    this.bar.update(step, { loss: loss.toFixed(4), etaRun: formatSeconds(eta.run), etaSuite: formatSeconds(eta.suite) });
  }

  endRun(summary: string): void {
    this.eta.finish(this.current);
    if (this.running) this.bar.stop();
    this.running = false;
    process.stdout.write(`${this.label}: ${summary}\n`);
  }

  log(line: string): void {
    if (this.running) this.bar.stop();
    this.running = false;
    process.stdout.write(`${line}\n`);
  }

  stop(): void {
    if (this.running) this.bar.stop();
    this.running = false;
  }
}
