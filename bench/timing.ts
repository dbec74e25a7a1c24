/**
 * Timing helpers of the benchmark: medians with min and max after warm-up, and the copy roofline.
 */
import { performance } from 'node:perf_hooks';

/** Median, min and max of timed runs, in milliseconds. */
export interface Timing {
  median: number;
  min: number;
  max: number;
  runs: number;
}

/**
 * Times `fn` `runs` times after `warmup` untimed calls. When one warm-up call takes longer than
 * `slowMs`, only `minRuns` timed runs are made (the slow tfjs built-ins), never fewer than 5.
 */
export function timeIt(fn: () => void, opts: { runs: number; warmup: number; minRuns?: number; slowMs?: number }): Timing {
  let runs = opts.runs;
  for (let i = 0; i < opts.warmup; i++) {
    const t0 = performance.now();
    fn();
    if (performance.now() - t0 > (opts.slowMs ?? 250)) runs = Math.max(5, Math.min(runs, opts.minRuns ?? 5));
  }
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  const median = times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
  return { median, min: times[0], max: times[times.length - 1], runs };
}

/**
 * The roofline: a plain copy of `floats` float32 values between two preallocated arrays (bytes read plus
 * bytes written = 8 * floats). Returns the timing and its bandwidth in GB/s.
 */
export function copyRoofline(floats: number, runs: number): { timing: Timing; gbps: number } {
  const src = new Float32Array(floats);
  for (let i = 0; i < floats; i++) src[i] = i % 251;
  const dst = new Float32Array(floats);
  const timing = timeIt(() => dst.set(src), { runs: Math.max(runs, 21), warmup: 5 });
  return { timing, gbps: (8 * floats) / (timing.median * 1e6) };
}

/** GB/s of moving `bytes` in `ms` milliseconds. */
export function gbps(bytes: number, ms: number): number {
  return bytes / (ms * 1e6);
}
