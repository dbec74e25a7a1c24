/**
 * Input gradient of a depthwise 2-D convolution (tfjs kernel DepthwiseConv2dNativeBackpropInput),
 * channels-last. Plain math over Float32Arrays; no tfjs import.
 */
import { layoutStrides, newTaps, readingTaps, type WindowGeometry } from './geometry.js';

/**
 * With multiplier m = outChannels / inChannels:
 * dx[b, ih, iw, ci] = sum over taps (kh, kw) and q < m of dy[b, oh, ow, ci * m + q] * w[kh, kw, ci, q],
 * over the output positions whose window reads x there: oh = (ih + padTop - kh * dilationHeight) /
 * strideHeight when whole and in range (likewise ow). Returns dx, shape [B, inH, inW, inC]. Each element is
 * gathered in float64 and written once; B * inH * inW * fH * fW * inC * m / (strideH * strideW) multiply-adds.
 */
export function depthwiseConv2dBackpropInput(dy: Float32Array, w: Float32Array, g: WindowGeometry): Float32Array {
  const { inChannels: inC, outChannels: outC } = g;
  const m = outC / inC;
  const ys = layoutStrides(1, g.outHeight, g.outWidth, outC, false);
  const dx = new Float32Array(g.batch * g.inHeight * g.inWidth * inC);
  const acc = new Float64Array(inC);
  const taps = newTaps(g);
  for (let b = 0; b < g.batch; b++) {
    for (let ih = 0; ih < g.inHeight; ih++) {
      for (let iw = 0; iw < g.inWidth; iw++) {
        acc.fill(0);
        readingTaps(g, 0, ih, iw, ys, taps);
        for (let t = 0; t < taps.count; t++) {
          const yBase = b * ys.batch + taps.offset[t];
          const wBase = taps.tap[t] * outC;
          for (let ci = 0; ci < inC; ci++) {
            const o = ci * m;
            let s = 0;
            for (let q = 0; q < m; q++) s += dy[yBase + o + q] * w[wBase + o + q];
            acc[ci] += s;
          }
        }
        const xBase = ((b * g.inHeight + ih) * g.inWidth + iw) * inC;
        for (let ci = 0; ci < inC; ci++) dx[xBase + ci] = acc[ci];
      }
    }
  }
  return dx;
}
