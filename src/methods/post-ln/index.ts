/**
 * Post-LN (Vaswani et al., 2017): the norm after each residual add, `x <- Norm(x + F(x))`, with no final norm.
 * `buildTransformerLM({placement: 'post'})` composes blocks with {@link postLNPlacement}.
 */
import type { BlockPlacement } from '../../core/block-placement.js';
import { registerNorm } from '../../core/registry.js';

/**
 * `x <- Norm(x + F(x))` for attention and MLP (norms named `*_post_norm`); no final norm.
 *
 * @example
 * const y = postLNPlacement.wire(x, wiring); // inside a block builder
 */
export const postLNPlacement: BlockPlacement = {
  wire: (x, s) => s.norm(s.add(x, s.drop(s.sublayer(x))), 'post_norm'),
  finalNorm: false,
};

registerNorm({
  name: 'post-ln',
  aliases: ['post-norm'],
  kind: 'architecture',
  description: 'Post-LN placement: x <- Norm(x + F(x)) for attention and MLP (buildTransformerLM placement "post").',
  paper: 'Vaswani et al., "Attention Is All You Need", NeurIPS 2017',
  doc: 'docs/transformer.md',
});
