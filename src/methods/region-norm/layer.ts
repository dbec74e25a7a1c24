/**
 * RegionNormalizationB (inputs [x, mask]) and RegionNormalizationL: layers over {@link regionNorm} and
 * {@link regionNormLearned}.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkInRange, checkInteger, checkOneOf, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { firstInputShape, NormkitLayer } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass, resolveInitializer, resolveRegularizer, serializeObject } from '../../core/serialization.js';
import { REGION_STATISTICS, regionNorm, regionNormLearned, type RegionStatistics } from './op.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;
type LayerVariable = tfl.LayerVariable;
type Initializer = ReturnType<typeof resolveInitializer>;
type Regularizer = ReturnType<typeof resolveRegularizer>;

/** Arguments shared by both region normalization layers. */
interface RegionArgs extends LayerArgs {
  /** BatchNorm epsilon of the reference code (default 1e-5). */
  epsilon?: number;
  /** `'batch'` (default, as the paper's code) or `'instance'` (per-sample region statistics). */
  statistics?: RegionStatistics;
}

/** Arguments of {@link RegionNormalizationB}. */
export interface RegionNormalizationBArgs extends RegionArgs {
  /** Initializer of the two scale offsets (default zeros: initial scale 1). */
  gammaInitializer?: unknown;
  /** Initializer of the two shifts (default zeros). */
  betaInitializer?: unknown;
  gammaRegularizer?: unknown;
  betaRegularizer?: unknown;
}

const config = (obj: tf.serialization.Serializable | null) => serializeObject(obj) as unknown as tf.serialization.ConfigDictValue;

function checkRegionArgs(where: string, args: RegionArgs): { epsilon: number; statistics: RegionStatistics } {
  const epsilon = args.epsilon ?? 1e-5;
  const statistics = args.statistics ?? 'batch';
  checkPositive(where, 'epsilon', epsilon);
  checkOneOf(where, 'statistics', statistics, REGION_STATISTICS);
  return { epsilon, statistics };
}

/**
 * RN-B, channels last: called on `[x, mask]` with x `[N, ...spatial, C]` and a binary mask `[N, ...spatial, 1]`
 * (rank 4: any spatial size, resized nearest). Normalizes the region M = 1 and its complement separately and
 * scales them by `1 + foregroundGamma` and `1 + backgroundGamma`; both shifts are added everywhere (as the
 * reference code does). No running statistics: the same computation in training and inference.
 */
export class RegionNormalizationB extends NormkitLayer {
  static className = 'RegionNormalizationB';
  static override argKeys: readonly string[] = ['epsilon', 'statistics', 'gammaInitializer', 'betaInitializer', 'gammaRegularizer', 'betaRegularizer'];
  readonly epsilon: number;
  readonly statistics: RegionStatistics;
  private readonly gammaInitializer: Initializer;
  private readonly betaInitializer: Initializer;
  private readonly gammaRegularizer: Regularizer;
  private readonly betaRegularizer: Regularizer;
  private params: Record<'foregroundGamma' | 'foregroundBeta' | 'backgroundGamma' | 'backgroundBeta', LayerVariable> | null = null;

  constructor(args: RegionNormalizationBArgs = {}) {
    super(args);
    ({ epsilon: this.epsilon, statistics: this.statistics } = checkRegionArgs('RegionNormalizationB', args));
    this.gammaInitializer = resolveInitializer('RegionNormalizationB', 'gammaInitializer', args.gammaInitializer, 'zeros');
    this.betaInitializer = resolveInitializer('RegionNormalizationB', 'betaInitializer', args.betaInitializer, 'zeros');
    this.gammaRegularizer = resolveRegularizer('RegionNormalizationB', 'gammaRegularizer', args.gammaRegularizer);
    this.betaRegularizer = resolveRegularizer('RegionNormalizationB', 'betaRegularizer', args.betaRegularizer);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    if (!Array.isArray(inputShape[0]) || inputShape.length !== 2) {
      throw new NormkitError('RegionNormalizationB', 'inputs', 'two inputs [x, mask]', inputShape);
    }
    const shape = inputShape[0] as tfl.Shape;
    const channels = shape[shape.length - 1];
    if (shape.length < 3 || channels == null) {
      throw new NormkitError('RegionNormalizationB', 'inputShape', 'x of rank >= 3 [N, ...spatial, C] with a known C', shape);
    }
    const add = (name: string, init: Initializer, reg: Regularizer) => this.addWeight(name, [channels], 'float32', init, reg ?? undefined, true);
    this.params = {
      foregroundGamma: add('foregroundGamma', this.gammaInitializer, this.gammaRegularizer),
      foregroundBeta: add('foregroundBeta', this.betaInitializer, this.betaRegularizer),
      backgroundGamma: add('backgroundGamma', this.gammaInitializer, this.gammaRegularizer),
      backgroundBeta: add('backgroundBeta', this.betaInitializer, this.betaRegularizer),
    };
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return firstInputShape(inputShape);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    if (!Array.isArray(inputs) || inputs.length !== 2) {
      throw new NormkitError('RegionNormalizationB', 'inputs', 'a list [x, mask]', inputs);
    }
    const p = this.params;
    if (p === null) throw new Error('RegionNormalizationB: call() before build()');
    return tf.tidy(() =>
      regionNorm(inputs[0], inputs[1], {
        epsilon: this.epsilon,
        statistics: this.statistics,
        foregroundGamma: p.foregroundGamma.read(),
        foregroundBeta: p.foregroundBeta.read(),
        backgroundGamma: p.backgroundGamma.read(),
        backgroundBeta: p.backgroundBeta.read(),
      }),
    );
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      epsilon: this.epsilon,
      statistics: this.statistics,
      gammaInitializer: config(this.gammaInitializer),
      betaInitializer: config(this.betaInitializer),
      gammaRegularizer: config(this.gammaRegularizer),
      betaRegularizer: config(this.betaRegularizer),
    };
  }
}

/** Arguments of {@link RegionNormalizationL}. */
export interface RegionNormalizationLArgs extends RegionArgs {
  /** Odd kernel size of the three convolutions (default 7, as the paper). */
  kernelSize?: number;
  /** Region threshold on the attention map (default 0.8). */
  threshold?: number;
  /** Initializer of the three kernels (default glorotUniform, Keras's Conv2D default). */
  kernelInitializer?: unknown;
  /** Initializer of the gamma and beta biases (default zeros). */
  biasInitializer?: unknown;
  kernelRegularizer?: unknown;
  biasRegularizer?: unknown;
}

/**
 * RN-L on channels-last `[N, H, W, C]`: learns its region from the features (a 2 -> 1 attention convolution
 * over the channel mean and max, thresholded) and a spatially varying affine from the attention map. Weights:
 * `attentionKernel` [k, k, 2, 1], `gammaKernel`, `betaKernel` [k, k, 1, 1], `gammaBias`, `betaBias` [1].
 */
export class RegionNormalizationL extends NormkitLayer {
  static className = 'RegionNormalizationL';
  static override argKeys: readonly string[] = ['epsilon', 'statistics', 'kernelSize', 'threshold', 'kernelInitializer', 'biasInitializer', 'kernelRegularizer', 'biasRegularizer'];
  readonly epsilon: number;
  readonly statistics: RegionStatistics;
  readonly kernelSize: number;
  readonly threshold: number;
  private readonly kernelInitializer: Initializer;
  private readonly biasInitializer: Initializer;
  private readonly kernelRegularizer: Regularizer;
  private readonly biasRegularizer: Regularizer;
  private params: Record<'attentionKernel' | 'gammaKernel' | 'gammaBias' | 'betaKernel' | 'betaBias', LayerVariable> | null = null;

  constructor(args: RegionNormalizationLArgs = {}) {
    super(args);
    const where = 'RegionNormalizationL';
    ({ epsilon: this.epsilon, statistics: this.statistics } = checkRegionArgs(where, args));
    this.kernelSize = args.kernelSize ?? 7;
    checkInteger(where, 'kernelSize', this.kernelSize, 1);
    if (this.kernelSize % 2 === 0) throw new NormkitError(where, 'kernelSize', 'an odd integer (3 or 7 in the paper)', this.kernelSize);
    this.threshold = args.threshold ?? 0.8;
    checkInRange(where, 'threshold', this.threshold, 0, 1);
    this.kernelInitializer = resolveInitializer(where, 'kernelInitializer', args.kernelInitializer, 'glorotUniform');
    this.biasInitializer = resolveInitializer(where, 'biasInitializer', args.biasInitializer, 'zeros');
    this.kernelRegularizer = resolveRegularizer(where, 'kernelRegularizer', args.kernelRegularizer);
    this.biasRegularizer = resolveRegularizer(where, 'biasRegularizer', args.biasRegularizer);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = firstInputShape(inputShape);
    if (shape.length !== 4 || shape[3] == null) {
      throw new NormkitError('RegionNormalizationL', 'inputShape', 'rank 4 [N, H, W, C] with a known C', shape);
    }
    const k = this.kernelSize;
    const kernel = (name: string, inC: number) => this.addWeight(name, [k, k, inC, 1], 'float32', this.kernelInitializer, this.kernelRegularizer ?? undefined, true);
    const bias = (name: string) => this.addWeight(name, [1], 'float32', this.biasInitializer, this.biasRegularizer ?? undefined, true);
    this.params = {
      attentionKernel: kernel('attentionKernel', 2),
      gammaKernel: kernel('gammaKernel', 1),
      gammaBias: bias('gammaBias'),
      betaKernel: kernel('betaKernel', 1),
      betaBias: bias('betaBias'),
    };
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const p = this.params;
    if (p === null) throw new Error('RegionNormalizationL: call() before build()');
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    return tf.tidy(() =>
      regionNormLearned(x, {
        attentionKernel: p.attentionKernel.read(),
        gammaKernel: p.gammaKernel.read(),
        gammaBias: p.gammaBias.read(),
        betaKernel: p.betaKernel.read(),
        betaBias: p.betaBias.read(),
        threshold: this.threshold,
        epsilon: this.epsilon,
        statistics: this.statistics,
      }),
    );
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      kernelSize: this.kernelSize,
      threshold: this.threshold,
      epsilon: this.epsilon,
      statistics: this.statistics,
      kernelInitializer: config(this.kernelInitializer),
      biasInitializer: config(this.biasInitializer),
      kernelRegularizer: config(this.kernelRegularizer),
      biasRegularizer: config(this.biasRegularizer),
    };
  }
}

registerLayerClass(RegionNormalizationB);
registerLayerClass(RegionNormalizationL);

const PAPER = 'Yu et al., "Region Normalization for Image Inpainting", AAAI 2020, arXiv 1911.10375';

registerNorm({
  name: 'region-b',
  aliases: ['rn-b', 'RegionNormalizationB'],
  kind: 'activation',
  description: 'Normalizes the masked region and its complement separately (inputs [x, mask]), each with its own scale.',
  paper: PAPER,
  layerClass: 'RegionNormalizationB',
  create: (cfg) => new RegionNormalizationB(cfg as RegionNormalizationBArgs),
  doc: 'docs/region-norm.md',
});

registerNorm({
  name: 'region-l',
  aliases: ['rn-l', 'RegionNormalizationL'],
  kind: 'activation',
  description: 'Region normalization with the region thresholded from a learned spatial attention map, and an affine predicted from it.',
  paper: PAPER,
  layerClass: 'RegionNormalizationL',
  create: (cfg) => new RegionNormalizationL(cfg as RegionNormalizationLArgs),
  doc: 'docs/region-norm.md',
});
