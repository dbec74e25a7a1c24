import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLab } from '../../src/lab/runner.js';
import { silentProgress } from '../../src/lab/progress.js';
import type { LabResults } from '../../src/lab/results.js';
import { MODULE, tinyData, tinyLong, withoutTimes } from '../helpers/lab-experiments.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const outputs = (r: LabResults) => r.experiments.flatMap((e) => e.runs.map((run) => ({ id: `${run.variant}/${run.seed}`, output: withoutTimes(run.output) })));

/** A free loopback port (the OS picks it; the listener is closed before Redis takes it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** Starts `command` and resolves once its output matches `ready`; rejects when it exits or fails to start first. */
function startProcess(command: string, args: string[], ready: RegExp, what: string): Promise<{ child: ChildProcess; output: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    let resolved = false;
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      if (!resolved && ready.test(text)) {
        resolved = true;
        resolve({ child, output: () => text });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('error', (e: NodeJS.ErrnoException) => reject(new Error(
      e.code === 'ENOENT' ? `${what}: '${command}' is not installed (on Debian: apt-get install redis-server); the queue tests need it` : `${what}: ${e.message}`,
    )));
    child.on('exit', (code, signal) => {
      if (!resolved) reject(new Error(`${what} exited (${signal ?? code}) before it was ready:\n${text}`));
    });
  });
}

function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

describe('lab through a BullMQ queue (real redis-server)', () => {
  let redis: ChildProcess | undefined;
  let url = '';
  const workers: Array<{ child: ChildProcess; output: () => string }> = [];
  let data: string;

  before(async () => {
    data = tinyData();
    const port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    ({ child: redis } = await startProcess('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], /Ready to accept connections/, 'redis-server'));
    for (let i = 0; i < 2; i++) {
      workers.push(await startProcess(process.execPath, [CLI, 'lab', 'worker', '--queue', url, '--module', MODULE, '--lock-seconds', '3'], /waiting for runs/, `queue worker ${i + 1}`));
    }
  });

  after(async () => {
    await Promise.all(workers.map((w) => stop(w.child, 'SIGINT')));
    if (redis !== undefined) await stop(redis, 'SIGTERM');
  });

  it('two workers take the runs, one is killed mid-run, every run completes with the results of a local run', async () => {
    const pids = new Map<number, number>();
    let killed: number | undefined;
    const progress = {
      ...silentProgress,
      log: (line: string) => {
        const m = /^queue worker (\d+): .*\/(\d+)$/.exec(line);
        if (m !== null) pids.set(Number(m[1]), Number(m[2]));
      },
      startRun: (info: { worker?: number }) => {
        // The first run to start loses its worker at once: SIGKILL, no chance to clean up.
        if (killed !== undefined || info.worker === undefined) return;
        killed = pids.get(info.worker);
        if (killed !== undefined) process.kill(killed, 'SIGKILL');
      },
    };
    const common = { experiments: [tinyLong], seeds: 2, quick: true, dataDir: data, backend: 'wasm' };
    const queued = await runLab({ ...common, outDir: mkdtempSync(join(tmpdir(), 'normkit-queue-')), queue: url, progress });
    assert.ok(killed !== undefined, 'a worker was killed');
    const dead = workers.find((w) => w.child.pid === killed);
    assert.ok(dead !== undefined && dead.child.signalCode === 'SIGKILL', 'the killed process was one of the two workers');
    assert.doesNotMatch(dead.output(), /: done in/, 'the killed worker finished no run');
    assert.deepEqual(queued.meta.failedRuns, [], workers.map((w) => w.output()).join('\n'));
    assert.equal(queued.experiments[0].status, 'done');
    assert.equal(queued.experiments[0].runs.length, 4);
    assert.equal(queued.meta.workers, 'queue');
    const local = await runLab({ ...common, outDir: mkdtempSync(join(tmpdir(), 'normkit-local-')), workers: 1 });
    assert.deepEqual(outputs(queued), outputs(local));
  });
});
