/**
 * A small CNN / ResNet for image classification with the normalization chosen by registry name, the lab's
 * reference network for image experiments.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { checkInteger, checkBoolean } from '../core/checks.js';
import { NormkitError } from '../core/errors.js';
import { createNorm, listNorms } from '../catalog.js';

/** Options of {@link buildCNN}. */
export interface CNNOptions {
  /** `[height, width, channels]` of one input image. */
  inputShape: [number, number, number];
  numClasses: number;
  /**
   * Normalization after every convolution, by registry name or alias (`'batch'`, `'group'`, ...), or `'none'`.
   * Convolutions have a bias only when the norm is `'none'` (a following norm's beta replaces it).
   */
  norm: string;
  /** Extra config for every norm layer, or a function of the layer's channel count returning it. */
  normConfig?: Record<string, unknown> | ((channels: number) => Record<string, unknown>);
  /** Channels per stage (default `[8, 16]`); each stage after the first halves the spatial size. */
  widths?: number[];
  /** Residual blocks (two 3x3 convolutions) per stage when `residual` (default 1). */
  blocksPerStage?: number;
  /** ResNet basic blocks with identity (or 1x1 projection) shortcuts instead of a plain conv stack (default true). */
  residual?: boolean;
  /**
   * Plain stack only: extra 3x3 stride-1 convolutions (each with its norm and ReLU) per stage, after the stage's
   * strided one (default 0): widths [8, 16] with 4 gives a plain 10-conv network.
   */
  extraConvsPerStage?: number;
  /** Seed of every initializer (layer i uses seed + i), so a model is a deterministic function of its options. */
  seed?: number;
  /**
   * A weight reparametrization wrapping every convolution, by registry name (e.g. `'weight-standardization'`,
   * `'scaled-weight-standardization'`), created as `createNorm(name, {layer: conv})`; default none.
   */
  convWrapper?: string;
}

/** The model and its parts, so experiments can pick the variables they train or measure. */
export interface CNN {
  model: tfl.LayersModel;
  /** The normalization layers, in order (empty for `'none'`). */
  normLayers: tfl.layers.Layer[];
  /** Every convolution, in order. */
  convLayers: tfl.layers.Layer[];
  /** The classifier head. */
  head: tfl.layers.Layer;
}

/** Registry names whose layers take a `groups` argument (their defaults, 32, exceed a small CNN's widths). */
const GROUPED_NORMS = new Set(['group', 'gn', 'groupnorm', 'bcn', 'batch-channel', 'evonorm-s0', 'evonorms0']);

/** Registry names of BatchNorm and the norms built on it that take a Keras-style (old-value) momentum. */
const KERAS_MOMENTUM_NORMS = new Set(['batch', 'bn', 'batchnorm', 'alpha-bn']);

/**
 * Default per-norm config for a channels-last feature map with `channels` channels: LayerNorm normalizes over
 * (H, W, C) as in the GN paper's comparison; grouped norms (GN, BCN, EvoNorm-S0) use min(4, C) groups; BatchNorm
 * uses momentum 0.9 (PyTorch's 0.1) because small models train for few steps: with Keras's 0.99 the moving
 * averages would still weigh their initial values by 0.99^150 = 22% after 150 steps. Every other norm keeps its
 * defaults.
 */
export function defaultCNNNormConfig(norm: string, channels: number): Record<string, unknown> {
  if (norm === 'layer' || norm === 'ln' || norm === 'layernorm') return { axis: [1, 2, 3] };
  if (KERAS_MOMENTUM_NORMS.has(norm)) return { momentum: 0.9 };
  if (GROUPED_NORMS.has(norm)) return { groups: Math.min(4, channels) };
  return {};
}

/**
 * Builds `conv3x3(w0) -> norm -> relu -> stages -> global average pool -> dense(numClasses)` where a residual
 * stage is `blocksPerStage` basic blocks `relu(x + norm(conv(relu(norm(conv(x))))))` (the first block of a later
 * stage strides by 2 and projects the shortcut with a 1x1 conv + norm), and a plain stage is
 * `conv3x3(stride 2) -> norm -> relu`. He-normal initializers, seeded.
 */
export function buildCNN(options: CNNOptions): CNN {
  const where = 'buildCNN';
  const { inputShape, numClasses, norm } = options;
  if (!Array.isArray(inputShape) || inputShape.length !== 3 || inputShape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new NormkitError(where, 'inputShape', '[height, width, channels] of positive integers', inputShape);
  }
  checkInteger(where, 'numClasses', numClasses, 2);
  const widths = options.widths ?? [8, 16];
  if (!Array.isArray(widths) || widths.length === 0 || widths.some((w) => !Number.isInteger(w) || w < 1)) {
    throw new NormkitError(where, 'widths', 'a non-empty array of positive integers', widths);
  }
  const blocks = options.blocksPerStage ?? 1;
  checkInteger(where, 'blocksPerStage', blocks, 1);
  const residual = options.residual ?? true;
  checkBoolean(where, 'residual', residual);
  const extra = options.extraConvsPerStage ?? 0;
  checkInteger(where, 'extraConvsPerStage', extra, 0);
  if (residual && extra > 0) throw new NormkitError(where, 'extraConvsPerStage', '0 unless residual is false', extra);
  const seed = options.seed ?? 0;
  checkInteger(where, 'seed', seed, 0);
  if (typeof norm !== 'string') throw new NormkitError(where, 'norm', "a registry name or 'none'", norm);
  if (norm !== 'none') {
    const known = listNorms().filter((n) => n.hasLayer);
    if (!known.some((n) => n.name === norm || (n.aliases ?? []).includes(norm))) {
      throw new NormkitError(where, 'norm', `'none' or one of ${known.map((n) => `'${n.name}'`).join(', ')}`, norm);
    }
  }

  let layerIndex = 0;
  const normLayers: tfl.layers.Layer[] = [];
  const convLayers: tfl.layers.Layer[] = [];
  const useBias = norm === 'none';
  const conv = (filters: number, kernelSize: number, strides: number): tfl.layers.Layer => {
    // On wasm, tfjs 4.22 lacks the kernel gradient (Conv2DBackpropFilter): normkit registers it (src/kernels/wasm-gaps).
    const layer = tfl.layers.conv2d({
      filters, kernelSize, strides, padding: 'same', useBias, kernelInitializer: tfl.initializers.heNormal({ seed: seed + layerIndex++ }),
    });
    convLayers.push(layer);
    return options.convWrapper === undefined ? layer : createNorm(options.convWrapper, { layer });
  };
  const normalize = (x: tfl.SymbolicTensor, channels: number): tfl.SymbolicTensor => {
    if (norm === 'none') return x;
    const extra = typeof options.normConfig === 'function' ? options.normConfig(channels) : options.normConfig ?? {};
    const layer = createNorm(norm, { ...defaultCNNNormConfig(norm, channels), ...extra });
    normLayers.push(layer);
    return layer.apply(x) as tfl.SymbolicTensor;
  };
  const relu = (x: tfl.SymbolicTensor) => tfl.layers.reLU().apply(x) as tfl.SymbolicTensor;

  const input = tfl.input({ shape: inputShape });
  let x = relu(normalize(conv(widths[0], 3, 1).apply(input) as tfl.SymbolicTensor, widths[0]));
  let channels = widths[0];
  widths.forEach((width, stage) => {
    if (!residual) {
      if (stage > 0) x = relu(normalize(conv(width, 3, 2).apply(x) as tfl.SymbolicTensor, width));
      for (let k = 0; k < extra; k++) x = relu(normalize(conv(width, 3, 1).apply(x) as tfl.SymbolicTensor, width));
      channels = width;
      return;
    }
    for (let b = 0; b < blocks; b++) {
      const strides = stage > 0 && b === 0 ? 2 : 1;
      let h = relu(normalize(conv(width, 3, strides).apply(x) as tfl.SymbolicTensor, width));
      h = normalize(conv(width, 3, 1).apply(h) as tfl.SymbolicTensor, width);
      const shortcut = strides !== 1 || channels !== width ? normalize(conv(width, 1, strides).apply(x) as tfl.SymbolicTensor, width) : x;
      x = relu(tfl.layers.add().apply([h, shortcut]) as tfl.SymbolicTensor);
      channels = width;
    }
  });
  const pooled = tfl.layers.globalAveragePooling2d({}).apply(x) as tfl.SymbolicTensor;
  const head = tfl.layers.dense({ units: numClasses, kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + layerIndex++ }) });
  const logits = head.apply(pooled) as tfl.SymbolicTensor;
  return { model: tfl.model({ inputs: input, outputs: logits }), normLayers, convLayers, head };
}
