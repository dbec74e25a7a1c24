/**
 * `npm run bench:browser`: normkit's fused kernels against its composite path and tfjs's built-in layers on
 * webgl and webgpu, forward and forward+backward, in headless Chromium (the browser test harness; on this
 * project's machines a software renderer, SwiftShader). Writes bench/results/<date>-browser.md and .json.
 *
 * Options: --full (the cpu bench's shapes: [4096, 1024] rows, [32, 32, 32, 64] images; slow on a software
 * renderer), --runs <n> (timed runs per figure, default 7), --out <dir> (default bench/results).
 *
 * Every figure is the median of the timed runs after two warm-up runs, with min and max; a run ends when one
 * element of its last output has been read back, so the device queue has drained. Ratios are computed inside
 * this one run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckPage } from '../../test/browser/harness.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const FULL = args.includes('--full');
const RUNS = option('--runs', '7');
const OUT = option('--out', 'bench/results');

interface Timing {
  median: number;
  min: number;
  max: number;
  runs: number;
}

interface CaseResult {
  method: string;
  shape: number[];
  groups?: number;
  figures: Record<string, Timing | null>;
}

const fmt = (t: Timing | null) => (t ? `${t.median.toFixed(1)} [${t.min.toFixed(1)}]` : '—');
const ratio = (a: Timing | null, b: Timing | null) => (a && b ? `${(a.median / b.median).toFixed(2)}x` : '—');

const page = await openCheckPage('bench/browser/page.ts', { full: FULL ? '1' : '0', runs: RUNS });
const results: Record<string, { device: { name: string; software: boolean }; cases: CaseResult[] }> = {};
try {
  for (const name of page.names) {
    const backend = /^\[(\w+)\]/.exec(name)?.[1] ?? '?';
    process.stdout.write(`${name} ... `);
    const r = await page.run(name);
    if (!r.ok) throw new Error(`${name} failed: ${r.message}\n${page.console.slice(-10).join('\n')}`);
    console.log('done');
    const value = JSON.parse(r.message);
    if (name.endsWith('device')) results[backend] = { device: value, cases: [] };
    else results[backend].cases.push(value as CaseResult);
  }
} finally {
  await page.close();
}

const date = new Date().toISOString().slice(0, 10);
const lines: string[] = [
  `# normkit browser benchmark, ${date}`,
  '',
  `Headless Chromium, \`npm run bench:browser${FULL ? ' -- --full' : ''}\`. Milliseconds per call: median [min] of ${RUNS} timed runs after 2 warm-up runs; a run ends`,
  'when one element of its last output has been read back. forward+backward = gradients of sum(y * dy) with respect to x and',
  "the weights the variant uses. fused = normkit with its fused kernels, composite = normkit's composite of tfjs ops",
  "(`setFusedKernels(false)`), tfjs = tfjs-layers' LayerNormalization / BatchNormalization (training), where tfjs has one.",
  'Ratios are composite / fused and tfjs / fused within this run. Figures from a software renderer say so in every row:',
  "they measure a CPU emulating a GPU, not a GPU's throughput, and no GPU copy bandwidth is quoted for them.",
  '',
];
for (const [backend, { device, cases }] of Object.entries(results)) {
  const renderer = device.software ? `software renderer (${device.name})` : device.name;
  lines.push(`## ${backend}: ${renderer}`, '');
  lines.push('| method | shape | renderer | fused fwd | composite fwd | tfjs fwd | composite/fused | tfjs/fused | fused fwd+bwd | composite fwd+bwd | tfjs fwd+bwd | composite/fused | tfjs/fused |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const c of cases) {
    const f = c.figures;
    const label = c.groups ? `${c.method} (${c.groups} groups)` : c.method;
    const tag = device.software ? 'software' : 'GPU';
    lines.push(
      `| ${label} | [${c.shape.join(', ')}] | ${tag} | ${fmt(f['fused forward'])} | ${fmt(f['composite forward'])} | ${fmt(f['tfjs forward'])} | ${ratio(f['composite forward'], f['fused forward'])} | ${ratio(f['tfjs forward'], f['fused forward'])} | ${fmt(f['fused forward+backward'])} | ${fmt(f['composite forward+backward'])} | ${fmt(f['tfjs forward+backward'])} | ${ratio(f['composite forward+backward'], f['fused forward+backward'])} | ${ratio(f['tfjs forward+backward'], f['fused forward+backward'])} |`,
    );
  }
  lines.push('');
}
mkdirSync(OUT, { recursive: true });
const base = join(OUT, `${date}-browser`);
writeFileSync(`${base}.json`, JSON.stringify({ date, full: FULL, runs: Number(RUNS), results }, null, 2));
writeFileSync(`${base}.md`, lines.join('\n'));
console.log(`wrote ${base}.md and ${base}.json`);
