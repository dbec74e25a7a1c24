/**
 * Conda: Column-Normalized Adam (Wang et al., 2025, arXiv 2509.24218), following the official
 * `jie040109/Conda` `conda_torch/conda.py` update, in tfjs layouts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { smallerSideSingularVectors } from '../core/eigen.js';
import { NormkitError } from '../core/errors.js';
import { registerNorm } from '../core/registry.js';
import { checkInteger } from '../core/checks.js';
import { adamHyperparameters, movingAverage } from './adam-moments.js';
import { checkBoolean, checkKnownKeys, checkPositive } from './options.js';
import { SlotOptimizer } from './slot-optimizer.js';

/** Options of {@link Conda}. */
export interface CondaOptions {
  /** Default 1e-3. */
  learningRate?: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Added to sqrt(v), outside the bias correction (default 1e-8, the official code's value). */
  epsilon?: number;
  /** Decoupled weight decay, applied after the step (default 0). */
  weightDecay?: number;
  /** Steps between refreshes of the projection (official `update_proj_gap`, CLI default 50). */
  updateProjGap?: number;
  /** Multiplies the projected-back update (official `conda_scale`, default 1). */
  scale?: number;
  /** Adam bias correction (default true). */
  correctBias?: boolean;
  /**
   * 2-D variables whose name contains one of these strings get the plain AdamW update instead of the
   * projection (the official training script projects only attention/MLP Linear weights).
   */
  exclude?: string[];
}

const KNOWN = ['learningRate', 'beta1', 'beta2', 'epsilon', 'weightDecay', 'updateProjGap', 'scale', 'correctBias', 'exclude'];

/**
 * Conda. Per variable W with gradient G at step t (1-based):
 *
 *   M <- b1 M + (1 - b1) G                                   (first moment, original space)
 *   2-D W (m x n), not excluded: every `updateProjGap` steps (t - 1 = 0 mod gap) P <- the orthogonal SVD
 *     factor of M on its smaller side (m >= n: P = V^T, n x n; else P = U, m x m), kept in slot `proj`;
 *     G' = G P^T, M' = M P^T (m >= n)  or  G' = P^T G, M' = P^T M (m < n)
 *   other variables: G' = G, M' = M
 *   V <- b2 V + (1 - b2) G'^2                                 (second moment, rotated basis, not re-rotated)
 *   N = M' / (sqrt(V) + eps);  projected variables: N <- scale * (N P  or  P N)
 *   W <- W - lr sqrt(1 - b2^t) / (1 - b1^t) N;   W <- W - lr wd W
 *
 * The SVD runs on the CPU in float64 (Jacobi on the Gram matrix of the smaller side), so each refresh reads
 * M back from the backend: keep `updateProjGap` large for big matrices.
 */
export class Conda extends SlotOptimizer {
  static className = 'Conda';
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  readonly updateProjGap: number;
  readonly scale: number;
  readonly correctBias: boolean;
  readonly exclude: string[];

  constructor(options: CondaOptions = {}) {
    super();
    const where = 'Conda';
    checkKnownKeys(where, options, KNOWN);
    const adam = adamHyperparameters(where, options);
    this.learningRate = adam.learningRate;
    this.beta1 = adam.beta1;
    this.beta2 = adam.beta2;
    this.epsilon = adam.epsilon;
    this.weightDecay = adam.weightDecay;
    this.updateProjGap = options.updateProjGap ?? 50;
    this.scale = options.scale ?? 1;
    this.correctBias = options.correctBias ?? true;
    this.exclude = options.exclude ?? [];
    checkInteger(where, 'updateProjGap', this.updateProjGap, 1);
    checkPositive(where, 'scale', this.scale);
    checkBoolean(where, 'correctBias', this.correctBias);
    if (!Array.isArray(this.exclude) || this.exclude.some((e) => typeof e !== 'string')) throw new NormkitError(where, 'exclude', 'an array of strings', this.exclude);
  }

  /** Whether variable `name` of `shape` is updated in the rotated basis. */
  projects(name: string, shape: readonly number[]): boolean {
    return shape.length === 2 && !this.exclude.some((e) => name.includes(e));
  }

  protected override update(name: string, w: tf.Variable, g: tf.Tensor, step: number): void {
    const m = this.slot(name, 'm', () => tf.zerosLike(w));
    const v = this.slot(name, 'v', () => tf.zerosLike(w));
    const mNew = movingAverage(m, g, this.beta1);
    m.assign(mNew);
    const project = this.projects(name, w.shape);
    let gRot = g;
    let mRot: tf.Tensor = mNew;
    let p: tf.Tensor | null = null;
    const [rows, cols] = w.shape;
    const tall = project && rows >= cols;
    if (project) {
      if ((step - 1) % this.updateProjGap === 0 || !this.hasSlot(name, 'proj')) {
        const k = Math.min(rows, cols);
        const basis = smallerSideSingularVectors(mNew.dataSync(), rows, cols); // columns = singular vectors
        // P = V^T for tall matrices (rows are the vectors), P = U for wide ones (columns are the vectors).
        const pValue = tf.tidy(() => {
          const asColumns = tf.tensor2d(Float32Array.from(basis), [k, k]);
          return tall ? tf.transpose(asColumns) : asColumns;
        });
        this.setSlot(name, 'proj', pValue);
        pValue.dispose();
      }
      p = this.slot(name, 'proj', () => tf.zeros([1, 1]));
      gRot = tall ? tf.matMul(g, p, false, true) : tf.matMul(p, g, true, false);
      mRot = tall ? tf.matMul(mNew, p, false, true) : tf.matMul(p, mNew, true, false);
    }
    const vNew = movingAverage(v, tf.square(gRot), this.beta2);
    v.assign(vNew);
    let n = tf.div(mRot, tf.add(tf.sqrt(vNew), this.epsilon));
    if (p !== null) n = tf.mul(tall ? tf.matMul(n, p) : tf.matMul(p, n), this.scale);
    let stepSize = this.learningRate;
    if (this.correctBias) stepSize *= Math.sqrt(1 - this.beta2 ** step) / (1 - this.beta1 ** step);
    let next = tf.sub(w, tf.mul(n, stepSize));
    if (this.weightDecay > 0) next = tf.sub(next, tf.mul(next, this.learningRate * this.weightDecay));
    w.assign(next);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      learningRate: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
      weightDecay: this.weightDecay,
      updateProjGap: this.updateProjGap,
      scale: this.scale,
      correctBias: this.correctBias,
      exclude: [...this.exclude],
    };
  }
}

tf.serialization.registerClass(Conda);

registerNorm({
  name: 'conda',
  aliases: ['Conda'],
  kind: 'optimizer',
  description: 'Adam whose second moment is normalized in the singular basis of the first moment (column-normalized Adam).',
  paper: 'Wang, Zhou, Dong, Li, Li, Zhou, Lao, Fang & Lin, "Conda: Column-Normalized Adam for Training Large Language Models Faster", arXiv 2509.24218, 2025',
  doc: 'docs/conda.md',
});
