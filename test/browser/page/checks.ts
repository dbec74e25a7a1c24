/**
 * Page-side check registry for the browser tests. A page module calls {@link check} for each named check and
 * {@link publish} once; the Node harness (test/browser/harness.ts) lists the names and runs each check by
 * name, reporting it as its own node:test test. A check passes when it resolves and fails when it throws;
 * what it returns is a short note (figures) shown with the test.
 */
import { findViolation } from '../../helpers/close.js';

export type CheckFn = () => Promise<string | void> | string | void;

const checks = new Map<string, CheckFn>();

/** Registers a check under a unique name, e.g. `[webgpu] layerNorm forward`. */
export function check(name: string, fn: CheckFn): void {
  if (checks.has(name)) throw new Error(`duplicate check name: ${name}`);
  checks.set(name, fn);
}

/** Makes the registered checks available to the harness (`globalThis.__normkitChecks`). */
export function publish(): void {
  (globalThis as any).__normkitChecks = {
    ready: true,
    names: () => [...checks.keys()],
    run: async (name: string) => {
      const fn = checks.get(name);
      if (!fn) return { ok: false, message: `no check named ${name}` };
      try {
        const note = await fn();
        return { ok: true, message: note ?? '' };
      } catch (err) {
        return { ok: false, message: err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err) };
      }
    },
  };
}

/** Page settings from the URL's query string. */
export function param(name: string, fallback: string): string {
  return new URLSearchParams(globalThis.location?.search ?? '').get(name) ?? fallback;
}

/** Throws unless |actual - expected| <= atol + rtol * |expected| everywhere, naming the worst element. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: { rtol?: number; atol?: number }, what: string): void {
  const v = findViolation(actual, expected, tol);
  if (v) throw new Error(`${what}[${v.index}]: got ${v.actual}, expected ${v.expected} (rtol ${tol.rtol ?? 0}, atol ${tol.atol ?? 0})`);
}

/** The largest |actual - expected| (for notes). */
export function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < actual.length; i++) m = Math.max(m, Math.abs(actual[i] - expected[i]));
  return m;
}
