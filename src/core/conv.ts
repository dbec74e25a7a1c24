/**
 * Stride-1 'same' 2-D convolution that can be trained on every backend. tfjs-backend-wasm 4.22 has no
 * Conv2DBackpropFilter kernel, so `tf.conv2d` cannot learn its kernel there; on such a backend the
 * convolution runs as an im2col composite (shifted slices, one concat, one matMul), whose gradients only
 * need slice, pad, concat and matMul.
 */
import * as tf from '@tensorflow/tfjs-core';

/** True when the active backend can differentiate `tf.conv2d` with respect to input and kernel. */
export function conv2dTrainable(): boolean {
  const backend = tf.getBackend();
  return tf.getKernel('Conv2DBackpropFilter', backend) !== undefined && tf.getKernel('Conv2DBackpropInput', backend) !== undefined;
}

/**
 * `y[n, i, j, o] = sum_{a, b, c} x[n, i + a - p, j + b - p, c] * kernel[a, b, c, o]` with p = (k - 1) / 2 and
 * zeros outside x (cross-correlation, as tf.conv2d and PyTorch's Conv2d with padding p). `x` is
 * `[N, H, W, Ci]`, `kernel` `[k, k, Ci, Co]` with k odd. Differentiable in both on every backend.
 */
export function conv2dSame(x: tf.Tensor4D, kernel: tf.Tensor4D): tf.Tensor4D {
  if (conv2dTrainable()) return tf.conv2d(x, kernel, 1, 'same');
  return conv2dSameComposite(x, kernel);
}

/** The im2col composite of {@link conv2dSame}, used where tf.conv2d cannot be trained. */
export function conv2dSameComposite(x: tf.Tensor4D, kernel: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, ci] = x.shape;
    const [k, , , co] = kernel.shape;
    const p = (k - 1) / 2;
    const padded = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]);
    const patches: tf.Tensor[] = [];
    for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) patches.push(tf.slice(padded, [0, a, b, 0], [n, h, w, ci]));
    // Column order (a, b, c) matches the row-major flattening of kernel [k, k, Ci, Co] to [k*k*Ci, Co].
    const columns = tf.reshape(tf.concat(patches, 3), [n * h * w, k * k * ci]);
    return tf.reshape(tf.matMul(columns, tf.reshape(kernel, [k * k * ci, co])), [n, h, w, co]) as tf.Tensor4D;
  });
}
