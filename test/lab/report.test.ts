import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as nk from '../../src/lab/index.js';

function fakeResults(): nk.LabResults {
  const run = (variant: string, seed: number, base: number): nk.RunRecord => ({
    schema: 1, experiment: 'demo', variant, seed, planHash: 'x', wallSeconds: 1, finishedAt: '2026-01-01T00:00:00Z',
    output: {
      metrics: { accuracy: base + seed / 100, diverged: 0 },
      curves: { 'train loss': [1, 2, 3, 4].map((step) => ({ step, value: (base + 1) / step + seed / 10, seconds: step / 10 })) },
    },
  });
  const a = [0, 1, 2].map((s) => run('a', s, 0.8));
  const b = [0, 1, 2].map((s) => run('b', s, 0.6));
  const check = nk.compareGroups(
    { description: 'A <beats> B', metric: 'accuracy', better: 'higher', kind: 'better', margin: 0.01, labelA: 'A', labelB: 'B' },
    a.map((r) => r.output.metrics.accuracy as number), b.map((r) => r.output.metrics.accuracy as number),
  );
  return {
    meta: {
      normkitVersion: '0.1.0', tfjsVersion: '4.22.0', node: 'v20', platform: 'linux x64', cpus: 2, backend: 'wasm', quick: true, seeds: 3,
      data: 'data/fashion-mnist-subset', text: 'data/kjv-genesis.txt', startedAt: '2026-01-01T00:00:00Z', wallSeconds: 12.5, runSeconds: 6, interrupted: false,
    },
    experiments: [
      {
        id: 'demo', title: 'Demo', claim: 'A beats B & more', papers: ['P, 2020'], methodPages: ['shared/methods/x.md'], metric: 'accuracy',
        status: 'done', waitsFor: [], setup: 'tiny', variants: [{ id: 'a', label: 'A' }, { id: 'b', label: 'B' }], runs: [...a, ...b],
        checks: [check], verdict: check.verdict, plots: [{ curve: 'train loss', title: 'Loss', x: 'step', yTitle: 'loss', logY: true }],
      },
      {
        id: 'later', title: 'Later', claim: 'C', papers: [], methodPages: [], metric: 'm', status: 'pending', waitsFor: ["registry 'c'"],
        setup: '', variants: [], runs: [], checks: [], verdict: 'pending', plots: [],
      },
    ],
  };
}

describe('report', () => {
  it('aggregates curves across seeds: mean and min..max at each step', () => {
    const rows = nk.aggregateCurves(fakeResults().experiments[0], 'train loss', 'step');
    const first = rows.find((r) => r.variant === 'A' && r.x === 1)!;
    // values 1.8 + seed/10 for seeds 0, 1, 2
    assert.ok(Math.abs(first.mean - 1.9) < 1e-12);
    assert.ok(Math.abs(first.lo - 1.8) < 1e-12 && Math.abs(first.hi - 2.0) < 1e-12);
    assert.equal(rows.length, 8);
  });

  it('renders a self-contained HTML page with inline SVG plots, the verdict table and the metadata', async () => {
    const html = await nk.renderReport(fakeResults());
    assert.match(html, /^<!doctype html>/);
    assert.equal((html.match(/<svg/g) ?? []).length, 1);
    assert.ok(html.includes('reproduced'));
    assert.ok(html.includes('A &lt;beats&gt; B'), 'text is escaped');
    assert.ok(html.includes('A beats B &amp; more'));
    assert.ok(html.includes('waits for registry'));
    assert.ok(html.includes('4.22.0') && html.includes('wasm'));
    // Nothing is fetched when viewing: no scripts, stylesheets or images from elsewhere.
    assert.ok(!/<script|<link|<img|src="http|href="http/.test(html));
    assert.equal(html, await nk.renderReport(fakeResults()), 'deterministic');
  });

  it('writes a Markdown summary with every verdict', () => {
    const md = nk.renderSummary(fakeResults());
    assert.match(md, /\| demo \| reproduced \| done \|/);
    assert.match(md, /\| later \| pending \| pending \(waits for registry 'c'\) \|/);
    assert.match(md, /A: 0\.81 ± 0\.01 \(n=3\)/);
  });
});

describe('report curves against wall time', () => {
  it('matches seeds by step and uses their mean time as x', () => {
    const e = fakeResults().experiments[0];
    const rows = nk.aggregateCurves(e, 'train loss', 'seconds').filter((r) => r.variant === 'B');
    // every seed logs step k at k/10 s; values 1.6/k + seed/10
    assert.deepEqual(rows.map((r) => Number(r.x.toFixed(12))), [0.1, 0.2, 0.3, 0.4]);
    assert.ok(Math.abs(rows[1].mean - (1.6 / 2 + 0.1)) < 1e-12);
  });
});
