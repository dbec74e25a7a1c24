/**
 * Norm placements in a Transformer block, built by `buildTransformerLM({placement})`. Registry entries only.
 */
import { registerNorm } from '../../core/registry.js';

registerNorm({
  name: 'post-ln',
  aliases: ['post-norm'],
  kind: 'architecture',
  description: 'Post-LN placement: x <- Norm(x + F(x)) for attention and MLP (buildTransformerLM placement "post").',
  paper: 'Vaswani et al., "Attention Is All You Need", NeurIPS 2017',
  doc: 'docs/transformer.md',
});

registerNorm({
  name: 'pre-ln',
  aliases: ['pre-norm'],
  kind: 'architecture',
  description: 'Pre-LN placement: x <- x + F(Norm(x)), plus a final norm (buildTransformerLM placement "pre").',
  paper: 'Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020',
  doc: 'docs/transformer.md',
});

registerNorm({
  name: 'peri-ln',
  aliases: ['peri-norm', 'sandwich-ln'],
  kind: 'architecture',
  description: 'Peri-LN placement: x <- x + Norm_out(F(Norm_in(x))); the residual stream is never normalized (buildTransformerLM placement "peri").',
  paper: 'Kim et al., "Peri-LN: Revisiting Layer Normalization in the Transformer Architecture", arXiv 2502.02732, 2025',
  doc: 'docs/peri-ln.md',
});
