/**
 * Errors thrown by normkit before any computation runs.
 *
 * Every message names the function, the argument, what was expected and what was given, so a user can fix
 * the call without reading normkit's source.
 */
export class NormkitError extends Error {
  /** Name of the offending argument (e.g. `'axis'`, `'groups'`, `'gamma'`). */
  readonly argument: string;

  /**
   * The message reads `where: argument 'argument' must be expected, but got <got>.`; `message`, when given,
   * replaces it (for errors whose argument is a wrong name rather than a wrong value).
   */
  constructor(where: string, argument: string, expected: string, got: unknown, message?: string) {
    super(message ?? `${where}: argument '${argument}' must be ${expected}, but got ${describe(got)}.`);
    this.name = 'NormkitError';
    this.argument = argument;
  }
}

/** A short, human readable rendering of a value for error messages. */
export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(describe).join(', ')}]`;
  const maybeTensor = value as { shape?: unknown; dtype?: unknown; rank?: unknown };
  if (Array.isArray(maybeTensor.shape) && typeof maybeTensor.dtype === 'string') {
    return `a ${maybeTensor.dtype} tensor of shape [${(maybeTensor.shape as number[]).join(', ')}]`;
  }
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
