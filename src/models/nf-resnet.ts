/**
 * Normalizer-Free ResNets (Brock, De & Smith, ICLR 2021; NFNets, Brock et al., ICML 2021): residual blocks
 * `h <- h + alpha * f(h / beta)` with analytically tracked beta, scaled weight-standardized convolutions and
 * variance-preserving activation gains. Train with `withAGC` (adaptive gradient clipping).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean, checkInteger, checkKnownKeys, checkOneOf, checkPositive } from '../core/checks.js';
import { NormkitError } from '../core/errors.js';
import { singleInput } from '../core/norm-layer.js';
import { registerNorm } from '../core/registry.js';
import { registerLayerClass } from '../core/serialization.js';
import { ScalarAffine } from '../methods/fixup-skipinit/index.js';
import { ScaledWeightStandardization } from '../methods/weight-standardization/layer.js';

type Sym = tfl.SymbolicTensor;

/**
 * Variance-preserving gains gamma = 1 / std(act(z)), z ~ N(0, 1), as published in deepmind-research
 * `nfnets/base.py` (estimated there by sampling; the analytic relu value is 1.7129).
 */
export const NF_ACTIVATION_GAINS = { relu: 1.7139588594436646, gelu: 1.7015043497085571, linear: 1 } as const;
export type NFActivation = keyof typeof NF_ACTIVATION_GAINS;

/** Arguments of {@link ScaledActivation}. */
export interface ScaledActivationArgs extends NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]> {
  activation: NFActivation;
  /** Constant factor on the activation's output. */
  gain: number;
}

/** `y = gain * act(x)`: NF-ResNet's gamma-scaled activation, with the 1/beta input scaling folded in. */
export class ScaledActivation extends tfl.layers.Layer {
  static className = 'NormkitScaledActivation';
  readonly activation: NFActivation;
  readonly gain: number;

  constructor(args: ScaledActivationArgs) {
    super(args);
    checkOneOf('ScaledActivation', 'activation', args?.activation, Object.keys(NF_ACTIVATION_GAINS) as NFActivation[]);
    checkPositive('ScaledActivation', 'gain', args.gain);
    this.activation = args.activation;
    this.gain = args.gain;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = singleInput(inputs);
    return tf.tidy(() => {
      const a = this.activation === 'relu' ? tf.relu(x) : this.activation === 'gelu' ? gelu(x) : x;
      return tf.mul(a, this.gain);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), activation: this.activation, gain: this.gain };
  }
}

/** Exact GELU `x * Phi(x)` (tfjs's erf). */
function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.mul(0.5, tf.add(1, tf.erf(tf.div(x, Math.SQRT2)))));
}

registerLayerClass(ScaledActivation);

/**
 * The expected std beta of the residual stream entering each block (NF-ResNet's `expected_std`): starts at
 * 1; after every block `beta^2 <- beta^2 + alpha^2`, except that after the first block of each stage (whose
 * shortcut carries the unit-variance branch input) the running value is first reset to 1. Returns, per stage,
 * the beta of each block's input.
 */
export function nfExpectedStds(blocksPerStage: number[], alpha: number): number[][] {
  checkPositive('nfExpectedStds', 'alpha', alpha);
  let variance = 1;
  return blocksPerStage.map((blocks) => {
    const out: number[] = [];
    for (let b = 0; b < blocks; b++) {
      out.push(Math.sqrt(variance));
      variance = (b === 0 ? 1 : variance) + alpha * alpha;
    }
    return out;
  });
}

/** Options of {@link nfBlock}. */
export interface NFBlockOptions {
  units: number;
  /** Expected std of the block's input (from {@link nfExpectedStds}). */
  beta: number;
  /** Residual branch scale (default 0.2). */
  alpha?: number;
  stride?: number;
  activation?: NFActivation;
  /** Add a SkipInit gain (init 0) on the branch, as NFNets do (default false). */
  skipInit?: boolean;
  name: string;
  seed?: number;
}

function wsConv(name: string, units: number, kernelSize: number, stride: number, seed: number | undefined): ScaledWeightStandardization {
  const conv = tfl.layers.conv2d({ filters: units, kernelSize, strides: stride, padding: 'same', kernelInitializer: tfl.initializers.heNormal({ seed }), name: `${name}_inner` });
  return new ScaledWeightStandardization({ layer: conv, name });
}

/**
 * One NF-ResNet basic block on a channels-last [B, H, W, C] stream h with expected std beta:
 *
 *   a = gamma * act(h) / beta                       (unit variance at init)
 *   f = WSConv3x3(gamma * act(WSConv3x3_stride(a)))
 *   h' = S + alpha * [g *] f,   S = h, or WSConv1x1_stride(a) when the width or resolution changes.
 */
export function nfBlock(h: Sym, options: NFBlockOptions): Sym {
  const where = 'nfBlock';
  checkKnownKeys(where, options, ['units', 'beta', 'alpha', 'stride', 'activation', 'skipInit', 'name', 'seed']);
  checkInteger(where, 'units', options.units);
  checkPositive(where, 'beta', options.beta);
  const alpha = options.alpha ?? 0.2;
  checkPositive(where, 'alpha', alpha);
  const stride = options.stride ?? 1;
  checkInteger(where, 'stride', stride);
  const activation = options.activation ?? 'relu';
  checkOneOf(where, 'activation', activation, Object.keys(NF_ACTIVATION_GAINS) as NFActivation[]);
  const skipInit = options.skipInit ?? false;
  checkBoolean(where, 'skipInit', skipInit);
  if (h.shape.length !== 4) throw new NormkitError(where, 'h', 'a [batch, height, width, channels] tensor', h.shape);
  const gamma = NF_ACTIVATION_GAINS[activation];
  const p = options.name;
  let seed = options.seed;
  const next = () => (seed === undefined ? undefined : seed++);
  const apply = (layer: tfl.layers.Layer, t: Sym | Sym[]) => layer.apply(t) as Sym;
  const a = apply(new ScaledActivation({ activation, gain: gamma / options.beta, name: `${p}_act_in` }), h);
  let f = apply(wsConv(`${p}_conv1`, options.units, 3, stride, next()), a);
  f = apply(new ScaledActivation({ activation, gain: gamma, name: `${p}_act_mid` }), f);
  f = apply(wsConv(`${p}_conv2`, options.units, 3, 1, next()), f);
  if (skipInit) f = apply(new ScalarAffine({ mode: 'gain', initValue: 0, name: `${p}_skip_gain` }), f);
  f = apply(new ScaledActivation({ activation: 'linear', gain: alpha, name: `${p}_alpha` }), f);
  const project = stride !== 1 || h.shape[3] !== options.units;
  const shortcut = project ? apply(wsConv(`${p}_shortcut`, options.units, 1, stride, next()), a) : h;
  return apply(tfl.layers.add({ name: `${p}_add` }), [shortcut, f]);
}

/** Configuration of {@link buildNFResNet}. */
export interface NFResNetConfig {
  /** [H, W, C]. */
  inputShape: number[];
  classes: number;
  /** Per stage: width and blocks; stages after the first halve the resolution. */
  stages: Array<{ units: number; blocks: number }>;
  alpha?: number;
  activation?: NFActivation;
  skipInit?: boolean;
  seed?: number;
}

/**
 * A small NF-ResNet: WS-conv stem, NF basic blocks with analytically tracked beta ({@link nfExpectedStds}),
 * a final gamma-scaled activation, global average pooling and a dense classifier initialized N(0, 0.01).
 * No normalization layer anywhere; use `withAGC(optimizer, {exclude: ['classifier/']})` to train at large
 * batch sizes / learning rates.
 */
export function buildNFResNet(config: NFResNetConfig): tfl.LayersModel {
  const where = 'buildNFResNet';
  if (config === null || typeof config !== 'object') throw new NormkitError(where, 'config', 'an object', config);
  checkKnownKeys(where, config, ['inputShape', 'classes', 'stages', 'alpha', 'activation', 'skipInit', 'seed']);
  if (!Array.isArray(config.inputShape) || config.inputShape.length !== 3) throw new NormkitError(where, 'inputShape', '[H, W, C]', config.inputShape);
  checkInteger(where, 'classes', config.classes);
  if (!Array.isArray(config.stages) || config.stages.length === 0) throw new NormkitError(where, 'stages', 'a non-empty list of {units, blocks}', config.stages);
  for (const s of config.stages) {
    checkInteger(where, 'stages.units', s?.units);
    checkInteger(where, 'stages.blocks', s?.blocks);
  }
  const alpha = config.alpha ?? 0.2;
  const activation = config.activation ?? 'relu';
  let seed = config.seed;
  const next = () => (seed === undefined ? undefined : (seed += 100));
  const betas = nfExpectedStds(config.stages.map((s) => s.blocks), alpha);
  const input = tfl.input({ shape: config.inputShape });
  let h = wsConv('stem', config.stages[0].units, 3, 1, next()).apply(input) as Sym;
  config.stages.forEach((stage, s) => {
    for (let b = 0; b < stage.blocks; b++) {
      h = nfBlock(h, { units: stage.units, beta: betas[s][b], alpha, stride: s > 0 && b === 0 ? 2 : 1, activation, skipInit: config.skipInit ?? false, name: `stage${s}_block${b}`, seed: next() });
    }
  });
  h = new ScaledActivation({ activation, gain: NF_ACTIVATION_GAINS[activation], name: 'final_act' }).apply(h) as Sym;
  h = tfl.layers.globalAveragePooling2d({ name: 'pool' }).apply(h) as Sym;
  const head = tfl.layers.dense({ units: config.classes, kernelInitializer: tfl.initializers.randomNormal({ mean: 0, stddev: 0.01, seed: next() }), name: 'classifier' });
  return tfl.model({ inputs: input, outputs: head.apply(h) as Sym, name: 'nf_resnet' });
}

registerNorm({
  name: 'nf-resnet',
  aliases: ['nfnet', 'normalizer-free'],
  kind: 'normalization-free',
  description: 'Normalizer-free residual blocks h + alpha f(h / beta) with scaled weight standardization and gamma-scaled activations (buildNFResNet).',
  paper: 'Brock, De & Smith, "Characterizing signal propagation to close the performance gap in unnormalized ResNets", ICLR 2021 (arXiv 2101.08692); Brock, De, Smith & Simonyan, ICML 2021 (arXiv 2102.06171)',
  doc: 'docs/nf-resnet.md',
});
