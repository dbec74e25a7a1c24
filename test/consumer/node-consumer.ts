/**
 * A Node project that installs normkit's tarball next to one version of tfjs (the umbrella and the wasm
 * backend), and what it must see: one tfjs-core, the README's Node quick start running without duplicate
 * registrations, and an import of normkit that changes nothing in the user's program.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertOneTfjsCore, cleanup, consumerProject, repoRoot, run, tarball } from './harness.js';

/**
 * Prints, as JSON, what importing normkit changed: the registered backends, the process listeners and the
 * default backend. argv: `cpu` (tfjs-core, then the cpu backend) or `wasm` (the wasm backend imported first,
 * then cpu); `1` to import normkit after them, `0` for the same program without it.
 */
const PROBE = `
const [mode, withNormkit] = process.argv.slice(2);
const events = ['uncaughtException', 'unhandledRejection', 'exit', 'beforeExit', 'warning', 'SIGINT', 'SIGTERM'];
const listeners = () => Object.fromEntries(events.map((e) => [e, process.listenerCount(e)]));
const atStart = listeners();
const tf = await import('@tensorflow/tfjs-core');
if (mode === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
await import('@tensorflow/tfjs-backend-cpu');
const backendsBefore = Object.keys(tf.engine().registryFactory).sort();
let nk;
if (withNormkit === '1') nk = await import('normkit');
const backendsAfter = Object.keys(tf.engine().registryFactory).sort();
const afterImport = listeners();
let syncOp = 'not run';
if (mode === 'cpu') {
  // A tfjs program that uses tensors right away, before any await, must keep working.
  tf.randomNormal([2, 3]).dispose();
  syncOp = 'ok';
}
await tf.ready();
const backend = tf.getBackend();
if (nk) tf.tidy(() => nk.layerNorm(tf.ones([2, 4])).dataSync());
console.log(JSON.stringify({ atStart, afterImport, afterUse: listeners(), backendsBefore, backendsAfter, syncOp, backend }));
`;

/** A user's bug after normkit has been imported and used: must exit like any Node program (code 1). */
const CRASH = `
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import * as nk from 'normkit';
await tf.setBackend('cpu');
tf.tidy(() => nk.layerNorm(tf.ones([2, 4])).dataSync());
setTimeout(() => {
  throw new Error('a bug in the user program');
}, 0);
`;

/** Messages of a second tfjs copy or of a module registering something twice. */
const DUPLICATE_REGISTRATION = /already (been )?(registered|set)|overwriting/i;

/** Defines the consumer checks for tfjs `version` (every tfjs package at that version). */
export function describeNodeConsumer(version: string): void {
  describe(`normkit installed next to @tensorflow/tfjs ${version} (Node)`, { timeout: 420_000 }, () => {
    let dir = '';

    before(() => {
      dir = consumerProject(`node-${version}`, {
        '@tensorflow/tfjs': version,
        '@tensorflow/tfjs-backend-wasm': version,
        normkit: `file:${tarball()}`,
      });
      writeFileSync(join(dir, 'probe.mjs'), PROBE);
      writeFileSync(join(dir, 'crash.mjs'), CRASH);
      copyFileSync(join(repoRoot, 'examples', 'quickstart.mjs'), join(dir, 'quickstart.mjs'));
    });

    after(() => cleanup(dir));

    it('holds exactly one @tensorflow/tfjs-core (none nested under normkit) and a valid tree', () => {
      assertOneTfjsCore(dir, version);
    });

    it('runs the README Node quick start: ops, layers, fit, save with normkit/node and load back', () => {
      const r = run(process.execPath, ['quickstart.mjs'], { cwd: dir, timeoutMs: 180_000 });
      assert.match(r.stdout, /reloaded, max output difference 0\n/);
      assert.doesNotMatch(r.stderr, DUPLICATE_REGISTRATION, `duplicate registrations on stderr:\n${r.stderr}`);
    });

    it('importing normkit registers no backend, keeps tfjs\'s default backend and adds no process listeners', () => {
      const probe = (mode: string, withNormkit: string): Record<string, unknown> => {
        const r = run(process.execPath, ['probe.mjs', mode, withNormkit], { cwd: dir, timeoutMs: 120_000 });
        assert.doesNotMatch(r.stderr, DUPLICATE_REGISTRATION, `duplicate registrations on stderr:\n${r.stderr}`);
        return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as Record<string, unknown>;
      };
      for (const mode of ['cpu', 'wasm']) {
        const withNk = probe(mode, '1');
        const without = probe(mode, '0');
        assert.deepEqual(withNk.backendsAfter, withNk.backendsBefore, `${mode}: normkit registered a backend`);
        assert.deepEqual(withNk.afterImport, withNk.atStart, `${mode}: normkit's import added process listeners`);
        // Nor does using its ops: the listeners are those of the same program without normkit (tfjs's wasm
        // backend installs its own when it starts).
        assert.deepEqual(withNk.afterUse, without.afterUse, `${mode}: normkit's ops added process listeners`);
        // The default backend is the one tfjs picks for the same imports without normkit.
        assert.equal(withNk.backend, without.backend, `${mode}: default backend`);
        assert.deepEqual(withNk.backendsBefore, without.backendsBefore);
        assert.equal(withNk.syncOp, without.syncOp);
      }
      assert.equal(probe('cpu', '1').backend, 'cpu');
    });

    it('lets an uncaught error in the user program exit with code 1', () => {
      const r = run(process.execPath, ['crash.mjs'], { cwd: dir, timeoutMs: 60_000, allowFail: true });
      assert.equal(r.status, 1, `exit status ${r.status}, stderr:\n${r.stderr}`);
      assert.match(r.stderr, /a bug in the user program/);
    });
  });
}
