/**
 * Channels and groups: the channel axis of an `[N, ..., C, ...]` input and the channel groups over it, checked
 * and resolved in one place with one wording for every method that takes them.
 */
import { NormkitError } from './errors.js';

/** A channel axis resolved against an input shape (non-negative), and the count of channels on it. */
export interface ChannelAxis {
  axis: number;
  channels: number;
}

/** Whether the batch axis 0 may be the channel axis (BatchNorm accepts any axis; per-sample methods do not). */
export interface ChannelAxisRules {
  /** true: axis 0 is accepted (default false: statistics per sample need the batch axis apart). */
  batchAxis?: boolean;
}

/** What every channel-axis error says is expected; `rank` adds the range once the input's rank is known. */
function expectedChannelAxis(rules: ChannelAxisRules, rank?: number): string {
  const range = rank === undefined ? '' : ` in [${-rank}, ${rank - 1}] for an input of rank ${rank}`;
  return `one integer (the channel axis)${range}${rules.batchAxis ? '' : ', not the batch axis 0'}`;
}

/**
 * Checks what can be checked of a channel `axis` before the input's rank is known (a layer's constructor):
 * one integer, not 0 unless `rules.batchAxis`. {@link resolveChannelAxis} checks the range at build time.
 *
 * @example
 * checkChannelAxisArgument('GroupNormalization', args.axis ?? -1);   // throws for [1, 2], 1.5 or 0
 */
export function checkChannelAxisArgument(where: string, axis: unknown, rules: ChannelAxisRules = {}): asserts axis is number {
  if (typeof axis !== 'number' || !Number.isInteger(axis) || (axis === 0 && !rules.batchAxis)) {
    throw new NormkitError(where, 'axis', expectedChannelAxis(rules), axis);
  }
}

/**
 * Resolves the channel `axis` (negative values count from the end) against `shape`:
 * `c = axis < 0 ? axis + rank : axis`, with `-rank <= axis < rank` and, unless `rules.batchAxis`, `c != 0`.
 * Returns `{ axis: c, channels: shape[c] }`; throws (naming 'inputShape') when that size is unknown (null).
 *
 * @example
 * resolveChannelAxis('groupNorm', -1, [2, 8, 8, 16]);   // { axis: 3, channels: 16 }
 * resolveChannelAxis('groupNorm', 1, [2, 16, 8, 8]);    // { axis: 1, channels: 16 } (channels first)
 */
export function resolveChannelAxis(where: string, axis: unknown, shape: readonly (number | null)[], rules: ChannelAxisRules = {}): ChannelAxis {
  const rank = shape.length;
  if (typeof axis !== 'number' || !Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new NormkitError(where, 'axis', expectedChannelAxis(rules, rank), axis);
  }
  const c = axis < 0 ? axis + rank : axis;
  if (c === 0 && !rules.batchAxis) throw new NormkitError(where, 'axis', expectedChannelAxis(rules, rank), axis);
  const channels = shape[c];
  if (channels == null) throw new NormkitError(where, 'inputShape', 'a known size on the channel axis', shape);
  return { axis: c, channels };
}

/**
 * Checks a `groups` argument before the channel count is known: an integer >= 1, or -1 (one group per channel).
 *
 * @example
 * checkGroupsArgument('GroupNormalization', args.groups ?? 32);
 */
export function checkGroupsArgument(where: string, groups: unknown): asserts groups is number {
  if (groups === -1) return;
  if (typeof groups !== 'number' || !Number.isInteger(groups) || groups < 1) {
    throw new NormkitError(where, 'groups', 'an integer >= 1 (or -1 for one group per channel)', groups);
  }
}

/**
 * The number of groups G of contiguous channels: `groups`, or C when `groups` is -1 (one group per channel).
 * G must divide the C `channels`.
 *
 * @example
 * resolveGroups('groupNorm', 4, 16);    // 4 groups of 4 channels
 * resolveGroups('groupNorm', -1, 16);   // 16 (instance normalization)
 */
export function resolveGroups(where: string, groups: unknown, channels: number): number {
  checkGroupsArgument(where, groups);
  if (groups === -1) return channels;
  if (groups > channels || channels % groups !== 0) {
    throw new NormkitError(where, 'groups', `a divisor of the ${channels} channels`, groups);
  }
  return groups;
}
