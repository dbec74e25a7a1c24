/**
 * DeepNorm (Wang et al., "DeepNet: Scaling Transformers to 1,000 Layers", 2022): Post-LN with an up-weighted
 * residual `x <- LN(alpha * x + F(x))` and init scaling beta on the value, output and FFN projections: the
 * constants, the block wiring and the init rule. `buildTransformerLM({placement: 'deepnorm'})` composes them.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { BlockPlacement } from '../../core/block-placement.js';
import { checkInteger, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { registerNorm } from '../../core/registry.js';

/** DeepNorm's residual multiplier alpha and init scale beta. */
export interface DeepNormConstants {
  alpha: number;
  beta: number;
}

/**
 * DeepNorm constants for a model with N encoder layers and/or M decoder layers (torchscale's formulas):
 *
 * - encoder-only (N) or decoder-only (M = L): alpha = (2L)^(1/4), beta = (8L)^(-1/4);
 * - encoder-decoder, encoder: alpha = 0.81 (N^4 M)^(1/16), beta = 0.87 (N^4 M)^(-1/16);
 *   decoder: alpha = (3M)^(1/4), beta = (12M)^(-1/4).
 *
 * `part` picks the encoder's or the decoder's pair for an encoder-decoder model.
 */
export function deepNormConstants(layers: { encoder?: number; decoder?: number }, part: 'encoder' | 'decoder' = 'decoder'): DeepNormConstants {
  const where = 'deepNormConstants';
  const n = layers.encoder ?? 0;
  const m = layers.decoder ?? 0;
  if (n !== 0) checkInteger(where, 'encoder', n);
  if (m !== 0) checkInteger(where, 'decoder', m);
  if (n === 0 && m === 0) throw new NormkitError(where, 'layers', 'a positive encoder and/or decoder layer count', layers);
  if (part !== 'encoder' && part !== 'decoder') throw new NormkitError(where, 'part', "'encoder' or 'decoder'", part);
  if (n === 0 || m === 0) {
    const l = n + m;
    return { alpha: (2 * l) ** 0.25, beta: (8 * l) ** -0.25 };
  }
  if (part === 'encoder') {
    const base = (n ** 4 * m) ** (1 / 16);
    return { alpha: 0.81 * base, beta: 0.87 / base };
  }
  return { alpha: (3 * m) ** 0.25, beta: (12 * m) ** -0.25 };
}

/**
 * DeepNorm's block: `x <- Norm(alpha * x + F(x))` for attention and MLP (norms named `*_post_norm`), no final norm.
 *
 * @example
 * const placement = deepNormPlacement(deepNormConstants({ decoder: 12 }).alpha);
 */
export function deepNormPlacement(alpha: number): BlockPlacement {
  checkPositive('deepNormPlacement', 'alpha', alpha);
  return {
    wire: (x, s) => s.norm(s.add(x, s.drop(s.sublayer(x)), { residualScale: alpha }), 'post_norm'),
    finalNorm: false,
  };
}

/**
 * DeepNorm's init rule: `W <- beta * W` for each weight given (in DeepNet, the value and output projections of
 * attention, with their biases, and the FFN weights), after the ordinary initialization. Leaves no tensors behind.
 *
 * @example
 * deepNormScaleWeights([attn.valueKernel, attn.outputKernel], deepNormConstants({ decoder: 12 }).beta);
 */
export function deepNormScaleWeights(weights: readonly tfl.LayerVariable[], beta: number): void {
  checkPositive('deepNormScaleWeights', 'beta', beta);
  tf.tidy(() => {
    for (const w of weights) w.write(tf.mul(w.read(), beta));
  });
}

registerNorm({
  name: 'deepnorm',
  aliases: ['deepnet'],
  kind: 'architecture',
  description: 'Post-LN with the residual up-weighted by alpha and value/output/FFN weights scaled by beta at init (buildTransformerLM placement "deepnorm").',
  paper: 'Wang, Ma, Dong, Huang, Zhang & Wei, "DeepNet: Scaling Transformers to 1,000 Layers", arXiv 2203.00555, 2022',
  doc: 'docs/deepnorm.md',
});
