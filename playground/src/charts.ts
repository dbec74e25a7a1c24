/**
 * Live charts: Vega-Lite specs compiled to Vega and rendered with Vega's View API; new data arrives through
 * changesets (insert for curves, replace for histograms and statistics) so a view is built once and updated.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';

/** Colors of model A and model B, the same in every chart. */
export const MODEL_COLORS = ['#d95f02', '#1b6ac9'];

/** A Vega view bound to one element, with one named data set that changesets update. */
export class LiveChart {
  private readonly view: vega.View;

  constructor(container: HTMLElement, spec: TopLevelSpec, readonly dataName = 'table') {
    container.replaceChildren();
    const host = document.createElement('div');
    container.append(host);
    const compiled = vl.compile(spec).spec;
    this.view = new vega.View(vega.parse(compiled), { renderer: 'canvas', container: host, hover: true });
    void this.view.runAsync();
  }

  /** Appends rows. */
  insert(rows: object[]): void {
    if (rows.length === 0) return;
    void this.view.change(this.dataName, vega.changeset().insert(rows)).runAsync();
  }

  /** Replaces all rows. */
  replace(rows: object[]): void {
    void this.view.change(this.dataName, vega.changeset().remove(() => true).insert(rows)).runAsync();
  }

  finalize(): void {
    this.view.finalize();
  }
}

const base = {
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  width: 'container',
  autosize: { type: 'fit', contains: 'padding', resize: true },
  data: { name: 'table' },
  config: { font: 'system-ui, sans-serif', axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelFontSize: 12, orient: 'top' } },
} as const;

/** One row of a training curve. `kind` is 'train' (a smoothed training batch) or 'test' (held-out set). */
export interface CurveRow {
  model: string;
  step: number;
  kind: 'train' | 'test';
  value: number;
}

/** Loss or accuracy against step, both models in one chart: thin lines for training batches, thick for test. */
export function curveSpec(title: string, models: string[], yTitle: string, domain?: [number, number]): TopLevelSpec {
  const color = { field: 'model', type: 'nominal', title: null, scale: { domain: models, range: MODEL_COLORS } } as const;
  const x = { field: 'step', type: 'quantitative', title: 'training step' } as const;
  const y = { field: 'value', type: 'quantitative', title: yTitle, scale: domain ? { domain, clamp: true } : { zero: false } } as const;
  return {
    ...base,
    height: 230,
    title,
    layer: [
      {
        transform: [{ filter: "datum.kind === 'train'" }],
        mark: { type: 'line', strokeWidth: 1.2, opacity: 0.55, interpolate: 'monotone' },
        encoding: { x, y, color, detail: { field: 'model' } },
      },
      {
        transform: [{ filter: "datum.kind === 'test'" }],
        mark: { type: 'line', strokeWidth: 2.5, point: { size: 30 } },
        encoding: {
          x, y, color,
          tooltip: [{ field: 'model' }, { field: 'step' }, { field: 'value', format: '.3f', title: yTitle }],
        },
      },
    ],
  } as TopLevelSpec;
}

/** One histogram bar: the fraction of values in [x0, x1). */
export interface HistogramRow {
  x0: number;
  x1: number;
  fraction: number;
}

/** A histogram of one tensor's values, each bar the fraction of values in its bin. */
export function histogramSpec(title: string, color: string): TopLevelSpec {
  return {
    ...base,
    height: 120,
    title: { text: title, fontSize: 11, fontWeight: 'normal', anchor: 'start' },
    mark: { type: 'rect', color },
    encoding: {
      x: { field: 'x0', type: 'quantitative', title: null, scale: { zero: false, nice: false }, axis: { tickCount: 6 } },
      x2: { field: 'x1' },
      y: { field: 'fraction', type: 'quantitative', title: null, axis: { format: '.0%', tickCount: 3 } },
      y2: { datum: 0 },
      tooltip: [{ field: 'x0', format: '.3f', title: 'from' }, { field: 'x1', format: '.3f', title: 'to' }, { field: 'fraction', format: '.1%' }],
    },
  } as TopLevelSpec;
}

/** One channel of a norm's moving statistics. */
export interface StatsRow {
  channel: number;
  mean: number;
  low: number;
  high: number;
}

/** Per-channel moving mean (point) and moving mean ± moving standard deviation (rule). */
export function movingStatsSpec(title: string, color: string): TopLevelSpec {
  const x = { field: 'channel', type: 'ordinal', title: 'channel', axis: { labelAngle: 0, labelOverlap: true } } as const;
  return {
    ...base,
    height: 120,
    title: { text: title, fontSize: 12, anchor: 'start' },
    layer: [
      { mark: { type: 'rule', color, opacity: 0.6, strokeWidth: 2 }, encoding: { x, y: { field: 'low', type: 'quantitative', title: 'mean ± std' }, y2: { field: 'high' } } },
      {
        mark: { type: 'point', filled: true, color, size: 28 },
        encoding: {
          x, y: { field: 'mean', type: 'quantitative' },
          tooltip: [{ field: 'channel' }, { field: 'mean', format: '.3f', title: 'moving mean' }, { field: 'high', format: '.3f', title: 'mean + std' }],
        },
      },
    ],
  } as TopLevelSpec;
}

/** Any other per-channel state (e.g. a moving variance alone), one point per channel and state variable. */
export function stateSpec(title: string): TopLevelSpec {
  return {
    ...base,
    height: 120,
    title: { text: title, fontSize: 12, anchor: 'start' },
    mark: { type: 'point', filled: true, size: 28 },
    encoding: {
      x: { field: 'channel', type: 'ordinal', title: 'channel', axis: { labelAngle: 0, labelOverlap: true } },
      y: { field: 'value', type: 'quantitative', title: 'value' },
      color: { field: 'name', type: 'nominal', title: null },
      tooltip: [{ field: 'name' }, { field: 'channel' }, { field: 'value', format: '.3f' }],
    },
  } as TopLevelSpec;
}
