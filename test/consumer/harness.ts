/**
 * The consumer tests' harness: normkit as a user gets it. One `npm pack` of the built repo, throwaway projects
 * that `npm install` the tarball next to tfjs, a static file server and a headless Chromium.
 *
 * The tarball is packed once per test run (scripts/test.mjs packs it and passes NORMKIT_CONSUMER_TARBALL);
 * a test file run on its own packs it itself.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve, sep } from 'node:path';

/** The repository root: the tests run from it (npm test, scripts/test.mjs). */
export const repoRoot = process.cwd();

/** npm flags of every install: the shared cache first, no audit or funding chatter. */
const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'];

/** Runs a command to completion; fails the test with its output when it exits non-zero (unless `allowFail`). */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; timeoutMs?: number; allowFail?: boolean },
): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    encoding: 'utf8',
    env: { ...process.env, npm_config_update_notifier: 'false', ...opts.env },
    timeout: opts.timeoutMs ?? 180_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (!opts.allowFail) {
    assert.equal(r.status, 0, `${cmd} ${args.join(' ')} (in ${opts.cwd}) exited ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  }
  return r;
}

/** A fresh temporary directory, removed by {@link cleanup}. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `normkit-${prefix}-`));
}

/** Removes temporary directories unless NORMKIT_KEEP_CONSUMER=1 (to inspect a failure). */
export function cleanup(...dirs: string[]): void {
  if (process.env.NORMKIT_KEEP_CONSUMER === '1') return;
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

let packed: string | undefined;

/** The path of normkit's tarball, as `npm pack` makes it from the built repo (packed at most once). */
export function tarball(): string {
  const given = process.env.NORMKIT_CONSUMER_TARBALL;
  if (given) {
    assert.ok(existsSync(given), `NORMKIT_CONSUMER_TARBALL=${given} does not exist`);
    return given;
  }
  if (packed === undefined) packed = packTarball(tempDir('pack'));
  return packed;
}

/**
 * `npm pack` of the repo into `dir`, without lifecycle scripts: the build has already run, and `prepare`
 * would rebuild. Returns the tarball's path.
 */
export function packTarball(dir: string): string {
  assert.ok(existsSync(join(repoRoot, 'dist', 'src', 'index.js')), 'dist/src/index.js is missing: run npm run build first');
  const r = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: repoRoot });
  const [info] = JSON.parse(r.stdout) as Array<{ filename: string }>;
  return join(dir, info.filename);
}

/**
 * A consumer project in a temp dir: a package.json with `dependencies` (normkit's is `file:` the tarball),
 * installed with one `npm install`; then each of `thenInstall` added by its own `npm install <specs>`, as a user
 * adds packages to an existing project. Returns its directory.
 */
export function consumerProject(prefix: string, dependencies: Record<string, string>, thenInstall: string[][] = []): string {
  const dir = tempDir(prefix);
  const pkg = { name: `normkit-consumer-${prefix}`, version: '0.0.0', private: true, type: 'module', dependencies };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
  run('npm', ['install', ...NPM_FLAGS], { cwd: dir, timeoutMs: 240_000 });
  for (const specs of thenInstall) run('npm', ['install', ...NPM_FLAGS, ...specs], { cwd: dir, timeoutMs: 240_000 });
  return dir;
}

/** Every copy of `pkg` under `dir`/node_modules, at any depth: `relative path -> version`. */
export function installedCopies(dir: string, pkg: string): Map<string, string> {
  const found = new Map<string, string>();
  const visit = (nm: string): void => {
    if (!existsSync(nm)) return;
    const manifest = join(nm, ...pkg.split('/'), 'package.json');
    if (existsSync(manifest)) {
      found.set(manifest.slice(dir.length + 1), (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version);
    }
    for (const name of readdirSync(nm)) {
      if (name.startsWith('.')) continue;
      const entries = name.startsWith('@') ? readdirSync(join(nm, name)).map((n) => join(nm, name, n)) : [join(nm, name)];
      for (const p of entries) {
        if (statSync(p).isDirectory()) visit(join(p, 'node_modules'));
      }
    }
  };
  visit(join(dir, 'node_modules'));
  return found;
}

/**
 * Asserts that the project holds exactly one `@tensorflow/tfjs-core`, of `version`: on disk and as
 * `npm ls` sees the tree (which also fails on an unmet or invalid peer dependency).
 */
export function assertOneTfjsCore(dir: string, version: string): void {
  const copies = installedCopies(dir, '@tensorflow/tfjs-core');
  assert.deepEqual([...copies.entries()], [[join('node_modules', '@tensorflow', 'tfjs-core', 'package.json'), version]], 'copies of tfjs-core');
  const ls = run('npm', ['ls', '@tensorflow/tfjs-core', '--all', '--json'], { cwd: dir });
  const versions = new Set<string>();
  const walk = (deps: Record<string, { version?: string; dependencies?: Record<string, unknown> }> | undefined): void => {
    for (const [name, d] of Object.entries(deps ?? {})) {
      if (name === '@tensorflow/tfjs-core' && d.version) versions.add(d.version);
      walk(d.dependencies as never);
    }
  };
  walk((JSON.parse(ls.stdout) as { dependencies?: never }).dependencies);
  assert.deepEqual([...versions], [version], 'tfjs-core versions in npm ls');
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
};

/** Serves the files of `root` on 127.0.0.1 (a free port); resolves to the server and its base URL. */
export async function serveStatic(root: string): Promise<{ server: Server; url: string }> {
  const base = resolve(root);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    let file = normalize(join(base, path));
    if (file !== base && !file.startsWith(base + sep)) {
      res.writeHead(403).end();
      return;
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const addr = server.address();
  assert.ok(addr !== null && typeof addr === 'object');
  return { server, url: `http://127.0.0.1:${addr.port}/` };
}
