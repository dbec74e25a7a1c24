/**
 * nGPT's weight projection: after every optimizer step, every matrix of an nGPT model is renormalized so
 * its vectors along the embedding dimension are unit-norm (NVIDIA/ngpt `normalize_matrices`). Which matrices,
 * and along which axis, is declared by whoever builds the model ({@link declareNGPTMatrices}), not guessed
 * from layer names.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { NormkitError } from '../../core/errors.js';

/**
 * One matrix nGPT keeps unit-norm, and the axis along which its vectors have the embedding dimension d (tfjs
 * [in, out] layout): 0 for a [d, out] matrix (each column), 1 for an [in, d] or [V, d] one (each row).
 */
export interface NGPTMatrix {
  variable: tfl.LayerVariable;
  axis: 0 | 1;
}

/** The matrices declared for each model. */
const declared = new WeakMap<tfl.LayersModel, readonly NGPTMatrix[]>();

function checkMatrices(where: string, matrices: unknown): asserts matrices is readonly NGPTMatrix[] {
  if (!Array.isArray(matrices) || matrices.length === 0) throw new NormkitError(where, 'matrices', 'a non-empty list of {variable, axis}', matrices);
  for (const m of matrices as NGPTMatrix[]) {
    if (!(m?.variable instanceof tfl.LayerVariable) || m.variable.shape.length !== 2 || (m.axis !== 0 && m.axis !== 1)) {
      throw new NormkitError(where, 'matrices', 'entries {variable: a 2-D LayerVariable, axis: 0 or 1}', m);
    }
  }
}

/**
 * Records which matrices of `model` nGPT keeps unit-norm, so {@link ngptNormalizeWeights} projects exactly
 * those (`buildTransformerLM({placement: 'ngpt'})` declares its own). A declaration lives with the model
 * object: a model loaded from a file is declared again by its user.
 *
 * @example
 * nk.declareNGPTMatrices(model, [{ variable: embedding.weights[0], axis: 1 }, { variable: head.weights[0], axis: 0 }]);
 */
export function declareNGPTMatrices(model: tfl.LayersModel, matrices: readonly NGPTMatrix[]): void {
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError('declareNGPTMatrices', 'model', 'a tf.LayersModel', model);
  checkMatrices('declareNGPTMatrices', matrices);
  declared.set(model, [...matrices]);
}

/** The matrices declared for `model` by {@link declareNGPTMatrices} (empty when none were). */
export function ngptMatrices(model: tfl.LayersModel): readonly NGPTMatrix[] {
  return declared.get(model) ?? [];
}

/**
 * Projects every matrix declared for an nGPT model back onto the unit sphere along the embedding dimension d:
 * for axis 1 (token embedding [V, d], output projections W_O, W_2 [in, d]) each row `W[i, :] /= ||W[i, :]||`;
 * for axis 0 (q, k, v, fc1 and LM-head kernels [d, out]) each column `W[:, j] /= ||W[:, j]||`.
 *
 * A projection, not a reparameterization: call it once after every optimizer step (or use
 * {@link ngptWeightNormalizer} with model.fit). Leaves no tensors behind.
 *
 * @example
 * optimizer.minimize(loss); nk.ngptNormalizeWeights(model);
 */
export function ngptNormalizeWeights(model: tfl.LayersModel): void {
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError('ngptNormalizeWeights', 'model', 'a tf.LayersModel', model);
  const list = ngptMatrices(model);
  if (list.length === 0) {
    throw new NormkitError('ngptNormalizeWeights', 'model', "a model built by buildTransformerLM({placement: 'ngpt'}) or given to declareNGPTMatrices", `a model with no nGPT matrices ('${model.name}')`);
  }
  tf.tidy(() => {
    for (const { variable, axis } of list) {
      const w = variable.read();
      // The floor keeps an all-zero vector at zero instead of NaN.
      variable.write(tf.div(w, tf.maximum(tf.sqrt(tf.sum(tf.square(w), axis, true)), 1e-12)));
    }
  });
}

/** A model.fit callback that calls {@link ngptNormalizeWeights} after every batch (every optimizer step). */
export function ngptWeightNormalizer(model: tfl.LayersModel): tfl.CustomCallback {
  return new tfl.CustomCallback({ onBatchEnd: async () => ngptNormalizeWeights(model) });
}
