/**
 * Peri-LN (Kim et al., 2025): norms around every sublayer, `x <- x + Norm_out(F(Norm_in(x)))`, plus a final norm;
 * the residual stream itself is never normalized. `buildTransformerLM({placement: 'peri'})` composes blocks
 * with {@link periLNPlacement}.
 */
import type { BlockPlacement } from '../../core/block-placement.js';
import { registerNorm } from '../../core/registry.js';

/**
 * `x <- x + Norm_out(F(Norm_in(x)))` for attention and MLP (norms named `*_norm` and `*_out_norm`), then a
 * final norm.
 *
 * @example
 * const y = periLNPlacement.wire(x, wiring); // inside a block builder
 */
export const periLNPlacement: BlockPlacement = {
  wire: (x, s) => s.add(x, s.drop(s.norm(s.sublayer(s.norm(x, 'norm')), 'out_norm'))),
  finalNorm: true,
};

registerNorm({
  name: 'peri-ln',
  aliases: ['peri-norm', 'sandwich-ln'],
  kind: 'architecture',
  description: 'Peri-LN placement: x <- x + Norm_out(F(Norm_in(x))); the residual stream is never normalized (buildTransformerLM placement "peri").',
  paper: 'Kim et al., "Peri-LN: Revisiting Layer Normalization in the Transformer Architecture", arXiv 2502.02732, 2025',
  doc: 'docs/peri-ln.md',
});
