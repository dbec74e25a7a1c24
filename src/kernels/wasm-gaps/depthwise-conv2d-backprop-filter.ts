/**
 * Filter gradient of a depthwise 2-D convolution (tfjs kernel DepthwiseConv2dNativeBackpropFilter),
 * channels-last. Plain math over Float32Arrays; no tfjs import.
 */
import { layoutStrides, newTaps, windowTaps, type WindowGeometry } from './geometry.js';

/**
 * With multiplier m = outChannels / inChannels and output channel ci * m + q:
 * dW[kh, kw, ci, q] = sum over b, oh, ow of x[b, ih, iw, ci] * dy[b, oh, ow, ci * m + q],
 * ih = oh * strideHeight - padTop + kh * dilationHeight (likewise iw), zero outside x.
 * Returns the filter gradient, shape [fH, fW, inC, m]. Float64 sums; inner loop over the m contiguous
 * output channels of one input channel: B * outH * outW * fH * fW * inC * m multiply-adds.
 */
export function depthwiseConv2dBackpropFilter(x: Float32Array, dy: Float32Array, g: WindowGeometry): Float32Array {
  const { inChannels: inC, outChannels: outC, filterHeight: fH, filterWidth: fW } = g;
  const m = outC / inC;
  const xs = layoutStrides(1, g.inHeight, g.inWidth, inC, false);
  const dw = new Float64Array(fH * fW * outC);
  const taps = newTaps(g);
  for (let b = 0; b < g.batch; b++) {
    for (let oh = 0; oh < g.outHeight; oh++) {
      for (let ow = 0; ow < g.outWidth; ow++) {
        const yBase = ((b * g.outHeight + oh) * g.outWidth + ow) * outC;
        windowTaps(g, 0, oh, ow, xs, taps);
        for (let t = 0; t < taps.count; t++) {
          const xBase = b * xs.batch + taps.offset[t];
          const wBase = taps.tap[t] * outC;
          for (let ci = 0; ci < inC; ci++) {
            const xv = x[xBase + ci];
            const o = ci * m;
            for (let q = 0; q < m; q++) dw[wBase + o + q] += xv * dy[yBase + o + q];
          }
        }
      }
    }
  }
  return Float32Array.from(dw);
}
