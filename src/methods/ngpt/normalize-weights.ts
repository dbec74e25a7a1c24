/**
 * nGPT's weight projection: after every optimizer step, every matrix of an nGPT model is renormalized so
 * its vectors along the embedding dimension are unit-norm (NVIDIA/ngpt `normalize_matrices`).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { NormkitError } from '../../core/errors.js';
import { CausalSelfAttention, TokenPositionEmbedding } from '../../models/transformer-layers.js';

/** One matrix to renormalize, and the axis along which its vectors have the embedding dimension d. */
interface Target {
  variable: tfl.LayerVariable;
  axis: 0 | 1;
}

function weightNamed(layer: tfl.layers.Layer, suffix: string): tfl.LayerVariable {
  const w = layer.weights.find((v) => v.originalName.endsWith(`/${suffix}`));
  if (w === undefined) throw new NormkitError('ngptNormalizeWeights', 'model', `layer '${layer.name}' to have a weight '${suffix}'`, layer.weights.map((v) => v.originalName));
  return w;
}

function targets(model: tfl.LayersModel): Target[] {
  const out: Target[] = [];
  for (const layer of model.layers) {
    if (layer instanceof TokenPositionEmbedding) {
      // Token embedding rows [V, d]; the position table (our addition to nGPT) is left free.
      out.push({ variable: weightNamed(layer, 'token_embeddings'), axis: 1 });
    } else if (layer instanceof CausalSelfAttention) {
      // Input projections [d, out]: each column is a vector over d. Output projection [in, d]: each row.
      for (const name of ['query_kernel', 'key_kernel', 'value_kernel']) out.push({ variable: weightNamed(layer, name), axis: 0 });
      out.push({ variable: weightNamed(layer, 'output_kernel'), axis: 1 });
    } else if (layer.getClassName() === 'Dense') {
      if (layer.name.endsWith('_fc1') || layer.name === 'lm_head') out.push({ variable: weightNamed(layer, 'kernel'), axis: 0 });
      else if (layer.name.endsWith('_fc2')) out.push({ variable: weightNamed(layer, 'kernel'), axis: 1 });
    }
  }
  return out;
}

/**
 * Projects every matrix of a `buildTransformerLM({placement: 'ngpt'})` model back onto the unit sphere along
 * the embedding dimension d (tfjs [in, out] kernel layout):
 *
 * - token embedding [V, d] and output projections W_O, W_2 ([in, d]): each row `W[i, :] /= ||W[i, :]||`;
 * - q, k, v, fc1 and LM-head kernels ([d, out]): each column `W[:, j] /= ||W[:, j]||`.
 *
 * A projection, not a reparameterization: call it once after every optimizer step (or use
 * {@link ngptWeightNormalizer} with model.fit). Leaves no tensors behind.
 */
export function ngptNormalizeWeights(model: tfl.LayersModel): void {
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError('ngptNormalizeWeights', 'model', 'a tf.LayersModel', model);
  const list = targets(model);
  if (list.length === 0) {
    throw new NormkitError('ngptNormalizeWeights', 'model', "a model built by buildTransformerLM({placement: 'ngpt'})", `a model with no nGPT matrices ('${model.name}')`);
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
