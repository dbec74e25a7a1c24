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

/** Throws unless `value` is a finite number > 0. */
export function checkPositive(where: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new NormkitError(where, name, 'a finite number > 0', value);
  }
}

/** Throws unless `value` is a number in the closed interval [lo, hi]. */
export function checkInRange(where: string, name: string, value: unknown, lo: number, hi: number): asserts value is number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < lo || value > hi) {
    throw new NormkitError(where, name, `a number in [${lo}, ${hi}]`, value);
  }
}

/** Throws unless `value` is an integer >= `min`. */
export function checkInteger(where: string, name: string, value: unknown, min = 1): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new NormkitError(where, name, `an integer >= ${min}`, value);
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
    if (!Number.isFinite(value)) throw new NormkitError(where, name, 'a finite number or a scalar tensor', value);
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

/** Throws when an options object carries keys the function does not know (catches typos like `epsilion`). */
export function checkKnownKeys(where: string, options: object | undefined, known: readonly string[]): void {
  if (options === undefined || options === null) return;
  if (typeof options !== 'object') throw new NormkitError(where, 'options', 'an object', options);
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new NormkitError(where, key, `one of the known options (${known.join(', ')})`, 'an unknown option');
    }
  }
}
