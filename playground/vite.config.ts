// Builds the playground page into dist/playground as plain files with relative URLs (base './'), so the
// `normkit playground` command or any static host can serve it. The page fetches the embedded Fashion-MNIST
// subset and tfjs's wasm binaries from its own origin: both are copied into the build below.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/** Files copied verbatim into the build, by their path in the build. */
const COPIED: Record<string, string> = {
  'data/train-images-idx3-ubyte.gz': '../data/fashion-mnist-subset/train-images-idx3-ubyte.gz',
  'data/train-labels-idx1-ubyte.gz': '../data/fashion-mnist-subset/train-labels-idx1-ubyte.gz',
  'data/t10k-images-idx3-ubyte.gz': '../data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz',
  'data/t10k-labels-idx1-ubyte.gz': '../data/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz',
  'data/LICENSE': '../data/fashion-mnist-subset/LICENSE',
  'wasm/tfjs-backend-wasm.wasm': '../node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm',
  'wasm/tfjs-backend-wasm-simd.wasm': '../node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm',
};

function copyFiles(): Plugin {
  return {
    name: 'normkit-playground-copy',
    generateBundle() {
      for (const [fileName, from] of Object.entries(COPIED)) {
        this.emitFile({ type: 'asset', fileName, source: readFileSync(here(from)) });
      }
    },
  };
}

/**
 * normkit's modules register their layers, kernels and optimizers when imported. package.json's `sideEffects`
 * names them by their compiled paths (dist/src/...); the page bundles the TypeScript source, so the bundler is
 * told here that those source modules have side effects too (else it drops the registrations).
 */
function sourceSideEffects(): Plugin {
  const src = here('../src/');
  return {
    name: 'normkit-source-side-effects',
    transform(code, id) {
      return id.startsWith(src) ? { code, map: null, moduleSideEffects: true } : null;
    },
  };
}

export default defineConfig({
  root: here('.'),
  base: './',
  resolve: { alias: { normkit: here('../src/index.ts') } },
  build: {
    outDir: here('../dist/playground'),
    emptyOutDir: true,
    // tfjs (four backends) and vega make a large page; it is loaded once and cached.
    chunkSizeWarningLimit: 8000,
    sourcemap: false,
  },
  plugins: [sourceSideEffects(), copyFiles()],
});
