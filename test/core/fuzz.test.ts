/**
 * Argument fuzz over every registry entry: random wrong configs (unknown or misspelt keys, wrong types, NaN,
 * Infinity, negative, huge, strings, null, lists) at createNorm, and wrong inputs (undefined, wrong rank,
 * int32, empty lists, mismatched channels) at a layer's apply and at the functional ops. Every case must end
 * in a NormkitError naming the argument (or be accepted and give a finite output), never in a TypeError, a
 * WebAssembly trap or a hang, and must leave tf.memory().numTensors as it was. Deterministic (seeded).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as nk from '../../src/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { rng } from '../helpers/numeric.js';

/** A case may run this long before it counts as a hang (cases are small; this only catches runaway loops). */
const HANG_MS = 10_000;

/** tfjs's base layer arguments: validated (or not) by tfjs itself, so they are not fuzzed here. */
const TFJS_KEYS = new Set(['name', 'trainable', 'inputShape', 'batchInputShape', 'batchSize', 'dtype', 'inputDType', 'weights']);

/** Wrong values thrown at every argument of a layer. */
const BAD_VALUES: unknown[] = [NaN, Infinity, -Infinity, -1, -0.5, 0, 1e308, -1e308, 2.5, 1e9, 'bogus', '', null, [], [1, 2], [[1]], {}, { a: 1 }, true, false];

/** What each layer entry needs to be built at all (required arguments) and a valid input for it. */
interface LayerSetup {
  config: () => Record<string, unknown>;
  input: () => tf.Tensor | tf.Tensor[];
  /** The valid input with another channel count (layers with per-channel weights must refuse it). */
  mismatched?: () => tf.Tensor | tf.Tensor[];
  /** The output has the input's shape (checked when another channel count is accepted). */
  sameShape?: boolean;
}

const x4 = (c = 4) => tf.randomNormal([2, 3, 3, c], 0, 1, 'float32', 7);
const dense = () => tfl.layers.dense({ units: 3 });
const wrapped = { config: () => ({ layer: dense() }), input: () => tf.randomNormal([2, 5], 0, 1, 'float32', 3), mismatched: () => tf.randomNormal([2, 5, 2], 0, 1, 'float32', 3), sameShape: false };

const SETUPS: Record<string, LayerSetup> = {
  adab2n: { config: () => ({ numTasks: 2 }), input: x4, mismatched: () => x4(6) },
  'alpha-bn': { config: () => ({ sourceWeight: 0.5 }), input: x4, mismatched: () => x4(6) },
  fix: { config: () => ({ inputDim: 5, outputDim: 4 }), input: () => tf.tensor2d([[0, 1, 2], [3, 4, 0]], [2, 3], 'int32') },
  'ibn-b': { config: () => ({}), input: () => [x4(), x4()], mismatched: () => [x4(6), x4(6)] },
  'region-b': { config: () => ({}), input: () => [x4(), tf.tidy(() => tf.cast(tf.greater(tf.randomUniform([2, 3, 3, 1], 0, 1, 'float32', 5), 0.5), 'float32'))], mismatched: () => [x4(6), tf.ones([2, 3, 3, 1])] },
  // Default 32 groups do not divide the 4 channels of the fuzz input.
  group: { config: () => ({ groups: 2 }), input: x4, mismatched: () => x4(6) },
  bcn: { config: () => ({ groups: 2 }), input: x4, mismatched: () => x4(6) },
  'evonorm-s0': { config: () => ({ groups: 2 }), input: x4, mismatched: () => x4(6) },
  'nap': wrapped,
  'weight-norm': wrapped,
  'spectral-norm': wrapped,
  'weight-standardization': wrapped,
  'scaled-weight-standardization': wrapped,
  'weight-compander': wrapped,
};
const setupOf = (name: string): LayerSetup => SETUPS[name] ?? { config: () => ({}), input: x4, mismatched: () => x4(6), sameShape: true };

/** Registry entries that are not layers: createNorm must refuse them by name (they are optimizers, tools, architectures). */
const NOT_LAYERS = ['adamp', 'agc', 'conda', 'deepnorm', 'fixup', 'nf-resnet', 'ngpt', 'normformer', 'peri-ln', 'post-ln', 'pre-ln', 'pre-ln-to-pre-rms', 'selu', 'sgdp', 'skipinit'];

/** The functional ops of the registry entries that have one, with their option names (fuzzed like layer keys). */
const OPS: Record<string, { run: (x: tf.Tensor, options?: Record<string, unknown>) => unknown; options: string[]; base?: Record<string, unknown> }> = {
  layer: { run: (x, o) => nk.layerNorm(x, o), options: ['axis', 'epsilon', 'gamma', 'beta'] },
  rms: { run: (x, o) => nk.rmsNorm(x, o), options: ['axis', 'epsilon', 'gamma', 'partial'] },
  group: { run: (x, o) => nk.groupNorm(x, o as never), options: ['groups', 'axis', 'epsilon', 'gamma', 'beta'], base: { groups: 2 } },
  instance: { run: (x, o) => nk.instanceNorm(x, o), options: ['axis', 'epsilon', 'gamma', 'beta'] },
  lrn: { run: (x, o) => nk.localResponseNorm(x, o), options: ['size', 'alpha', 'beta', 'bias', 'convention'] },
  scale: { run: (x, o) => nk.scaleNorm(x, o), options: ['g', 'epsilon'] },
  fix: { run: (x, o) => nk.fixNorm(x, o), options: ['scale', 'epsilon'] },
  frn: { run: (x, o) => nk.filterResponseNorm(x, o), options: ['epsilon', 'gamma', 'beta', 'tau', 'epsilonL'] },
  dyt: { run: (x, o) => nk.dynamicTanh(x, o), options: ['alpha', 'gamma', 'beta'] },
  bcn: { run: (x, o) => tf.dispose(nk.batchChannelNorm(x, o) as never), options: ['training', 'groups', 'momentum', 'epsilon', 'channelEpsilon'], base: { groups: 2 } },
  online: { run: (x, o) => tf.dispose(nk.onlineNorm(x, o) as never), options: ['alphaFwd', 'alphaBkw', 'epsilon', 'ecm', 'clampValue', 'lsEpsilon', 'training'] },
  power: { run: (x, o) => tf.dispose(nk.powerNorm(x, o) as never), options: ['groups', 'alphaForward', 'alphaBackward', 'warmupIters', 'epsilon', 'training'] },
  unified: { run: (x, o) => tf.dispose(nk.unifiedNorm(x, o) as never), options: ['windowSize', 'warmupIters', 'outlierFiltration', 'epsilon', 'momentum', 'training'] },
};

/** A random misspelling of `key` (a dropped, doubled or swapped letter) or a random unrelated key. */
function misspell(key: string, u: () => number): string {
  const i = Math.floor(u() * key.length);
  const kind = Math.floor(u() * 4);
  if (kind === 0) return key.slice(0, i) + key.slice(i + 1) || `${key}x`;
  if (kind === 1) return key.slice(0, i) + key[i] + key.slice(i);
  if (kind === 2 && key.length > 1) {
    const j = Math.min(i, key.length - 2);
    return key.slice(0, j) + key[j + 1] + key[j] + key.slice(j + 2);
  }
  return `zz${Math.floor(u() * 1e6)}`;
}

type Outcome = { kind: 'ok' } | { kind: 'normkit'; error: nk.NormkitError };

/**
 * Runs `fn` and classifies the result: accepted, or a NormkitError. Anything else (TypeError, RangeError,
 * a WebAssembly RuntimeError, a tfjs error) fails the test with the case's label. Also checks the time cap
 * and that the tensor count is back to where it was once `cleanup` ran.
 */
function runCase(label: string, fn: () => void, cleanup: () => void = () => {}): Outcome {
  const before = tf.memory().numTensors;
  const start = Date.now();
  let outcome: Outcome = { kind: 'ok' };
  try {
    fn();
  } catch (e) {
    if (!(e instanceof nk.NormkitError)) {
      assert.fail(`${label}: expected a NormkitError or success, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    }
    outcome = { kind: 'normkit', error: e };
  } finally {
    cleanup();
  }
  assert.ok(Date.now() - start < HANG_MS, `${label}: took ${Date.now() - start} ms`);
  assert.equal(tf.memory().numTensors, before, `${label}: ${tf.memory().numTensors - before} tensor(s) left behind (${outcome.kind === 'normkit' ? outcome.error.message : 'accepted'})`);
  return outcome;
}

/** Disposes a layer built by a case (its weights), and the wrapped layer of a wrapper when that was built. */
function disposeLayer(layer: tfl.layers.Layer | undefined, inner?: tfl.layers.Layer): void {
  if (layer?.built) {
    try {
      layer.dispose();
    } catch {
      // A layer built only symbolically has no reference count; its weights go below.
      layer.weights.forEach((w) => w.dispose());
    }
  }
  if (inner?.built && !layer?.built) inner.weights.forEach((w) => w.dispose());
}

/** Applies `layer` to `input` (training call) and checks that every output value is finite. */
function applyFinite(label: string, layer: tfl.layers.Layer, input: tf.Tensor | tf.Tensor[]): void {
  const out = layer.apply(input, { training: true }) as tf.Tensor | tf.Tensor[];
  const outs = Array.isArray(out) ? out : [out];
  try {
    for (const t of outs) {
      const values = t.dataSync();
      for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) assert.fail(`${label}: output value ${values[i]} at ${i}`);
    }
  } finally {
    tf.dispose(outs);
  }
}

const layerEntries = nk.listNorms().filter((e) => e.hasLayer);

forEachBackend((backend) => {
  describe(`argument fuzz over every registry entry`, () => {
    it('covers every registry entry: a layer to fuzz, or a non-layer entry createNorm refuses by name', () => {
      for (const e of nk.listNorms()) {
        if (e.hasLayer) continue;
        assert.ok(NOT_LAYERS.includes(e.name), `${e.name}: a new non-layer entry; add it to NOT_LAYERS`);
        runCase(`createNorm('${e.name}')`, () => {
          try {
            nk.createNorm(e.name);
            assert.fail(`createNorm('${e.name}') should refuse a method that is not a layer`);
          } catch (err) {
            assert.ok(err instanceof nk.NormkitError && err.argument === 'name', `createNorm('${e.name}'): ${(err as Error).message}`);
            throw err;
          }
        });
      }
    });

    for (const entry of layerEntries) {
      it(`${entry.name}: wrong configs at createNorm, wrong inputs at apply`, () => {
        const u = rng(0x5eed + entry.name.length * 7919 + entry.name.charCodeAt(0) + (backend === 'wasm' ? 1 : 0));
        const setup = setupOf(entry.name);
        // The accepted argument names come from the layer class itself.
        const probe = nk.createNorm(entry.name, setup.config());
        const cls = probe.constructor as unknown as { argKeys: readonly string[] };
        const own = cls.argKeys.filter((k) => !TFJS_KEYS.has(k) && k !== 'layer');
        disposeLayer(undefined, (probe as unknown as { layer?: tfl.layers.Layer }).layer);

        // Not an object at all.
        for (const config of [null, 'layer', 42, [1, 2], true]) {
          const r = runCase(`${entry.name} config ${JSON.stringify(config)}`, () => void nk.createNorm(entry.name, config as never));
          assert.ok(r.kind === 'normkit' && r.error.argument === 'config', `${entry.name}: config ${JSON.stringify(config)} must be refused naming 'config'`);
        }

        // Unknown and misspelt keys: refused by name, with the closest accepted key suggested for typos.
        for (let k = 0; k < 4; k++) {
          const key = misspell(own[Math.floor(u() * own.length)] ?? 'epsilon', u);
          if (cls.argKeys.includes(key) || TFJS_KEYS.has(key)) continue;
          const r = runCase(`${entry.name} unknown key ${key}`, () => void nk.createNorm(entry.name, { ...setup.config(), [key]: 1 }), () => {});
          assert.ok(r.kind === 'normkit' && r.error.argument === key && r.error.message.includes(entry.layerClass ?? ''), `${entry.name}: unknown key '${key}' must be refused naming it`);
        }

        // Wrong values for every own argument: refused naming that argument, or accepted with finite outputs.
        for (const key of own) {
          for (let k = 0; k < 5; k++) {
            const value = BAD_VALUES[Math.floor(u() * BAD_VALUES.length)];
            const label = `${entry.name} {${key}: ${JSON.stringify(value)}}`;
            let layer: tfl.layers.Layer | undefined;
            const config = { ...setup.config(), [key]: value };
            let input: tf.Tensor | tf.Tensor[] | undefined;
            const r = runCase(label, () => {
              layer = nk.createNorm(entry.name, config);
              input = setup.input();
              applyFinite(label, layer, input);
            }, () => {
              tf.dispose(input);
              disposeLayer(layer, config.layer as tfl.layers.Layer | undefined);
            });
            if (r.kind === 'normkit') {
              // The error names the argument (or, for a flag that needs another argument, mentions it).
              assert.ok(r.error.argument === key || r.error.message.includes(key), `${label}: the error must name '${key}': ${r.error.message}`);
            }
          }
        }

        // Wrong inputs at apply: refused with a NormkitError before any work.
        const wrongInputs: Array<[string, () => unknown]> = [
          ['undefined', () => undefined],
          ['null', () => null],
          ['a string', () => 'x'],
          ['an empty list', () => []],
          ['a number', () => 3],
          ['a scalar', () => tf.scalar(1)],
          ['int32', () => tf.zeros([2, 3, 3, 4], 'int32')],
          ['rank 1', () => tf.zeros([4])],
          ['rank 6', () => tf.zeros([1, 1, 1, 1, 2, 4])],
          ['mismatched channels', () => setup.mismatched?.()],
        ];
        for (const [what, make] of wrongInputs) {
          if (what === 'mismatched channels' && setup.mismatched === undefined) continue;
          const label = `${entry.name} apply(${what})`;
          let layer: tfl.layers.Layer | undefined;
          let first: tf.Tensor | tf.Tensor[] | undefined;
          let bad: unknown;
          const config = setup.config();
          let outShape: number[] | undefined;
          const r = runCase(label, () => {
            layer = nk.createNorm(entry.name, config);
            if (what === 'mismatched channels') {
              // Built on the valid input first, then called with other channel counts.
              first = setup.input();
              tf.dispose(layer.apply(first) as tf.Tensor);
            }
            bad = make();
            const y = layer.apply(bad as tf.Tensor) as tf.Tensor | tf.Tensor[];
            outShape = (Array.isArray(y) ? y[0] : y).shape;
            tf.dispose(y);
          }, () => {
            tf.dispose([first, bad] as never);
            disposeLayer(layer, config.layer as tfl.layers.Layer | undefined);
          });
          if (what === 'mismatched channels') {
            // Layers without per-channel weights (lrn, scale, crms without affine, srms, region-l) take any
            // channel count; they must then keep the input's shape, never broadcast to the built one.
            const badShape = (Array.isArray(bad) ? bad[0] : (bad as tf.Tensor)).shape;
            if (r.kind === 'ok') assert.ok(setup.sameShape === true && outShape?.join() === badShape.join(), `${label}: accepted with output [${outShape}] for input [${badShape}]`);
          } else if (what.startsWith('rank') || (entry.name === 'fix' && (what === 'a scalar' || what === 'int32'))) {
            // Any rank is valid for some layers, and fix takes int32 token ids of any shape; the others must refuse it.
          } else {
            assert.equal(r.kind, 'normkit', `${label}: must be refused with a NormkitError`);
          }
        }
      });
    }

    for (const [name, op] of Object.entries(OPS)) {
      it(`${name} op: wrong inputs and options`, () => {
        const u = rng(0xface + name.length * 31 + name.charCodeAt(0));
        const inputs: Array<[string, () => unknown]> = [
          ['undefined', () => undefined],
          ['null', () => null],
          ['a number array', () => [1, 2, 3]],
          ['int32', () => tf.zeros([2, 3, 4], 'int32')],
          ['a scalar', () => tf.scalar(1)],
        ];
        for (const [what, make] of inputs) {
          let x: unknown;
          const r = runCase(`${name} op x = ${what}`, () => {
            x = make();
            op.run(x as tf.Tensor, op.base);
          }, () => tf.dispose(x as never));
          if (what !== 'a scalar') assert.ok(r.kind === 'normkit' && r.error.argument === 'x', `${name} op x = ${what}: must be refused naming 'x'`);
        }
        for (const options of [null, 'o', [1]]) {
          let x: tf.Tensor | undefined;
          const r = runCase(`${name} op options ${JSON.stringify(options)}`, () => {
            x = tf.randomNormal([2, 3, 4]);
            op.run(x, options as never);
          }, () => x?.dispose());
          assert.ok(r.kind === 'normkit' && r.error.argument === 'options', `${name} op options ${JSON.stringify(options)}: must be refused naming 'options'`);
        }
        for (let k = 0; k < 3; k++) {
          const key = misspell(op.options[Math.floor(u() * op.options.length)], u);
          if (op.options.includes(key)) continue;
          let x: tf.Tensor | undefined;
          const r = runCase(`${name} op unknown option ${key}`, () => {
            x = tf.randomNormal([2, 3, 4]);
            op.run(x, { ...op.base, [key]: 1 });
          }, () => x?.dispose());
          assert.ok(r.kind === 'normkit' && r.error.argument === key, `${name} op: unknown option '${key}' must be refused naming it`);
        }
        for (const key of op.options) {
          for (let k = 0; k < 4; k++) {
            const value = BAD_VALUES[Math.floor(u() * BAD_VALUES.length)];
            let x: tf.Tensor | undefined;
            const label = `${name} op {${key}: ${JSON.stringify(value)}}`;
            const r = runCase(label, () => {
              x = tf.randomNormal([2, 3, 4], 0, 1, 'float32', 11);
              const y = op.run(x, { ...op.base, [key]: value });
              if (y instanceof tf.Tensor) {
                const values = y.dataSync();
                y.dispose();
                for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) assert.fail(`${label}: output value ${values[i]}`);
              }
            }, () => x?.dispose());
            if (r.kind === 'normkit') assert.ok(r.error.argument === key || r.error.message.includes(`'${key}'`), `${label}: the error must name '${key}': ${r.error.message}`);
          }
        }
      });
    }
  });
});
