/**
 * The contract between a Transformer builder and a norm-placement method (Post-LN, Pre-LN, Peri-LN, DeepNorm,
 * NormFormer, nGPT): the builder owns the sublayers and the layers it names; the method says how one sublayer
 * and its norms are wired into the residual stream.
 */
import type * as tfl from '@tensorflow/tfjs-layers';

type Sym = tfl.SymbolicTensor;

/** Options of a residual add `y = alpha * w ⊙ residual + branch` (w learned per channel or 1). */
export interface ResidualAddOptions {
  /** Constant multiplier alpha of the residual (default 1). */
  residualScale?: number;
  /** Learn the per-channel multiplier w, initialized to 1 (default false). */
  learnedScale?: boolean;
}

/** What a placement is given to wire one sublayer (attention or MLP) of one block. */
export interface SublayerWiring {
  /** Which sublayer of the block this is. */
  part: 'attn' | 'mlp';
  /** The layer name `${block}_${part}_${suffix}`, for a layer the placement creates itself. */
  name(suffix: string): string;
  /** The sublayer F applied to `t`. */
  sublayer(t: Sym): Sym;
  /** A new norm of the model's kind applied to `t`, named by {@link SublayerWiring.name}(suffix). */
  norm(t: Sym, suffix: string): Sym;
  /** The model's dropout on a sublayer output (identity when the model has none). */
  drop(t: Sym): Sym;
  /** The residual add of this sublayer: `alpha * w ⊙ residual + branch`. */
  add(residual: Sym, branch: Sym, options?: ResidualAddOptions): Sym;
}

/**
 * A norm placement: how every sublayer joins the residual stream, and whether a final norm follows the last
 * block. `wire(x, s)` returns the stream after sublayer `s`.
 */
export interface BlockPlacement {
  wire(x: Sym, s: SublayerWiring): Sym;
  finalNorm: boolean;
}
