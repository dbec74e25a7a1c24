// normkit from its tarball in a browser app: the root entry bundles for the browser with no configuration,
// tree-shakes, and the example app (examples/browser), built with esbuild and with vite, runs in Chromium.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { chromium, type Browser } from 'playwright-core';
import { assertClose } from '../helpers/numeric.js';
import { refNormalize } from '../helpers/reference.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH as CHROMIUM } from '../browser/harness.js';
import { assertOneTfjsCore, cleanup, consumerProject, repoRoot, run, serveStatic, tarball } from './harness.js';

const EXAMPLE = join(repoRoot, 'examples', 'browser');

/** Bundles `contents` (an ES module importing normkit) from the consumer project for the browser, tfjs external. */
async function bundleFromProject(dir: string, contents: string): Promise<esbuild.BuildResult<{ metafile: true; write: false }>> {
  return esbuild.build({
    stdin: { contents, resolveDir: dir, loader: 'js' },
    absWorkingDir: dir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    minify: true,
    write: false,
    metafile: true,
    logLevel: 'silent',
    external: ['@tensorflow/*'],
  });
}

/**
 * normkit's own files in a bundle, relative to its dist/src: every file the bundler read, or with `emitted` only
 * those with code in the output (tree shaking drops the others).
 */
function normkitInputs(meta: esbuild.Metafile, emitted = false): string[] {
  const marker = 'node_modules/normkit/dist/src/';
  const files = emitted
    ? Object.values(meta.outputs).flatMap((o) => Object.entries(o.inputs).filter(([, v]) => v.bytesInOutput > 0).map(([k]) => k))
    : Object.keys(meta.inputs);
  return files
    .filter((p) => p.includes(marker))
    .map((p) => p.slice(p.indexOf(marker) + marker.length));
}

interface PageResults {
  shape: number[];
  x: number[];
  error?: string;
  backends: Record<string, { backend: string; layerNorm: number[]; groupNorm: number[] }>;
}

/** Tolerances per backend: cpu computes in float32; WebGL (SwiftShader) in float32 textures with GPU rounding. */
const TOL: Record<string, { atol: number; rtol: number }> = { cpu: { atol: 1e-5, rtol: 1e-5 }, webgl: { atol: 1e-3, rtol: 1e-3 } };

/** Checks the page's results against float64 references computed here from the same float32 input. */
function assertPageResults(r: PageResults, what: string): void {
  assert.equal(r.error, undefined, `${what}: the page failed: ${r.error}`);
  const [n, h, w, c] = r.shape;
  const x = r.x.map((v) => Math.fround(v));
  // LayerNorm over the channels with gamma = linspace(0.5, 2, C), epsilon 1e-5.
  const gamma = Array.from({ length: c }, (_, i) => 0.5 + (1.5 * i) / (c - 1));
  const ln = refNormalize(x, r.shape, [3], 1e-5, { gamma, paramAxes: [3] }).y;
  // GroupNormalization, 4 groups: the channels split as [4, C / 4], statistics over H, W and C / 4 per group.
  const gn = refNormalize(x, [n, h, w, 4, c / 4], [1, 2, 4], 1e-3).y;
  for (const backend of ['webgl', 'cpu']) {
    const got = r.backends[backend];
    assert.ok(got, `${what}: no results for ${backend}`);
    assert.equal(got.backend, backend, `${what}: ${backend} did not come up`);
    assertClose(got.layerNorm, ln, TOL[backend], `${what}: layerNorm on ${backend}`);
    assertClose(got.groupNorm, gn, TOL[backend], `${what}: GroupNormalization on ${backend}`);
  }
}

describe('normkit in a browser app, installed from its tarball', { timeout: 420_000 }, () => {
  let dir = '';
  let browser: Browser | undefined;

  before(async () => {
    const example = JSON.parse(readFileSync(join(EXAMPLE, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    // The example's own dependencies, tfjs pinned to the version the repo tests, normkit from the tarball.
    dir = consumerProject('browser', { ...example.dependencies, '@tensorflow/tfjs': '4.22.0', normkit: `file:${tarball()}` });
    for (const f of ['index.html', 'main.js']) copyFileSync(join(EXAMPLE, f), join(dir, f));
    assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium, or set NORMKIT_CHROMIUM)`);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    cleanup(dir);
  });

  /** Opens the app served from `root` and returns its results, failing on any console error or page error. */
  async function runApp(root: string, what: string): Promise<void> {
    assert.ok(browser);
    const { server, url } = await serveStatic(root);
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    try {
      await page.goto(url);
      await page.waitForFunction(() => (window as unknown as { normkitResults?: unknown }).normkitResults !== undefined, undefined, {
        timeout: 180_000,
      });
      const results = await page.evaluate(() => (window as unknown as { normkitResults: PageResults }).normkitResults);
      assertPageResults(results, what);
      assert.deepEqual(errors, [], `${what}: errors in the page`);
    } finally {
      await page.close();
      await new Promise((ok) => server.close(ok));
    }
  }

  it('holds exactly one @tensorflow/tfjs-core', () => {
    assertOneTfjsCore(dir, '4.22.0');
  });

  it('bundles the root entry for the browser with no node builtins and no lab, report or CLI code', async () => {
    const r = await bundleFromProject(dir, "export * from 'normkit';");
    assert.deepEqual(r.errors, []);
    const builtins = new Set(builtinModules);
    for (const out of Object.values(r.metafile.outputs)) {
      for (const imp of out.imports) {
        assert.ok(!imp.path.startsWith('node:') && !builtins.has(imp.path), `the root entry imports ${imp.path}`);
        assert.ok(imp.path.startsWith('@tensorflow/'), `the root entry pulls ${imp.path}`);
      }
    }
    const inputs = Object.keys(r.metafile.inputs);
    for (const bad of [/node_modules\/(vega|vega-lite|d3-[a-z-]+|cli-progress|bullmq)\//]) {
      assert.deepEqual(inputs.filter((p) => bad.test(p)), [], 'Node-only or plotting packages in the root bundle');
    }
    const own = normkitInputs(r.metafile);
    assert.ok(own.length > 10, `normkit's own modules in the bundle: ${own.length}`);
    assert.deepEqual(own.filter((p) => /^(lab|cli)\/|report|file-system|^node\./.test(p)), [], 'lab, report, CLI or file-system code');
  });

  it("tree-shakes: `import { layerNorm } from 'normkit'` leaves out the other methods", async () => {
    const full = await bundleFromProject(dir, "export * from 'normkit';");
    const one = await bundleFromProject(dir, "export { layerNorm } from 'normkit';");
    const size = (b: esbuild.BuildResult<{ write: false }>): number => b.outputFiles.reduce((s, f) => s + f.contents.length, 0);
    const inputs = normkitInputs(one.metafile, true);
    assert.ok(inputs.some((p) => p.startsWith('methods/layer-norm/')), 'layer-norm itself is in the bundle');
    for (const other of ['methods/spectral-norm/', 'methods/evonorm/', 'optimizers/', 'surgery/', 'models/transformer']) {
      assert.deepEqual(inputs.filter((p) => p.startsWith(other)), [], `${other} in a bundle that uses layerNorm only`);
    }
    assert.ok(size(one) < size(full) / 2, `layerNorm alone ${size(one)} B vs the whole root ${size(full)} B`);
    // Lookup by name keeps every method, so that createNorm('group') works in any bundle.
    const byName = normkitInputs((await bundleFromProject(dir, "export { createNorm } from 'normkit';")).metafile, true);
    for (const needed of ['methods/group-norm/layer.js', 'methods/peri-ln/index.js', 'optimizers/adamp.js', 'methods/evonorm/layer.js']) {
      assert.ok(byName.includes(needed), `${needed} missing from a bundle that uses createNorm`);
    }
  });

  it('builds the example app with esbuild (entry, bundle, format only) and runs it in Chromium on webgl and cpu', async () => {
    const out = join(dir, 'esbuild-dist');
    mkdirSync(out);
    const r = await esbuild.build({ absWorkingDir: dir, entryPoints: ['main.js'], bundle: true, format: 'esm', outdir: out, logLevel: 'silent' });
    assert.deepEqual(r.errors, []);
    copyFileSync(join(dir, 'index.html'), join(out, 'index.html'));
    await runApp(out, 'esbuild app');
  });

  it('builds the example app with vite (no config) and runs it in Chromium on webgl and cpu', async () => {
    const vite = join(repoRoot, 'node_modules', 'vite', 'bin', 'vite.js');
    const r = run(process.execPath, [vite, 'build', '--logLevel', 'warn'], { cwd: dir, timeoutMs: 240_000 });
    assert.doesNotMatch(r.stdout + r.stderr, /error/i, `vite build reported errors:\n${r.stdout}\n${r.stderr}`);
    await runApp(join(dir, 'dist'), 'vite app');
  });
});
