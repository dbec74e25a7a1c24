/**
 * Unsorted segment sum (tfjs kernel UnsortedSegmentSum; the gradient of gather, so of Embedding layers).
 * Plain math over typed arrays; no tfjs import.
 */

/**
 * out[s, j] = sum over rows i with segmentIds[i] = s of x[i, j], for s < numSegments; x is viewed as
 * [segmentIds.length, inner] rows. Ids outside [0, numSegments) are dropped, as in TensorFlow. Float sums
 * are kept in float64 and rounded once; int32 sums wrap like int32. Cost: one pass over x.
 */
export function unsortedSegmentSum<T extends Float32Array | Int32Array>(x: T, segmentIds: Int32Array, numSegments: number): T {
  const rows = segmentIds.length;
  const inner = rows === 0 ? 0 : x.length / rows;
  if (x instanceof Int32Array) {
    const out = new Int32Array(numSegments * inner);
    for (let i = 0; i < rows; i++) {
      const s = segmentIds[i];
      if (s < 0 || s >= numSegments) continue;
      const o = s * inner;
      const r = i * inner;
      for (let j = 0; j < inner; j++) out[o + j] = (out[o + j] + x[r + j]) | 0;
    }
    return out as T;
  }
  const acc = new Float64Array(numSegments * inner);
  for (let i = 0; i < rows; i++) {
    const s = segmentIds[i];
    if (s < 0 || s >= numSegments) continue;
    const o = s * inner;
    const r = i * inner;
    for (let j = 0; j < inner; j++) acc[o + j] += x[r + j];
  }
  return Float32Array.from(acc) as T;
}
