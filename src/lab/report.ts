/**
 * The lab's report: a self-contained HTML page (plots rendered to inline SVG by Vega-Lite + Vega in Node; nothing
 * is fetched when viewing) and a Markdown summary of all verdicts, both computed from results.json alone.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { ExperimentResult, LabResults } from './results.js';
import type { CurvePoint } from './train.js';
import { describeRollUp, rollUp, type ComparisonResult } from './verdict.js';

/** Escapes text for HTML. */
function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function num(v: number, digits = 4): string {
  if (!Number.isFinite(v)) return 'n/a';
  return Math.abs(v) >= 1000 ? v.toFixed(0) : String(Number(v.toPrecision(digits)));
}

/** A side of a check: mean ± std of its values, and what became of the other runs (censored, failed). */
function side(c: ComparisonResult, which: 'A' | 'B'): string {
  const s = which === 'A' ? c.a : c.b;
  const censored = which === 'A' ? c.censoredA : c.censoredB;
  const failed = which === 'A' ? c.failedA : c.failedB;
  const total = s.n + s.nonFinite;
  const parts = [s.n > 0 ? `${num(s.mean)} ± ${num(s.std, 2)} (n=${s.n})` : 'no value'];
  if (censored > 0) parts.push(`not reached by step ${num(c.censoredAt ?? NaN)} in ${censored} of ${total}`);
  if (failed > 0) parts.push(`failed (diverged or did not train) in ${failed} of ${total}`);
  return parts.join('; ');
}

/** The effect with its interval: "0.061 [0.032, 0.090]" or "x3.1 [2.4, 4.0]" for ratios. */
function effect(c: ComparisonResult): string {
  if (!Number.isFinite(c.estimate)) return 'n/a';
  const prefix = c.scale === 'ratio' ? '×' : '';
  const bound = c.scale === 'ratio' && c.censoredB > 0 ? ' (lower bound)' : '';
  return `${prefix}${num(c.estimate, 3)} [${num(c.interval[0], 3)}, ${num(c.interval[1], 3)}]${bound}`;
}

function detectable(c: ComparisonResult): string {
  if (!Number.isFinite(c.detectable)) return 'n/a';
  return c.scale === 'ratio' ? `×${num(c.detectable, 3)}` : num(c.detectable, 3);
}

function marginText(c: ComparisonResult): string {
  return c.scale === 'ratio' ? `ratio ${c.kind === 'better' ? '≥' : '≥ 1/'}${num(c.margin)}` : `margin ${num(c.margin)}`;
}

/** One row per (variant, x): mean and min-max band across the seeds that have a value at that x. */
export interface CurveRow {
  variant: string;
  x: number;
  mean: number;
  lo: number;
  hi: number;
  /** Seeds with a value at this x, and seeds of the variant. */
  n: number;
  of: number;
}

/** One point of one seed's curve (for the thin per-seed lines under the mean). */
export interface SeedRow {
  variant: string;
  seed: number;
  x: number;
  value: number;
}

/** The points of a curve as plotted: averaged over consecutive bins when longer than `maxPoints`. */
function binned(points: readonly CurvePoint[], maxPoints: number): CurvePoint[] {
  const finite = points.filter((p) => typeof p.value === 'number' && Number.isFinite(p.value));
  const bin = Math.max(1, Math.ceil(finite.length / maxPoints));
  const out: CurvePoint[] = [];
  for (let i = 0; i < finite.length; i += bin) {
    const chunk = finite.slice(i, i + bin);
    const last = chunk[chunk.length - 1];
    out.push({ step: last.step, value: chunk.reduce((s, p) => s + p.value, 0) / chunk.length, seconds: last.seconds });
  }
  return out;
}

/**
 * Aggregates one curve across seeds: values at the same step are averaged (band = min..max over seeds); against wall
 * time, x is the seeds' mean time at that step. Curves longer than `maxPoints` are first averaged over consecutive
 * bins, so a 1000-step loss curve plots as ~`maxPoints` points. Each row says how many seeds it averages (`n` of
 * `of`): where a seed's curve has ended (it diverged), the plot stops the mean line rather than silently averaging
 * the survivors.
 */
export function aggregateCurves(experiment: ExperimentResult, curve: string, x: 'step' | 'seconds', maxPoints = 80): CurveRow[] {
  const rows: CurveRow[] = [];
  for (const variant of experiment.variants) {
    const runs = experiment.runs.filter((r) => r.variant === variant.id);
    const perStep = new Map<number, { values: number[]; seconds: number[] }>();
    for (const run of runs) {
      for (const p of binned(run.output.curves[curve] ?? [], maxPoints)) {
        const entry = perStep.get(p.step) ?? { values: [], seconds: [] };
        entry.values.push(p.value);
        if (typeof p.seconds === 'number') entry.seconds.push(p.seconds);
        perStep.set(p.step, entry);
      }
    }
    for (const [step, { values, seconds }] of [...perStep.entries()].sort((a, b) => a[0] - b[0])) {
      const key = x === 'step' ? step : seconds.length === values.length ? seconds.reduce((a, b) => a + b, 0) / seconds.length : NaN;
      if (!Number.isFinite(key)) continue;
      rows.push({ variant: variant.label, x: key, mean: values.reduce((a, b) => a + b, 0) / values.length, lo: Math.min(...values), hi: Math.max(...values), n: values.length, of: runs.length });
    }
  }
  return rows;
}

/** Every seed's curve (binned like {@link aggregateCurves}), for thin lines under the mean. */
export function seedCurves(experiment: ExperimentResult, curve: string, x: 'step' | 'seconds', maxPoints = 80): SeedRow[] {
  const rows: SeedRow[] = [];
  for (const variant of experiment.variants) {
    for (const run of experiment.runs.filter((r) => r.variant === variant.id)) {
      for (const p of binned(run.output.curves[curve] ?? [], maxPoints)) {
        const key = x === 'step' ? p.step : p.seconds;
        if (typeof key === 'number' && Number.isFinite(key)) rows.push({ variant: variant.label, seed: run.seed, x: key, value: p.value });
      }
    }
  }
  return rows;
}

/**
 * Renders a Vega-Lite spec to an SVG string in Node (no DOM, no network). Vega numbers clip paths with a
 * process-wide counter; they are renamed `<idPrefix>-clip<k>` so the SVG is deterministic and unique in a page.
 */
export async function renderSvg(spec: vl.TopLevelSpec, idPrefix = 'plot'): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    const ids = new Map<string, string>();
    return svg.replace(/\bclip(\d+)\b/g, (_m, n: string) => {
      if (!ids.has(n)) ids.set(n, `${idPrefix}-clip${ids.size + 1}`);
      return ids.get(n) as string;
    });
  } finally {
    view.finalize();
  }
}

/**
 * Line colours, in order: distinguishable hues with no orange (it reads as the red beside it) and no two
 * neighbours alike.
 */
export const LINE_COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#17becf', '#8c564b', '#e377c2', '#7f7f7f'];

/** The q-quantile (0..1) of `values` by linear interpolation between order statistics. */
export function quantile(values: readonly number[], q: number): number {
  const v = [...values].filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const pos = (v.length - 1) * q;
  const i = Math.floor(pos);
  return i + 1 < v.length ? v[i] + (pos - i) * (v[i + 1] - v[i]) : v[i];
}

/**
 * The y domain of a plot, robust to a spike: the 1 %..99 % quantiles of everything drawn, widened by 5 % of the
 * span (of the log span on a log axis); marks outside are clipped.
 */
export function robustDomain(values: readonly number[], log: boolean): [number, number] {
  const t = (v: number) => (log ? Math.log10(v) : v);
  const inv = (v: number) => (log ? 10 ** v : v);
  const lo = t(quantile(values, 0.01));
  const hi = t(quantile(values, 0.99));
  const pad = (hi - lo || Math.abs(hi) || 1) * 0.05;
  return [inv(lo - pad), inv(hi + pad)];
}

/** Options of {@link curveSpec}. */
export interface CurveSpecOptions {
  /** Per-seed points drawn as thin lines under the mean. */
  seeds?: SeedRow[];
  /** Horizontal reference lines (e.g. the unigram cross-entropy). */
  references?: Array<{ label: string; value: number }>;
  /** Variant labels in order, so each keeps its colour across plots. */
  order?: string[];
}

/**
 * The Vega-Lite spec of a curve plot: per variant, thin lines for the seeds, a min-max band and the mean line
 * (drawn only where every seed has a value); reference rules; a y domain robust to spikes.
 */
export function curveSpec(rows: CurveRow[], title: string, xTitle: string, yTitle: string, logY: boolean, options: CurveSpecOptions = {}): vl.TopLevelSpec {
  const seeds = options.seeds ?? [];
  const references = options.references ?? [];
  const drawn = [...rows.flatMap((r) => [r.lo, r.hi]), ...seeds.map((s) => s.value), ...references.map((r) => r.value)];
  const positive = drawn.every((v) => v > 0);
  const log = logY && positive;
  const domain = robustDomain(drawn, log);
  const yScale = log ? { type: 'log' as const, domain } : { zero: false, domain };
  const order = options.order ?? [...new Set(rows.map((r) => r.variant))];
  const color = { field: 'variant', type: 'nominal', title: null, scale: { domain: order, range: LINE_COLORS.slice(0, Math.max(1, order.length)) }, legend: { symbolType: 'stroke', symbolOpacity: 1, symbolStrokeWidth: 2.5 } };
  const complete = rows.filter((r) => r.n === r.of);
  const layers: unknown[] = [
    { data: { values: rows }, mark: { type: 'area', opacity: 0.12, clip: true }, encoding: { x: { field: 'x', type: 'quantitative', title: xTitle }, y: { field: 'lo', type: 'quantitative', scale: yScale, title: yTitle }, y2: { field: 'hi' }, color } },
  ];
  if (seeds.length) {
    layers.push({ data: { values: seeds }, mark: { type: 'line', strokeWidth: 0.7, opacity: 0.45, clip: true }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'value', type: 'quantitative', scale: yScale }, detail: { field: 'seed', type: 'nominal' }, color } });
  }
  layers.push({ data: { values: complete }, mark: { type: 'line', strokeWidth: 2, clip: true }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'mean', type: 'quantitative', scale: yScale }, color } });
  if (references.length) {
    layers.push({ data: { values: references }, mark: { type: 'rule', strokeDash: [5, 4], color: '#57606a', clip: true }, encoding: { y: { field: 'value', type: 'quantitative', scale: yScale } } });
    layers.push({ data: { values: references }, mark: { type: 'text', align: 'left', dx: 4, dy: -6, fontSize: 10, color: '#57606a' }, encoding: { x: { value: 0 }, y: { field: 'value', type: 'quantitative', scale: yScale }, text: { field: 'label' } } });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 420,
    height: 220,
    layer: layers,
  } as vl.TopLevelSpec;
}

const VERDICT_COLORS: Record<string, string> = {
  reproduced: '#1a7f37', 'not reproduced': '#cf222e', inconclusive: '#9a6700', pending: '#57606a',
};

function verdictBadge(v: string): string {
  return `<span class="badge" style="background:${VERDICT_COLORS[v] ?? '#57606a'}">${esc(v)}</span>`;
}

/** The experiment's roll-up ("2 of 3 checks reproduced"), coloured by the share reproduced. */
function rollUpBadge(e: ExperimentResult): string {
  if (e.status === 'pending') return verdictBadge('pending');
  const r = e.rollup;
  const colour = r.total > 0 && r.reproduced === r.total ? VERDICT_COLORS.reproduced : r.reproduced > 0 ? '#0969da' : r.notReproduced > 0 ? VERDICT_COLORS['not reproduced'] : VERDICT_COLORS.inconclusive;
  return `<span class="badge" style="background:${colour}">${esc(e.verdict)}</span>`;
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
  const head = '<tr><th>check</th><th>metric</th><th>A</th><th>B</th><th>effect favouring A, 95% CI</th><th>smallest detectable</th><th>verdict</th><th>why</th></tr>';
  const rows = e.checks.map((c) => `<tr><td>${esc(c.description)}</td><td>${esc(c.metric)} (${c.better} is better; ${esc(marginText(c))}; ${c.paired ? `paired by seed, n=${c.n}` : `unpaired, n=${c.n}`})</td>`
    + `<td>${esc(c.labelA)}: ${esc(side(c, 'A'))}</td><td>${esc(c.labelB)}: ${esc(side(c, 'B'))}</td><td>${esc(effect(c))}</td><td>${esc(detectable(c))}</td>`
    + `<td>${verdictBadge(c.verdict)}</td><td><small>${esc(c.reason)}</small></td></tr>`);
  return `<table>${head}${rows.join('')}</table>`;
}

/** A method page's link: `docs/x.md` relative to the report's folder when the run knew where the docs are. */
function methodLink(page: string, docsBase: string | undefined): string {
  const name = page.replace(/^.*\//, '');
  const href = docsBase !== undefined ? `${docsBase.replace(/\/$/, '')}/${name}` : `docs/${name}`;
  return `<a href="${esc(href)}">docs/${esc(name)}</a>`;
}

async function experimentSection(e: ExperimentResult, docsBase: string | undefined): Promise<string> {
  const parts: string[] = [];
  parts.push(`<section id="${esc(e.id)}"><h2>${esc(e.id)}: ${esc(e.title)} ${rollUpBadge(e)}</h2>`);
  parts.push(`<p class="claim"><b>Claim.</b> ${esc(e.claim)}</p>`);
  parts.push(`<p><b>Papers.</b> ${e.papers.map(esc).join('; ')}. <b>Method pages:</b> ${e.methodPages.map((p) => methodLink(p, docsBase)).join(', ')}</p>`);
  if (e.status === 'pending') {
    parts.push(`<p><b>Pending:</b> waits for ${e.waitsFor.map(esc).join(', ')}. Nothing was run.</p></section>`);
    return parts.join('\n');
  }
  parts.push(`<p><b>Setup.</b> ${esc(e.setup)}</p><p><b>Metric.</b> ${esc(e.metric)}</p>`);
  if (e.regime) parts.push(`<p><b>Regime vs the paper.</b> ${esc(e.regime)}</p>`);
  if (e.status === 'incomplete') parts.push('<p><b>Incomplete:</b> some runs have not finished (interrupted); continue with <code>--resume</code>.</p>');
  const plots: string[] = [];
  for (const p of e.plots) {
    const rows = aggregateCurves(e, p.curve, p.x);
    if (rows.length === 0) continue;
    const references = (p.references ?? []).flatMap((r) => {
      const values = e.runs.map((run) => run.output.metrics[r.metric]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
      return values.length ? [{ label: r.label, value: values.reduce((a, b) => a + b, 0) / values.length }] : [];
    });
    const order = e.variants.map((v) => v.label);
    const spec = curveSpec(rows, p.title, p.xTitle ?? (p.x === 'step' ? 'step' : 'wall time (s)'), p.yTitle, p.logY ?? false, { seeds: seedCurves(e, p.curve, p.x), references, order });
    const svg = await renderSvg(spec, `${e.id}-${plots.length}`);
    const ended = e.variants.flatMap((v) => {
      const runs = e.runs.filter((r) => r.variant === v.id);
      const lengths = runs.map((r) => (r.output.curves[p.curve] ?? []).length);
      const short = lengths.filter((l) => l < Math.max(...lengths)).length;
      return short > 0 ? [`${v.label}: ${short} of ${runs.length} seeds ended early (diverged); its mean line stops where they end`] : [];
    });
    plots.push(`<figure>${svg}<figcaption>${esc(p.title)}: thick line = mean over seeds (only where every seed has a value), thin lines = seeds, band = min..max; y axis clipped to the 1-99 % quantiles${ended.length ? `. ${esc(ended.join('; '))}` : ''}</figcaption></figure>`);
  }
  if (plots.length) parts.push(`<div class="plots">${plots.join('')}</div>`);
  parts.push('<h3>Checks</h3>', checksTable(e), '<h3>Per-variant metrics (mean ± sample std over seeds)</h3>', metricsTable(e));
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
  for (const e of results.experiments) sections.push(await experimentSection(e, m.docsBase));
  const summaryRows = results.experiments.flatMap((e) => {
    const head = `<tr><td rowspan="${Math.max(1, e.checks.length)}"><a href="#${esc(e.id)}">${esc(e.id)}</a><br><small>${rollUpBadge(e)}${e.status === 'done' || e.status === 'pending' ? '' : ` ${esc(e.status)}`}</small></td>`;
    if (e.checks.length === 0) return [`${head}<td colspan="3">${e.status === 'pending' ? `waits for ${esc(e.waitsFor.join(', '))}` : 'no checks'}</td></tr>`];
    return e.checks.map((c, i) => `${i === 0 ? head : '<tr>'}<td>${esc(c.description)}</td><td>${esc(effect(c))}</td><td>${verdictBadge(c.verdict)}</td></tr>`);
  });
  const total = results.experiments.flatMap((e) => e.checks.map((c) => c.verdict));
  const all = rollUp(total);
  const metaRows: Array<[string, string]> = [
    ['normkit', m.normkitVersion], ['tfjs-core', m.tfjsVersion], ['backend', m.backend], ['node', m.node], ['platform', `${m.platform}, ${m.cpus} CPUs`],
    ['mode', m.quick ? 'quick' : 'default'], ['seeds', `up to ${m.seeds} per variant (each experiment states its own)`], ['images', m.data], ['text', m.text],
    ['started', m.startedAt], ['wall time', `${num(m.wallSeconds, 4)} s for this invocation${m.interrupted ? ' (interrupted)' : ''}; ${num(m.runSeconds, 4)} s in all stored runs`],
  ];
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>normkit lab report</title><style>${STYLE}</style></head><body>
<h1>normkit lab report</h1>
<p>Each experiment tests a claim from a paper on small models and data, over several seeds. Every check compares two variants on one
metric and gives the effect in the claim's favour with its 95 % confidence interval (Student t; paired by seed where the variants share
the seed's initialization and data order, Welch otherwise; ratios for steps-to-target, on the log scale). A check is <i>reproduced</i> when
the interval excludes no effect and the estimate reaches the claim's margin; <i>not reproduced</i> when the whole interval lies below the
margin; otherwise <i>inconclusive</i>. "Smallest detectable" is the effect the check had 80 % power to detect with the spread it saw.
Diverged runs and runs that failed to train are counted as such, never averaged into a metric.
Small and short runs test the direction of a claim, not the papers' absolute numbers.</p>
<h2>Summary: ${esc(describeRollUp(all))}</h2><table><tr><th>experiment</th><th>check</th><th>effect, 95% CI</th><th>verdict</th></tr>${summaryRows.join('')}</table>
<h2>Run</h2><table>${metaRows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
${sections.join('\n')}
</body></html>
`;
}

/** The Markdown summary: every check's verdict with its interval, then each experiment's roll-up. */
export function renderSummary(results: LabResults): string {
  const m = results.meta;
  const all = rollUp(results.experiments.flatMap((e) => e.checks.map((c) => c.verdict)));
  const lines = [
    '# normkit lab summary', '',
    `${m.quick ? 'Quick' : 'Default'} suite, backend ${m.backend}, normkit ${m.normkitVersion}, tfjs ${m.tfjsVersion}, node ${m.node}, ${m.cpus} CPUs; wall time ${num(m.wallSeconds, 4)} s for this invocation, ${num(m.runSeconds, 4)} s in all stored runs${m.interrupted ? ' (interrupted: continue with --resume)' : ''}.`,
    '', `${describeRollUp(all)}.`, '',
    '| experiment | check | effect favouring A, 95% CI | smallest detectable | verdict |', '|---|---|---|---|---|',
    ...results.experiments.flatMap((e) => (e.checks.length === 0
      ? [`| ${e.id} | ${e.status === 'pending' ? `pending (waits for ${e.waitsFor.join(', ')})` : e.status} | | | ${e.verdict} |`]
      : e.checks.map((c) => `| ${e.id} | ${c.description.replace(/\|/g, '\\|')} | ${effect(c)} | ${detectable(c)} | ${c.verdict} |`))),
    '', '| experiment | roll-up | status | claim |', '|---|---|---|---|',
    ...results.experiments.map((e) => `| ${e.id} | ${e.verdict} | ${e.status}${e.waitsFor.length ? ` (waits for ${e.waitsFor.join(', ')})` : ''} | ${e.claim.replace(/\|/g, '\\|')} |`),
    '',
  ];
  for (const e of results.experiments.filter((x) => x.checks.length > 0)) {
    lines.push(`## ${e.id}: ${e.verdict}`, '');
    if (e.regime) lines.push(`Regime vs the paper: ${e.regime}`, '');
    lines.push('| check | A | B | effect, 95% CI | verdict | why |', '|---|---|---|---|---|---|');
    for (const c of e.checks) lines.push(`| ${c.description} | ${c.labelA}: ${side(c, 'A')} | ${c.labelB}: ${side(c, 'B')} | ${effect(c)} | ${c.verdict} | ${c.reason.replace(/\|/g, '\\|')} |`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}
