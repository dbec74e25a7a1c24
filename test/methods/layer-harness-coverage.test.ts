import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { filesUnder } from '../helpers/files.js';

// Every layer class a user can save and load goes through the one layer harness (test/helpers/run-layer-test.ts),
// so a new layer cannot skip its checks: the registry's norm layers, the model parts (Transformer, NF-ResNet,
// nGPT), surgery layers and any class added later. The set comes from the package itself: every export of the
// package root that is a tfjs Layer subclass with its own className, and every Layer class that loading normkit
// adds to tfjs's serialization map (which must be among those exports). Test files run in separate processes, so
// the calls are found in the test sources: `runLayerTest(nk.<Class>, ...)`.
const root = process.cwd();

type ClassMap = Record<string, [unknown, unknown]>;
const classNameMap = (): ClassMap => tf.serialization.SerializationMap.getMap().classNameMap as unknown as ClassMap;
const isLayerClass = (v: unknown): v is { className: string; name: string } =>
  typeof v === 'function' && v.prototype instanceof tfl.layers.Layer && Object.hasOwn(v, 'className') && typeof (v as unknown as { className: unknown }).className === 'string';

// The classes tfjs registers itself, taken before normkit is loaded (the test setup loads only the backends).
const builtIn = new Set(Object.values(classNameMap()).map(([cls]) => cls));
const nk = await import('../../src/index.js');

describe('layer harness coverage', () => {
  it('every serializable layer class normkit exports has a runLayerTest call', () => {
    const exported = new Map(Object.entries(nk).filter(([, v]) => isLayerClass(v)).map(([name, cls]) => [cls as unknown, name]));
    assert.ok(exported.size >= 40, `found ${exported.size} exported layer classes`);

    // Registered by normkit (aliases included) => exported from the package root, so the harness can reach it.
    assert.deepEqual([...exported].filter(([cls]) => builtIn.has(cls)).map(([, name]) => name), [], 'normkit classes registered before the test loaded normkit');
    const registered = [...new Set(Object.values(classNameMap()).map(([cls]) => cls))].filter((cls) => !builtIn.has(cls) && isLayerClass(cls));
    assert.deepEqual(registered.filter((cls) => !exported.has(cls)).map((cls) => (cls as { className: string }).className), [], 'registered layer classes not exported by the package');

    // The registry's layers are among them.
    const layers = nk.listNorms().filter((e) => e.hasLayer);
    assert.ok(layers.length >= 30, `found ${layers.length} registered layers`);
    assert.deepEqual(layers.filter((e) => e.layerClass === undefined).map((e) => e.name), [], 'layer entries without a layerClass');
    const classNames = new Set([...exported.keys()].map((cls) => (cls as { className: string }).className));
    assert.deepEqual(layers.filter((e) => !classNames.has(e.layerClass as string)).map((e) => e.name), [], 'registry layers whose class is not exported');

    const exports = nk as unknown as Record<string, unknown>;
    const tested = new Set<unknown>();
    for (const file of filesUnder(join(root, 'test'), '.test.ts')) {
      for (const m of readFileSync(file, 'utf8').matchAll(/runLayerTest\(nk\.(\w+),/g)) {
        assert.ok(isLayerClass(exports[m[1]]), `runLayerTest(nk.${m[1]}, ...) in ${file} names a layer class`);
        tested.add(exports[m[1]]);
      }
    }
    const missing = [...exported].filter(([cls]) => !tested.has(cls)).map(([, name]) => name).sort();
    assert.deepEqual(missing, [], 'exported layer classes with no runLayerTest call');
  });
});
