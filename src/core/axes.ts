/**
 * Axis handling shared by every method: normalizing user axes, deriving parameter shapes and broadcast shapes.
 */
import { NormkitError } from './errors.js';

/**
 * Resolves `axis` (a number or list, negative values counting from the end) against `rank`.
 * Returns sorted, non-negative, unique axes. Throws on out-of-range, non-integer, duplicated or empty input.
 */
export function normalizeAxes(where: string, axis: number | readonly number[], rank: number, name = 'axis'): number[] {
  const list = typeof axis === 'number' ? [axis] : axis;
  if (!Array.isArray(list) || list.length === 0) {
    throw new NormkitError(where, name, 'an integer or a non-empty list of integers', axis);
  }
  const out: number[] = [];
  for (const a of list) {
    if (typeof a !== 'number' || !Number.isInteger(a) || a < -rank || a >= rank) {
      throw new NormkitError(where, name, `integers in [${-rank}, ${rank - 1}] for an input of rank ${rank}`, axis);
    }
    const pos = a < 0 ? a + rank : a;
    if (out.includes(pos)) throw new NormkitError(where, name, 'a list of distinct axes', axis);
    out.push(pos);
  }
  return out.sort((p, q) => p - q);
}

/**
 * Checks what can be checked of an axis argument before the input's rank is known (a layer's constructor):
 * an integer or a non-empty list of distinct integers. {@link normalizeAxes} checks the range at build time.
 */
export function checkAxisArgument(where: string, axis: unknown, name = 'axis'): asserts axis is number | number[] {
  const list = typeof axis === 'number' ? [axis] : axis;
  if (!Array.isArray(list) || list.length === 0 || !list.every((a) => typeof a === 'number' && Number.isInteger(a))) {
    throw new NormkitError(where, name, 'an integer or a non-empty list of integers', axis);
  }
  if (new Set(list).size !== list.length) throw new NormkitError(where, name, 'a list of distinct axes', axis);
}

/** The axes of `rank` not in `axes`. */
export function complementAxes(axes: readonly number[], rank: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < rank; i++) if (!axes.includes(i)) out.push(i);
  return out;
}

/** Shape of a parameter over `axes` in Keras layout: `[shape[a] for a in axes]`. */
export function paramShape(shape: readonly number[], axes: readonly number[]): number[] {
  return axes.map((a) => shape[a]);
}

/** Shape that broadcasts a parameter over `axes` against `shape`: size 1 everywhere except on `axes`. */
export function broadcastShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? d : 1));
}

/** Product of the sizes of `shape` on `axes`. */
export function sizeOver(shape: readonly number[], axes: readonly number[]): number {
  return axes.reduce((n, a) => n * shape[a], 1);
}

/** True when `axes` are exactly the trailing axes of a tensor of `rank` (so a parameter broadcasts as is). */
export function areTrailing(axes: readonly number[], rank: number): boolean {
  return axes.every((a, i) => a === rank - axes.length + i);
}
