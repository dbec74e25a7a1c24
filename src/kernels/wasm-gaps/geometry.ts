/**
 * Geometry of a 1-, 2- or 3-D convolution or pooling window, in plain numbers (no tfjs import), shared by the
 * wasm-gap kernels. A 2-D case has depth 1, filterDepth 1, strideDepth 1, dilationDepth 1 and padFront 0.
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
