/**
 * Normalization-free residual initialization: Fixup (Zhang, Dauphin & Ma, ICLR 2019) and SkipInit (De &
 * Smith, NeurIPS 2020). Scalar layers, residual blocks and a small ResNet builder.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkFloat32, checkInteger, checkKnownKeys, checkOneOf } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { NormkitLayer, singleInput } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;
type Sym = tfl.SymbolicTensor;

/** Arguments of {@link ScalarAffine}. */
export interface ScalarAffineArgs extends LayerArgs {
  /** `'gain'`: y = g x (one learned scalar); `'bias'`: y = x + b. */
  mode: 'gain' | 'bias';
  /** Initial value (default 1 for a gain, 0 for a bias). */
  initValue?: number;
}

/**
 * One learned scalar shared by every element: `y = g * x` (mode 'gain': Fixup's multiplier, init 1;
 * SkipInit's branch gain, init 0) or `y = x + b` (mode 'bias': Fixup's scalar biases, init 0).
 */
export class ScalarAffine extends NormkitLayer {
  static className = 'NormkitScalarAffine';
  static override argKeys: readonly string[] = ['mode', 'initValue'];
  readonly mode: 'gain' | 'bias';
  readonly initValue: number;
  private value: tfl.LayerVariable | null = null;

  constructor(args: ScalarAffineArgs) {
    super(args);
    checkOneOf('ScalarAffine', 'mode', args?.mode, ['gain', 'bias'] as const);
    this.mode = args.mode;
    this.initValue = args.initValue ?? (this.mode === 'gain' ? 1 : 0);
    checkFloat32('ScalarAffine', 'initValue', this.initValue);
  }

  override build(): void {
    this.value = this.addWeight(this.mode, [], 'float32', tfl.initializers.constant({ value: this.initValue }));
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = singleInput(inputs);
    return tf.tidy(() => (this.mode === 'gain' ? tf.mul(x, this.value!.read()) : tf.add(x, this.value!.read())));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), mode: this.mode, initValue: this.initValue };
  }
}

registerLayerClass(ScalarAffine);

/**
 * Fixup's initializer for the non-final layers of a residual branch: He-normal with fan-OUT (the reference's
 * `sqrt(2 / (out * kh * kw))`) times `L^(-1/(2m-2))` for L branches of m layers. An untruncated normal, so
 * the std is exactly the formula's. Serializes as tfjs's RandomNormal.
 */
export function fixupInitializer(kernelShape: number[], branches: number, layersPerBranch = 2, seed?: number): ReturnType<typeof tfl.initializers.randomNormal> {
  checkInteger('fixupInitializer', 'branches', branches);
  checkInteger('fixupInitializer', 'layersPerBranch', layersPerBranch, 2);
  // tfjs kernels: dense [in, out], conv [kh, kw, in, out]; fan-out = out * receptive field.
  const receptive = kernelShape.slice(0, -2).reduce((a, b) => a * b, 1);
  const fanOut = kernelShape[kernelShape.length - 1] * receptive;
  const stddev = Math.sqrt(2 / fanOut) * branches ** (-1 / (2 * layersPerBranch - 2));
  return tfl.initializers.randomNormal({ mean: 0, stddev, seed });
}

/** Options of {@link residualBlock}. */
export interface ResidualBlockOptions {
  /** 'fixup' (scalar biases, multiplier, zero-init last layer, scaled He init) or 'skipinit' (branch gain 0). */
  mode: 'fixup' | 'skipinit';
  /** 'conv' (3x3 convolutions, channels last) or 'dense'. */
  kind: 'conv' | 'dense';
  /** Output channels / units of the block. */
  units: number;
  /** Stride of the first convolution (conv only; default 1). */
  stride?: number;
  /** Number of residual branches in the whole network (Fixup's L). */
  branches: number;
  /** Layer-name prefix. */
  name: string;
  seed?: number;
}

/**
 * A two-layer residual block without normalization (BasicBlock). With input x and shortcut S:
 *
 *   fixup:    h = relu(W1(x + b1a) + b1b);  y = relu(s * W2(h + b2a) + b2b + S(x + b1a)),
 *             W1 He-normal(fan-out) * L^(-1/2), W2 = 0, scalar b's = 0, s = 1
 *   skipinit: h = relu(W1 x);  y = relu(S(x) + g * W2 h),  g = 0, W1 and W2 He-normal
 *
 * S is the identity, or a 1x1 convolution / dense projection (plain He init, as the reference) when the
 * width or the stride changes. Conv layers have no bias (the scalar biases replace it in Fixup).
 */
export function residualBlock(x: Sym, options: ResidualBlockOptions): Sym {
  const where = 'residualBlock';
  checkKnownKeys(where, options, ['mode', 'kind', 'units', 'stride', 'branches', 'name', 'seed']);
  checkOneOf(where, 'mode', options.mode, ['fixup', 'skipinit'] as const);
  checkOneOf(where, 'kind', options.kind, ['conv', 'dense'] as const);
  checkInteger(where, 'units', options.units);
  checkInteger(where, 'branches', options.branches);
  const stride = options.stride ?? 1;
  checkInteger(where, 'stride', stride);
  if (options.kind === 'dense' && stride !== 1) throw new NormkitError(where, 'stride', '1 for dense blocks', stride);
  const { mode, kind, units, name: p } = options;
  let seed = options.seed;
  const next = () => (seed === undefined ? undefined : seed++);
  const inUnits = x.shape[x.shape.length - 1] as number;
  const apply = (layer: tfl.layers.Layer, t: Sym | Sym[]) => layer.apply(t) as Sym;
  const kernelShape = (k: number, cin: number) => (kind === 'conv' ? [k, k, cin, units] : [cin, units]);
  const linear = (n: string, k: number, s: number, init: unknown) =>
    kind === 'conv'
      ? tfl.layers.conv2d({ filters: units, kernelSize: k, strides: s, padding: 'same', useBias: false, kernelInitializer: init as never, name: `${p}_${n}` })
      : tfl.layers.dense({ units, useBias: false, kernelInitializer: init as never, name: `${p}_${n}` });
  const he = () => tfl.initializers.heNormal({ seed: next() });
  const project = inUnits !== units || stride !== 1;

  if (mode === 'fixup') {
    const xb = apply(new ScalarAffine({ mode: 'bias', name: `${p}_bias1a` }), x);
    let h = apply(linear('conv1', 3, stride, fixupInitializer(kernelShape(3, inUnits), options.branches, 2, next())), xb);
    h = apply(new ScalarAffine({ mode: 'bias', name: `${p}_bias1b` }), h);
    h = apply(tfl.layers.reLU({ name: `${p}_relu1` }), h);
    h = apply(new ScalarAffine({ mode: 'bias', name: `${p}_bias2a` }), h);
    h = apply(linear('conv2', 3, 1, 'zeros'), h);
    h = apply(new ScalarAffine({ mode: 'gain', name: `${p}_scale` }), h);
    h = apply(new ScalarAffine({ mode: 'bias', name: `${p}_bias2b` }), h);
    const shortcut = project ? apply(linear('shortcut', 1, stride, he()), xb) : xb;
    return apply(tfl.layers.reLU({ name: `${p}_out` }), apply(tfl.layers.add({ name: `${p}_add` }), [h, shortcut]));
  }
  let h = apply(linear('conv1', 3, stride, he()), x);
  h = apply(tfl.layers.reLU({ name: `${p}_relu1` }), h);
  h = apply(linear('conv2', 3, 1, he()), h);
  h = apply(new ScalarAffine({ mode: 'gain', initValue: 0, name: `${p}_skip_gain` }), h);
  const shortcut = project ? apply(linear('shortcut', 1, stride, he()), x) : x;
  return apply(tfl.layers.reLU({ name: `${p}_out` }), apply(tfl.layers.add({ name: `${p}_add` }), [h, shortcut]));
}

/** Configuration of {@link buildFixupResNet}. */
export interface FixupResNetConfig {
  /** [H, W, C] images, or [features] for a dense (MLP) ResNet. */
  inputShape: number[];
  classes: number;
  /** Per stage: width and number of blocks; stages after the first halve the resolution (conv). */
  stages: Array<{ units: number; blocks: number }>;
  mode: 'fixup' | 'skipinit';
  seed?: number;
}

/**
 * A small ResNet without normalization: stem (3x3 conv or dense) + ReLU, the residual stages, global average
 * pooling (conv), and a dense classifier. Fixup: scalar bias before the classifier and a zero-initialized
 * classifier (weights and bias); the reference trains the scalar biases/gains at lr/10 (see docs).
 */
export function buildFixupResNet(config: FixupResNetConfig): tfl.LayersModel {
  const where = 'buildFixupResNet';
  if (config === null || typeof config !== 'object') throw new NormkitError(where, 'config', 'an object', config);
  checkKnownKeys(where, config, ['inputShape', 'classes', 'stages', 'mode', 'seed']);
  checkOneOf(where, 'mode', config.mode, ['fixup', 'skipinit'] as const);
  checkInteger(where, 'classes', config.classes);
  if (!Array.isArray(config.inputShape) || (config.inputShape.length !== 3 && config.inputShape.length !== 1)) {
    throw new NormkitError(where, 'inputShape', '[H, W, C] or [features]', config.inputShape);
  }
  if (!Array.isArray(config.stages) || config.stages.length === 0) throw new NormkitError(where, 'stages', 'a non-empty list of {units, blocks}', config.stages);
  for (const s of config.stages) {
    checkInteger(where, 'stages.units', s?.units);
    checkInteger(where, 'stages.blocks', s?.blocks);
  }
  const kind = config.inputShape.length === 3 ? 'conv' : 'dense';
  let seed = config.seed;
  const next = () => (seed === undefined ? undefined : (seed += 100));
  const branches = config.stages.reduce((n, s) => n + s.blocks, 0);
  const input = tfl.input({ shape: config.inputShape });
  const stem = kind === 'conv'
    ? tfl.layers.conv2d({ filters: config.stages[0].units, kernelSize: 3, padding: 'same', useBias: config.mode !== 'fixup', kernelInitializer: tfl.initializers.heNormal({ seed: next() }), name: 'stem' })
    : tfl.layers.dense({ units: config.stages[0].units, useBias: config.mode !== 'fixup', kernelInitializer: tfl.initializers.heNormal({ seed: next() }), name: 'stem' });
  let x = stem.apply(input) as Sym;
  if (config.mode === 'fixup') x = new ScalarAffine({ mode: 'bias', name: 'stem_bias' }).apply(x) as Sym;
  x = tfl.layers.reLU({ name: 'stem_relu' }).apply(x) as Sym;
  config.stages.forEach((stage, s) => {
    for (let b = 0; b < stage.blocks; b++) {
      const stride = kind === 'conv' && s > 0 && b === 0 ? 2 : 1;
      x = residualBlock(x, { mode: config.mode, kind, units: stage.units, stride, branches, name: `stage${s}_block${b}`, seed: next() });
    }
  });
  if (kind === 'conv') x = tfl.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as Sym;
  if (config.mode === 'fixup') x = new ScalarAffine({ mode: 'bias', name: 'head_bias' }).apply(x) as Sym;
  const head = tfl.layers.dense({
    units: config.classes,
    kernelInitializer: config.mode === 'fixup' ? 'zeros' : tfl.initializers.glorotUniform({ seed: next() }),
    name: 'classifier',
  });
  return tfl.model({ inputs: input, outputs: head.apply(x) as Sym, name: `${config.mode}_resnet` });
}

registerNorm({
  name: 'fixup',
  kind: 'normalization-free',
  description: 'Fixup: zero-init last layer of each residual branch and classifier, He init scaled by L^(-1/(2m-2)), scalar biases and multipliers (residualBlock / buildFixupResNet).',
  paper: 'Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without Normalization", ICLR 2019 (arXiv 1901.09321)',
  doc: 'docs/fixup-skipinit.md',
});

registerNorm({
  name: 'skipinit',
  kind: 'normalization-free',
  description: 'SkipInit: one learned scalar per residual branch, initialized to 0, so the network starts as its skip path.',
  paper: 'De & Smith, "Batch Normalization Biases Residual Blocks Towards the Identity Function in Deep Networks", NeurIPS 2020',
  doc: 'docs/fixup-skipinit.md',
});
