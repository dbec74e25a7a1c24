/**
 * UnifiedNormalization: a layer over {@link unifiedNorm} keeping its running statistics and windows as
 * non-trainable weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkBoolean, checkInRange, checkInteger } from '../../core/checks.js';
import { AFFINE_KEYS, type AffineLayerArgs, AffineNormLayer, singleInput } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';
import { unifiedNorm, unifiedWindows } from './op.js';

/** Arguments of {@link UnifiedNormalization}; defaults of the reference `UN1d`. */
export interface UnifiedNormalizationArgs extends AffineLayerArgs {
  /** Window W, or [forward, backward] windows (default 4). */
  windowSize?: number | [number, number];
  /** Iterations before windowed statistics are used (default 4000). */
  warmupIters?: number;
  /** Outlier filtration (default false; the authors advise false for NLP, true for vision). */
  outlierFiltration?: boolean;
  /** Weight of the old value in the running averages (default 0.9). */
  momentum?: number;
}

type LayerVariable = tfl.LayerVariable;

/**
 * Unified Normalization on the last (channel) axis (see {@link unifiedNorm}): training normalizes by the
 * batch or windowed geometric-mean second moment with a custom backward; inference is the per-channel affine
 * map `gamma * x / sqrt(running_var + eps) + beta`. Weights: gamma, beta (trainable); running_var, ema_gz,
 * buffer_x2, buffer_gz, iterations, skip_counter (not trainable).
 */
export class UnifiedNormalization extends AffineNormLayer {
  static className = 'UnifiedNormalization';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'windowSize', 'warmupIters', 'outlierFiltration', 'momentum'];
  readonly windowSize: number | [number, number];
  readonly warmupIters: number;
  readonly outlierFiltration: boolean;
  readonly momentum: number;
  private readonly windows: [number, number];
  private state: Record<'runningVar' | 'emaGz' | 'bufferX2' | 'bufferGz' | 'iterations' | 'skipCounter', LayerVariable> | null = null;

  constructor(args: UnifiedNormalizationArgs = {}) {
    super(args, { epsilon: 1e-5 });
    this.windowSize = args.windowSize ?? 4;
    this.windows = unifiedWindows('UnifiedNormalization', this.windowSize);
    this.warmupIters = args.warmupIters ?? 4000;
    this.outlierFiltration = args.outlierFiltration ?? false;
    this.momentum = args.momentum ?? 0.9;
    checkInteger('UnifiedNormalization', 'warmupIters', this.warmupIters, 0);
    checkBoolean('UnifiedNormalization', 'outlierFiltration', this.outlierFiltration);
    checkInRange('UnifiedNormalization', 'momentum', this.momentum, 0, 1);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const channels = this.channelsLastSize(inputShape);
    this.buildAffine([channels]);
    const [wf, wb] = this.windows;
    this.state = {
      runningVar: this.addStateWeight('running_var', [channels], 'ones'),
      emaGz: this.addStateWeight('ema_gz', [channels], 'zeros'),
      bufferX2: this.addStateWeight('buffer_x2', [wf, channels], 'zeros'),
      bufferGz: this.addStateWeight('buffer_gz', [wb, channels], 'zeros'),
      iterations: this.addStateWeight('iterations', [], 'zeros'),
      skipCounter: this.addStateWeight('skip_counter', [], 'zeros'),
    };
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown> = {}): tf.Tensor {
    return tf.tidy(() => {
      const s = this.state as NonNullable<typeof this.state>;
      const mask = kwargs['mask'];
      const common = {
        epsilon: this.epsilon, windowSize: this.windows, warmupIters: this.warmupIters, outlierFiltration: this.outlierFiltration,
        momentum: this.momentum, runningVar: s.runningVar.read(), bufferX2: s.bufferX2.read(), ...this.affineValues(),
        ...(mask instanceof tf.Tensor ? { mask } : {}),
      };
      if (kwargs['training'] !== true) return unifiedNorm(singleInput(inputs), common).y;
      // The counter stays a tensor and the outlier count a masked add: a training call reads nothing back.
      const iteration = tf.add(tf.round(s.iterations.read()), 1);
      const r = unifiedNorm(singleInput(inputs), {
        ...common, training: true, iteration, emaGz: s.emaGz.read(), bufferGz: s.bufferGz.read(),
        onBackward: ({ emaGz, bufferGz }) => {
          s.emaGz.write(emaGz);
          s.bufferGz.write(bufferGz);
        },
      });
      s.runningVar.write(r.runningVar);
      s.bufferX2.write(r.bufferX2);
      s.iterations.write(iteration);
      s.skipCounter.write(tf.add(s.skipCounter.read(), tf.cast(r.outlier, 'float32')));
      return r.y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(), ...this.affineConfig(), windowSize: this.windowSize, warmupIters: this.warmupIters,
      outlierFiltration: this.outlierFiltration, momentum: this.momentum,
    };
  }
}

registerLayerClass(UnifiedNormalization);

registerNorm({
  name: 'unified',
  aliases: ['un', 'unifiednorm', 'UnifiedNormalization'],
  kind: 'activation',
  description: 'Batch second-moment normalization smoothed by a window geometric mean, with outlier filtration and a custom backward; an affine map at inference.',
  paper: 'Yang et al., "Unified Normalization for Accelerating and Stabilizing Transformers", ACM MM 2022 (arXiv 2208.01313)',
  layerClass: 'UnifiedNormalization',
  create: (config) => new UnifiedNormalization(config as UnifiedNormalizationArgs),
  doc: 'docs/unified-norm.md',
});
