/**
 * OnlineNormalization: a layer over {@link onlineNorm} whose streams are non-trainable weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkInRange, checkOneOf, checkPositive } from '../../core/checks.js';
import { AFFINE_KEYS, type AffineLayerArgs, AffineNormLayer, singleInput } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass } from '../../core/serialization.js';
import { ONLINE_NORM_ECMS, onlineNorm, type OnlineNormEcm } from './op.js';

/** Arguments of {@link OnlineNormalization}; defaults of the paper's reference code. */
export interface OnlineNormalizationArgs extends AffineLayerArgs {
  /** Decay of the forward streams (default 0.999). */
  alphaFwd?: number;
  /** Decay of the backward control streams (default 0.99). */
  alphaBkw?: number;
  /** Error compensation: `'clamp'` (default), `'layer-scaling'` or `'none'`. */
  ecm?: OnlineNormEcm;
  /** Clip bound of activation clamping (default 5). */
  clampValue?: number;
  /** Epsilon of layer scaling (default 1e-5). */
  lsEpsilon?: number;
}

type LayerVariable = tfl.LayerVariable;

/**
 * Online Normalization, channels last (`[N, C]` or `[N, ...spatial, C]`): in training each sample is
 * normalized with the streamed statistics of the samples before it and the backward uses the paper's control
 * streams; in inference `gamma (x - mu)/sqrt(sigma2 + eps) + beta`, then the ECM. Weights: `gamma`, `beta`
 * (trainable, per channel) and the non-trainable streams `mu` (0), `sigma2` (1), `u` (0), `v` (0). The forward
 * streams are updated by every training call, the control streams by every backward pass.
 */
export class OnlineNormalization extends AffineNormLayer {
  static className = 'OnlineNormalization';
  static override argKeys: readonly string[] = [...AFFINE_KEYS, 'alphaFwd', 'alphaBkw', 'ecm', 'clampValue', 'lsEpsilon'];
  readonly alphaFwd: number;
  readonly alphaBkw: number;
  readonly ecm: OnlineNormEcm;
  readonly clampValue: number;
  readonly lsEpsilon: number;
  private mu: LayerVariable | null = null;
  private sigma2: LayerVariable | null = null;
  private u: LayerVariable | null = null;
  private v: LayerVariable | null = null;

  constructor(args: OnlineNormalizationArgs = {}) {
    super(args, { epsilon: 1e-5 });
    const where = 'OnlineNormalization';
    this.alphaFwd = args.alphaFwd ?? 0.999;
    this.alphaBkw = args.alphaBkw ?? 0.99;
    this.ecm = args.ecm ?? 'clamp';
    this.clampValue = args.clampValue ?? 5;
    this.lsEpsilon = args.lsEpsilon ?? 1e-5;
    checkInRange(where, 'alphaFwd', this.alphaFwd, 0, 1);
    checkInRange(where, 'alphaBkw', this.alphaBkw, 0, 1);
    checkOneOf(where, 'ecm', this.ecm, ONLINE_NORM_ECMS);
    checkPositive(where, 'clampValue', this.clampValue);
    checkPositive(where, 'lsEpsilon', this.lsEpsilon);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const channels = this.channelsLastSize(inputShape);
    this.buildAffine([channels]);
    this.mu = this.addStateWeight('mu', [channels], 'zeros');
    this.sigma2 = this.addStateWeight('sigma2', [channels], 'ones');
    this.u = this.addStateWeight('u', [channels], 'zeros');
    this.v = this.addStateWeight('v', [channels], 'zeros');
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean } = {}): tf.Tensor {
    return tf.tidy(() => {
      const training = kwargs.training === true;
      const { mu, sigma2, u, v } = this.streams();
      const { y, state } = onlineNorm(singleInput(inputs), {
        state: { mu: mu.read(), sigma2: sigma2.read() },
        control: { u: u.read(), v: v.read() },
        onControl: (c) => {
          u.write(c.u);
          v.write(c.v);
        },
        training,
        alphaFwd: this.alphaFwd,
        alphaBkw: this.alphaBkw,
        epsilon: this.epsilon,
        ecm: this.ecm,
        clampValue: this.clampValue,
        lsEpsilon: this.lsEpsilon,
        ...this.affineValues(),
      });
      if (training) {
        mu.write(state.mu);
        sigma2.write(state.sigma2);
      }
      return y;
    });
  }

  /** The stream variables (they exist once the layer is built). */
  private streams(): Record<'mu' | 'sigma2' | 'u' | 'v', LayerVariable> {
    if (!this.mu || !this.sigma2 || !this.u || !this.v) throw new Error('OnlineNormalization: call() before build()');
    return { mu: this.mu, sigma2: this.sigma2, u: this.u, v: this.v };
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      ...this.affineConfig(),
      alphaFwd: this.alphaFwd,
      alphaBkw: this.alphaBkw,
      ecm: this.ecm,
      clampValue: this.clampValue,
      lsEpsilon: this.lsEpsilon,
    };
  }
}

registerLayerClass(OnlineNormalization);

registerNorm({
  name: 'online',
  aliases: ['online-norm', 'onlinenorm', 'OnlineNormalization'],
  kind: 'activation',
  description: 'Normalizes each sample with running statistics of the samples before it; the backward uses control streams instead of batch statistics.',
  paper: 'Chiley et al., "Online Normalization for Training Neural Networks", NeurIPS 2019, arXiv 1905.05894',
  layerClass: 'OnlineNormalization',
  create: (config) => new OnlineNormalization(config as OnlineNormalizationArgs),
  doc: 'docs/online-norm.md',
});
