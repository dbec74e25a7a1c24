/**
 * NormFormer (Shleifer, Weston & Ott, 2021): Pre-LN plus a norm after attention, a norm after the FFN
 * activation, learned head scales and optional residual scales. Built by
 * `buildTransformerLM({placement: 'normformer'})`; registry entry only.
 */
import { registerNorm } from '../../core/registry.js';

registerNorm({
  name: 'normformer',
  kind: 'architecture',
  description: 'Pre-LN block with extra norms after attention and after the FFN activation, plus per-head scales (buildTransformerLM placement "normformer").',
  paper: 'Shleifer, Weston & Ott, "NormFormer: Improved Transformer Pretraining with Extra Normalization", arXiv 2110.09456, 2021',
  doc: 'docs/normformer.md',
});
