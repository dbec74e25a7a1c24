/**
 * Browser test harness: bundles a page entry with esbuild, serves it from a local HTTP server and opens it in
 * headless Chromium (Debian's `chromium`, driven by playwright-core) with software WebGL2 and WebGPU
 * (SwiftShader). The page registers named checks (see page/checks.ts); {@link openCheckPage} lists and runs
 * them one by one, so each can be reported as its own node:test test.
 */
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import * as esbuild from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';

/** The repository root (this file runs from dist/test/browser). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Chromium's path: NORMKIT_CHROMIUM, else Debian's `/usr/bin/chromium`. */
export const CHROMIUM_PATH = process.env.NORMKIT_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Headless flags: no sandbox (CI containers), nothing talking to the network, and the GPU backends on
 * SwiftShader: WebGL2 through ANGLE's SwiftShader, WebGPU through Dawn on SwiftShader's Vulkan.
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
];

/** tfjs-backend-wasm's binaries, served under /wasm/ (the page calls setWasmPaths('/wasm/')). */
const WASM_DIR = join(REPO_ROOT, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');

/** Bundles `entry` (a TypeScript page module, path relative to the repository root) for the browser. */
export async function bundlePage(entry: string): Promise<string> {
  const result = await esbuild.build({
    entryPoints: [join(REPO_ROOT, entry)],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    sourcemap: 'inline',
    // Pages import normkit's TypeScript sources, which package.json's sideEffects list (written for dist/)
    // would mark as free of side effects, dropping the registrations the methods make on import.
    ignoreAnnotations: true,
  });
  return result.outputFiles[0].text;
}

const HTML = '<!doctype html><html><head><meta charset="utf-8"><title>normkit browser tests</title></head>' +
  '<body><script type="module" src="/page.js"></script></body></html>';

/** Serves the page, its bundle and the wasm binaries on 127.0.0.1 (a secure context, so WebGPU is exposed). */
async function serve(bundle: string): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const send = (type: string, body: string | Uint8Array) => {
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (url.pathname === '/') return send('text/html', HTML);
    if (url.pathname === '/page.js') return send('text/javascript', bundle);
    if (url.pathname === '/favicon.ico') return void res.writeHead(204).end();
    const wasm = /^\/wasm\/([\w.-]+\.wasm)$/.exec(url.pathname);
    if (wasm && existsSync(join(WASM_DIR, wasm[1]))) {
      readFile(join(WASM_DIR, wasm[1])).then((b) => send('application/wasm', b), () => res.writeHead(500).end());
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('server has no port');
  return { server, origin: `http://127.0.0.1:${addr.port}` };
}

/** What a page check returns: pass or fail with a message, and optional figures for the log. */
export interface CheckResult {
  ok: boolean;
  message: string;
}

/** A page opened in Chromium whose checks can be listed and run. */
export interface CheckPage {
  page: Page;
  browser: Browser;
  /** Names of the checks the page registered, in registration order. */
  names: string[];
  /** Runs one check in the page. */
  run(name: string): Promise<CheckResult>;
  /** Browser console lines seen so far (errors and warnings), for failure messages. */
  console: string[];
  close(): Promise<void>;
}

/**
 * Bundles `entry`, serves it, launches Chromium and waits until the page has registered its checks
 * (`globalThis.__normkitChecks`, set up by page/checks.ts). `query` is passed to the page's URL, where
 * the page reads its settings.
 */
export async function openCheckPage(entry: string, query: Record<string, string> = {}): Promise<CheckPage> {
  const bundle = await bundlePage(entry);
  const { server, origin } = await serve(bundle);
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
    const page = await browser.newPage();
    const consoleLines: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') consoleLines.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    const qs = new URLSearchParams(query).toString();
    await page.goto(`${origin}/${qs ? `?${qs}` : ''}`);
    await page.waitForFunction(() => (globalThis as any).__normkitChecks?.ready === true, undefined, { timeout: 60_000 });
    const names = await page.evaluate(() => (globalThis as any).__normkitChecks.names() as string[]);
    const b = browser;
    return {
      page,
      browser: b,
      names,
      console: consoleLines,
      run: (name) => page.evaluate((n) => (globalThis as any).__normkitChecks.run(n) as Promise<CheckResult>, name),
      close: async () => {
        await b.close();
        await new Promise((ok) => server.close(ok));
      },
    };
  } catch (err) {
    await browser?.close();
    server.close();
    throw err;
  }
}
