import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/lab/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { tiny, tinyData } from '../helpers/lab-experiments.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

forEachBackend((backend) => {
  describe('lab end to end', () => {
    let data: string;
    before(() => {
      data = tinyData();
    });

    it('trains a tiny experiment over 3 seeds and writes a report, deterministically and without leaks', async () => {
      const run = (out: string) => nk.runLab({ experiments: [tiny], seeds: 3, quick: true, outDir: out, dataDir: data, backend });
      const out = mkdtempSync(join(tmpdir(), 'normkit-e2e-'));
      const tensors = tf.memory().numTensors;
      const results = await run(out);
      // The CNN's patch kernels are cached once per (kernel size, channels); everything else is freed.
      assert.ok(tf.memory().numTensors - tensors <= 4, `${tf.memory().numTensors - tensors} tensors left`);
      const e = results.experiments[0];
      assert.equal(e.status, 'done');
      assert.equal(e.runs.length, 6);
      assert.ok(['reproduced', 'not reproduced', 'inconclusive'].includes(e.verdict));
      for (const r of e.runs) {
        assert.equal(r.output.curves['train loss'].length, 4);
        assert.equal(r.output.curves['test accuracy'].length, 2);
        const accuracy = r.output.metrics['final test accuracy'];
        assert.ok(typeof accuracy === 'number' && accuracy >= 0 && accuracy <= 1);
      }
      assert.equal(results.meta.data, data);
      const html = readFileSync(join(out, 'report.html'), 'utf8');
      assert.ok(html.includes('<svg') && html.includes('LN beats none'));
      assert.ok(existsSync(join(out, 'summary.md')));
      const again = await run(mkdtempSync(join(tmpdir(), 'normkit-e2e-')));
      assert.deepEqual(again.experiments[0].runs.map((r) => r.output.metrics), e.runs.map((r) => r.output.metrics));
    });
  });
});

describe('normkit CLI', () => {
  it('lab --list names every experiment and its claim', () => {
    const r = spawnSync(process.execPath, [CLI, 'lab', '--list'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    for (const e of nk.EXPERIMENTS) assert.ok(r.stdout.includes(e.id) && r.stdout.includes(e.claim.slice(0, 40)), e.id);
  });

  it('rejects an unknown experiment and a bad option with a clear message', () => {
    const unknown = spawnSync(process.execPath, [CLI, 'lab', 'no-such-experiment'], { encoding: 'utf8' });
    assert.equal(unknown.status, 2, unknown.stderr);
    assert.match(unknown.stderr, /unknown experiment 'no-such-experiment'; known: bn-speedup/);
    const seeds = spawnSync(process.execPath, [CLI, 'lab', '--seeds', 'two'], { encoding: 'utf8' });
    assert.equal(seeds.status, 2, seeds.stderr);
    assert.match(seeds.stderr, /--seeds must be a positive integer/);
  });

  it('Ctrl-C during a run stops it cleanly with exit status 130 and a hint to resume', async () => {
    const out = mkdtempSync(join(tmpdir(), 'normkit-sigint-'));
    const child = spawn(process.execPath, [CLI, 'lab', 'bn-speedup', '--quick', '--seeds', '1', '--data', tinyData(), '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    const status = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        const first = !stdout.includes(': start');
        stdout += chunk.toString();
        if (first && stdout.includes(': start')) child.kill('SIGINT');
      });
      child.on('close', (code) => resolve(code));
    });
    assert.equal(status, 130, stdout);
    assert.match(stdout, /interrupted; finished runs are kept/);
    assert.match(stdout, /--resume/);
    assert.ok(existsSync(join(out, 'report.html')));
  });
});
