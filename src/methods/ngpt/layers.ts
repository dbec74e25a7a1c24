/**
 * nGPT (Loshchilov et al., 2024) layers: the hypersphere residual update and unit-normalization.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { NormkitLayer, singleInput } from '../../core/norm-layer.js';
import { registerLayerClass } from '../../core/serialization.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;

/**
 * `x / max(||x||_2, epsilon)` over the last axis. nGPT's `justnorm` has no epsilon; the floor (default
 * 1e-12) only matters for (near-)zero vectors, which it maps to x / epsilon (0 for an exact zero) instead of
 * NaN. The norm is computed scale-free, as `s * ||x / s||` with `s = max|x|`, so vectors of any magnitude
 * representable in float32 (1e-30 to 1e30) neither underflow nor overflow when squared.
 */
export function unitNormalize(x: tf.Tensor, epsilon = 1e-12): tf.Tensor {
  return tf.tidy(() => {
    // max|x|, floored so an all-zero (or subnormal) vector divides by a positive number; below the floor the
    // result is x / epsilon anyway. A floor (not a where on s > 0) keeps the op differentiable in tfjs.
    const safe = tf.maximum(tf.max(tf.abs(x), -1, true), 1e-30);
    const z = tf.div(x, safe);
    const norm = tf.mul(safe, tf.sqrt(tf.sum(tf.square(z), -1, true)));
    // x / max(norm, eps) = z * (s / max(norm, eps)); s / max(norm, eps) stays finite for any s.
    return tf.mul(z, tf.div(safe, tf.maximum(norm, epsilon)));
  });
}

/** Arguments of {@link L2Normalize}. */
export interface L2NormalizeArgs extends LayerArgs {
  /** Floor of the norm (default 1e-12). */
  epsilon?: number;
}

/** Projects each vector (last axis) onto the unit sphere: `y = x / max(||x||_2, eps)`. No weights. */
export class L2Normalize extends NormkitLayer {
  static className = 'NormkitL2Normalize';
  static override argKeys: readonly string[] = ['epsilon'];
  readonly epsilon: number;

  constructor(args: L2NormalizeArgs = {}) {
    super(args);
    this.epsilon = args.epsilon ?? 1e-12;
    checkPositive('L2Normalize', 'epsilon', this.epsilon);
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return unitNormalize(singleInput(inputs), this.epsilon);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon };
  }
}

/** Arguments of {@link NGPTResidual}. */
export interface NGPTResidualArgs extends LayerArgs {
  /** Effective initial eigen learning rate alpha (default 0.05). */
  alphaInitValue?: number;
  /** Stored initial value of alpha (default 1/sqrt(d), nGPT's base_scale). */
  alphaInitScaling?: number;
  /** Floor of the norms (default 1e-12). */
  epsilon?: number;
}

/**
 * nGPT's residual update on the hypersphere, for inputs `[h, hBranch]`:
 *
 *   a = |alpha_stored * alphaInitValue / alphaInitScaling|   (per channel, the "eigen learning rate")
 *   y = norm( norm(h) + a ⊙ (norm(hBranch) - norm(h)) ),     norm(x) = x / ||x||_2 over the last axis.
 */
export class NGPTResidual extends NormkitLayer {
  static className = 'NormkitNGPTResidual';
  static override argKeys: readonly string[] = ['alphaInitValue', 'alphaInitScaling', 'epsilon'];
  readonly alphaInitValue: number;
  readonly alphaInitScaling: number | null;
  readonly epsilon: number;
  private alpha: tfl.LayerVariable | null = null;
  private dModel = 0;

  constructor(args: NGPTResidualArgs = {}) {
    super(args);
    this.alphaInitValue = args.alphaInitValue ?? 0.05;
    checkPositive('NGPTResidual', 'alphaInitValue', this.alphaInitValue);
    this.alphaInitScaling = args.alphaInitScaling ?? null;
    if (this.alphaInitScaling !== null) checkPositive('NGPTResidual', 'alphaInitScaling', this.alphaInitScaling);
    this.epsilon = args.epsilon ?? 1e-12;
    checkPositive('NGPTResidual', 'epsilon', this.epsilon);
  }

  private storageScale(): number {
    return this.alphaInitScaling ?? 1 / Math.sqrt(this.dModel);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const d = shape[shape.length - 1];
    if (d == null) throw new NormkitError('NGPTResidual', 'inputShape', 'a known last dimension', shape);
    this.dModel = d;
    this.alpha = this.addWeight('alpha', [d], 'float32', tfl.initializers.constant({ value: this.storageScale() }));
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    if (!Array.isArray(inputs) || inputs.length !== 2) throw new NormkitError('NGPTResidual', 'inputs', 'a list [h, hBranch]', inputs);
    return tf.tidy(() => {
      const a = tf.abs(tf.mul(this.alpha!.read(), this.alphaInitValue / this.storageScale()));
      const h = unitNormalize(inputs[0], this.epsilon);
      const b = unitNormalize(inputs[1], this.epsilon);
      return unitNormalize(tf.add(h, tf.mul(a, tf.sub(b, h))), this.epsilon);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), alphaInitValue: this.alphaInitValue, alphaInitScaling: this.alphaInitScaling, epsilon: this.epsilon };
  }
}

registerLayerClass(L2Normalize);
registerLayerClass(NGPTResidual);
