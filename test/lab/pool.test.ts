import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLab } from '../../src/lab/runner.js';
import { formatSeconds, silentProgress, SuiteEta, type ProgressSink } from '../../src/lab/progress.js';
import type { LabResults } from '../../src/lab/results.js';
import { planSeconds, planSecondsPerStep } from '../../src/lab/experiment.js';
import { NormkitError } from '../../src/core/errors.js';
import { MODULE, crashing, tiny, tinyData, withoutTimes } from '../helpers/lab-experiments.js';

const outDir = () => mkdtempSync(join(tmpdir(), 'normkit-pool-'));
const outputs = (r: LabResults) => r.experiments.flatMap((e) => e.runs.map((run) => ({ id: `${run.variant}/${run.seed}`, output: withoutTimes(run.output) })));

/** A progress sink that records which worker started which run. */
function recorder(): ProgressSink & { workers: Set<number>; ends: string[] } {
  const workers = new Set<number>();
  const ends: string[] = [];
  return { ...silentProgress, workers, ends, startRun: (info) => void workers.add(info.worker ?? -1), endRun: (s) => void ends.push(s) };
}

describe('lab worker pool', () => {
  let data: string;
  before(() => {
    data = tinyData();
  });

  it('gives each run the same result record with 1 and with 2 worker processes', async () => {
    const common = { experiments: [tiny], seeds: 2, quick: true, dataDir: data, backend: 'wasm', experimentModules: [MODULE] };
    const one = await runLab({ ...common, outDir: outDir(), workers: 1 });
    const progress = recorder();
    const two = await runLab({ ...common, outDir: outDir(), workers: 2, progress });
    assert.deepEqual([...progress.workers].sort(), [1, 2], 'both workers ran runs');
    assert.equal(two.experiments[0].status, 'done');
    assert.equal(two.experiments[0].runs.length, 4);
    assert.deepEqual(outputs(two), outputs(one));
    assert.equal(two.meta.workers, 2);
    assert.deepEqual(two.meta.failedRuns, []);
  });

  it("retries a run once when its worker process dies, then reports it failed; the other runs complete", async () => {
    const crashDir = mkdtempSync(join(tmpdir(), 'normkit-crash-'));
    process.env.NORMKIT_TEST_CRASH_DIR = crashDir;
    try {
      const progress = recorder();
      const r = await runLab({ experiments: [crashing], seeds: 1, quick: true, dataDir: data, backend: 'cpu', outDir: outDir(), workers: 2, experimentModules: [MODULE], progress });
      const e = r.experiments[0];
      assert.deepEqual(e.runs.map((run) => run.variant).sort(), ['fine', 'once']);
      assert.equal(e.status, 'incomplete');
      assert.equal(r.meta.failedRuns?.length, 1);
      assert.equal(r.meta.failedRuns?.[0].variant, 'always');
      assert.match(r.meta.failedRuns?.[0].reason ?? '', /died \(signal SIGKILL\) on 2 attempt/);
    } finally {
      delete process.env.NORMKIT_TEST_CRASH_DIR;
    }
  });

  it('stops every worker when asked and keeps the finished runs', async () => {
    let ends = 0;
    const progress = { ...silentProgress, endRun: () => void ends++ };
    const r = await runLab({
      experiments: [tiny], seeds: 4, quick: true, dataDir: data, backend: 'cpu', outDir: outDir(), workers: 2, experimentModules: [MODULE],
      progress, shouldStop: () => ends >= 1,
    });
    assert.equal(r.meta.interrupted, true);
    assert.ok(r.experiments[0].runs.length >= 1 && r.experiments[0].runs.length < 8, `${r.experiments[0].runs.length} runs`);
  });

  it('rejects a bad worker count before any work', async () => {
    await assert.rejects(runLab({ experiments: [tiny], outDir: outDir(), workers: 0 }), (e: unknown) => e instanceof NormkitError && /workers/.test(e.message));
  });
});

describe('suite ETA', () => {
  it('formats seconds without a 60th second', () => {
    assert.equal(formatSeconds(59.6), '1m00s');
    assert.equal(formatSeconds(119.6), '2m00s');
    assert.equal(formatSeconds(42.2), '42s');
    assert.equal(formatSeconds(NaN), '?');
  });

  it('prices runs by measured seconds per step of their experiment and variant, spread over the workers', () => {
    let now = 0;
    const eta = new SuiteEta(() => now);
    // Experiment a: 1 s per step; b: 4 s per step, 10 steps per run; two workers.
    const runs = [
      { experiment: 'a', variant: 'x', steps: 10 }, { experiment: 'b', variant: 'x', steps: 10 },
      { experiment: 'a', variant: 'x', steps: 10 }, { experiment: 'b', variant: 'x', steps: 10 },
      { experiment: 'a', variant: 'x', steps: 10 }, { experiment: 'b', variant: 'x', steps: 10 },
    ];
    eta.setPlan(runs, 2);
    assert.ok(Number.isNaN(eta.rate(runs[0])));
    eta.start(0, 1);
    eta.start(1, 2);
    now = 4;
    eta.step(1, 4);
    eta.step(2, 1);
    assert.equal(eta.rate(runs[0]), 1);
    assert.equal(eta.rate(runs[1]), 4);
    // Worker 1 is free at +6 s, worker 2 at +36 s. Left: a (10 s), b (40 s), a, b in order to the first free:
    // w1: 6 -> 16 (a) -> 56 (b); w2: 36 -> 46 (a) -> 86 (b). The suite ends in 86 s.
    assert.equal(eta.estimate(), 86);
    now = 10;
    eta.finish(1);
    eta.start(2, 1);
    eta.step(2, 2);
    // a: 10 s for its 10 steps; b: 10 s for 2 steps so far. w1 starts a (10 s), w2 has 8 x 5 = 40 s of b left;
    // then b (50 s) goes to w1 (free at 10 -> 60), a to w2 (40 -> 50), b to w2 (50 -> 100).
    assert.equal(eta.rate(runs[2]), 1);
    assert.equal(eta.rate(runs[3]), 5);
    assert.equal(eta.estimate(), 100);
  });

  it('uses the plan\'s seconds per step until the experiment has measured steps of its own', () => {
    let now = 0;
    const eta = new SuiteEta(() => now);
    const runs = [
      { experiment: 'a', variant: 'x', steps: 10, secondsPerStep: 2 }, { experiment: 'b', variant: 'x', steps: 10, secondsPerStep: 3 },
      { experiment: 'a', variant: 'x', steps: 10, secondsPerStep: 2 },
    ];
    eta.setPlan(runs, 1);
    assert.equal(eta.rate(runs[0]), 2);
    // One worker, nothing measured: 20 + 30 + 20 s.
    assert.equal(eta.estimate(), 70);
    eta.start(0, 1);
    now = 5;
    eta.step(1, 5);
    // a measured at 1 s per step replaces its plan figure; b still has only its plan's: 5 + 30 + 10 s.
    assert.equal(eta.rate(runs[0]), 1);
    assert.equal(eta.rate(runs[1]), 3);
    assert.equal(eta.estimate(), 45);
  });
});

describe('planSeconds: the estimate --list prints', () => {
  it('sums seeds x steps x seconds per step over the variants (one figure or one per variant)', () => {
    const base = { variants: [{ id: 'p', label: 'P' }, { id: 'q', label: 'Q' }], steps: 100, setup: '', checks: [] };
    assert.equal(planSeconds({ ...base, seeds: 5, secondsPerStep: 0.5 }), 5 * 100 * 0.5 * 2);
    assert.equal(planSeconds({ ...base, secondsPerStep: { p: 1, q: 2 } }), 3 * 100 * 3);
    assert.equal(planSecondsPerStep({ ...base, secondsPerStep: { p: 1 } }, 'q'), NaN);
    assert.ok(Number.isNaN(planSeconds(base)));
  });
});
