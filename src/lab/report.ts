/**
 * The lab's report: a self-contained HTML page (plots rendered to inline SVG by Vega-Lite + Vega in Node; nothing
 * is fetched when viewing) and a Markdown summary of all verdicts, both computed from results.json alone.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { ExperimentResult, LabResults } from './results.js';
import type { Stats } from './verdict.js';

/** Escapes text for HTML. */
function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function num(v: number, digits = 4): string {
  if (!Number.isFinite(v)) return 'n/a';
  return Math.abs(v) >= 1000 ? v.toFixed(0) : String(Number(v.toPrecision(digits)));
}

function stat(s: Stats): string {
  const failed = s.nonFinite > 0 ? `, ${s.nonFinite} failed` : '';
  return `${num(s.mean)} ± ${num(s.std, 2)} (n=${s.n}${failed})`;
}

/** One row per (variant, x): mean and min-max band across seeds. */
export interface CurveRow {
  variant: string;
  x: number;
  mean: number;
  lo: number;
  hi: number;
}

/**
 * Aggregates one curve across seeds: values at the same step are averaged (band = min..max over seeds); against wall
 * time, x is the seeds' mean time at that step. Curves longer than `maxPoints` are first averaged over consecutive
 * bins, so a 1000-step loss curve plots as ~`maxPoints` points.
 */
export function aggregateCurves(experiment: ExperimentResult, curve: string, x: 'step' | 'seconds', maxPoints = 80): CurveRow[] {
  const rows: CurveRow[] = [];
  for (const variant of experiment.variants) {
    // Points are matched across seeds by step; against wall time, x is the seeds' mean time at that step.
    const perStep = new Map<number, { values: number[]; seconds: number[] }>();
    for (const run of experiment.runs.filter((r) => r.variant === variant.id)) {
      const points = (run.output.curves[curve] ?? []).filter((p) => typeof p.value === 'number' && Number.isFinite(p.value));
      const bin = Math.max(1, Math.ceil(points.length / maxPoints));
      for (let i = 0; i < points.length; i += bin) {
        const chunk = points.slice(i, i + bin);
        const last = chunk[chunk.length - 1];
        const entry = perStep.get(last.step) ?? { values: [], seconds: [] };
        entry.values.push(chunk.reduce((s, p) => s + p.value, 0) / chunk.length);
        if (typeof last.seconds === 'number') entry.seconds.push(last.seconds);
        perStep.set(last.step, entry);
      }
    }
    for (const [step, { values, seconds }] of [...perStep.entries()].sort((a, b) => a[0] - b[0])) {
      const key = x === 'step' ? step : seconds.length === values.length ? seconds.reduce((a, b) => a + b, 0) / seconds.length : NaN;
      if (!Number.isFinite(key)) continue;
      rows.push({ variant: variant.label, x: key, mean: values.reduce((a, b) => a + b, 0) / values.length, lo: Math.min(...values), hi: Math.max(...values) });
    }
  }
  return rows;
}

/** Renders a Vega-Lite spec to an SVG string in Node (no DOM, no network). */
export async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The Vega-Lite spec of a curve plot: mean line per variant over a min-max band across seeds. */
export function curveSpec(rows: CurveRow[], title: string, xTitle: string, yTitle: string, logY: boolean): vl.TopLevelSpec {
  const positive = rows.every((r) => r.lo > 0);
  const yScale = logY && positive ? { type: 'log' as const } : { zero: false };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 420,
    height: 220,
    data: { values: rows },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xTitle },
      color: { field: 'variant', type: 'nominal', title: null, legend: { symbolType: 'stroke', symbolOpacity: 1, symbolStrokeWidth: 2.5 } },
    },
    layer: [
      { mark: { type: 'area', opacity: 0.2 }, encoding: { y: { field: 'lo', type: 'quantitative', scale: yScale, title: yTitle }, y2: { field: 'hi' } } },
      { mark: { type: 'line', strokeWidth: 1.8 }, encoding: { y: { field: 'mean', type: 'quantitative', scale: yScale, title: yTitle } } },
    ],
  } as vl.TopLevelSpec;
}

const VERDICT_COLORS: Record<string, string> = {
  reproduced: '#1a7f37', 'not reproduced': '#cf222e', inconclusive: '#9a6700', pending: '#57606a',
};

function verdictBadge(v: string): string {
  return `<span class="badge" style="background:${VERDICT_COLORS[v] ?? '#57606a'}">${esc(v)}</span>`;
}

function metricsTable(e: ExperimentResult): string {
  const metrics = [...new Set(e.runs.flatMap((r) => Object.keys(r.output.metrics)))];
  if (metrics.length === 0) return '';
  const head = `<tr><th>variant</th>${metrics.map((m) => `<th>${esc(m)}</th>`).join('')}</tr>`;
  const body = e.variants.map((v) => {
    const runs = e.runs.filter((r) => r.variant === v.id);
    const cells = metrics.map((m) => {
      const values = runs.map((r) => r.output.metrics[m]).map((x) => (typeof x === 'number' ? x : NaN));
      const finite = values.filter(Number.isFinite);
      const mean = finite.reduce((a, b) => a + b, 0) / (finite.length || 1);
      const sd = finite.length > 1 ? Math.sqrt(finite.reduce((a, b) => a + (b - mean) ** 2, 0) / (finite.length - 1)) : 0;
      const failed = values.length - finite.length;
      return `<td>${finite.length ? `${num(mean)} ± ${num(sd, 2)}` : 'n/a'}${failed ? ` <small>(${failed} n/a)</small>` : ''}</td>`;
    });
    return `<tr><td>${esc(v.label)} <small>(${runs.length} seeds)</small></td>${cells.join('')}</tr>`;
  });
  return `<table>${head}${body.join('')}</table>`;
}

function checksTable(e: ExperimentResult): string {
  if (e.checks.length === 0) return '';
  const head = '<tr><th>check</th><th>metric</th><th>A</th><th>B</th><th>difference (favouring A)</th><th>2 × s.e.</th><th>verdict</th><th>why</th></tr>';
  const rows = e.checks.map((c) => `<tr><td>${esc(c.description)}</td><td>${esc(c.metric)} (${c.better} is better; margin ${num(c.margin)})</td>`
    + `<td>${esc(c.labelA)}: ${stat(c.a)}</td><td>${esc(c.labelB)}: ${stat(c.b)}</td><td>${num(c.difference)}</td><td>${num(2 * c.standardError)}</td>`
    + `<td>${verdictBadge(c.verdict)}</td><td><small>${esc(c.reason)}</small></td></tr>`);
  return `<table>${head}${rows.join('')}</table>`;
}

async function experimentSection(e: ExperimentResult): Promise<string> {
  const parts: string[] = [];
  parts.push(`<section id="${esc(e.id)}"><h2>${esc(e.id)}: ${esc(e.title)} ${verdictBadge(e.verdict)}</h2>`);
  parts.push(`<p class="claim"><b>Claim.</b> ${esc(e.claim)}</p>`);
  parts.push(`<p><b>Papers.</b> ${e.papers.map(esc).join('; ')}. <b>Method pages:</b> ${e.methodPages.map(esc).join(', ')}</p>`);
  if (e.status === 'pending') {
    parts.push(`<p><b>Pending:</b> waits for ${e.waitsFor.map(esc).join(', ')}. Nothing was run.</p></section>`);
    return parts.join('\n');
  }
  parts.push(`<p><b>Setup.</b> ${esc(e.setup)}</p><p><b>Metric.</b> ${esc(e.metric)}</p>`);
  if (e.status === 'incomplete') parts.push('<p><b>Incomplete:</b> some runs have not finished (interrupted); continue with <code>--resume</code>.</p>');
  const plots: string[] = [];
  for (const p of e.plots) {
    const rows = aggregateCurves(e, p.curve, p.x);
    if (rows.length === 0) continue;
    const svg = await renderSvg(curveSpec(rows, p.title, p.xTitle ?? (p.x === 'step' ? 'step' : 'wall time (s)'), p.yTitle, p.logY ?? false));
    plots.push(`<figure>${svg}<figcaption>${esc(p.title)}: mean over seeds, band = min..max across seeds</figcaption></figure>`);
  }
  if (plots.length) parts.push(`<div class="plots">${plots.join('')}</div>`);
  parts.push('<h3>Verdict</h3>', checksTable(e), '<h3>Per-variant metrics (mean ± sample std over seeds)</h3>', metricsTable(e));
  const wall = e.runs.reduce((s, r) => s + r.wallSeconds, 0);
  parts.push(`<p><small>${e.runs.length} runs, ${num(wall, 3)} s of training in total.</small></p></section>`);
  return parts.join('\n');
}

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}.badge{color:#fff;border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}
.plots{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{font-size:12px;color:#57606a}
section{border-top:1px solid #d0d7de;margin-top:2em}.claim{background:#f6f8fa;padding:.5em}`;

/** The whole report page. */
export async function renderReport(results: LabResults): Promise<string> {
  const m = results.meta;
  const sections: string[] = [];
  for (const e of results.experiments) sections.push(await experimentSection(e));
  const summaryRows = results.experiments.map((e) => `<tr><td><a href="#${esc(e.id)}">${esc(e.id)}</a></td><td>${esc(e.title)}</td><td>${verdictBadge(e.verdict)}</td><td>${esc(e.status)}</td></tr>`);
  const metaRows: Array<[string, string]> = [
    ['normkit', m.normkitVersion], ['tfjs-core', m.tfjsVersion], ['backend', m.backend], ['node', m.node], ['platform', `${m.platform}, ${m.cpus} CPUs`],
    ['mode', m.quick ? 'quick' : 'full'], ['seeds', String(m.seeds)], ['images', m.data], ['text', m.text],
    ['started', m.startedAt], ['wall time', `${num(m.wallSeconds, 4)} s for this invocation${m.interrupted ? ' (interrupted)' : ''}; ${num(m.runSeconds, 4)} s in all stored runs`],
  ];
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>normkit lab report</title><style>${STYLE}</style></head><body>
<h1>normkit lab report</h1>
<p>Each experiment tests a claim from a paper on small models and data, over ${m.seeds} seeds. Verdicts come from the measured numbers only:
a check is <i>reproduced</i> when the mean difference favours the claim by more than its margin and by more than two standard errors (Welch, across seeds);
<i>not reproduced</i> when even the difference plus two standard errors falls short; otherwise <i>inconclusive</i>.
Small and short runs test the direction of a claim, not the papers' absolute numbers.</p>
<h2>Summary</h2><table><tr><th>experiment</th><th>what</th><th>verdict</th><th>status</th></tr>${summaryRows.join('')}</table>
<h2>Run</h2><table>${metaRows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
${sections.join('\n')}
</body></html>
`;
}

/** The Markdown summary of all verdicts. */
export function renderSummary(results: LabResults): string {
  const m = results.meta;
  const lines = [
    '# normkit lab summary', '',
    `${m.quick ? 'Quick' : 'Full'} suite, ${m.seeds} seeds, backend ${m.backend}, normkit ${m.normkitVersion}, tfjs ${m.tfjsVersion}, node ${m.node}, ${m.cpus} CPUs; wall time ${num(m.wallSeconds, 4)} s for this invocation, ${num(m.runSeconds, 4)} s in all stored runs${m.interrupted ? ' (interrupted: continue with --resume)' : ''}.`,
    '', '| experiment | verdict | status | claim |', '|---|---|---|---|',
    ...results.experiments.map((e) => `| ${e.id} | ${e.verdict} | ${e.status}${e.waitsFor.length ? ` (waits for ${e.waitsFor.join(', ')})` : ''} | ${e.claim.replace(/\|/g, '\\|')} |`),
    '',
  ];
  for (const e of results.experiments.filter((x) => x.checks.length > 0)) {
    lines.push(`## ${e.id}: ${e.verdict}`, '', '| check | A | B | difference | verdict |', '|---|---|---|---|---|');
    for (const c of e.checks) lines.push(`| ${c.description} | ${c.labelA}: ${stat(c.a)} | ${c.labelB}: ${stat(c.b)} | ${num(c.difference)} ± ${num(2 * c.standardError)} | ${c.verdict} |`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}
