/**
 * Conventions: whose defaults a method follows, Keras's or PyTorch's. One table holds every default a
 * convention sets (epsilons, the moving-statistics rule, affine on or off); {@link conventionDefaults} is the
 * one place a convention argument is checked and turned into those defaults.
 */
import { checkOneOf } from './checks.js';

/** Whose defaults to follow: `'keras'` (TensorFlow / Keras) or `'pytorch'` (torch.nn). */
export type Convention = 'keras' | 'pytorch';

/** The accepted conventions. */
export const CONVENTIONS: readonly Convention[] = ['keras', 'pytorch'];

/** torch.nn.RMSNorm's default eps: `torch.finfo(torch.float32).eps` = 2^-23. */
export const TORCH_FLOAT32_EPS = 2 ** -23;

/** The defaults a convention sets. */
export interface ConventionDefaults {
  /** The convention these defaults belong to. */
  convention: Convention;
  /** Epsilon of mean-and-variance normalizations (BatchNorm, LayerNorm, GroupNorm, InstanceNorm): 1e-3 or 1e-5. */
  epsilon: number;
  /** Epsilon of RMSNorm: 1e-6 (Keras 3) or 2^-23 (torch.nn.RMSNorm's float32 eps). */
  rmsEpsilon: number;
  /** Moving-statistics momentum: 0.99 (Keras) or 0.1 (PyTorch). */
  momentum: number;
  /**
   * Which value `momentum` weighs in a moving average: `'old'` (Keras, moving <- m moving + (1 - m) batch) or
   * `'new'` (PyTorch, running <- (1 - m) running + m batch).
   */
  momentumWeighs: 'old' | 'new';
  /** Whether the moving variance takes the batch's UNBIASED variance (PyTorch) rather than the biased one (Keras). */
  unbiasedMovingVariance: boolean;
  /** Whether an instance normalization layer has gamma and beta by default (TF Addons: yes; torch.nn.InstanceNorm: no). */
  instanceAffine: boolean;
}

/** The defaults of each convention. */
export const CONVENTION_DEFAULTS: Readonly<Record<Convention, Readonly<ConventionDefaults>>> = {
  keras: { convention: 'keras', epsilon: 1e-3, rmsEpsilon: 1e-6, momentum: 0.99, momentumWeighs: 'old', unbiasedMovingVariance: false, instanceAffine: true },
  pytorch: { convention: 'pytorch', epsilon: 1e-5, rmsEpsilon: TORCH_FLOAT32_EPS, momentum: 0.1, momentumWeighs: 'new', unbiasedMovingVariance: true, instanceAffine: false },
};

/**
 * Checks a `convention` argument (undefined means `fallback`) and returns its defaults; throws a NormkitError
 * naming `where` and 'convention' for anything but 'keras' or 'pytorch'.
 *
 * @example
 * const { convention, epsilon, momentum } = conventionDefaults('BatchNormalization', args.convention);
 * // 'pytorch' -> epsilon 1e-5, momentum 0.1 (weight of the new value); undefined -> Keras's 1e-3 and 0.99
 */
export function conventionDefaults(where: string, convention: unknown, fallback: Convention = 'keras'): Readonly<ConventionDefaults> {
  const value = convention ?? fallback;
  checkOneOf(where, 'convention', value, CONVENTIONS);
  return CONVENTION_DEFAULTS[value];
}
