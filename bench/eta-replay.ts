/**
 * Replays a lab suite's measured run times through the progress ETA and reports how far the ETA is from the true
 * remaining time once the first tenth of the suite has passed: the current ETA (seconds per step per experiment
 * and variant, runs assigned to the first free worker, the interleaved schedule) next to the previous one (one
 * global seconds-per-step average over all steps, runs one after the other in experiment order).
 *
 *   node dist/bench/eta-replay.js OUTDIR [--workers N] [--default] [--seeds N]
 *
 * OUTDIR holds `runs/` of a lab invocation of the same suite (the quick one, or the default one with `--default`;
 * each experiment's own seeds unless `--seeds`). A run without a stored file gets the mean time of
 * its experiment and variant (else of its experiment), times a seeded factor in [0.85, 1.15].
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { planSteps } from '../src/lab/experiment.js';
import { selectExperiments } from '../src/lab/experiments/index.js';
import { SuiteEta, type PlannedRun } from '../src/lab/progress.js';
import { seededRandom } from '../src/lab/rng.js';
import { schedule } from '../src/lab/runner.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { workers: { type: 'string', default: '2' }, default: { type: 'boolean', default: false }, seeds: { type: 'string' } },
});
const outDir = positionals[0] ?? 'lab-out';
const workers = Number(values.workers);
const quick = !values.default;
const seedsOf = (plan: { seeds?: number }) => (values.seeds === undefined ? plan.seeds ?? 3 : Number(values.seeds));
const plans = selectExperiments([], { quick }).map((e) => ({ id: e.id, plan: e.plan(quick) }));

// Measured wall time of every stored run.
const measured = new Map<string, number[]>();
for (const { id } of plans) {
  let files: string[] = [];
  try {
    files = readdirSync(join(outDir, 'runs', id));
  } catch {
    continue;
  }
  for (const f of files) {
    const m = /^(.*)__seed(\d+)\.json$/.exec(f);
    if (m === null) continue;
    // Only the time is used: a file made with another plan hash is fine, an unreadable one is skipped.
    let wall: number | undefined;
    try {
      wall = (JSON.parse(readFileSync(join(outDir, 'runs', id, f), 'utf8')) as { record?: { wallSeconds?: number } }).record?.wallSeconds;
    } catch {
      continue;
    }
    if (typeof wall !== 'number') continue;
    for (const key of [`${id}/${m[1]}/${m[2]}`, `${id}/${m[1]}`, id]) measured.set(key, [...(measured.get(key) ?? []), wall]);
  }
}

const noise = seededRandom(7);
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
function duration(experiment: string, variant: string, seed: number): number {
  const own = measured.get(`${experiment}/${variant}/${seed}`);
  if (own !== undefined) return own[0];
  const like = measured.get(`${experiment}/${variant}`) ?? measured.get(experiment);
  if (like === undefined) throw new Error(`no measured run of ${experiment} in ${outDir}`);
  return mean(like) * (0.85 + 0.3 * noise());
}

interface Run extends PlannedRun {
  seed: number;
  seconds: number;
}

/** Simulates `lanes` workers taking `runs` in order; returns each run's start time and the suite's end. */
function simulate(runs: Run[], lanes: number): { starts: number[]; lane: number[]; end: number } {
  const free = new Array<number>(lanes).fill(0);
  const starts: number[] = [];
  const lane: number[] = [];
  for (const r of runs) {
    let w = 0;
    for (let k = 1; k < lanes; k++) if (free[k] < free[w]) w = k;
    starts.push(free[w]);
    lane.push(w + 1);
    free[w] += r.seconds;
  }
  return { starts, lane, end: Math.max(...free) };
}

/** Relative errors |ETA - truth| / truth every second after the first tenth of the suite (to 95 %). */
function errors(runs: Run[], lanes: number, estimate: (t: number, sim: ReturnType<typeof simulate>) => number): number[] {
  const sim = simulate(runs, lanes);
  const out: number[] = [];
  for (let t = Math.ceil(sim.end / 10); t < sim.end * 0.95; t++) {
    const truth = sim.end - t;
    out.push(Math.abs(estimate(t, sim) - truth) / truth);
  }
  return out;
}

/** The current ETA, fed with the simulated starts, steps (linear in time within a run) and ends up to time t. */
function currentEta(runs: Run[]) {
  return (t: number, sim: ReturnType<typeof simulate>): number => {
    const eta = new SuiteEta(() => clock);
    let clock = 0;
    eta.setPlan(runs, workers);
    // Replay events in time order: starts and ends.
    const events: Array<{ at: number; kind: 'start' | 'end'; run: number }> = [];
    runs.forEach((r, i) => {
      events.push({ at: sim.starts[i], kind: 'start', run: i });
      events.push({ at: sim.starts[i] + r.seconds, kind: 'end', run: i });
    });
    events.sort((a, b) => a.at - b.at || (a.kind === 'end' ? -1 : 1));
    for (const e of events) {
      if (e.at > t) break;
      clock = e.at;
      if (e.kind === 'start') eta.start(e.run, sim.lane[e.run]);
      else {
        eta.step(sim.lane[e.run], runs[e.run].steps);
        eta.finish(sim.lane[e.run]);
      }
    }
    clock = t;
    runs.forEach((r, i) => {
      if (sim.starts[i] <= t && sim.starts[i] + r.seconds > t) eta.step(sim.lane[i], Math.floor(((t - sim.starts[i]) / r.seconds) * r.steps));
    });
    return eta.estimate();
  };
}

/** The previous ETA: one global seconds per step over every step done, times the steps left. */
function previousEta(runs: Run[]) {
  return (t: number, sim: ReturnType<typeof simulate>): number => {
    let doneSteps = 0;
    let doneSeconds = 0;
    let left = 0;
    runs.forEach((r, i) => {
      const start = sim.starts[i];
      if (start + r.seconds <= t) {
        doneSteps += r.steps;
        doneSeconds += r.seconds;
      } else if (start <= t) {
        const step = Math.floor(((t - start) / r.seconds) * r.steps);
        doneSteps += step;
        doneSeconds += t - start;
        left += r.steps - step;
      } else {
        left += r.steps;
      }
    });
    return doneSteps > 0 ? (left * doneSeconds) / doneSteps : NaN;
  };
}

const interleaved: Run[] = schedule(plans.map(({ id, plan }) => ({ experiment: id, variants: plan.variants.map((v) => v.id), steps: plan.variants.map((v) => planSteps(plan, v.id)), seeds: seedsOf(plan) })))
  .map((r) => ({ ...r, seconds: duration(r.experiment, r.variant, r.seed) }));
const experimentMajor: Run[] = plans.flatMap(({ id, plan }) => plan.variants.flatMap((v) => Array.from({ length: seedsOf(plan) }, (_, seed) => seed).map((seed) => interleaved.find((r) => r.experiment === id && r.variant === v.id && r.seed === seed) as Run)));

const summary = (name: string, xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  console.log(`${name.padEnd(58)} median ${(100 * q(0.5)).toFixed(1)} %, 90th pct ${(100 * q(0.9)).toFixed(1)} %, max ${(100 * s[s.length - 1]).toFixed(1)} %`);
};
const measuredRuns = [...measured.keys()].filter((k) => k.split('/').length === 3).length;
console.log(`${interleaved.length} runs (${measuredRuns} measured), ${workers} workers; suite ${simulate(interleaved, workers).end.toFixed(0)} s (interleaved), ${simulate(experimentMajor, 1).end.toFixed(0)} s on one worker`);
console.log('ETA error |ETA - true remaining| / true remaining, from the first tenth of the suite to 95 %:');
summary(`current ETA, interleaved schedule, ${workers} workers`, errors(interleaved, workers, currentEta(interleaved)));
summary('previous ETA, experiment order, 1 worker', errors(experimentMajor, 1, previousEta(experimentMajor)));
summary(`previous ETA, interleaved schedule, ${workers} workers (steps not divided by workers)`, errors(interleaved, workers, previousEta(interleaved)));
