/**
 * Option checks shared by normkit's optimizers.
 */
import { checkBoolean, checkInRange, checkKnownKeys, checkPositive } from '../core/checks.js';
import { NormkitError } from '../core/errors.js';

/** Throws unless `value` is a finite number >= 0. */
export function checkNonNegative(where: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new NormkitError(where, name, 'a finite number >= 0', value);
}

/** Throws unless `value` is in [0, 1) (betas, momentum). */
export function checkUnitInterval(where: string, name: string, value: unknown): asserts value is number {
  checkInRange(where, name, value, 0, 1);
  if (value === 1) throw new NormkitError(where, name, 'a number in [0, 1)', value);
}

export { checkBoolean, checkKnownKeys, checkPositive };
