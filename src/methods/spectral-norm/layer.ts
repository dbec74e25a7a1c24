/**
 * Spectral Normalization (Miyato et al., 2018) as a wrapper around an existing kernel layer.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkInteger, checkPositive } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { kernelAsMatrix, type KernelLayout } from '../../core/kernel-layout.js';
import { KernelWrapper, type KernelWrapperArgs, wrapKernelLayer } from '../../core/kernel-wrapper.js';
import { registerNorm } from '../../core/registry.js';
import { scaleByMaxAbs } from '../../core/scaled-norm.js';
import { registerLayerClass } from '../../core/serialization.js';

/** Arguments of {@link SpectralNormalization}. */
export interface SpectralNormalizationArgs extends KernelWrapperArgs {
  /** Power iterations per training call (default 1, as PyTorch; at most 1000). */
  powerIterations?: number;
  /** Floor of the vector norms in the power iteration, in (0, 1] (default 1e-12, as PyTorch). */
  epsilon?: number;
}

/** Iterations run once at build time, so the first sigma is already accurate (PyTorch's parametrization runs 15). */
const BUILD_ITERATIONS = 15;

/** Largest `powerIterations` accepted (each training call runs them all). */
const MAX_POWER_ITERATIONS = 1000;

/**
 * Spectral normalization of the wrapped layer's kernel: `W_SN = W / sigma`, with sigma the largest singular
 * value of the kernel's matrix view, estimated by power iteration with persistent vectors.
 *
 * Matrix view: `W_mat = M^T` where `M = kernelAsMatrix(W)` has shape [fanIn, units] (the unit axes moved
 * last), so `W_mat` is PyTorch's `weight.reshape(out, -1)`. State (non-trainable weights, saved with the
 * model): `u` of length units and `v` of length fanIn, the same roles as PyTorch's buffers. One iteration
 * is `v <- normalize(W_mat^T u)`, `u <- normalize(W_mat v)` with `normalize(x) = x / ||x||` (scale-free, see
 * `normalize`; eps only guards an all-zero vector), and
 * `sigma = u^T W_mat v`.
 *
 * In training calls the iteration runs `powerIterations` times and stores u, v; sigma is then computed from
 * the STORED vectors, which are tape leaves, so no gradient flows through the power iteration and
 * `dL/dW = (dL/dW_SN - sum(dL/dW_SN * W_SN) u v^T) / sigma` (the paper's gradient). Inference calls reuse
 * u, v without updating them.
 */
export class SpectralNormalization extends KernelWrapper {
  static className = 'SpectralNormalization';
  static override argKeys: readonly string[] = [...KernelWrapper.argKeys, 'powerIterations', 'epsilon'];
  readonly powerIterations: number;
  readonly epsilon: number;
  private u: tfl.LayerVariable | null = null;
  private v: tfl.LayerVariable | null = null;

  constructor(args: SpectralNormalizationArgs) {
    super(args);
    this.powerIterations = args.powerIterations ?? 1;
    checkInteger(this.where, 'powerIterations', this.powerIterations, 1);
    // Each call runs them all: a bound keeps a typo (1e308) from hanging the first call.
    if (this.powerIterations > MAX_POWER_ITERATIONS) {
      throw new NormkitError(this.where, 'powerIterations', `an integer from 1 to ${MAX_POWER_ITERATIONS} (1 per training call is the usual choice)`, this.powerIterations);
    }
    this.epsilon = args.epsilon ?? 1e-12;
    // The vectors are scaled to max |.| = 1 before their norm (>= 1 unless zero) is floored by eps: eps <= 1
    // floors only an all-zero vector, larger values would shrink the unit vectors and inflate W / sigma.
    checkPositive(this.where, 'epsilon', this.epsilon, 1);
  }

  protected override buildReparam(kernelShape: number[], layout: KernelLayout): void {
    const units = layout.unitAxes.reduce((n, a) => n * kernelShape[a], 1);
    const fanIn = layout.fanInAxes.reduce((n, a) => n * kernelShape[a], 1);
    this.u = this.addWeight('u', [units], 'float32', tfl.initializers.randomNormal({ mean: 0, stddev: 1 }), undefined, false);
    this.v = this.addWeight('v', [fanIn], 'float32', tfl.initializers.zeros(), undefined, false);
    tf.tidy(() => {
      const u = this.u as tfl.LayerVariable;
      u.write(this.normalize(u.read()));
    });
    this.powerIterate(BUILD_ITERATIONS);
  }

  /**
   * x / ||x||, scale-free: x is first divided by its largest magnitude (so ||.|| >= 1 unless x = 0), which keeps
   * the power iteration exact for kernels of any magnitude; eps floors the norm of an all-zero vector only.
   */
  private normalize(x: tf.Tensor): tf.Tensor {
    const { scaled } = scaleByMaxAbs(x, [0]);
    return tf.div(scaled, tf.maximum(tf.norm(scaled), this.epsilon));
  }

  /** Runs `n` power iterations on M = [fanIn, units] from the stored u, storing the new u and v. */
  private iterate(m: tf.Tensor2D, n: number): void {
    const uVar = this.u as tfl.LayerVariable;
    const vVar = this.v as tfl.LayerVariable;
    let u = uVar.read();
    let v = vVar.read();
    for (let i = 0; i < n; i++) {
      v = this.normalize(tf.reshape(tf.matMul(m, tf.reshape(u, [-1, 1])), [-1]));
      u = this.normalize(tf.reshape(tf.matMul(m, tf.reshape(v, [-1, 1]), true), [-1]));
    }
    vVar.write(v);
    uVar.write(u);
  }

  /**
   * Runs `n` more power iterations on the current kernel (e.g. after loading weights that were not saved
   * together with their u, v).
   */
  powerIterate(n: number): void {
    checkInteger(`${this.where}.powerIterate`, 'n', n, 1);
    const layout = this.requireLayout();
    tf.tidy(() => this.iterate(kernelAsMatrix(this.rawKernel.read(), layout), n));
  }

  /** sigma = u^T W_mat v = v^T M u from the stored vectors. */
  private sigmaOf(m: tf.Tensor2D): tf.Tensor {
    const u = (this.u as tfl.LayerVariable).read();
    const v = (this.v as tfl.LayerVariable).read();
    return tf.sum(tf.mul(v, tf.reshape(tf.matMul(m, tf.reshape(u, [-1, 1])), [-1])));
  }

  /** The current estimate of the kernel's largest singular value, from the stored u, v. */
  sigma(): number {
    const layout = this.requireLayout();
    const s = tf.tidy(() => this.sigmaOf(kernelAsMatrix(this.rawKernel.read(), layout)));
    const value = s.dataSync()[0];
    s.dispose();
    return value;
  }

  protected override computeKernel(kernel: tf.Tensor, layout: KernelLayout, training: boolean): tf.Tensor {
    const m = kernelAsMatrix(kernel, layout);
    if (training) this.iterate(m, this.powerIterations);
    return tf.div(kernel, this.sigmaOf(m));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), powerIterations: this.powerIterations, epsilon: this.epsilon };
  }
}

/** Wraps `layer` in {@link SpectralNormalization}; a shorthand like PyTorch's `spectral_norm(module)`. */
export function spectralNorm(layer: tfl.layers.Layer, options: Omit<SpectralNormalizationArgs, 'layer'> = {}): SpectralNormalization {
  return wrapKernelLayer('spectralNorm', SpectralNormalization, layer, options);
}

registerLayerClass(SpectralNormalization);

registerNorm({
  name: 'spectral-norm',
  aliases: ['sn', 'spectral', 'spectralnorm', 'SpectralNormalization'],
  kind: 'weight',
  description: 'Divides a wrapped layer\'s kernel by its largest singular value, estimated by power iteration with persistent vectors.',
  paper: 'Miyato, Kataoka, Koyama & Yoshida, "Spectral Normalization for Generative Adversarial Networks", ICLR 2018 (arXiv 1802.05957)',
  layerClass: 'SpectralNormalization',
  create: (config) => new SpectralNormalization(config as unknown as SpectralNormalizationArgs),
  doc: 'docs/spectral-norm.md',
});
