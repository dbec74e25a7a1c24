// The playground page in headless Chromium (the browser harness's Chromium and flags, via playwright-core): served by the
// `normkit playground` command's server, it loads with no console error, trains both models on the wasm backend,
// the loss falls, the histograms and running statistics update; a screenshot goes to test-output/playground.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { get } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../browser/harness.js';

interface State {
  ready: boolean;
  running: boolean;
  backend: string;
  steps: number;
  trainLoss: number[][];
  testAccuracy: number[][];
  histogramUpdates: number;
  histogramSignature: string;
  tensorCounts: number[];
  errors: string[];
}

/** Starts `normkit playground --port 0` and resolves with its URL, read from the line it prints. */
function startServer(): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['dist/src/cli/main.js', 'playground', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`playground server did not start: ${out}${err}`)), 60_000);
    child.stdout?.on('data', (chunk) => {
      out += chunk;
      const m = /normkit playground: (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
    child.stderr?.on('data', (chunk) => (err += chunk));
    child.on('exit', (code) => reject(new Error(`playground server exited with ${code}: ${err}`)));
  });
}

function status(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

const readState = (page: Page) => page.evaluate(() => (window as unknown as { playground: State }).playground);
const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;

test('playground: served by the CLI, trains on wasm in Chromium, curves fall and histograms update', { timeout: 240_000 }, async () => {
  const { child, url } = await startServer();
  let browser: Browser | null = null;
  try {
    // The server serves the page and its assets, and nothing outside its folder.
    assert.equal(await status(url), 200);
    assert.equal(await status(`${url}data/train-images-idx3-ubyte.gz`), 200);
    assert.equal(await status(`${url}wasm/tfjs-backend-wasm-simd.wasm`), 200);
    assert.ok([403, 404].includes(await status(`${url}%2e%2e/%2e%2e/package.json`)));
    assert.equal(await status(`${url}no-such-file.js`), 404);

    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const consoleErrors: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));

    await page.goto(`${url}?backend=wasm`);
    await page.waitForFunction(() => (window as unknown as { playground?: State }).playground?.ready === true, null, { timeout: 90_000 });
    let state = await readState(page);
    assert.equal(state.backend, 'wasm');
    assert.deepEqual(state.errors, []);

    // Batch 8, BatchNorm (A) against GroupNorm (B), driven through the form like a user would; the keyboard
    // reaches the controls in reading order and Enter on the focused Start button starts training.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'norm-a');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'norm-b');
    await page.selectOption('#norm-a', 'batch');
    await page.selectOption('#norm-b', 'group');
    await page.fill('#batch-size', '8');
    await page.focus('#start');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => (window as unknown as { playground: State }).playground.steps >= 300, null, { timeout: 150_000 });
    await page.click('#stop');
    await page.waitForFunction(() => !(window as unknown as { playground: State }).playground.running, null, { timeout: 30_000 });
    state = await readState(page);

    assert.deepEqual(state.errors, []);
    assert.deepEqual(consoleErrors, []);
    for (const [m, losses] of state.trainLoss.entries()) {
      assert.ok(losses.length >= 300, `model ${m}: ${losses.length} steps`);
      assert.ok(losses.every(Number.isFinite), `model ${m}: a non-finite loss`);
      // Cross-entropy of 10 classes starts near ln 10 = 2.3; after 300 steps of batch 8 it is well below.
      const first = mean(losses.slice(0, 20));
      const last = mean(losses.slice(-50));
      assert.ok(last < 0.75 * first, `model ${m}: loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
      assert.ok(state.testAccuracy[m].length >= 10, `model ${m}: ${state.testAccuracy[m].length} evaluations`);
      assert.ok(state.testAccuracy[m].at(-1)! > 0.3, `model ${m}: test accuracy ${state.testAccuracy[m].at(-1)}`);
    }
    // One redraw at step 0 and one every 25 steps; the histograms changed as the weights did.
    assert.ok(state.histogramUpdates >= 12, `${state.histogramUpdates} histogram updates`);
    assert.match(state.histogramSignature, /^3\d\d:/);
    // No tensor leaks: from the second evaluation on (the optimizers' slots exist), the count stays put.
    assert.ok(state.tensorCounts.length >= 12);
    assert.equal(new Set(state.tensorCounts.slice(1)).size, 1, `tensor counts ${state.tensorCounts.join(', ')}`);
    // Charts were drawn: loss, accuracy, two histograms (before, after) per norm layer, three BatchNorm statistics charts (model A).
    assert.equal(await page.locator('#loss-chart canvas').count(), 1);
    assert.equal(await page.locator('#hist-a canvas').count(), 6);
    assert.equal(await page.locator('#hist-b canvas').count(), 6);
    assert.equal(await page.locator('#stats-a canvas').count(), 3);
    assert.equal(await page.locator('#stats-b canvas').count(), 0);

    mkdirSync('test-output', { recursive: true });
    await page.screenshot({ path: 'test-output/playground.png', fullPage: true });
  } finally {
    await browser?.close();
    child.kill();
  }
});
