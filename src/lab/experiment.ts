/**
 * What an experiment is: a claim from a paper, a setup, variants run over seeds, curves to plot and the checks
 * that turn measured numbers into a verdict.
 */
import type { CurvePoint } from './train.js';
import type { ComparisonSpec } from './verdict.js';
import type { ImageSet } from './data/fashion-mnist.js';
import type { CharCorpus } from './data/text.js';

/** What a run can use while it trains. */
export interface RunContext {
  quick: boolean;
  /** Polled by the training loops; true after Ctrl-C. */
  shouldStop: () => boolean;
  /** Reports a training step to the progress display. */
  onStep: (step: number, loss: number) => void;
  /** Fashion-MNIST train / test sets (loaded once per lab run, lazily). */
  images: () => { train: ImageSet; test: ImageSet };
  /** The char-LM corpus (loaded once, lazily). */
  text: () => CharCorpus;
}

/** One configuration of an experiment (e.g. "BN" or "no norm"). */
export interface Variant {
  id: string;
  label: string;
}

/** What one run (variant x seed) produces. Non-finite metrics are stored as null in JSON. */
export interface RunOutput {
  metrics: Record<string, number | null>;
  curves: Record<string, CurvePoint[]>;
}

/** A plot of one curve key across variants (mean line with a min-max band over seeds). */
export interface PlotSpec {
  curve: string;
  title: string;
  x: 'step' | 'seconds';
  yTitle: string;
  logY?: boolean;
  /** Axis title for x when the curve's `step` holds something else (e.g. alpha). */
  xTitle?: string;
  /** Horizontal reference lines at the mean of a run metric (e.g. the unigram cross-entropy on LM plots). */
  references?: Array<{ metric: string; label: string }>;
}

/** A claim check between two variants on one metric. */
export interface CheckSpec extends Omit<ComparisonSpec, 'labelA' | 'labelB'> {
  /**
   * A's variant, or several (a learning-rate sweep): then the one with the best median of `pick`'s metric is
   * compared (the choice and every candidate's median are reported).
   */
  variantA: string | string[];
  variantB: string | string[];
  /** How a variant is picked from a sweep: the best median of this metric (missing values count as worst). */
  pick?: { metric: string; better: 'higher' | 'lower' };
  /** B's metric when it differs from A's (two evaluations of the same runs); `metric` is A's. */
  metricB?: string;
  /** Labels shown for A and B (default: the variants' labels). */
  labelA?: string;
  labelB?: string;
}

/** The plan of a lab run for one experiment. */
export interface ExperimentPlan {
  variants: Variant[];
  /** Training steps per run (for the progress display and the time estimates). */
  steps: number;
  /** Steps of the variants whose runs take another number of steps than `steps` (e.g. a larger batch). */
  variantSteps?: Record<string, number>;
  /** Setup in words: data, model, optimizer, steps, batch size, learning rate. */
  setup: string;
  checks: CheckSpec[];
  /** Seeds per variant (default 3; the cheap image experiments use 5); `--seeds` overrides it. */
  seeds?: number;
  /** How this setup compares with the paper's regime (depth, learning rate, batch, steps, warm-up), in words. */
  regime?: string;
  /**
   * Measured seconds per training step of this plan's runs (evaluations included) with the wasm backend, two
   * workers on 2 cores: one figure, or one per variant id. `--list`'s estimates and the progress ETA (before a
   * variant's own steps are measured) both come from it.
   */
  secondsPerStep?: number | Record<string, number>;
}

/** An experiment of `normkit lab`. */
export interface Experiment {
  id: string;
  title: string;
  /** The claim tested, in the words of the method's docs page (docs/<method>.md) or the paper's abstract. */
  claim: string;
  /** Papers, by authors, title and year. */
  papers: string[];
  /** Method pages the claim comes from. */
  methodPages: string[];
  /** The metric(s) the verdict is computed from, in words. */
  metric: string;
  /** What this experiment still waits for (unregistered norms, missing modules); empty when it can run. */
  missing: () => Promise<string[]>;
  plan: (quick: boolean) => ExperimentPlan;
  run: (variant: Variant, seed: number, ctx: RunContext) => Promise<RunOutput>;
  plots: PlotSpec[];
  /**
   * 'long': a claim that needs long runs to have power; run only with `--long` or when named. 'default': in the
   * default suite (and `--long`) but not in the quick one, where its runs are too short to have power. Unset: in
   * every suite.
   */
  tier?: 'default' | 'long';
}

/**
 * The measured seconds per step of `variant` in `plan`: the plan's one figure, or its figure for that variant
 * (NaN when the plan states none).
 * @example planSecondsPerStep(placement.plan(false), 'post')   // 0.44
 */
export function planSecondsPerStep(plan: ExperimentPlan, variant: string): number {
  const s = plan.secondsPerStep;
  if (s === undefined) return NaN;
  return typeof s === 'number' ? s : s[variant] ?? NaN;
}

/**
 * The estimated compute seconds of a plan: sum over variants of seeds * steps * seconds per step (one worker;
 * with n workers the wall time is about this / n). NaN when the plan states no seconds per step.
 * @example planSeconds(placement.plan(true)) / 60   // 4 variants x 3 seeds x 80 steps x 0.26 s = 4.2 min
 */
export function planSeconds(plan: ExperimentPlan, seeds = plan.seeds ?? 3): number {
  return plan.variants.reduce((sum, v) => sum + seeds * planSteps(plan, v.id) * planSecondsPerStep(plan, v.id), 0);
}

/** Training steps of `variant`'s runs in `plan`. */
export function planSteps(plan: ExperimentPlan, variant: string): number {
  return plan.variantSteps?.[variant] ?? plan.steps;
}
