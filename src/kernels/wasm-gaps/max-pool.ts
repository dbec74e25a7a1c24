/**
 * Max pooling forward over a 3-D (or, with depth 1, 2-D) window, channels-last (tfjs kernel MaxPool3D).
 * Plain math over Float32Arrays; no tfjs import.
 */
import { layoutStrides, newTaps, windowTaps, type WindowGeometry } from './geometry.js';

/**
 * y[b, od, oh, ow, c] = max of x[b, id, ih, iw, c] over the window id = od * strideDepth - padFront +
 * kd * dilationDepth (kd < filterDepth; likewise height, width), clipped to x so padding never wins.
 * NaN inputs are skipped and an all-NaN window gives -Infinity, as in tfjs's cpu kernel. Returns y, shape
 * [B, outD, outH, outW, C]. Channels innermost (contiguous): B * outD * outH * outW * window * C compares.
 */
export function maxPool(x: Float32Array, g: WindowGeometry): Float32Array {
  const C = g.inChannels;
  const y = new Float32Array(g.batch * g.outDepth * g.outHeight * g.outWidth * C).fill(-Infinity);
  const xs = layoutStrides(g.inDepth, g.inHeight, g.inWidth, C, false);
  const taps = newTaps(g);
  let yBase = 0;
  for (let b = 0; b < g.batch; b++) {
    for (let od = 0; od < g.outDepth; od++) {
      for (let oh = 0; oh < g.outHeight; oh++) {
        for (let ow = 0; ow < g.outWidth; ow++, yBase += C) {
          windowTaps(g, od, oh, ow, xs, taps);
          for (let t = 0; t < taps.count; t++) {
            const base = b * xs.batch + taps.offset[t];
            for (let c = 0; c < C; c++) {
              const v = x[base + c];
              if (v > y[yBase + c]) y[yBase + c] = v;
            }
          }
        }
      }
    }
  }
  return y;
}
