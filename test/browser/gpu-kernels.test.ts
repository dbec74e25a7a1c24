/**
 * normkit's fused WebGL and WebGPU kernels in headless Chromium (software WebGL2 and WebGPU on SwiftShader):
 * the checks of test/browser/page/gpu-kernel-checks.ts, each as its own test. The checks compare the fused
 * path with the composite path themselves, so only the fused pass of scripts/test.mjs (NORMKIT_FUSED unset or
 * 1) opens the page; the unfused pass has nothing to add here.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckPage, type CheckPage } from './harness.js';

const fusedPass = !['0', 'false', 'off'].includes(process.env.NORMKIT_FUSED ?? '1');

if (fusedPass) {
  let page: CheckPage | undefined;
  let launchError: unknown;
  try {
    page = await openCheckPage('test/browser/page/gpu-kernels.ts');
  } catch (err) {
    launchError = err;
  }
  if (page === undefined) {
    test('fused GPU kernel page opens in Chromium', () => {
      assert.fail(`could not open the page: ${launchError instanceof Error ? launchError.stack : String(launchError)}`);
    });
  } else {
    const p = page;
    after(() => p.close());
    for (const name of p.names) {
      test(name, async (t) => {
        const r = await p.run(name);
        if (r.message && r.ok) t.diagnostic(r.message);
        assert.ok(r.ok, `${r.message}${p.console.length ? `\nbrowser console:\n${p.console.slice(-10).join('\n')}` : ''}`);
      });
    }
  }
}
