/**
 * Kernel layouts of tfjs layers: which kernel axes are the fan-in of one output unit and which index the
 * output unit. Shared by every weight reparametrization (weight norm, spectral norm, weight
 * standardization, ...) and by unit-wise gradient clipping, so "the output unit" is decided in one place.
 *
 * tfjs layouts (channels-last, HWIO):
 * - Dense `[in, out]`; Conv1D `[k, in, out]`; Conv2D `[kh, kw, in, out]`; Conv3D `[kd, kh, kw, in, out]`:
 *   the unit is the LAST axis, the fan-in is every other axis.
 * - Conv2DTranspose `[kh, kw, out, in]` (note the swap): output channel o is fed by `kernel[:, :, o, :]`,
 *   so the unit axis is 2 and the fan-in axes are (0, 1, 3).
 * - DepthwiseConv2D `[kh, kw, in, multiplier]`: output channel `c * multiplier + m` is fed only by
 *   `kernel[:, :, c, m]`, so the unit is the pair of axes (2, 3) and the fan-in is (0, 1).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { NormkitError } from './errors.js';

/** Where a layer keeps its kernel and how that kernel is laid out. */
export interface KernelLayout {
  /** The layer's class name (e.g. `'Dense'`). */
  className: string;
  /** Name of the layer attribute holding the kernel LayerVariable (`'kernel'` or `'depthwiseKernel'`). */
  attribute: 'kernel' | 'depthwiseKernel';
  /** Kernel axes that index the output unit (one axis, or two for DepthwiseConv2D). */
  unitAxes: number[];
  /** Kernel axes summed over by one output unit (its fan-in); the complement of `unitAxes`. */
  fanInAxes: number[];
}

/** Layer class names normkit's weight wrappers accept, with their kernel attribute. */
const KERNEL_ATTRIBUTE: Record<string, 'kernel' | 'depthwiseKernel'> = {
  Dense: 'kernel',
  Conv1D: 'kernel',
  Conv2D: 'kernel',
  Conv3D: 'kernel',
  Conv2DTranspose: 'kernel',
  DepthwiseConv2D: 'depthwiseKernel',
};

/** The layer class names supported by {@link kernelLayout}. */
export const SUPPORTED_KERNEL_LAYERS: readonly string[] = Object.keys(KERNEL_ATTRIBUTE);

/**
 * The layout of a kernel of `rank` owned by a layer of class `className` (see the module comment).
 * Throws a NormkitError for a class it does not know.
 */
export function kernelLayoutOf(where: string, className: string, rank: number): KernelLayout {
  const attribute = KERNEL_ATTRIBUTE[className];
  if (attribute === undefined) {
    throw new NormkitError(where, 'layer', `one of ${SUPPORTED_KERNEL_LAYERS.join(', ')}`, `a ${className} layer`);
  }
  let unitAxes: number[];
  if (className === 'Conv2DTranspose') unitAxes = [rank - 2];
  else if (className === 'DepthwiseConv2D') unitAxes = [rank - 2, rank - 1];
  else unitAxes = [rank - 1];
  const fanInAxes = [...Array(rank).keys()].filter((a) => !unitAxes.includes(a));
  return { className, attribute, unitAxes, fanInAxes };
}

/** The layout of a built layer's kernel. Throws when the layer is not supported or not built. */
export function kernelLayout(where: string, layer: tfl.layers.Layer): KernelLayout {
  const className = layer.getClassName();
  const attribute = KERNEL_ATTRIBUTE[className];
  if (attribute === undefined) return kernelLayoutOf(where, className, 0);
  const variable = (layer as unknown as Record<string, { shape: number[] } | null | undefined>)[attribute];
  if (variable === undefined || variable === null) {
    throw new NormkitError(where, 'layer', 'a built layer with a kernel', `an unbuilt ${className}`);
  }
  return kernelLayoutOf(where, className, variable.shape.length);
}

/**
 * Unit-wise reduction axes for a parameter of `rank` when nothing is known about its layer: everything but
 * the LAST axis (the output unit in tfjs layouts), or every axis for scalars and vectors.
 */
export function defaultFanInAxes(rank: number): number[] {
  if (rank <= 1) return [...Array(rank).keys()];
  return [...Array(rank - 1).keys()];
}

/**
 * Per-variable layouts of every supported layer inside `layers` (nested models are walked), keyed by the
 * kernel variable's name, so unit-wise methods applied to a whole model (gradient clipping) use the right
 * output unit for Conv2DTranspose and DepthwiseConv2D kernels.
 */
export function kernelLayoutsByVariable(layers: readonly tfl.layers.Layer[]): Map<string, KernelLayout> {
  const out = new Map<string, KernelLayout>();
  const visit = (layer: tfl.layers.Layer): void => {
    const nested = (layer as unknown as { layers?: tfl.layers.Layer[] }).layers;
    if (Array.isArray(nested)) nested.forEach(visit);
    const inner = (layer as unknown as { layer?: tfl.layers.Layer }).layer;
    if (inner !== undefined && typeof inner === 'object' && inner !== null && 'getClassName' in inner) visit(inner);
    const attribute = KERNEL_ATTRIBUTE[layer.getClassName()];
    if (attribute === undefined) return;
    const variable = (layer as unknown as Record<string, tfl.LayerVariable | null>)[attribute];
    if (variable === null || variable === undefined) return;
    out.set(variable.name, kernelLayoutOf('kernelLayoutsByVariable', layer.getClassName(), variable.shape.length));
  };
  layers.forEach(visit);
  return out;
}

/**
 * Moves the unit axes of a kernel last and flattens it to the matrix `[fanIn, units]`, the matrix view used by
 * spectral normalization (column j holds the weights of output unit j).
 */
export function kernelAsMatrix(kernel: tf.Tensor, layout: KernelLayout): tf.Tensor2D {
  return tf.tidy(() => {
    const perm = [...layout.fanInAxes, ...layout.unitAxes];
    const moved = perm.every((a, i) => a === i) ? kernel : tf.transpose(kernel, perm);
    const units = layout.unitAxes.reduce((n, a) => n * kernel.shape[a], 1);
    return tf.reshape(moved, [-1, units]) as tf.Tensor2D;
  });
}

/** Shape of a per-unit parameter (e.g. weight norm's g): the kernel's sizes on the unit axes. */
export function unitShape(kernelShape: readonly number[], layout: KernelLayout): number[] {
  return layout.unitAxes.map((a) => kernelShape[a]);
}

/** Shape that broadcasts a per-unit parameter against the kernel: 1 on fan-in axes. */
export function unitBroadcastShape(kernelShape: readonly number[], layout: KernelLayout): number[] {
  return kernelShape.map((d, a) => (layout.unitAxes.includes(a) ? d : 1));
}
