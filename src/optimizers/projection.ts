/**
 * The scale-invariance test and radial projection shared by AdamP and SGDP (Heo et al., ICLR 2021), in
 * tfjs layouts: the "channel view" groups each OUTPUT unit with its fan-in (kernel-layout.ts), the "layer
 * view" is the whole tensor. Branch-free (tf.where), so a step never reads values back to the CPU.
 */
import * as tf from '@tensorflow/tfjs-core';
import { defaultFanInAxes, type KernelLayout } from '../core/kernel-layout.js';
import { checkBoolean, checkNonNegative, checkPositive } from './options.js';

/** The fan-in axes of variable `name` of `rank` for the channel view (its layout's, else the default). */
export function fanInAxesFor(layouts: Map<string, KernelLayout> | undefined, name: string, rank: number): number[] {
  return layouts?.get(name)?.fanInAxes ?? defaultFanInAxes(rank);
}

/** Options of {@link projectScaleInvariant}. */
export interface ProjectionOptions {
  /** Threshold of the cosine test (official default 0.1). */
  delta: number;
  /** Weight-decay multiplier for projected tensors (official default 0.1). */
  wdRatio: number;
  /** The eps of the cosine similarity and of `p / (||p|| + eps)` (official default 1e-8). */
  epsilon: number;
  /** Fan-in axes of one output unit of `p` (the channel view). */
  fanInAxes: number[];
}

/**
 * For a parameter p (rank > 1) with raw gradient g and proposed update d:
 *
 *   for view in [channel, layer]:
 *     c = |cos(g, p)| per row of the view,  cos = g.p / (max(||g||, eps) max(||p||, eps))
 *     if max(c) < delta / sqrt(row size):   p_n = p / (||p|| + eps) per row;  d <- d - p_n (p_n . d);  stop
 *
 * Returns the (possibly) projected update and the weight-decay factor (wdRatio when projected, else 1) as
 * a scalar tensor.
 */
export function projectScaleInvariant(p: tf.Tensor, g: tf.Tensor, d: tf.Tensor, options: ProjectionOptions): { update: tf.Tensor; wdFactor: tf.Tensor } {
  return tf.tidy(() => {
    const { delta, wdRatio, epsilon, fanInAxes } = options;
    const allAxes = p.shape.map((_, i) => i);
    const views: number[][] = [fanInAxes, allAxes];
    let update = d;
    let wdFactor: tf.Tensor = tf.scalar(1);
    // Evaluate the layer view first and let the channel view override it: the channel view has priority.
    for (const axes of [...views].reverse()) {
      const rowSize = axes.reduce((n, a) => n * p.shape[a], 1);
      const pNorm = tf.sqrt(tf.sum(tf.square(p), axes, true));
      const gNorm = tf.sqrt(tf.sum(tf.square(g), axes, true));
      const cos = tf.abs(tf.div(tf.sum(tf.mul(g, p), axes, true), tf.mul(tf.maximum(gNorm, epsilon), tf.maximum(pNorm, epsilon))));
      const invariant = tf.less(tf.max(cos), delta / Math.sqrt(rowSize));
      const pn = tf.div(p, tf.add(pNorm, epsilon));
      const projected = tf.sub(d, tf.mul(pn, tf.sum(tf.mul(pn, d), axes, true)));
      update = tf.where(invariant, projected, update);
      wdFactor = tf.where(invariant, tf.scalar(wdRatio), wdFactor);
    }
    return { update, wdFactor };
  });
}

/** The projection hyperparameters AdamP and SGDP share. */
export interface ProjectionHyperparameters {
  /** Threshold of the cosine test (default 0.1). */
  delta: number;
  /** Weight-decay multiplier for projected tensors (default 0.1). */
  wdRatio: number;
  /** Nesterov momentum (default false). */
  nesterov: boolean;
}

/**
 * `options`' projection hyperparameters with the official defaults (delta 0.1, wdRatio 0.1, nesterov
 * false), checked in that order (a NormkitError from `where` names the bad one).
 */
export function projectionHyperparameters(where: string, options: Partial<ProjectionHyperparameters>): ProjectionHyperparameters {
  const h: ProjectionHyperparameters = { delta: options.delta ?? 0.1, wdRatio: options.wdRatio ?? 0.1, nesterov: options.nesterov ?? false };
  checkPositive(where, 'delta', h.delta);
  checkNonNegative(where, 'wdRatio', h.wdRatio);
  checkBoolean(where, 'nesterov', h.nesterov);
  return h;
}

/**
 * The update of parameter p: {@link projectScaleInvariant} when rank(p) > 1, else d unchanged with
 * weight-decay factor 1.
 */
export function scaleInvariantUpdate(p: tf.Tensor, g: tf.Tensor, d: tf.Tensor, options: ProjectionOptions): { update: tf.Tensor; wdFactor: tf.Tensor | number } {
  return p.rank > 1 ? projectScaleInvariant(p, g, d, options) : { update: d, wdFactor: 1 };
}

/** Decoupled weight decay `p (1 - wdFactor rate)`; p itself when rate is 0. */
export function decayedWeight(p: tf.Tensor, wdFactor: tf.Tensor | number, rate: number): tf.Tensor {
  return rate > 0 ? tf.mul(p, tf.sub(1, tf.mul(wdFactor, rate))) : p;
}
