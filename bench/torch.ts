/**
 * normkit against PyTorch CPU, interleaved: bench/torch_bench.py runs as one persistent child process (one
 * thread) and the comparison alternates a batch of normkit runs with a batch of PyTorch runs, round after
 * round, so both sides see the same machine load. The figure is the median over rounds of the per-round
 * ratio (PyTorch median / normkit median), which a load change between rounds does not bias.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { timeIt, type Timing } from './timing.js';

/** One case as PyTorch runs it. */
export interface TorchCase {
  method: string;
  shape: number[];
  groups?: number;
}

export type Pass = 'forward' | 'forward+backward';

/** An interleaved comparison of one case and pass. */
export interface TorchComparison {
  /** PyTorch's per-round medians (their median, min and max; runs = rounds). */
  torch: Timing;
  /** normkit's per-round medians over the same rounds. */
  normkit: Timing;
  /** Median over rounds of PyTorch median / normkit median (above 1: normkit faster). */
  ratio: number;
  /** The per-round ratios, in round order. */
  ratios: number[];
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const summary = (times: number[]): Timing => ({ median: median(times), min: Math.min(...times), max: Math.max(...times), runs: times.length });

/** The persistent PyTorch child: one request line out, one answer line back. */
/** A python that can import torch: the Debian package installs into the system python, and a python3 earlier on PATH (pyenv, venv) may lack it. */
export function torchPython(): string | undefined {
  return ['python3', '/usr/bin/python3'].find((py) => spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0);
}

export class TorchServer {
  private readonly answers: string[] = [];
  private readonly waiting: Array<(line: string) => void> = [];
  private closed = false;
  /** The end of the child's stderr, for error messages (and read so that the pipe never fills). */
  private stderrTail = '';

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly python: string,
  ) {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const w = this.waiting.shift();
      if (w) w(line);
      else this.answers.push(line);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-2000);
    });
    child.on('exit', () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w(JSON.stringify({ error: this.exitMessage() }));
    });
  }

  /** The PyTorch version, read from the child's first line. */
  version = '';

  private exitMessage(): string {
    const last = this.stderrTail.trim().split('\n').pop();
    return `the PyTorch process exited${last ? ` (${last})` : ''}`;
  }

  /**
   * Starts bench/torch_bench.py with the first python that imports torch (the Debian package installs into
   * the system python; a python3 earlier on PATH, such as pyenv's, may lack it). Resolves to the reason, as a
   * string, when it cannot start.
   */
  static async start(): Promise<TorchServer | string> {
    const python = torchPython();
    if (!python) return 'neither python3 nor /usr/bin/python3 can import torch (install the Debian package python3-torch to include it)';
    const server = new TorchServer(spawn(python, ['bench/torch_bench.py', '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] }), python);
    const hello = JSON.parse(await server.next()) as { torch?: string; error?: string };
    if (!hello.torch) return `bench/torch_bench.py did not start (${hello.error ?? 'no version line'})`;
    server.version = hello.torch;
    return server;
  }

  private next(): Promise<string> {
    const line = this.answers.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.closed) return Promise.resolve(JSON.stringify({ error: this.exitMessage() }));
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** `runs` timed PyTorch runs (after `warmup` untimed ones) of one case and pass, in ms. */
  async times(c: TorchCase, pass: Pass, runs: number, warmup: number): Promise<number[]> {
    this.child.stdin.write(JSON.stringify({ ...c, pass, runs, warmup }) + '\n');
    const answer = JSON.parse(await this.next()) as { times?: number[]; error?: string };
    if (!answer.times) throw new Error(`bench/torch_bench.py: ${answer.error ?? 'no times'}`);
    return answer.times;
  }

  /**
   * `rounds` rounds of `perRound` normkit runs of `ours` then `perRound` PyTorch runs of the same case (both
   * warmed up before the first round).
   */
  async compare(c: TorchCase, pass: Pass, ours: () => void, rounds: number, perRound: number): Promise<TorchComparison> {
    const oursAll: number[] = [];
    const theirsAll: number[] = [];
    const ratios: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const warmup = r === 0 ? 2 : 0;
      const mine = timeIt(ours, { runs: perRound, warmup });
      const theirs = await this.times(c, pass, perRound, warmup);
      oursAll.push(mine.median);
      theirsAll.push(median(theirs));
      ratios.push(median(theirs) / mine.median);
    }
    return { torch: summary(theirsAll), normkit: summary(oursAll), ratio: median(ratios), ratios };
  }

  close(): void {
    this.child.stdin.end();
  }
}
