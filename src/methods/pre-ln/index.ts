/**
 * Pre-LN (Xiong et al., 2020): the norm on the sublayer's input, `x <- x + F(Norm(x))`, plus a final norm.
 * `buildTransformerLM({placement: 'pre'})` composes blocks with {@link preLNPlacement}.
 */
import type { BlockPlacement } from '../../core/block-placement.js';
import { registerNorm } from '../../core/registry.js';

/**
 * `x <- x + F(Norm(x))` for attention and MLP (norms named `*_norm`), then a final norm.
 *
 * @example
 * const y = preLNPlacement.wire(x, wiring); // inside a block builder
 */
export const preLNPlacement: BlockPlacement = {
  wire: (x, s) => s.add(x, s.drop(s.sublayer(s.norm(x, 'norm')))),
  finalNorm: true,
};

registerNorm({
  name: 'pre-ln',
  aliases: ['pre-norm'],
  kind: 'architecture',
  description: 'Pre-LN placement: x <- x + F(Norm(x)), plus a final norm (buildTransformerLM placement "pre").',
  paper: 'Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020',
  doc: 'docs/transformer.md',
});
