/**
 * PowerNormalization: a layer over {@link powerNorm} that keeps the running statistics as non-trainable weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { resolveGroups } from '../../core/channels.js';
import { checkInRange, checkInteger } from '../../core/checks.js';
import { AFFINE_KEYS, type AffineLayerArgs, AffineNormLayer, singleInput } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';
import { powerNorm } from './op.js';

/** Arguments of {@link PowerNormalization}; defaults of the reference `MaskPowerNorm`. */
export interface PowerNormalizationArgs extends AffineLayerArgs {
  /** Channel groups of the pre-scaling (default 1; the paper's transformers use the number of heads). */
  groups?: number;
  /** Weight of the old value in the running_phi EMA (default 0.9). */
  alphaForward?: number;
  /** Backward smoothing a_bkw (default 0.9). */
  alphaBackward?: number;
  /** Training steps that normalize with batch statistics (default 10000). */
  warmupIters?: number;
}

type LayerVariable = tfl.LayerVariable;

/**
 * PowerNorm on the last (channel) axis: `y = gamma * xs / sqrt(phi + eps) + beta` with `xs` the group-scaled
 * input and `phi` the batch quadratic mean during warm-up, the running one afterwards and at inference
 * (see {@link powerNorm}). Weights: gamma, beta (trainable); running_phi, ema_gz, iterations (not trainable).
 * Training steps update running_phi in the forward pass and ema_gz in the backward pass.
 */
export class PowerNormalization extends AffineNormLayer {
  static className = 'PowerNormalization';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'groups', 'alphaForward', 'alphaBackward', 'warmupIters'];
  readonly groups: number;
  readonly alphaForward: number;
  readonly alphaBackward: number;
  readonly warmupIters: number;
  private runningPhi: LayerVariable | null = null;
  private emaGz: LayerVariable | null = null;
  private iterations: LayerVariable | null = null;

  constructor(args: PowerNormalizationArgs = {}) {
    super(args, { epsilon: 1e-5 });
    this.groups = args.groups ?? 1;
    this.alphaForward = args.alphaForward ?? 0.9;
    this.alphaBackward = args.alphaBackward ?? 0.9;
    this.warmupIters = args.warmupIters ?? 10000;
    checkInteger('PowerNormalization', 'groups', this.groups, 1);
    checkInRange('PowerNormalization', 'alphaForward', this.alphaForward, 0, 1);
    checkInRange('PowerNormalization', 'alphaBackward', this.alphaBackward, 0, 1);
    checkInteger('PowerNormalization', 'warmupIters', this.warmupIters, 0);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const channels = this.channelsLastSize(inputShape);
    resolveGroups('PowerNormalization', this.groups, channels);
    this.buildAffine([channels]);
    this.runningPhi = this.addStateWeight('running_phi', [channels], 'ones');
    this.emaGz = this.addStateWeight('ema_gz', [channels], 'zeros');
    this.iterations = this.addStateWeight('iterations', [], 'zeros');
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown> = {}): tf.Tensor {
    return tf.tidy(() => {
      const x = singleInput(inputs);
      const training = kwargs['training'] === true;
      const mask = kwargs['mask'] as tf.Tensor | undefined;
      const common = {
        epsilon: this.epsilon, groups: this.groups, warmupIters: this.warmupIters, alphaForward: this.alphaForward,
        alphaBackward: this.alphaBackward, runningPhi: (this.runningPhi as LayerVariable).read(), ...this.affineValues(),
        ...(mask instanceof tf.Tensor ? { mask } : {}),
      };
      if (!training) {
        const { y, runningPhi } = powerNorm(x, common);
        runningPhi.dispose();
        return y;
      }
      // The counter stays on the device: reading it back would stall webgl/webgpu on every step.
      const counter = this.iterations as LayerVariable;
      const iteration = tf.add(counter.read(), 1);
      const emaGz = this.emaGz as LayerVariable;
      const { y, runningPhi } = powerNorm(x, {
        ...common, training: true, iteration, emaGz: emaGz.read(), onEmaGz: (next) => emaGz.write(next),
      });
      (this.runningPhi as LayerVariable).write(runningPhi);
      counter.write(iteration);
      return y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(), ...this.affineConfig(), groups: this.groups, alphaForward: this.alphaForward,
      alphaBackward: this.alphaBackward, warmupIters: this.warmupIters,
    };
  }
}

registerLayerClass(PowerNormalization);

registerNorm({
  name: 'power',
  aliases: ['pn', 'powernorm', 'PowerNormalization'],
  kind: 'activation',
  description: 'Batch quadratic-mean normalization with running statistics after warm-up and an approximate backward (transformer-friendly BN).',
  paper: 'Shen, Yao, Gholami, Mahoney & Keutzer, "PowerNorm: Rethinking Batch Normalization in Transformers", ICML 2020 (arXiv 2003.07845)',
  layerClass: 'PowerNormalization',
  create: (config) => new PowerNormalization(config as PowerNormalizationArgs),
  doc: 'docs/power-norm.md',
});
