/**
 * Geometry of a 1-, 2- or 3-D convolution or pooling window, in plain numbers (no tfjs import), shared by the
 * wasm-gap kernels, with the one enumeration of a window's in-range taps (forward: windowTaps; transposed:
 * readingTaps). A 2-D case has depth 1, filterDepth 1, strideDepth 1, dilationDepth 1 and padFront 0.
 */
export interface WindowGeometry {
  batch: number;
  inDepth: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outDepth: number;
  outHeight: number;
  outWidth: number;
  /** Output channels (for pooling: equal to inChannels; for depthwise: inChannels * multiplier). */
  outChannels: number;
  filterDepth: number;
  filterHeight: number;
  filterWidth: number;
  strideDepth: number;
  strideHeight: number;
  strideWidth: number;
  dilationDepth: number;
  dilationHeight: number;
  dilationWidth: number;
  /** Padding before the first element along depth, height and width. */
  padFront: number;
  padTop: number;
  padLeft: number;
  /** Channels-first (NCHW / NCDHW) layout of x and dy; the filter is always [fD, fH, fW, inC, outC]. */
  channelsFirst: boolean;
}

/** Element strides of a [batch, depth, height, width, channels] tensor in either layout. */
export interface LayoutStrides {
  batch: number;
  depth: number;
  height: number;
  width: number;
  channel: number;
}

/** Strides of a tensor with the given spatial sizes and channels, channels-last or channels-first. */
export function layoutStrides(depth: number, height: number, width: number, channels: number, channelsFirst: boolean): LayoutStrides {
  const spatial = depth * height * width;
  if (channelsFirst) {
    return { batch: spatial * channels, depth: height * width, height: width, width: 1, channel: spatial };
  }
  return { batch: spatial * channels, depth: height * width * channels, height: width * channels, width: channels, channel: 1 };
}

/** Element strides along depth, height and width (a {@link LayoutStrides} fits). */
export type SpatialStrides = Pick<LayoutStrides, 'depth' | 'height' | 'width'>;

/**
 * The in-range taps of one window, in scan order (kd, kh, kw): `tap[t]` is the filter-tap index
 * (kd * filterHeight + kh) * filterWidth + kw, `offset[t]` the spatial element offset of the position it
 * pairs with. Only the first `count` entries are valid. Allocate once with {@link newTaps}, refill per window.
 */
export interface Taps {
  count: number;
  readonly tap: Int32Array;
  readonly offset: Int32Array;
}

/** Room for every tap of a window of `g`. */
export function newTaps(g: WindowGeometry): Taps {
  const n = g.filterDepth * g.filterHeight * g.filterWidth;
  return { count: 0, tap: new Int32Array(n), offset: new Int32Array(n) };
}

/**
 * The window of output (od, oh, ow), clipped to x: tap (kd, kh, kw) reads id = od * strideDepth - padFront +
 * kd * dilationDepth (likewise ih, iw) when 0 <= id < inDepth (likewise height, width); its offset is
 * id * s.depth + ih * s.height + iw * s.width (x strides). Fills `into` and returns it.
 */
export function windowTaps(g: WindowGeometry, od: number, oh: number, ow: number, s: SpatialStrides, into: Taps): Taps {
  let n = 0;
  for (let kd = 0; kd < g.filterDepth; kd++) {
    const id = od * g.strideDepth - g.padFront + kd * g.dilationDepth;
    if (id < 0 || id >= g.inDepth) continue;
    for (let kh = 0; kh < g.filterHeight; kh++) {
      const ih = oh * g.strideHeight - g.padTop + kh * g.dilationHeight;
      if (ih < 0 || ih >= g.inHeight) continue;
      for (let kw = 0; kw < g.filterWidth; kw++) {
        const iw = ow * g.strideWidth - g.padLeft + kw * g.dilationWidth;
        if (iw < 0 || iw >= g.inWidth) continue;
        into.tap[n] = (kd * g.filterHeight + kh) * g.filterWidth + kw;
        into.offset[n++] = id * s.depth + ih * s.height + iw * s.width;
      }
    }
  }
  into.count = n;
  return into;
}

/**
 * The windows that read input (id, ih, iw): tap (kd, kh, kw) belongs to output od = (id + padFront -
 * kd * dilationDepth) / strideDepth when that is a whole number in [0, outDepth) (likewise oh, ow); its
 * offset is od * s.depth + oh * s.height + ow * s.width (dy strides). Fills `into` and returns it.
 */
export function readingTaps(g: WindowGeometry, id: number, ih: number, iw: number, s: SpatialStrides, into: Taps): Taps {
  let n = 0;
  for (let kd = 0; kd < g.filterDepth; kd++) {
    const td = id + g.padFront - kd * g.dilationDepth;
    if (td < 0 || td % g.strideDepth !== 0) continue;
    const od = td / g.strideDepth;
    if (od >= g.outDepth) continue;
    for (let kh = 0; kh < g.filterHeight; kh++) {
      const th = ih + g.padTop - kh * g.dilationHeight;
      if (th < 0 || th % g.strideHeight !== 0) continue;
      const oh = th / g.strideHeight;
      if (oh >= g.outHeight) continue;
      for (let kw = 0; kw < g.filterWidth; kw++) {
        const tw = iw + g.padLeft - kw * g.dilationWidth;
        if (tw < 0 || tw % g.strideWidth !== 0) continue;
        const ow = tw / g.strideWidth;
        if (ow >= g.outWidth) continue;
        into.tap[n] = (kd * g.filterHeight + kh) * g.filterWidth + kw;
        into.offset[n++] = od * s.depth + oh * s.height + ow * s.width;
      }
    }
  }
  into.count = n;
  return into;
}
