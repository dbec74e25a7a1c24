/**
 * Records reads of tensor values back to the host: a layer's training step must not make any (on webgl and
 * webgpu each one waits for the GPU to finish all queued work).
 */
import * as tf from '@tensorflow/tfjs-core';

type Methods = Record<string, unknown>;

/**
 * Runs `fn` with Tensor.dataSync / arraySync / data / array / bytes and the engine's readSync / read (through
 * which every read of a tensor's values reaches the backend) wrapped by a recorder, and returns what `fn` returned with the list of the reads it made (e.g.
 * 'backend.readSync'); the originals are restored afterwards, also when `fn` throws.
 */
export function recordReadBacks<T>(fn: () => T): { result: T; reads: string[] } {
  const reads: string[] = [];
  const restore: Array<() => void> = [];
  const wrap = (target: Methods, name: string, label: string) => {
    const original = target[name];
    if (typeof original !== 'function') return;
    const own = Object.prototype.hasOwnProperty.call(target, name);
    target[name] = function (this: unknown, ...args: unknown[]) {
      reads.push(label);
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    };
    restore.push(() => {
      if (own) target[name] = original;
      else delete target[name];
    });
  };
  for (const name of ['dataSync', 'arraySync', 'data', 'array', 'bytes']) wrap(tf.Tensor.prototype as unknown as Methods, name, `Tensor.${name}`);
  // The engine, not the backend: the cpu backend's kernels read their own host memory through backend.readSync.
  const engine = tf.engine() as unknown as Methods;
  wrap(engine, 'readSync', 'engine.readSync');
  wrap(engine, 'read', 'engine.read');
  try {
    return { result: fn(), reads };
  } finally {
    for (const undo of restore.reverse()) undo();
  }
}
