/**
 * The base of every weight reparametrization: a layer that wraps an existing Dense / Conv / DepthwiseConv2D /
 * Conv2DTranspose layer and runs it with a kernel computed from the wrapped layer's own kernel (and the
 * wrapper's extra weights), like PyTorch's parametrizations and Keras's Wrapper layers.
 *
 * The wrapped layer keeps its weights, names and config; the wrapper's config holds the wrapped layer's
 * `{className, config}` under `layer`, so a saved model loads back through `fromConfig`.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { NormkitError } from './errors.js';
import { checkInputSpec, disposeOwnWeights, NormkitLayer } from './norm-layer.js';
import { kernelLayout, SUPPORTED_KERNEL_LAYERS, type KernelLayout } from './kernel-layout.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;
type Kwargs = Record<string, unknown>;

/** Arguments shared by every kernel wrapper. */
export interface KernelWrapperArgs extends LayerArgs {
  /**
   * The wrapped layer: Dense, Conv1D, Conv2D, Conv3D, DepthwiseConv2D or Conv2DTranspose, or its serialized
   * `{className, config}`.
   */
  layer: tfl.layers.Layer | { className: string; config: Record<string, unknown> };
}

/** A LayerVariable stand-in whose `read()` returns a computed kernel (what tfjs layers call in `call`). */
interface KernelHolder {
  read(): tf.Tensor;
}

/** Deserializes a `{className, config}` layer description through tfjs's serialization map. */
export function deserializeLayer(where: string, description: unknown): tfl.layers.Layer {
  const d = description as { className?: unknown; config?: unknown } | null | undefined;
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  const entry = typeof d?.className === 'string' ? map[d.className] : undefined;
  if (entry === undefined) throw new NormkitError(where, 'layer', 'a serialized layer {className, config} of a registered class', description);
  const [cls, fromConfig] = entry;
  return fromConfig(cls, { ...((d?.config ?? {}) as tf.serialization.ConfigDict) }) as unknown as tfl.layers.Layer;
}

/**
 * `new cls({ ...options, layer })` once `options` is known to be an object: the body of the PyTorch-style
 * shorthands (weightNorm, spectralNorm, weightCompander); `where` names the shorthand in the NormkitError.
 */
export function wrapKernelLayer<A extends KernelWrapperArgs, W extends tfl.layers.Layer>(where: string, cls: new (args: A) => W, layer: tfl.layers.Layer, options: Omit<A, 'layer'>): W {
  if (options === null || typeof options !== 'object') throw new NormkitError(where, 'options', 'an object', options);
  return new cls({ ...options, layer } as A);
}

/**
 * A layer that runs `layer` with the kernel returned by {@link effectiveKernel}. Subclasses set
 * `static className`, create their own weights in {@link buildReparam}, compute the kernel in
 * {@link computeKernel} and extend `getConfig`.
 */
export abstract class KernelWrapper extends NormkitLayer {
  static override argKeys: readonly string[] = ['layer'];
  /** The wrapped layer. */
  readonly layer: tfl.layers.Layer;
  /** Kernel layout of the wrapped layer, known after build. */
  protected layout: KernelLayout | null = null;

  constructor(args: KernelWrapperArgs) {
    super(args);
    const where = (this.constructor as unknown as { className: string }).className;
    let layer = args?.layer as unknown;
    // A serialized {className, config} (e.g. from a registry config written as JSON) is built here.
    if (layer !== null && typeof layer === 'object' && !(layer instanceof tfl.layers.Layer) && typeof (layer as { className?: unknown }).className === 'string') {
      layer = deserializeLayer(where, layer);
    }
    if (!(layer instanceof tfl.layers.Layer)) throw new NormkitError(where, 'layer', 'a tfjs layer (or its serialized {className, config})', layer);
    if (!SUPPORTED_KERNEL_LAYERS.includes(layer.getClassName())) {
      throw new NormkitError(where, 'layer', `one of ${SUPPORTED_KERNEL_LAYERS.join(', ')}`, `a ${layer.getClassName()} layer`);
    }
    this.layer = layer;
  }

  /** The class name used in error messages. */
  protected get where(): string {
    return (this.constructor as unknown as { className: string }).className;
  }

  /** The wrapped layer's raw kernel variable. */
  protected get rawKernel(): tfl.LayerVariable {
    const layout = this.requireLayout();
    return (this.layer as unknown as Record<string, tfl.LayerVariable>)[layout.attribute];
  }

  protected requireLayout(): KernelLayout {
    if (this.layout === null) throw new NormkitError(this.where, 'layer', 'a built wrapper (call it on an input first)', 'an unbuilt layer');
    return this.layout;
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    // Every supported layer takes [batch, ..., features]; tfjs would fail deep inside on a lower rank.
    if (shape.length < 2) throw new NormkitError(this.where, 'inputs', 'a tensor of rank >= 2 ([batch, ..., features])', `shape [${shape.join(', ')}]`);
    const innerWasBuilt = this.layer.built;
    if (!innerWasBuilt) {
      this.layer.build(inputShape);
      this.layer.built = true;
    }
    try {
      this.layout = kernelLayout(this.where, this.layer);
      this.buildReparam(this.rawKernel.shape as number[], this.layout);
    } catch (e) {
      // Leave the wrapped layer as it was given: its weights built here would otherwise leak.
      if (!innerWasBuilt) {
        disposeOwnWeights(this.layer);
        this.layer.built = false;
      }
      throw e;
    }
    this.built = true;
  }

  /** Creates the wrapper's own weights for a kernel of `kernelShape`. */
  protected abstract buildReparam(kernelShape: number[], layout: KernelLayout): void;

  /** The kernel the wrapped layer runs with, from its raw kernel; `training` lets stateful methods update. */
  protected abstract computeKernel(kernel: tf.Tensor, layout: KernelLayout, training: boolean): tf.Tensor;

  /**
   * The reparametrized kernel the wrapped layer currently runs with at inference (e.g. to fold it into a
   * plain layer for export). The caller owns the returned tensor.
   */
  effectiveKernel(): tf.Tensor {
    const layout = this.requireLayout();
    return tf.tidy(() => this.computeKernel(this.rawKernel.read(), layout, false));
  }

  /**
   * Runs the wrapped layer's own `call` with `kernel` in place of its kernel variable. `mode` `'linear'` skips
   * the wrapped layer's activation (for wrappers that insert something before it) and `'pre-activation'`
   * skips its bias too (the pre-activation used by data-dependent initialization).
   */
  protected callWithKernel(inputs: tf.Tensor | tf.Tensor[], kernel: tf.Tensor, kwargs: Kwargs, mode: 'full' | 'linear' | 'pre-activation' = 'full'): tf.Tensor {
    const layout = this.requireLayout();
    // The wrapped layer's call skips its apply, so its input spec (e.g. Dense's feature count) is checked here.
    checkInputSpec(this.where, this.layer, inputs);
    const holder = this.layer as unknown as Record<string, unknown>;
    const saved = { kernel: holder[layout.attribute], bias: holder.bias, useBias: holder.useBias, activation: holder.activation };
    const stand: KernelHolder = { read: () => kernel };
    holder[layout.attribute] = stand;
    if (mode !== 'full') holder.activation = { getClassName: () => 'linear', apply: (x: tf.Tensor) => x };
    if (mode === 'pre-activation') {
      holder.bias = null;
      holder.useBias = false;
    }
    try {
      return this.layer.call(inputs, kwargs) as tf.Tensor;
    } finally {
      holder[layout.attribute] = saved.kernel;
      holder.bias = saved.bias;
      holder.useBias = saved.useBias;
      holder.activation = saved.activation;
    }
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const layout = this.requireLayout();
      const kernel = this.computeKernel(this.rawKernel.read(), layout, kwargs?.training === true);
      return this.callWithKernel(inputs, kernel, kwargs ?? {});
    });
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return this.layer.computeOutputShape(inputShape);
  }

  override get trainableWeights(): tfl.LayerVariable[] {
    if (!this.trainable) return [];
    return [...this.layer.trainableWeights, ...super.trainableWeights];
  }

  override get nonTrainableWeights(): tfl.LayerVariable[] {
    // A frozen wrapper freezes the wrapped layer's weights too.
    const inner = this.trainable ? this.layer.nonTrainableWeights : [...this.layer.trainableWeights, ...this.layer.nonTrainableWeights];
    return [...inner, ...super.nonTrainableWeights];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      layer: { className: this.layer.getClassName(), config: this.layer.getConfig() },
    };
  }

  /** Rebuilds the wrapped layer from `config.layer`, then the wrapper. */
  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    const where = (cls as unknown as { className: string }).className;
    const layer = deserializeLayer(where, config.layer);
    // tfjs's deserializer tacks `customObjects` onto every config; it is not a layer argument.
    const rest: tf.serialization.ConfigDict = { ...config };
    delete rest.customObjects;
    return new cls({ ...rest, layer });
  }
}
