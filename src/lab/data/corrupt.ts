/**
 * Corrupted Fashion-MNIST for covariate-shift experiments, in the spirit of CIFAR-10-C (Hendrycks & Dietterich
 * 2019): Gaussian noise, box blur and contrast reduction at severities 1-5, seeded.
 */
import { NormkitError } from '../../core/errors.js';
import { seededNormal } from '../rng.js';
import type { ImageSet } from './fashion-mnist.js';

/** The corruptions available. */
export const CORRUPTIONS = ['noise', 'blur', 'contrast'] as const;
export type Corruption = (typeof CORRUPTIONS)[number];

const NOISE_STD = [0.08, 0.12, 0.18, 0.26, 0.38];
const BLUR_RADIUS = [1, 1, 2, 2, 3];
const CONTRAST = [0.6, 0.45, 0.3, 0.2, 0.12];

/**
 * Returns a corrupted copy of `set`:
 * - noise: `clip(x + s * z, 0, 1)` with z ~ N(0, 1), s in {0.08 .. 0.38};
 * - blur: mean over a (2r+1)^2 box (clamped at the border), r in {1, 1, 2, 2, 3};
 * - contrast: `(x - mean_image) * c + mean_image` with c in {0.6 .. 0.12}.
 */
export function corruptImages(set: ImageSet, kind: Corruption, severity: number, seed: number): ImageSet {
  if (!(CORRUPTIONS as readonly string[]).includes(kind)) {
    throw new NormkitError('corruptImages', 'kind', CORRUPTIONS.map((c) => `'${c}'`).join(', '), kind);
  }
  if (!Number.isInteger(severity) || severity < 1 || severity > 5) {
    throw new NormkitError('corruptImages', 'severity', 'an integer in 1..5', severity);
  }
  const { height: h, width: w } = set;
  const size = h * w;
  const out = new Float32Array(set.images.length);
  const s = severity - 1;
  if (kind === 'noise') {
    const z = seededNormal(seed);
    for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, set.images[i] + NOISE_STD[s] * z()));
  } else if (kind === 'blur') {
    const r = BLUR_RADIUS[s];
    for (let n = 0; n < set.n; n++) {
      const base = n * size;
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < w; j++) {
          let sum = 0;
          let count = 0;
          for (let a = Math.max(0, i - r); a <= Math.min(h - 1, i + r); a++) {
            for (let b = Math.max(0, j - r); b <= Math.min(w - 1, j + r); b++) {
              sum += set.images[base + a * w + b];
              count++;
            }
          }
          out[base + i * w + j] = sum / count;
        }
      }
    }
  } else {
    const c = CONTRAST[s];
    for (let n = 0; n < set.n; n++) {
      const base = n * size;
      let mean = 0;
      for (let i = 0; i < size; i++) mean += set.images[base + i];
      mean /= size;
      for (let i = 0; i < size; i++) out[base + i] = (set.images[base + i] - mean) * c + mean;
    }
  }
  return { ...set, images: out, source: `${set.source} (${kind}, severity ${severity})` };
}
