/**
 * Input gradient of a depthwise 2-D convolution (tfjs kernel DepthwiseConv2dNativeBackpropInput),
 * channels-last. Plain math over Float32Arrays; no tfjs import.
 */
import type { WindowGeometry } from './geometry.js';

/**
 * With multiplier m = outChannels / inChannels:
 * dx[b, ih, iw, ci] = sum over taps (kh, kw) and q < m of dy[b, oh, ow, ci * m + q] * w[kh, kw, ci, q],
 * over the output positions whose window reads x there: oh = (ih + padTop - kh * dilationHeight) /
 * strideHeight when whole and in range (likewise ow). Returns dx, shape [B, inH, inW, inC]. Each element is
 * gathered in float64 and written once; B * inH * inW * fH * fW * inC * m / (strideH * strideW) multiply-adds.
 */
export function depthwiseConv2dBackpropInput(dy: Float32Array, w: Float32Array, g: WindowGeometry): Float32Array {
  const { inChannels: inC, outChannels: outC, filterHeight: fH, filterWidth: fW } = g;
  const m = outC / inC;
  const dx = new Float32Array(g.batch * g.inHeight * g.inWidth * inC);
  const acc = new Float64Array(inC);
  for (let b = 0; b < g.batch; b++) {
    for (let ih = 0; ih < g.inHeight; ih++) {
      for (let iw = 0; iw < g.inWidth; iw++) {
        acc.fill(0);
        for (let kh = 0; kh < fH; kh++) {
          const th = ih + g.padTop - kh * g.dilationHeight;
          if (th < 0 || th % g.strideHeight !== 0) continue;
          const oh = th / g.strideHeight;
          if (oh >= g.outHeight) continue;
          for (let kw = 0; kw < fW; kw++) {
            const tw = iw + g.padLeft - kw * g.dilationWidth;
            if (tw < 0 || tw % g.strideWidth !== 0) continue;
            const ow = tw / g.strideWidth;
            if (ow >= g.outWidth) continue;
            const yBase = ((b * g.outHeight + oh) * g.outWidth + ow) * outC;
            const wBase = (kh * fW + kw) * outC;
            for (let ci = 0; ci < inC; ci++) {
              const o = ci * m;
              let s = 0;
              for (let q = 0; q < m; q++) s += dy[yBase + o + q] * w[wBase + o + q];
              acc[ci] += s;
            }
          }
        }
        const xBase = ((b * g.inHeight + ih) * g.inWidth + iw) * inC;
        for (let ci = 0; ci < inC; ci++) dx[xBase + ci] = acc[ci];
      }
    }
  }
  return dx;
}
