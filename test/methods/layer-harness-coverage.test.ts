import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as nk from '../../src/index.js';
import { filesUnder } from '../helpers/files.js';

// Every layer a user can build by name goes through the one layer harness (test/helpers/run-layer-test.ts), so a
// new method cannot ship a layer that skips its checks. Test files run in separate processes, so the calls are
// found in the test sources: `runLayerTest(nk.<Class>, ...)`.
const root = process.cwd();

describe('layer harness coverage', () => {
  it('every registered layer class has a runLayerTest call', () => {
    const layers = nk.listNorms().filter((e) => e.hasLayer);
    assert.ok(layers.length >= 30, `found ${layers.length} registered layers`);
    assert.deepEqual(layers.filter((e) => e.layerClass === undefined).map((e) => e.name), [], 'layer entries without a layerClass');
    const exports = nk as unknown as Record<string, { className?: unknown } | undefined>;
    const tested = new Set<string>();
    for (const file of filesUnder(join(root, 'test'), '.test.ts')) {
      for (const m of readFileSync(file, 'utf8').matchAll(/runLayerTest\(nk\.(\w+),/g)) {
        const className = exports[m[1]]?.className;
        assert.equal(typeof className, 'string', `runLayerTest(nk.${m[1]}, ...) in ${file} names a layer class`);
        tested.add(className as string);
      }
    }
    const missing = [...new Set(layers.map((e) => e.layerClass as string))].filter((c) => !tested.has(c)).sort();
    assert.deepEqual(missing, [], 'registered layer classes with no runLayerTest call');
  });
});
