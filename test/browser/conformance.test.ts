/**
 * Browser conformance: runs the checks of test/browser/page/conformance.ts in headless Chromium, each as its
 * own test (`[webgpu] layerNorm forward`). The page follows NORMKIT_FUSED (fused kernels on unless 0), so
 * scripts/test.mjs's two passes cover normkit's fused kernels and its composites.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckPage, type CheckPage } from './harness.js';

const fused = !['0', 'false', 'off'].includes(process.env.NORMKIT_FUSED ?? '1');

let page: CheckPage | undefined;
let launchError: unknown;
try {
  page = await openCheckPage('test/browser/page/conformance.ts', { fused: fused ? '1' : '0' });
} catch (err) {
  launchError = err;
}

if (page === undefined) {
  test('browser conformance page opens in Chromium', () => {
    assert.fail(`could not open the page: ${launchError instanceof Error ? launchError.stack : String(launchError)}`);
  });
} else {
  const p = page;
  after(() => p.close());
  for (const name of p.names) {
    // A generous bound per check, so a hung page fails its test instead of stalling the run.
    test(name, { timeout: 120_000 }, async (t) => {
      const r = await p.run(name);
      if (r.message && r.ok) t.diagnostic(r.message);
      assert.ok(r.ok, `${r.message}${p.console.length ? `\nbrowser console:\n${p.console.slice(-10).join('\n')}` : ''}`);
    });
  }
}
