import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { filesUnder } from '../helpers/files.js';

// A bundler keeps a method's module only when the app uses it; createNorm, listNorms and registerAllNorms keep
// them all through src/catalog.ts. So every module that registers something must be listed there.
const root = process.cwd();

describe('catalog', () => {
  it('imports every module of the package root that registers a method, a layer or an optimizer', () => {
    const src = join(root, 'src');
    const catalog = readFileSync(join(src, 'catalog.ts'), 'utf8');
    // The registries themselves, and the Node-only parts (not behind the package root), are not methods.
    const skip = /^(core\/registry|core\/serialization|catalog)\.ts$|^(lab|cli|kernels|io)\//;
    const registering = filesUnder(src, '.ts')
      .map((p) => relative(src, p).split('\\').join('/'))
      .filter((p) => !skip.test(p))
      .filter((p) => /\b(registerNorm|registerSerializable|registerClass)\(/.test(readFileSync(join(src, p), 'utf8')));
    assert.ok(registering.length > 30, `found ${registering.length} registering modules`);
    const missing = registering.filter((p) => !catalog.includes(`from './${p.replace(/\.ts$/, '.js')}'`));
    assert.deepEqual(missing, [], 'registering modules missing from src/catalog.ts');
  });
});
