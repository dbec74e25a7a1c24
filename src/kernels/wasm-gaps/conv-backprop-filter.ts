/**
 * Filter gradient of a 2-D or 3-D convolution (tfjs kernels Conv2DBackpropFilter, Conv3DBackpropFilterV2).
 * Plain math over Float32Arrays; no tfjs import.
 */
import { layoutStrides, newTaps, windowTaps, type WindowGeometry } from './geometry.js';

/**
 * dW[kd, kh, kw, ci, co] = sum over b, od, oh, ow of x[b, id, ih, iw, ci] * dy[b, od, oh, ow, co],
 * with id = od * strideDepth - padFront + kd * dilationDepth (likewise ih, iw) and positions outside x
 * contributing zero (the padding). Returns the filter gradient, shape [fD, fH, fW, inC, outC].
 *
 * Sums are kept in float64 and rounded once. Loop order: one output position at a time, its dy channels
 * copied to a row, then for each filter tap and block of four input channels an inner loop over the
 * contiguous output channels of four gradient rows: B * outD * outH * outW * fD * fH * fW * inC * outC multiply-adds, the same
 * count as the forward convolution.
 */
export function convBackpropFilter(x: Float32Array, dy: Float32Array, g: WindowGeometry): Float32Array {
  const { inChannels: inC, outChannels: outC, filterDepth: fD, filterHeight: fH, filterWidth: fW } = g;
  const xs = layoutStrides(g.inDepth, g.inHeight, g.inWidth, inC, g.channelsFirst);
  const ys = layoutStrides(g.outDepth, g.outHeight, g.outWidth, outC, g.channelsFirst);
  const dw = new Float64Array(fD * fH * fW * inC * outC);
  const dyRow = new Float64Array(outC);
  const taps = newTaps(g);
  for (let b = 0; b < g.batch; b++) {
    for (let od = 0; od < g.outDepth; od++) {
      for (let oh = 0; oh < g.outHeight; oh++) {
        for (let ow = 0; ow < g.outWidth; ow++) {
          const yBase = b * ys.batch + od * ys.depth + oh * ys.height + ow * ys.width;
          let any = false;
          for (let co = 0; co < outC; co++) {
            const v = dy[yBase + co * ys.channel];
            dyRow[co] = v;
            if (v !== 0) any = true;
          }
          if (!any) continue;
          windowTaps(g, od, oh, ow, xs, taps);
          for (let t = 0; t < taps.count; t++) {
            const xBase = b * xs.batch + taps.offset[t];
            const wBase = taps.tap[t] * inC * outC;
            let ci = 0;
            // Four input channels per pass: each dy value loaded once feeds four filter rows (about 2x).
            for (; ci + 4 <= inC; ci += 4) {
              const xc = xBase + ci * xs.channel;
              const x0 = x[xc];
              const x1 = x[xc + xs.channel];
              const x2 = x[xc + 2 * xs.channel];
              const x3 = x[xc + 3 * xs.channel];
              const r0 = wBase + ci * outC;
              const r1 = r0 + outC;
              const r2 = r1 + outC;
              const r3 = r2 + outC;
              for (let co = 0; co < outC; co++) {
                const d = dyRow[co];
                dw[r0 + co] += x0 * d;
                dw[r1 + co] += x1 * d;
                dw[r2 + co] += x2 * d;
                dw[r3 + co] += x3 * d;
              }
            }
            for (; ci < inC; ci++) {
              const xv = x[xBase + ci * xs.channel];
              const row = wBase + ci * outC;
              for (let co = 0; co < outC; co++) dw[row + co] += xv * dyRow[co];
            }
          }
        }
      }
    }
  }
  return Float32Array.from(dw);
}
