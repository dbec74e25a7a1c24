/**
 * The embedded Fashion-MNIST subset, fetched from the page's own origin (copied into the build next to the page),
 * gunzipped with the browser's DecompressionStream and parsed with normkit's IDX parser.
 */
import { parseIdx } from '../../src/lab/data/idx-bytes.js';

/** One split in memory: `images` is `[n, 28, 28]` row-major, values in [0, 1]. */
export interface Split {
  images: Float32Array;
  labels: Int32Array;
  n: number;
  size: number;
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`could not load ${url}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  // Some static hosts serve .gz files with Content-Encoding: gzip, which the browser has already undone.
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function loadSplit(base: string, prefix: 'train' | 't10k'): Promise<Split> {
  const [imageBytes, labelBytes] = await Promise.all([
    fetchBytes(`${base}${prefix}-images-idx3-ubyte.gz`),
    fetchBytes(`${base}${prefix}-labels-idx1-ubyte.gz`),
  ]);
  const images = parseIdx(imageBytes, `${prefix}-images-idx3-ubyte.gz`, 3);
  const labels = parseIdx(labelBytes, `${prefix}-labels-idx1-ubyte.gz`, 1);
  const [n, h, w] = images.dims;
  if (labels.dims[0] !== n) throw new Error(`${prefix}: ${n} images but ${labels.dims[0]} labels`);
  const pixels = new Float32Array(n * h * w);
  for (let i = 0; i < pixels.length; i++) pixels[i] = images.data[i] / 255;
  return { images: pixels, labels: Int32Array.from(labels.data), n, size: h };
}

/** Loads both splits from `base` (a URL folder ending in '/'). */
export async function loadFashionMnist(base: string): Promise<{ train: Split; test: Split }> {
  const [train, test] = await Promise.all([loadSplit(base, 'train'), loadSplit(base, 't10k')]);
  return { train, test };
}
