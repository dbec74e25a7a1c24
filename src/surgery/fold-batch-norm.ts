/**
 * Folding inference BatchNorm into the preceding linear layer: a BN in inference mode is the per-channel
 * affine map y = s * (z - mean) + beta with s = gamma / sqrt(var + eps), so after a layer z = x W + b it can
 * be absorbed into that layer: W' = W * s (per output channel), b' = (b - mean) * s + beta.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { NormkitError } from '../core/errors.js';

type JSONObject = Record<string, unknown>;
type NodeRef = [string, number, number, JSONObject?];

/** Layers a following BatchNorm can be folded into, and where their kernel keeps the output channel. */
const FOLDABLE: Record<string, { kernelScaleShape: (kernel: number[]) => number[] }> = {
  // Dense kernel [in, out]; Conv1D/2D/3D kernel [...k, in, out]: output channel on the last axis.
  Dense: { kernelScaleShape: (k) => k.map((d, i) => (i === k.length - 1 ? d : 1)) },
  Conv1D: { kernelScaleShape: (k) => k.map((d, i) => (i === k.length - 1 ? d : 1)) },
  Conv2D: { kernelScaleShape: (k) => k.map((d, i) => (i === k.length - 1 ? d : 1)) },
  Conv3D: { kernelScaleShape: (k) => k.map((d, i) => (i === k.length - 1 ? d : 1)) },
  // Depthwise kernel [kh, kw, in, multiplier]: output channel c*multiplier + m, i.e. the last two axes.
  DepthwiseConv2D: { kernelScaleShape: (k) => [1, 1, k[2], k[3]] },
  // Transposed-conv kernel [kh, kw, out, in]: output channel on axis 2.
  Conv2DTranspose: { kernelScaleShape: (k) => [1, 1, k[2], 1] },
};

/** A BatchNormalization layer's inference parameters, read from normkit's class or tfjs-layers' own. */
export interface BatchNormParameters {
  /** Channel axis as configured (may be negative). */
  axis: number;
  epsilon: number;
  /** Per-channel tensors (the layer's own variables' values: do not dispose). */
  movingMean: tf.Tensor;
  movingVariance: tf.Tensor;
  gamma?: tf.Tensor;
  beta?: tf.Tensor;
}

/** True for any layer serialized as `BatchNormalization` (normkit's or tfjs-layers'). */
export function isBatchNormLayer(layer: tfl.layers.Layer): boolean {
  return layer.getClassName() === 'BatchNormalization';
}

/** Reads a BatchNormalization layer's configuration and weights by their Keras names. */
export function batchNormParameters(layer: tfl.layers.Layer): BatchNormParameters {
  const config = layer.getConfig() as JSONObject;
  const rawAxis = config.axis as number | number[];
  const axis = Array.isArray(rawAxis) ? rawAxis[0] : rawAxis;
  const byName = new Map(layer.weights.map((w) => [w.originalName.split('/').pop() as string, w.read()]));
  const movingMean = byName.get('moving_mean');
  const movingVariance = byName.get('moving_variance');
  if (movingMean === undefined || movingVariance === undefined) {
    throw new NormkitError('batchNormParameters', 'layer', 'a built BatchNormalization layer with moving_mean and moving_variance', layer.name);
  }
  return { axis, epsilon: config.epsilon as number, movingMean, movingVariance, gamma: byName.get('gamma'), beta: byName.get('beta') };
}

/** One BatchNorm that {@link foldBatchNorm} folds, and the layer it folds into. */
export interface FoldablePair {
  batchNorm: string;
  into: string;
}

function channelAxisOf(config: JSONObject, className: string, rank: number): number {
  if (className === 'Dense') return rank - 1;
  const format = (config.data_format ?? config.dataFormat ?? 'channels_last') as string;
  return format === 'channels_first' || format === 'channelsFirst' ? 1 : rank - 1;
}

function layerRank(layer: tfl.layers.Layer): number | undefined {
  try {
    const input = layer.input as tfl.SymbolicTensor | tfl.SymbolicTensor[];
    return (Array.isArray(input) ? undefined : input.shape.length);
  } catch {
    return undefined; // a layer called several times has no single input
  }
}

/**
 * Which BatchNorm layers of `model` can be folded: those that directly follow a Dense / Conv1D / Conv2D /
 * Conv3D / DepthwiseConv2D / Conv2DTranspose layer with a linear activation whose output feeds nothing
 * else, on that layer's channel axis, each of the two layers being called once.
 */
export function findFoldableBatchNorms(model: tfl.LayersModel): FoldablePair[] {
  const topology = model.toJSON(undefined, false) as unknown as { class_name: string; config: JSONObject };
  const layers = model.layers;
  const byName = new Map(layers.map((l) => [l.name, l]));
  const pairs: FoldablePair[] = [];
  const consider = (bnName: string, producerName: string, producerUses: number) => {
    const bn = byName.get(bnName);
    const producer = byName.get(producerName);
    if (!bn || !producer || !isBatchNormLayer(bn) || producerUses !== 1) return;
    const className = producer.getClassName();
    if (!(className in FOLDABLE)) return;
    const config = producer.getConfig() as JSONObject;
    if ((config.activation ?? 'linear') !== 'linear') return;
    if (producer.inboundNodes.length !== 1 || bn.inboundNodes.length !== 1) return;
    const rank = layerRank(bn);
    if (rank === undefined) return;
    const { axis } = batchNormParameters(bn);
    const bnAxis = axis < 0 ? axis + rank : axis;
    const pyConfig = (topologyLayer(topology, producerName)?.config ?? {}) as JSONObject;
    if (bnAxis !== channelAxisOf(pyConfig, className, rank)) return;
    pairs.push({ batchNorm: bnName, into: producerName });
  };
  if (topology.class_name === 'Sequential') {
    for (let i = 1; i < layers.length; i++) consider(layers[i].name, layers[i - 1].name, 1);
  } else {
    const uses = countUses(topology.config);
    for (const entry of topology.config.layers as JSONObject[]) {
      const nodes = entry.inbound_nodes as NodeRef[][];
      if (nodes.length !== 1 || nodes[0].length !== 1) continue;
      const [producer, nodeIndex, tensorIndex] = nodes[0][0];
      if (nodeIndex !== 0 || tensorIndex !== 0) continue;
      consider(entry.name as string, producer, uses.get(producer) ?? 0);
    }
  }
  return pairs;
}

function topologyLayer(topology: { class_name: string; config: JSONObject }, name: string): JSONObject | undefined {
  return (topology.config.layers as JSONObject[]).find((l) => ((l.config as JSONObject).name ?? l.name) === name);
}

/** How many times each layer's output is consumed (by other layers or as a model output). */
function countUses(config: JSONObject): Map<string, number> {
  const uses = new Map<string, number>();
  const bump = (name: string) => uses.set(name, (uses.get(name) ?? 0) + 1);
  for (const entry of config.layers as JSONObject[]) {
    for (const node of entry.inbound_nodes as NodeRef[][]) for (const ref of node) bump(ref[0]);
  }
  for (const ref of config.output_layers as NodeRef[]) bump(ref[0]);
  return uses;
}

/**
 * Returns a NEW model computing the same inference function as `model` in which every foldable BatchNorm
 * (see {@link findFoldableBatchNorms}) is removed and absorbed into the layer before it:
 *
 *   s = gamma / sqrt(moving_variance + eps),  W' = W * s (per output channel),  b' = (b - moving_mean) * s + beta
 *
 * (a layer without bias gets one). Other BatchNorms and all other layers are kept with copies of their
 * weights; `model` is not modified. The result is for inference: the folded BNs no longer learn statistics.
 * Works on Sequential and functional models (top-level layers; nested models are left as they are).
 */
export async function foldBatchNorm(model: tfl.LayersModel): Promise<tfl.LayersModel> {
  if (!(model instanceof tfl.LayersModel)) throw new NormkitError('foldBatchNorm', 'model', 'a tf.LayersModel', model);
  const pairs = findFoldableBatchNorms(model);
  const foldedBN = new Map(pairs.map((p) => [p.batchNorm, p.into]));
  const intoBN = new Map(pairs.map((p) => [p.into, p.batchNorm]));
  const topology = JSON.parse(JSON.stringify(model.toJSON(undefined, false))) as { class_name: string; config: JSONObject };
  const config = topology.config;
  config.layers = (config.layers as JSONObject[]).filter((entry) => !foldedBN.has(((entry.config as JSONObject).name ?? entry.name) as string));
  for (const entry of config.layers as JSONObject[]) {
    const name = ((entry.config as JSONObject).name ?? entry.name) as string;
    if (intoBN.has(name)) (entry.config as JSONObject).use_bias = true;
    if (topology.class_name !== 'Sequential') {
      for (const node of entry.inbound_nodes as NodeRef[][]) for (const ref of node) ref[0] = foldedBN.get(ref[0]) ?? ref[0];
    }
  }
  if (topology.class_name !== 'Sequential') {
    for (const ref of config.output_layers as NodeRef[]) ref[0] = foldedBN.get(ref[0]) ?? ref[0];
  }
  const folded = await tfl.models.modelFromJSON({ modelTopology: topology as unknown as tf.io.ModelJSON['modelTopology'] } as tfl.ModelAndWeightsConfig);
  const old = new Map(model.layers.map((l) => [l.name, l]));
  for (const layer of folded.layers) {
    const source = old.get(layer.name);
    if (source === undefined || layer.weights.length === 0) continue;
    const bnName = intoBN.get(layer.name);
    if (bnName === undefined) {
      layer.setWeights(source.getWeights());
      continue;
    }
    const weights = tf.tidy(() => foldedWeights(source, old.get(bnName) as tfl.layers.Layer));
    layer.setWeights(weights);
    tf.dispose(weights);
  }
  return folded;
}

/** [kernel', bias'] of `producer` with `bn` folded in. Call inside tf.tidy. */
function foldedWeights(producer: tfl.layers.Layer, bn: tfl.layers.Layer): tf.Tensor[] {
  const p = batchNormParameters(bn);
  const [kernel, bias] = producer.getWeights();
  const channels = p.movingMean.shape[0];
  let scale = tf.rsqrt(tf.add(p.movingVariance, p.epsilon));
  if (p.gamma) scale = tf.mul(scale, p.gamma);
  const kernelScaleShape = FOLDABLE[producer.getClassName()].kernelScaleShape(kernel.shape);
  const newKernel = tf.mul(kernel, tf.reshape(scale, kernelScaleShape));
  let newBias = tf.mul(tf.sub(bias ?? tf.zeros([channels]), p.movingMean), scale);
  if (p.beta) newBias = tf.add(newBias, p.beta);
  return [newKernel, newBias];
}
