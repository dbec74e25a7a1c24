/**
 * Input gradient of a 2-D or 3-D convolution (tfjs kernel Conv3DBackpropInputV2; also the forward pass of a
 * transposed convolution). Plain math over Float32Arrays; no tfjs import.
 */
import { layoutStrides, newTaps, readingTaps, type WindowGeometry } from './geometry.js';

/**
 * dx[b, id, ih, iw, ci] = sum over filter taps (kd, kh, kw) and output channels co of
 * dy[b, od, oh, ow, co] * w[kd, kh, kw, ci, co], over the output positions whose window reads x at that
 * place: od = (id + padFront - kd * dilationDepth) / strideDepth when that is a whole number in range
 * (likewise oh, ow). Returns dx, shape [B, inD, inH, inW, inC] (or channels-first).
 *
 * Each dx element is gathered in float64 and written once. Inner loop: the contiguous output channels of
 * one filter row against one dy row; same multiply-add count as the forward convolution.
 */
export function convBackpropInput(dy: Float32Array, w: Float32Array, g: WindowGeometry): Float32Array {
  const { inChannels: inC, outChannels: outC } = g;
  const xs = layoutStrides(g.inDepth, g.inHeight, g.inWidth, inC, g.channelsFirst);
  const ys = layoutStrides(g.outDepth, g.outHeight, g.outWidth, outC, g.channelsFirst);
  const dx = new Float32Array(g.batch * xs.batch);
  const acc = new Float64Array(inC);
  const dyRow = new Float64Array(outC);
  const taps = newTaps(g);
  for (let b = 0; b < g.batch; b++) {
    for (let id = 0; id < g.inDepth; id++) {
      for (let ih = 0; ih < g.inHeight; ih++) {
        for (let iw = 0; iw < g.inWidth; iw++) {
          acc.fill(0);
          readingTaps(g, id, ih, iw, ys, taps);
          for (let t = 0; t < taps.count; t++) {
            const yBase = b * ys.batch + taps.offset[t];
            for (let co = 0; co < outC; co++) dyRow[co] = dy[yBase + co * ys.channel];
            const wBase = taps.tap[t] * inC * outC;
            for (let ci = 0; ci < inC; ci++) {
              const row = wBase + ci * outC;
              let s = 0;
              for (let co = 0; co < outC; co++) s += dyRow[co] * w[row + co];
              acc[ci] += s;
            }
          }
          const xBase = b * xs.batch + id * xs.depth + ih * xs.height + iw * xs.width;
          for (let ci = 0; ci < inC; ci++) dx[xBase + ci * xs.channel] = acc[ci];
        }
      }
    }
  }
  return dx;
}
