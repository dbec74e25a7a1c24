/**
 * What tf.grad of a gradient needs beyond tfjs 4.22's own gradients:
 *
 * - `tanh`, `sigmoid`, `exp` whose gradients are written from the input. tfjs's gradients of these kernels
 *   use the saved output, and tfjs does not differentiate through a saved output: a Hessian-vector product
 *   through `tf.tanh` comes out wrong (measured: -0.24 where finite differences give -0.75). These versions
 *   give the same values and first gradients, and correct second-order gradients.
 * - zero gradients for tfjs's comparison and logical kernels (`Less`, `Equal`, `LogicalAnd`, ...), which
 *   tfjs's own gradients of Maximum, ClipByValue, Max or Abs record as masks; without a registered gradient
 *   the second differentiation stops with "gradient function not found". Registered only where tfjs has none.
 */
import * as tf from '@tensorflow/tfjs-core';

type Unary = (x: tf.Tensor) => tf.Tensor;

/** f(x) with gradient dy * fPrime(x), recomputed from x so that it is differentiable again. */
function fromInput(f: Unary, fPrime: Unary): Unary {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const x = args[0] as tf.Tensor;
    (args[1] as tf.GradSaveFunc)([x]);
    return { value: f(x), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, fPrime(saved[0])) };
  });
  return (x) => op(x);
}

/** tanh(x); gradient 1 - tanh(x)^2 from x (twice differentiable under tf.grad). */
export const tanh: Unary = fromInput(tf.tanh, (x) => tf.sub(1, tf.square(tanh(x))));

/** sigmoid(x); gradient sigmoid(x) (1 - sigmoid(x)) from x (twice differentiable under tf.grad). */
export const sigmoid: Unary = fromInput(tf.sigmoid, (x) => {
  const s = sigmoid(x);
  return tf.mul(s, tf.sub(1, s));
});

/** exp(x); gradient exp(x) from x (twice differentiable under tf.grad). */
export const exp: Unary = fromInput(tf.exp, (x) => exp(x));

/** tfjs kernels with boolean outputs (whose gradient is zero wherever it exists), by their input names. */
const BOOLEAN_KERNELS: Array<[string, string[]]> = [
  ...['Less', 'LessEqual', 'Greater', 'GreaterEqual', 'Equal', 'NotEqual', 'LogicalAnd', 'LogicalOr', 'LogicalXor'].map((k): [string, string[]] => [k, ['a', 'b']]),
  ...['LogicalNot', 'IsNan', 'IsInf', 'IsFinite'].map((k): [string, string[]] => [k, ['x']]),
];

let registered = false;

/** Registers a zero gradient for each kernel of {@link BOOLEAN_KERNELS} that tfjs has none for (idempotent). */
export function registerZeroGradients(): void {
  if (registered) return;
  registered = true;
  for (const [kernelName, inputs] of BOOLEAN_KERNELS) {
    if (tf.getGradient(kernelName) !== undefined) continue;
    tf.registerGradient({
      kernelName,
      inputsToSave: inputs,
      gradFunc: (_dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => Object.fromEntries(inputs.map((name, i) => [name, () => tf.zeros(saved[i].shape)])),
    });
  }
}
