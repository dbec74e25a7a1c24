/**
 * NormFormer (Shleifer, Weston & Ott, 2021): Pre-LN plus a norm after attention, a norm after the FFN
 * activation, learned head scales and optional residual scales. `buildTransformerLM({placement: 'normformer'})`
 * composes blocks with {@link normFormerPlacement}.
 */
import type { BlockPlacement } from '../../core/block-placement.js';
import { registerNorm } from '../../core/registry.js';

/** A NormFormer placement with its parts inside the sublayers, which the block builder adds. */
export interface NormFormerPlacement extends BlockPlacement {
  /** Learned per-head scales g_h on the attention heads' outputs (init 1). */
  headScale: true;
  /** A norm over the MLP width after the activation (named `*_fc_norm`). */
  mlpNorm: true;
}

/**
 * NormFormer's block: `x <- w ⊙ x + Norm_out(Attn(Norm(x)))` and `x <- w ⊙ x + MLP(Norm(x))` (norms `*_norm`,
 * `*_out_norm`), with w a learned per-channel residual scale when `scaleResiduals` (fairseq's --scale-resids,
 * init 1) or 1; head scales and the norm after the MLP activation are flagged for the builder; a final norm.
 *
 * @example
 * const placement = normFormerPlacement({ scaleResiduals: true });
 */
export function normFormerPlacement(options: { scaleResiduals?: boolean } = {}): NormFormerPlacement {
  const learnedScale = options.scaleResiduals ?? false;
  return {
    wire: (x, s) => {
      let f = s.sublayer(s.norm(x, 'norm'));
      if (s.part === 'attn') f = s.norm(f, 'out_norm');
      return s.add(x, s.drop(f), { learnedScale });
    },
    finalNorm: true,
    headScale: true,
    mlpNorm: true,
  };
}

registerNorm({
  name: 'normformer',
  kind: 'architecture',
  description: 'Pre-LN block with extra norms after attention and after the FFN activation, plus per-head scales (buildTransformerLM placement "normformer").',
  paper: 'Shleifer, Weston & Ott, "NormFormer: Improved Transformer Pretraining with Extra Normalization", arXiv 2110.09456, 2021',
  doc: 'docs/normformer.md',
});
