import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as nk from '../../src/lab/index.js';
import { runFilePath } from '../../src/lab/results.js';
import { schedule } from '../../src/lab/runner.js';

/** A fake experiment that trains nothing: each run's metric is a function of variant and seed, calls are counted. */
function fakeExperiment(calls: string[], setup = 'fake setup'): nk.Experiment {
  return {
    id: 'fake',
    title: 'A fake experiment',
    claim: 'A beats B',
    papers: ['nobody, 2024'],
    methodPages: [],
    metric: 'score',
    missing: async () => [],
    plan: () => ({
      variants: [{ id: 'a', label: 'A' }, { id: 'b', label: 'B' }],
      steps: 3,
      setup,
      checks: [{ description: 'A scores higher than B', metric: 'score', better: 'higher', kind: 'better', margin: 0.1, variantA: 'a', variantB: 'b' }],
    }),
    run: async (variant, seed, ctx) => {
      for (let step = 1; step <= 3; step++) {
        if (ctx.shouldStop()) throw new nk.LabInterrupted();
        ctx.onStep(step, 1 / step);
      }
      calls.push(`${variant.id}${seed}`);
      const score = (variant.id === 'a' ? 2 : 1) + seed / 100;
      return { metrics: { score }, curves: { loss: [1, 2, 3].map((step) => ({ step, value: score / step })) } };
    },
    plots: [{ curve: 'loss', title: 'Loss', x: 'step', yTitle: 'loss' }],
  };
}

const pending: nk.Experiment = {
  ...fakeExperiment([]),
  id: 'later',
  missing: async () => ["registry 'not-yet'"],
  run: async () => {
    throw new Error('a pending experiment must not run');
  },
};

describe('runLab', () => {
  it('runs every variant and seed, computes the verdict, writes the three outputs, lists pending experiments', async () => {
    const out = mkdtempSync(join(tmpdir(), 'normkit-lab-'));
    const calls: string[] = [];
    const results = await nk.runLab({ experiments: [fakeExperiment(calls), pending], seeds: 3, outDir: out, backend: 'cpu', textPath: 'unused' });
    // Seed by seed, the variants interleaved (an interrupted suite keeps whole seeds).
    assert.deepEqual(calls, ['a0', 'b0', 'a1', 'b1', 'a2', 'b2']);
    const [fake, later] = results.experiments;
    assert.equal(fake.status, 'done');
    assert.equal(fake.verdict, '1 of 1 checks reproduced');
    assert.equal(fake.checks[0].verdict, 'reproduced');
    assert.equal(fake.checks[0].a.mean, 2.01);
    assert.equal(later.status, 'pending');
    assert.deepEqual(later.waitsFor, ["registry 'not-yet'"]);
    for (const f of ['results.json', 'summary.md', 'report.html']) assert.ok(existsSync(join(out, f)), f);
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as nk.LabResults;
    assert.equal(json.experiments[0].runs.length, 6);
    assert.equal(json.meta.backend, 'cpu');
  });

  it('--resume skips finished runs and redoes a corrupt or truncated one', async () => {
    const out = mkdtempSync(join(tmpdir(), 'normkit-lab-'));
    const calls: string[] = [];
    await nk.runLab({ experiments: [fakeExperiment(calls)], seeds: 3, outDir: out, backend: 'cpu' });
    assert.equal(calls.length, 6);
    calls.length = 0;
    await nk.runLab({ experiments: [fakeExperiment(calls)], seeds: 3, outDir: out, backend: 'cpu', resume: true });
    assert.deepEqual(calls, []);

    const truncated = runFilePath(out, 'fake', 'a', 1);
    writeFileSync(truncated, readFileSync(truncated, 'utf8').slice(0, 40));
    const tampered = runFilePath(out, 'fake', 'b', 2);
    writeFileSync(tampered, readFileSync(tampered, 'utf8').replace('"score":1.02', '"score":9.02'));
    const logs: string[] = [];
    const progress = { ...nk.silentProgress, log: (l: string) => logs.push(l) };
    const results = await nk.runLab({ experiments: [fakeExperiment(calls)], seeds: 3, outDir: out, backend: 'cpu', resume: true, progress });
    assert.deepEqual(calls, ['a1', 'b2']);
    assert.ok(logs.some((l) => l.includes('not valid JSON')), logs.join('\n'));
    assert.ok(logs.some((l) => l.includes('checksum')), logs.join('\n'));
    assert.equal(results.experiments[0].runs.find((r) => r.variant === 'b' && r.seed === 2)?.output.metrics.score, 1.02);
  });

  it('a changed setup makes old runs stale; without --resume everything is redone', async () => {
    const out = mkdtempSync(join(tmpdir(), 'normkit-lab-'));
    const calls: string[] = [];
    await nk.runLab({ experiments: [fakeExperiment(calls)], seeds: 3, outDir: out, backend: 'cpu' });
    calls.length = 0;
    await nk.runLab({ experiments: [fakeExperiment(calls, 'another setup')], seeds: 3, outDir: out, backend: 'cpu', resume: true });
    assert.equal(calls.length, 6);
    calls.length = 0;
    await nk.runLab({ experiments: [fakeExperiment(calls, 'another setup')], seeds: 3, outDir: out, backend: 'cpu' });
    assert.equal(calls.length, 6);
  });

  it('stops cleanly when asked (Ctrl-C), keeps finished runs, and --resume finishes the rest', async () => {
    const out = mkdtempSync(join(tmpdir(), 'normkit-lab-'));
    const calls: string[] = [];
    let steps = 0;
    const progress = { ...nk.silentProgress, step: () => void steps++ };
    const first = await nk.runLab({ experiments: [fakeExperiment(calls)], seeds: 3, outDir: out, backend: 'cpu', progress, shouldStop: () => steps >= 7 });
    assert.equal(first.meta.interrupted, true);
    assert.deepEqual(calls, ['a0', 'b0']);
    assert.equal(first.experiments[0].status, 'incomplete');
    assert.ok(existsSync(join(out, 'report.html')));
    calls.length = 0;
    const second = await nk.runLab({ experiments: [fakeExperiment(calls)], seeds: 3, outDir: out, backend: 'cpu', resume: true });
    assert.deepEqual(calls, ['a1', 'b1', 'a2', 'b2']);
    assert.equal(second.experiments[0].status, 'done');
    assert.equal(second.meta.interrupted, false);
  });

  it('interleaves the experiments within each seed', () => {
    const order = schedule([
      { experiment: 'e', variants: ['a', 'b', 'c'], steps: 1 },
      { experiment: 'f', variants: ['x'], steps: 2 },
    ], 2).map((r) => `${r.experiment}${r.variant}${r.seed}`);
    assert.deepEqual(order, ['ea0', 'fx0', 'eb0', 'ec0', 'ea1', 'fx1', 'eb1', 'ec1']);
  });

  it('the results are deterministic for a given seed (apart from times)', async () => {
    const strip = (r: nk.LabResults) => r.experiments.map((e) => e.runs.map((run) => run.output));
    const a = await nk.runLab({ experiments: [fakeExperiment([])], seeds: 3, outDir: mkdtempSync(join(tmpdir(), 'normkit-lab-')), backend: 'cpu' });
    const b = await nk.runLab({ experiments: [fakeExperiment([])], seeds: 3, outDir: mkdtempSync(join(tmpdir(), 'normkit-lab-')), backend: 'cpu' });
    assert.deepEqual(strip(a), strip(b));
  });

  it('pairs by seed, uses the experiment\'s own seed count, and reduces a sweep to its best variant', async () => {
    const sweep: nk.Experiment = {
      ...fakeExperiment([]),
      id: 'sweep',
      plan: () => ({
        variants: [{ id: 'fast', label: 'A lr 1' }, { id: 'slow', label: 'A lr 2' }, { id: 'b', label: 'B' }],
        steps: 1,
        seeds: 4,
        setup: 'sweep',
        checks: [{ description: 'best A beats B', metric: 'score', better: 'higher', kind: 'better', margin: 0, paired: true, variantA: ['slow', 'fast'], variantB: 'b' }],
      }),
      // B's seeds spread widely; A = B + 0.5 (fast) or B + 0.1 (slow) in every seed: paired, the effect is exact.
      run: async (variant, seed) => ({ metrics: { score: seed * 10 + (variant.id === 'fast' ? 0.5 : variant.id === 'slow' ? 0.1 : 0) }, curves: {} }),
    };
    const results = await nk.runLab({ experiments: [sweep], outDir: mkdtempSync(join(tmpdir(), 'normkit-lab-')), backend: 'cpu' });
    const e = results.experiments[0];
    assert.equal(e.runs.length, 12, '4 seeds from the plan');
    const c = e.checks[0];
    assert.equal(c.labelA, 'A lr 1');
    assert.match(c.reason, /A lr 1 picked by median score \(A lr 2 15\.1, A lr 1 15\.5\)/);
    assert.ok(Math.abs(c.estimate - 0.5) < 1e-9 && c.paired === true && c.n === 4);
    assert.equal(c.verdict, 'reproduced');
    assert.equal(e.verdict, '1 of 1 checks reproduced');
  });
});

describe('selectExperiments: tiers', () => {
  const ids = (list: readonly { id: string }[]) => list.map((e) => e.id);
  it('the quick suite holds the experiments of no tier; the default adds the default tier; --long adds the long one', () => {
    const quick = ids(nk.selectExperiments([], { quick: true }));
    const standard = ids(nk.selectExperiments([]));
    const long = ids(nk.selectExperiments([], { long: true }));
    for (const e of nk.EXPERIMENTS) {
      assert.equal(quick.includes(e.id), e.tier === undefined, `${e.id} in --quick`);
      assert.equal(standard.includes(e.id), e.tier !== 'long', `${e.id} in the default suite`);
      assert.ok(long.includes(e.id), `${e.id} in --long`);
    }
    for (const required of ['bn-speedup', 'micro-batch', 'nf-agc', 'placement']) assert.ok(quick.includes(required), `${required} in --quick`);
    assert.ok(!quick.includes('ln-rms-dyt') && standard.includes('ln-rms-dyt'), 'ln-rms-dyt: default suite only');
  });
  it('an experiment named explicitly runs whatever its tier; an unknown id throws with the known ones', () => {
    assert.deepEqual(ids(nk.selectExperiments(['ln-rms-dyt', 'ngpt'], { quick: true })), ['ln-rms-dyt', 'ngpt']);
    assert.throws(() => nk.selectExperiments(['bn-speed']), /unknown experiment 'bn-speed'; known: bn-speedup/);
  });
});
