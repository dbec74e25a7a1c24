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
