/**
 * The exact Pre-LN -> Pre-RMSNorm conversion of Jiang et al., "Pre-RMSNorm and Pre-CRMSNorm Transformers:
 * Equivalent and Efficient Pre-LN Transformers" (NeurIPS 2023).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { NormkitError } from '../core/errors.js';
import { registerNorm } from '../core/registry.js';
import { LayerNormalization } from '../methods/layer-norm/layer.js';
import { RMSNormalization } from '../methods/rms-norm/layer.js';
import { CausalSelfAttention, ResidualAdd, TokenPositionEmbedding } from '../models/transformer-layers.js';

const WHERE = 'preLNToPreRMS';
type Layer = tfl.layers.Layer;

function inbound(layer: Layer): Layer[] {
  if (layer.inboundNodes.length !== 1) {
    throw new NormkitError(WHERE, 'model', 'a model whose layers are each called once', `layer '${layer.name}' called ${layer.inboundNodes.length} times`);
  }
  return layer.inboundNodes[0].inboundLayers;
}

function outbound(layer: Layer): Layer[] {
  return layer.outboundNodes.map((n) => n.outboundLayer);
}

function skipDropout(layer: Layer): Layer {
  let l = layer;
  while (l.getClassName() === 'Dropout') l = inbound(l)[0];
  return l;
}

const isLinear = (l: Layer) => l instanceof CausalSelfAttention || l.getClassName() === 'Dense';

function notPreLN(why: string): NormkitError {
  return new NormkitError(WHERE, 'model', 'a Pre-LN Transformer (buildTransformerLM placement "pre", norm "layer")', why);
}

/** The residual-stream structure: which layers read it through LN, and which layers write it. */
function analyse(model: tfl.LayersModel): { norms: LayerNormalization[]; writers: Layer[]; embeddings: TokenPositionEmbedding[] } {
  const norms = model.layers.filter((l) => l instanceof LayerNormalization) as LayerNormalization[];
  const adds = model.layers.filter((l) => l instanceof ResidualAdd) as ResidualAdd[];
  if (norms.length === 0) throw notPreLN('a model without LayerNormalization layers');
  const isStream = (l: Layer) => l instanceof ResidualAdd || l instanceof TokenPositionEmbedding;
  const writers: Layer[] = [];
  const embeddings = new Set<TokenPositionEmbedding>();
  for (const add of adds) {
    if (add.residualScale !== 1 || add.learnedScale) throw notPreLN(`residual '${add.name}' scales its residual`);
    const [residual, branch] = inbound(add);
    if (!isStream(residual)) throw notPreLN(`residual '${add.name}' reads '${residual.name}' as its residual`);
    const writer = skipDropout(branch);
    if (!isLinear(writer)) throw notPreLN(`'${writer.name}' (${writer.getClassName()}) writes the residual stream`);
    writers.push(writer);
    if (residual instanceof TokenPositionEmbedding) embeddings.add(residual);
  }
  for (const ln of norms) {
    const axis = Array.isArray(ln.axis) ? ln.axis : [ln.axis];
    if (axis.length !== 1 || !(axis[0] === -1 || axis[0] === 2)) throw notPreLN(`'${ln.name}' normalizes over axis ${JSON.stringify(ln.axis)}, not the features`);
    const source = inbound(ln)[0];
    if (!isStream(source)) throw notPreLN(`'${ln.name}' normalizes the output of '${source.name}', not the residual stream`);
    if (source instanceof TokenPositionEmbedding) embeddings.add(source);
    for (const reader of outbound(ln)) if (!isLinear(reader)) throw notPreLN(`'${ln.name}' feeds '${reader.name}' (${reader.getClassName()})`);
  }
  // Everything that reads the stream must read it through an LN (or carry it on as the residual).
  for (const source of [...adds, ...embeddings]) {
    for (const reader of outbound(source)) {
      const ok = reader instanceof LayerNormalization || (reader instanceof ResidualAdd && inbound(reader)[0] === source);
      if (!ok) throw notPreLN(`'${reader.name}' reads the residual stream without a LayerNormalization`);
    }
  }
  return { norms, writers, embeddings: [...embeddings] };
}

function weight(layer: Layer, suffix: string): tfl.LayerVariable | undefined {
  return layer.weights.find((w) => w.originalName.endsWith(`/${suffix}`));
}

/**
 * Converts a Pre-LN Transformer into the equivalent Pre-RMSNorm Transformer (Jiang et al., 2023, step 1).
 * In a Pre-LN model the residual stream is read only through LayerNorms, which discard its mean, so:
 *
 * 1. each LN's affine is folded into the linear layers it feeds: `W' = diag(gamma) W`, `b' = b + beta W`
 *    (tfjs [in, out] kernels);
 * 2. every writer of the residual stream is made zero-mean over the features: embedding rows
 *    `E - mean_d(E)`, and the output projections of attention and MLP `W - mean_out(W)`, `b - mean(b)`;
 * 3. every LN becomes `x / sqrt(mean(x^2) + eps)` (an {@link RMSNormalization} without gain, same eps).
 *
 * With every LN input zero-mean, LN(x) = RMSNorm(x) and the outputs are equal up to float32 rounding.
 * Works on `buildTransformerLM({placement: 'pre', norm: 'layer'})` models (and any functional model of the
 * same parts); throws a NormkitError naming the offending layer otherwise. Returns a new, uncompiled model;
 * the input model is not changed.
 */
export async function preLNToPreRMS(model: tfl.LayersModel): Promise<tfl.LayersModel> {
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError(WHERE, 'model', 'a tf.LayersModel', model);
  const { norms, writers, embeddings } = analyse(model);
  const newValues = new Map<string, tf.Tensor>();
  const current = (v: tfl.LayerVariable) => newValues.get(v.originalName) ?? v.read();

  tf.tidy(() => {
    for (const ln of norms) {
      const gamma = weight(ln, 'gamma')?.read();
      const beta = weight(ln, 'beta')?.read();
      for (const reader of outbound(ln)) {
        const pairs = reader instanceof CausalSelfAttention
          ? (['query', 'key', 'value'] as const).map((k) => [weight(reader, `${k}_kernel`)!, weight(reader, `${k}_bias`)] as const)
          : [[weight(reader, 'kernel')!, weight(reader, 'bias')] as const];
        for (const [kernel, bias] of pairs) {
          const w = current(kernel);
          if (beta !== undefined) {
            if (bias === undefined) throw new NormkitError(WHERE, 'model', `layer '${reader.name}' to have a bias to absorb the beta of '${ln.name}'`, 'a layer without bias');
            newValues.set(bias.originalName, tf.keep(tf.add(current(bias), tf.squeeze(tf.matMul(tf.reshape(beta, [1, -1]), w), [0]))));
          }
          if (gamma !== undefined) newValues.set(kernel.originalName, tf.keep(tf.mul(w, tf.reshape(gamma, [-1, 1]))));
        }
      }
    }
    const centre = (v: tfl.LayerVariable | undefined) => {
      if (v === undefined) return;
      const t = current(v);
      newValues.set(v.originalName, tf.keep(tf.sub(t, tf.mean(t, -1, true))));
    };
    for (const writer of writers) {
      if (writer instanceof CausalSelfAttention) {
        centre(weight(writer, 'output_kernel'));
        centre(weight(writer, 'output_bias'));
      } else {
        centre(weight(writer, 'kernel'));
        centre(weight(writer, 'bias'));
      }
    }
    for (const e of embeddings) {
      centre(weight(e, 'token_embeddings'));
      centre(weight(e, 'position_embeddings'));
    }
  });

  try {
    // Through a JSON string, as model.save does, so undefined config values are dropped.
    const topology = JSON.parse(model.toJSON(null, true) as string) as { config: { layers: Array<{ class_name: string; config: Record<string, unknown> }> } };
    const lnNames = new Set(norms.map((n) => n.name));
    for (const entry of topology.config.layers) {
      if (!lnNames.has(entry.config.name as string)) continue;
      const ln = norms.find((n) => n.name === entry.config.name)!;
      entry.class_name = RMSNormalization.className;
      entry.config = { name: ln.name, trainable: ln.trainable, axis: -1, epsilon: ln.epsilon, center: false, scale: false };
    }
    const converted = await tfl.models.modelFromJSON({ modelTopology: topology as unknown as tf.io.ModelJSON['modelTopology'] });
    tf.tidy(() => {
      for (const w of converted.weights) {
        const source = newValues.get(w.originalName) ?? model.weights.find((v) => v.originalName === w.originalName)?.read();
        if (source === undefined) throw new NormkitError(WHERE, 'model', `a weight named '${w.originalName}'`, 'none');
        w.write(source);
      }
    });
    return converted;
  } finally {
    tf.dispose([...newValues.values()]);
  }
}

registerNorm({
  name: 'pre-ln-to-pre-rms',
  kind: 'tool',
  description: 'Exact conversion of a Pre-LN Transformer into the equivalent Pre-RMSNorm Transformer (preLNToPreRMS).',
  paper: 'Jiang et al., "Pre-RMSNorm and Pre-CRMSNorm Transformers: Equivalent and Efficient Pre-LN Transformers", NeurIPS 2023 (arXiv 2305.14858)',
  doc: 'docs/ln-removal.md',
});
