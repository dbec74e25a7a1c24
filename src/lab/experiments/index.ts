/**
 * The lab's experiments, in the order they run and appear in the report.
 */
import type { Experiment } from '../experiment.js';
import { adamp, bnOnly, bnSpeedup, microBatch, sgdp } from './image.js';
import { lnRMSDYT, ngpt, placement, powerNorm } from './language.js';
import { nfAGC, testTime } from './shift.js';

/** Every experiment of `normkit lab`. */
export const EXPERIMENTS: readonly Experiment[] = [bnSpeedup, microBatch, placement, nfAGC, testTime, lnRMSDYT, adamp, bnOnly, sgdp, powerNorm, ngpt];

/**
 * The experiments named in `ids`; when empty, the suite: with `quick`, the experiments of no tier; else those and
 * the default tier, plus the long tier with `long`. Throws listing the known ids on an unknown one.
 */
export function selectExperiments(ids: readonly string[], options: { long?: boolean; quick?: boolean } = {}): Experiment[] {
  if (ids.length === 0) {
    if (options.quick === true) return EXPERIMENTS.filter((e) => e.tier === undefined);
    return EXPERIMENTS.filter((e) => options.long === true || e.tier !== 'long');
  }
  return ids.map((id) => {
    const found = EXPERIMENTS.find((e) => e.id === id);
    if (found === undefined) throw new Error(`normkit lab: unknown experiment '${id}'; known: ${EXPERIMENTS.map((e) => e.id).join(', ')}`);
    return found;
  });
}
