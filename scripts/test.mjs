// Runs every compiled test file with Node's own test runner, so the closing summary counts all tests.
// Usage: node scripts/test.mjs [substring...]  (filters test files by path substring)
// NORMKIT_TEST_FUSED=1,0 (default) runs the files once with the fused kernels on, once with them off.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (p.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk('dist/test')
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files found under dist/test (did the build run?)');
  process.exit(1);
}
// The suite runs twice: with normkit's fused kernels on and off (NORMKIT_FUSED=1 / 0), so both paths give
// the same answers at the same tolerances. NORMKIT_TEST_FUSED=1 (or 0) runs one pass only.
const modes = (process.env.NORMKIT_TEST_FUSED ?? '1,0').split(',').filter((m) => m.length > 0);
let status = 0;
for (const mode of modes) {
  console.log(`# normkit test pass: NORMKIT_FUSED=${mode}`);
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], {
    stdio: 'inherit',
    env: { ...process.env, NORMKIT_FUSED: mode },
  });
  if ((r.status ?? 1) !== 0) status = r.status ?? 1;
}
process.exit(status);
