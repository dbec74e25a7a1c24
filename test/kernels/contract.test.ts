import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { NormkitError } from '../../src/core/errors.js';
import { attrMap, readAttrs, toKernelFuncs, type NormKernelAttrs, type NormKernels } from '../../src/kernels/contract.js';
import { asCPUBackend } from '../../src/kernels/backends/cpu.js';
import { asWasmBackend } from '../../src/kernels/backends/wasm.js';
import { asWebGLBackend } from '../../src/kernels/backends/webgl.js';
import { asWebGPUBackend } from '../../src/kernels/backends/webgpu.js';
import { assertThrowsMentioning } from '../helpers/numeric.js';

const ATTRS: NormKernelAttrs = { kind: 'channels', outer: 2, inner: 3, width: 8, channelsPerGroup: 4, center: true, epsilon: 1e-5, hasGamma: true, hasBeta: false };

describe('fused kernel contract', () => {
  it('attributes survive the trip through tfjs attribute maps', () => {
    assert.deepEqual(readAttrs(attrMap(ATTRS)), ATTRS);
  });

  it('a missing or mistyped attribute is a NormkitError naming it', () => {
    for (const [key, value, expected] of [
      ['kind', 'cols', "'rows' or 'channels'"],
      ['width', '8', 'a finite number'],
      ['epsilon', NaN, 'a finite number'],
      ['center', 1, 'a boolean'],
      ['hasBeta', undefined, 'a boolean'],
    ] as const) {
      const bad: tf.NamedAttrMap = { ...attrMap(ATTRS), [key]: value as unknown as tf.Attribute };
      assert.throws(() => readAttrs(bad), NormkitError);
      assertThrowsMentioning(() => readAttrs(bad), [`'${key}'`, expected]);
    }
  });

  it('a kernel function hands typed inputs and attributes to the backend module, and rejects a missing input', () => {
    const seen: string[] = [];
    const kernels: NormKernels<string> = {
      forward: ({ inputs, attrs, backend }) => {
        seen.push(`${backend} ${attrs.kind} ${inputs.x.shape}`);
        return [inputs.x, inputs.x, inputs.x, inputs.x, inputs.x];
      },
      backward: ({ inputs }) => [inputs.dy, inputs.x, inputs.x],
    };
    const funcs = toKernelFuncs(kernels, (b) => String(b));
    const x: tf.TensorInfo = { dataId: {}, shape: [2, 3], dtype: 'float32' };
    funcs.forward({ inputs: { x, gamma: x, beta: x }, backend: 'B' as unknown as tf.KernelBackend, attrs: attrMap(ATTRS) });
    assert.deepEqual(seen, ['B channels 2,3']);
    assertThrowsMentioning(() => funcs.forward({ inputs: { x, gamma: x }, backend: 'B' as unknown as tf.KernelBackend, attrs: attrMap(ATTRS) }), ["'beta'", 'a tensor']);
  });

  it('each backend module rejects an object that is not its backend', () => {
    for (const narrow of [asCPUBackend, asWasmBackend, asWebGLBackend, asWebGPUBackend]) {
      assert.throws(() => narrow({}), NormkitError);
      assert.throws(() => narrow(null), NormkitError);
    }
  });
});
