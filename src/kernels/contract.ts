/**
 * The typed contract of normkit's fused normalization kernels, one for every backend (cpu, wasm, webgl,
 * webgpu). The op side (fused.ts) and the gradient registration (tfjs-kernels.ts) speak only this contract;
 * each backend module implements {@link NormKernels} over its own memory and is turned into tfjs
 * `KernelFunc`s by {@link toKernelFuncs}, which is the one place where tfjs's untyped maps are read.
 *
 * Forward: inputs x, gamma, beta (absent parameters are empty tensors and `hasGamma` / `hasBeta` are false);
 * outputs [y, mean, rstd, plainMean, variance], the last four with one value per slice: `mean` is relative to
 * the slice's shift (its first element when centred, 0 for RMS), `plainMean` and `variance` are the slice's
 * plain mean and biased variance (mean(x^2) for RMS). Backward: inputs x, dy, gamma, mean, rstd (the forward's
 * outputs); outputs [dx, dgamma, dbeta], the parameter gradients empty when that parameter is absent.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { NormkitError } from '../core/errors.js';
import type { NormLayout } from './norm-math.js';

/**
 * Narrows tfjs's untyped backend object to what a backend module uses of it: every name in `methods` must be a
 * function and `holds` (the module's other requirements, such as its memory) must accept it; otherwise a
 * NormkitError naming the backend. Example: `narrowBackend<WebGLBackendLike>(backend, 'webgl', 'a tfjs WebGL
 * backend', ['runWebGLProgram', 'makeTensorInfo', 'disposeIntermediateTensorInfo'])`.
 */
export function narrowBackend<T extends object>(
  backend: unknown,
  backendName: string,
  expected: string,
  methods: ReadonlyArray<keyof T & string>,
  holds: (b: Partial<T>) => boolean = () => true,
): T {
  const b = backend as Partial<T> | null;
  if (!b || methods.some((m) => typeof b[m] !== 'function') || !holds(b)) {
    throw new NormkitError(`fused normalization kernel (${backendName})`, 'backend', expected, backend);
  }
  return b as T;
}

/** Attributes of every statistics kernel: the layout, epsilon and which parameters are present. */
export interface NormKernelAttrs extends NormLayout {
  epsilon: number;
  hasGamma: boolean;
  hasBeta: boolean;
}

/** Inputs of a forward kernel. */
export interface NormForwardInputs {
  x: tf.TensorInfo;
  gamma: tf.TensorInfo;
  beta: tf.TensorInfo;
}

/** Outputs of a forward kernel, in this order. */
export type NormForwardOutputs = [y: tf.TensorInfo, mean: tf.TensorInfo, rstd: tf.TensorInfo, plainMean: tf.TensorInfo, variance: tf.TensorInfo];

/** Inputs of a backward kernel. */
export interface NormBackwardInputs {
  x: tf.TensorInfo;
  dy: tf.TensorInfo;
  gamma: tf.TensorInfo;
  mean: tf.TensorInfo;
  rstd: tf.TensorInfo;
}

/** Outputs of a backward kernel, in this order. */
export type NormBackwardOutputs = [dx: tf.TensorInfo, dgamma: tf.TensorInfo, dbeta: tf.TensorInfo];

/** What a kernel receives: typed inputs, attributes, and the backend as the backend module types it. */
export interface NormKernelArgs<I, B> {
  inputs: I;
  attrs: NormKernelAttrs;
  backend: B;
}

/** The forward and backward kernel of one backend. */
export interface NormKernels<B> {
  forward(args: NormKernelArgs<NormForwardInputs, B>): NormForwardOutputs;
  backward(args: NormKernelArgs<NormBackwardInputs, B>): NormBackwardOutputs;
}

/** The attribute map tfjs carries for `attrs` (the op side passes this to `runKernel`). */
export function attrMap(a: NormKernelAttrs): tf.NamedAttrMap {
  return {
    kind: a.kind,
    outer: a.outer,
    inner: a.inner,
    width: a.width,
    channelsPerGroup: a.channelsPerGroup,
    center: a.center,
    epsilon: a.epsilon,
    hasGamma: a.hasGamma,
    hasBeta: a.hasBeta,
  };
}

function contractError(what: string, expected: string, got: unknown): NormkitError {
  return new NormkitError('fused normalization kernel', what, expected, got);
}

/** Reads and checks the attributes of a statistics kernel from tfjs's attribute map. */
export function readAttrs(m: tf.NamedAttrMap | undefined): NormKernelAttrs {
  const num = (k: string): number => {
    const v = m?.[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw contractError(k, 'a finite number', v);
    return v;
  };
  const bool = (k: string): boolean => {
    const v = m?.[k];
    if (typeof v !== 'boolean') throw contractError(k, 'a boolean', v);
    return v;
  };
  const kind = m?.kind;
  if (kind !== 'rows' && kind !== 'channels') throw contractError('kind', "'rows' or 'channels'", kind);
  return {
    kind: kind === 'rows' ? 'rows' : 'channels',
    outer: num('outer'),
    inner: num('inner'),
    width: num('width'),
    channelsPerGroup: num('channelsPerGroup'),
    center: bool('center'),
    epsilon: num('epsilon'),
    hasGamma: bool('hasGamma'),
    hasBeta: bool('hasBeta'),
  };
}

function input(map: tf.NamedTensorInfoMap, name: string): tf.TensorInfo {
  const t = map[name];
  if (t === undefined) throw contractError(name, 'a tensor', t);
  return t;
}

/**
 * tfjs kernel functions for a backend's {@link NormKernels}. `asBackend` narrows tfjs's backend object to the
 * minimal interface the backend module declares (it checks what it relies on, so a wrong backend fails loudly).
 */
export function toKernelFuncs<B>(kernels: NormKernels<B>, asBackend: (backend: unknown) => B): { forward: tf.KernelFunc; backward: tf.KernelFunc } {
  return {
    forward: ({ inputs, backend, attrs }) =>
      kernels.forward({
        inputs: { x: input(inputs, 'x'), gamma: input(inputs, 'gamma'), beta: input(inputs, 'beta') },
        attrs: readAttrs(attrs),
        backend: asBackend(backend),
      }),
    backward: ({ inputs, backend, attrs }) =>
      kernels.backward({
        inputs: { x: input(inputs, 'x'), dy: input(inputs, 'dy'), gamma: input(inputs, 'gamma'), mean: input(inputs, 'mean'), rstd: input(inputs, 'rstd') },
        attrs: readAttrs(attrs),
        backend: asBackend(backend),
      }),
  };
}
