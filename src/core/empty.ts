/**
 * Results of shape-preserving ops on inputs with no elements. Reductions over empty tensors trap in
 * tfjs-wasm (an integer division by zero) and in normkit's WebAssembly kernels, so ops check `x.size === 0`
 * first and return this instead: there is nothing to normalize, and the result is empty too.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * An empty tensor of `x`'s shape, connected to `x` and to each of `params` so that tf.grad gives each a zero
 * gradient of its own shape (rather than failing for an input that does not reach the output).
 *
 * @example
 * if (x.size === 0) return emptyResult(x, [gamma, beta]);
 */
export function emptyResult(x: tf.Tensor, params: ReadonlyArray<tf.Tensor | undefined> = []): tf.Tensor {
  return tf.tidy(() => {
    let y = tf.mul(x, 0);
    for (const p of params) if (p !== undefined) y = tf.add(y, tf.mul(tf.sum(p), 0));
    return y;
  });
}
