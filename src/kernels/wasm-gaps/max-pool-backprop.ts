/**
 * Gradient of 2-D and 3-D max pooling (tfjs kernels MaxPoolGrad, MaxPool3DGrad), channels-last. Plain math
 * over Float32Arrays; no tfjs import.
 */
import { layoutStrides, newTaps, windowTaps, type WindowGeometry } from './geometry.js';

/**
 * Which element of a window gets the gradient when several hold the maximum: tfjs's cpu kernels take the
 * first in scan order (depth, row, column) for 2-D pooling and the last for 3-D pooling; both are followed
 * so that wasm and cpu train alike.
 */
export type MaxTie = 'first' | 'last';

/**
 * dx[argmax of each window] += dy[window], per batch and channel. The window of output (od, oh, ow) covers
 * input rows od * strideDepth - padFront + kd * dilationDepth for kd < filterDepth (likewise height, width),
 * clipped to x (padding never wins). A window with no element above -Infinity under the tie rule (all NaN)
 * passes no gradient, as on cpu. Returns dx, the shape of x.
 *
 * Loop order: for each output position the window's taps are scanned with the channels innermost
 * (contiguous), keeping the running maximum per channel; cost B * outD * outH * outW * window * C compares.
 */
export function maxPoolBackprop(x: Float32Array, dy: Float32Array, g: WindowGeometry, ties: MaxTie): Float32Array {
  const C = g.inChannels;
  const dx = new Float32Array(x.length);
  const best = new Float64Array(C);
  const bestAt = new Int32Array(C);
  const last = ties === 'last';
  const xs = layoutStrides(g.inDepth, g.inHeight, g.inWidth, C, false);
  const taps = newTaps(g);
  for (let b = 0; b < g.batch; b++) {
    for (let od = 0; od < g.outDepth; od++) {
      for (let oh = 0; oh < g.outHeight; oh++) {
        for (let ow = 0; ow < g.outWidth; ow++) {
          best.fill(-Infinity);
          bestAt.fill(-1);
          windowTaps(g, od, oh, ow, xs, taps);
          for (let t = 0; t < taps.count; t++) {
            const base = b * xs.batch + taps.offset[t];
            if (last) {
              for (let c = 0; c < C; c++) {
                const v = x[base + c];
                if (v >= best[c]) {
                  best[c] = v;
                  bestAt[c] = base + c;
                }
              }
            } else {
              for (let c = 0; c < C; c++) {
                const v = x[base + c];
                if (v > best[c]) {
                  best[c] = v;
                  bestAt[c] = base + c;
                }
              }
            }
          }
          const yBase = (((b * g.outDepth + od) * g.outHeight + oh) * g.outWidth + ow) * C;
          for (let c = 0; c < C; c++) {
            if (bestAt[c] >= 0) dx[bestAt[c]] += dy[yBase + c];
          }
        }
      }
    }
  }
  return dx;
}
