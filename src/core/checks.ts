/**
 * Argument checks shared by every method. Each throws a {@link NormkitError} naming the argument.
 */
import * as tf from '@tensorflow/tfjs-core';
import { NormkitError } from './errors.js';

/** Throws unless `x` is a float32 tensor of rank at least `minRank`. */
export function checkFloatTensor(where: string, name: string, x: unknown, minRank = 0): asserts x is tf.Tensor {
  if (!(x instanceof tf.Tensor)) throw new NormkitError(where, name, 'a tf.Tensor', x);
  if (x.dtype !== 'float32') throw new NormkitError(where, name, 'a float32 tensor', `dtype ${x.dtype}`);
  if (x.rank < minRank) {
    throw new NormkitError(where, name, `a tensor of rank >= ${minRank}`, `rank ${x.rank} (shape [${x.shape.join(', ')}])`);
  }
}

/** The largest finite float32 value. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Throws unless `value` is a finite number > 0 and, when `max` is given, <= `max` (a parameter whose larger
 * values would overflow float32 or change what the method computes).
 */
export function checkPositive(where: string, name: string, value: unknown, max = Infinity): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max) {
    throw new NormkitError(where, name, max === Infinity ? 'a finite number > 0' : `a number in (0, ${max}]`, value);
  }
}

/** Throws unless `value` is a finite number >= 0 (an epsilon that Keras files may carry as 0). */
export function checkNonNegative(where: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new NormkitError(where, name, 'a finite number >= 0', value);
  }
}

/** Throws unless `value` is a finite number within float32's range (a value stored in a float32 weight). */
export function checkFloat32(where: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !(Math.abs(value) <= FLOAT32_MAX)) {
    throw new NormkitError(where, name, `a finite number within float32's range (|value| <= ${FLOAT32_MAX})`, value);
  }
}

/** Throws unless `value` is a number in the closed interval [lo, hi]. */
export function checkInRange(where: string, name: string, value: unknown, lo: number, hi: number): asserts value is number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < lo || value > hi) {
    throw new NormkitError(where, name, `a number in [${lo}, ${hi}]`, value);
  }
}

/** Throws unless `value` is an integer >= `min` and, when `max` is given, <= `max` (a size that is allocated). */
export function checkInteger(where: string, name: string, value: unknown, min = 1, max = Infinity): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new NormkitError(where, name, max === Infinity ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`, value);
  }
}

/** Throws unless `value` is a boolean. */
export function checkBoolean(where: string, name: string, value: unknown): asserts value is boolean {
  if (typeof value !== 'boolean') throw new NormkitError(where, name, 'a boolean', value);
}

/** Throws unless `value` is one of `allowed`. */
export function checkOneOf<T extends string>(where: string, name: string, value: unknown, allowed: readonly T[]): asserts value is T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new NormkitError(where, name, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, value);
  }
}

/**
 * Throws unless `param` (optional) is a float32 tensor of exactly `shape`. Used for gamma, beta and moving
 * statistics, whose shape is fixed by the input and the normalized axes.
 */
export function checkParam(where: string, name: string, param: unknown, shape: readonly number[]): void {
  if (param === undefined || param === null) return;
  checkFloatTensor(where, name, param);
  const ok = param.rank === shape.length && param.shape.every((d, i) => d === shape[i]);
  if (!ok) throw new NormkitError(where, name, `a tensor of shape [${shape.join(', ')}]`, `shape [${param.shape.join(', ')}]`);
}

/** Throws unless `value` is one scalar per layer: a finite number, or a float32 tensor of shape [] or [1]. */
export function checkScalarParam(where: string, name: string, value: unknown): asserts value is number | tf.Tensor {
  if (typeof value === 'number') {
    // The number becomes a float32 scalar: beyond float32's range it would be +-Infinity there.
    if (!(Math.abs(value) <= FLOAT32_MAX)) throw new NormkitError(where, name, `a finite number within float32's range (|value| <= ${FLOAT32_MAX}) or a scalar tensor`, value);
    return;
  }
  checkFloatTensor(where, name, value);
  if (value.size !== 1 || value.rank > 1) throw new NormkitError(where, name, 'a tensor of shape [] or [1] (one scalar per layer)', `shape [${value.shape.join(', ')}]`);
}

/** As {@link checkParam}, but the tensor must be given (stored statistics an op cannot run without). */
export function checkRequiredParam(where: string, name: string, param: unknown, shape: readonly number[]): void {
  if (param === undefined || param === null) throw new NormkitError(where, name, `a float32 tensor of shape [${shape.join(', ')}]`, param);
  checkParam(where, name, param, shape);
}

/** As {@link checkInteger}, for a value required only in some case, which `when` names ('when training is true'). */
export function checkRequiredInteger(where: string, name: string, value: unknown, min: number, when: string): asserts value is number {
  if (value === undefined) throw new NormkitError(where, name, `an integer >= ${min} ${when}`, undefined);
  checkInteger(where, name, value, min);
}

/**
 * Throws when an options object carries keys the function does not know (catches typos like `epsilion`),
 * naming the unknown key, the closest known one and every known one.
 */
export function checkKnownKeys(where: string, options: object | undefined, known: readonly string[]): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new NormkitError(where, 'options', 'an object', options);
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw unknownKeyError(where, key, known, 'option');
  }
}

/**
 * The NormkitError for an unknown option or layer argument `key`: it names `where`, the key, the closest of
 * `known` (by edit distance, when close enough to be a likely typo) and the whole list.
 */
export function unknownKeyError(where: string, key: string, known: readonly string[], noun: 'option' | 'argument'): NormkitError {
  const near = closestName(key, known);
  const hint = near === undefined ? '' : ` (did you mean '${near}'?)`;
  const list = [...known].sort().join(', ');
  return new NormkitError(where, key, '', undefined, `${where}: unknown ${noun} '${key}'${hint}; the known ${noun}s are ${list}.`);
}

/** The entry of `names` nearest to `name` (case-insensitive edit distance <= max(2, length / 3)), if any. */
export function closestName(name: string, names: readonly string[]): string | undefined {
  const a = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(a.length / 3)) + 1;
  for (const candidate of names) {
    const d = editDistance(a, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance (insertions, deletions, substitutions) between two short strings. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}
