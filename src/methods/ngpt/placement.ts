/**
 * nGPT's block wiring: every sublayer joins the hypersphere residual through {@link NGPTResidual}.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import type { BlockPlacement } from '../../core/block-placement.js';
import { NGPTResidual } from './layers.js';

/**
 * `h <- norm(norm(h) + |alpha| ⊙ (norm(F(h)) - norm(h)))` for attention and MLP (layers named `*_residual`); the
 * stream is unit-norm, so there is no final norm. The rest of nGPT (unit-normalized q/k and embeddings, scaled
 * SwiGLU and logits, unit-norm weights) is built around it by the model.
 *
 * @example
 * const h = ngptPlacement.wire(x, wiring); // inside a block builder
 */
export const ngptPlacement: BlockPlacement = {
  wire: (x, s) => new NGPTResidual({ name: s.name('residual') }).apply([x, s.sublayer(x)]) as tfl.SymbolicTensor,
  finalNorm: false,
};
