// Bundle sizes as a browser app pays them: esbuild, minified, ES module for the browser, gzip (zlib, level 9).
// Usage: npm run size (builds first), or node scripts/bundle-size.mjs after npm run build.
// normkit's rows bundle the built package through its own name (its `exports` and `sideEffects` apply) with
// every @tensorflow/* package external, so they count normkit's code only; tfjs's row is the umbrella alone.
import { existsSync } from 'node:fs';
import { Buffer } from 'node:buffer';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const CASES = [
  { name: "`normkit` (root entry, everything)", contents: "export * from 'normkit';", external: ['@tensorflow/*'] },
  { name: "`normkit`, `{ layerNorm }` only", contents: "export { layerNorm } from 'normkit';", external: ['@tensorflow/*'] },
  { name: '`@tensorflow/tfjs` 4.22 (umbrella: core, layers, converter, data, cpu, webgl)', contents: "export * from '@tensorflow/tfjs';", external: [] },
];

/** Minified and gzip bytes of one bundle. */
export async function bundleSize({ contents, external }, resolveDir = process.cwd()) {
  const r = await esbuild.build({
    stdin: { contents, resolveDir, loader: 'js' },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    minify: true,
    write: false,
    logLevel: 'silent',
    external,
  });
  const code = Buffer.concat(r.outputFiles.map((f) => Buffer.from(f.contents)));
  return { min: code.length, gzip: gzipSync(code, { level: 9 }).length };
}

const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;

if (import.meta.url === `file://${process.argv[1]}`) {
  if (!existsSync('dist/src/index.js')) {
    console.error('dist/src/index.js is missing: run npm run build first (or npm run size)');
    process.exit(1);
  }
  const lines = ['| bundle | minified | gzip |', '| --- | ---: | ---: |'];
  for (const c of CASES) {
    const s = await bundleSize(c);
    lines.push(`| ${c.name} | ${kb(s.min)} | ${kb(s.gzip)} |`);
  }
  console.log(lines.join('\n'));
}
