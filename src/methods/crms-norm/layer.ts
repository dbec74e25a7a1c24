/**
 * CRMSNormalization: a layer over {@link crmsNorm}.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { NormkitError } from '../../core/errors.js';
import { AffineNormLayer, firstInputShape, singleInput, type AffineLayerArgs } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';
import { crmsNorm } from './op.js';

/** Arguments of {@link CRMSNormalization}: epsilon 1e-5; no affine by default (the paper folds it into the next linear layer). */
export type CRMSNormalizationArgs = AffineLayerArgs;

/**
 * Compressed RMSNorm on the last axis: input [..., d-1] (a zero-mean d-vector without its last coordinate),
 * output `xc / sqrt((sum(xc^2) + sum(xc)^2)/d + eps)`, optionally times gamma plus beta (shape [d-1]).
 */
export class CRMSNormalization extends AffineNormLayer {
  static className = 'CRMSNormalization';

  constructor(args: CRMSNormalizationArgs = {}) {
    super(args, { epsilon: 1e-5, center: false, scale: false });
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = firstInputShape(inputShape);
    const kept = shape[shape.length - 1];
    if (shape.length < 1 || kept == null) throw new NormkitError('CRMSNormalization', 'inputShape', 'a known last-axis size', shape);
    this.buildAffine([kept]);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => crmsNorm(singleInput(inputs), { epsilon: this.epsilon, ...this.affineValues() }));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.affineConfig() };
  }
}

registerLayerClass(CRMSNormalization);

registerNorm({
  name: 'crms',
  aliases: ['crmsnorm', 'compressed-rms', 'CRMSNormalization'],
  kind: 'activation',
  description: 'RMSNorm of a zero-mean d-vector stored as its first d-1 coordinates (divisor: the original d).',
  paper: 'Jiang et al., "Pre-RMSNorm and Pre-CRMSNorm Transformers: Equivalent and Efficient Pre-LN Transformers", NeurIPS 2023 (arXiv 2305.14858)',
  layerClass: 'CRMSNormalization',
  create: (config) => new CRMSNormalization(config as CRMSNormalizationArgs),
  doc: 'docs/crms-norm.md',
});
