// Runs every compiled test file with Node's own test runner, so the closing summary counts all tests.
// Usage: node scripts/test.mjs [substring...]  (filters test files by path substring)
// Each test process first loads test/helpers/setup.ts (the tfjs backends: normkit imports none itself).
// NORMKIT_TEST_FUSED=1,0 (default) runs the files once with the fused kernels on, once with them off.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

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

/** Runs one pass, streaming its output, and returns its exit status and the runner's pass/fail counts. */
function runPass(mode) {
  return new Promise((resolve) => {
    console.log(`# normkit test pass: NORMKIT_FUSED=${mode}`);
    const child = spawn(process.execPath, ['--import', './dist/test/helpers/setup.js', '--test', '--test-concurrency=2', ...files], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NORMKIT_FUSED: mode },
    });
    let tail = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString()).slice(-4096);
    });
    child.on('close', (code) => {
      const count = (name) => Number((tail.match(new RegExp(`^# ${name} (\\d+)$`, 'm')) ?? [])[1] ?? 0);
      resolve({ code: code ?? 1, passed: count('pass'), failed: count('fail') });
    });
  });
}

let status = 0;
let passed = 0;
let failed = 0;
for (const mode of modes) {
  const r = await runPass(mode);
  if (r.code !== 0) status = r.code;
  passed += r.passed;
  failed += r.failed;
}
// One closing line over all passes (each pass also prints node's own summary above).
console.log(`normkit: ${passed} passed, ${failed} failed`);
process.exit(status);
