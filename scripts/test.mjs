// Runs every compiled test file with Node's own test runner, so the closing summary counts all tests.
// Usage: node scripts/test.mjs [substring...]  (filters test files by path substring)
// Each test process first loads test/helpers/setup.ts (the tfjs backends: normkit imports none itself).
// NORMKIT_TEST_FUSED=1,0 (default) runs the files once with the fused kernels on, once with them off.
// test/consumer (the package as a user installs it: npm pack, temp projects, bundlers, Chromium) and
// test/playground (the built page in Chromium, where the page, not the flag, picks the kernels) do not depend on
// that switch, so they run in the first pass only; the consumer tests share one tarball packed here.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';

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

const consumerDir = `${join('dist', 'test', 'consumer')}${sep}`;
const playgroundDir = `${join('dist', 'test', 'playground')}${sep}`;
const isConsumer = (f) => f.startsWith(consumerDir);
const firstPassOnly = (f) => isConsumer(f) || f.startsWith(playgroundDir);
const env = { ...process.env };
let packDir;
if (files.some(isConsumer) && !env.NORMKIT_CONSUMER_TARBALL) {
  // One npm pack for all consumer test files; without lifecycle scripts, as the build has already run.
  packDir = mkdtempSync(join(tmpdir(), 'normkit-pack-'));
  const r = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], { encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`npm pack failed:\n${r.stdout}\n${r.stderr}`);
    process.exit(1);
  }
  env.NORMKIT_CONSUMER_TARBALL = join(packDir, JSON.parse(r.stdout)[0].filename);
}

/** Runs one pass, streaming its output, and returns its exit status and the runner's pass/fail counts. */
function runPass(mode, passFiles) {
  return new Promise((resolve) => {
    console.log(`# normkit test pass: NORMKIT_FUSED=${mode}`);
    const child = spawn(process.execPath, ['--import', './dist/test/helpers/setup.js', '--test', '--test-concurrency=2', ...passFiles], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...env, NORMKIT_FUSED: mode },
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
for (const [i, mode] of modes.entries()) {
  const passFiles = i === 0 ? files : files.filter((f) => !firstPassOnly(f));
  if (passFiles.length === 0) continue;
  const r = await runPass(mode, passFiles);
  if (r.code !== 0) status = r.code;
  passed += r.passed;
  failed += r.failed;
}
if (packDir) rmSync(packDir, { recursive: true, force: true });
// One closing line over all passes (each pass also prints node's own summary above).
console.log(`normkit: ${passed} passed, ${failed} failed`);
process.exit(status);
