/**
 * Identity with a zero gradient (tfjs 4.22 has no tf.stopGradient): for inputs a method treats as constants,
 * like PyTorch's `.detach()`.
 */
import * as tf from '@tensorflow/tfjs-core';

const identityWithoutGradient = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor;
  return { value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
});

/** Returns a copy of `x` through which no gradient flows (its gradient is zero). */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return identityWithoutGradient(x) as T;
}

/**
 * `f(x)` as a constant: no gradient flows to `x`, and the ops inside `f` are not recorded for tf.grad (so
 * they need no gradients of their own, e.g. comparisons, and cost nothing in backprop).
 */
export function constantOf(x: tf.Tensor, f: (x: tf.Tensor) => tf.Tensor): tf.Tensor {
  const g = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor;
    // The shape only: the input itself may be disposed by the time the gradient runs.
    const shape = input.shape;
    return { value: f(input), gradFunc: () => tf.zeros(shape) };
  });
  return g(x);
}
