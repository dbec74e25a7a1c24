/**
 * Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, Zalando; MIT license): 28x28 grey images of 10 clothing classes.
 *
 * Sources, in order: a directory given by the user (`--data DIR`), the Debian package `dataset-fashion-mnist`
 * (`/usr/share/datasets/fashion-mnist`), and the subset shipped in this repository (`data/fashion-mnist-subset`,
 * see its LICENSE note) which is the default.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NormkitError } from '../../core/errors.js';
import { readIdxFile } from './idx.js';

/** Where the Debian package `dataset-fashion-mnist` installs the full set. */
export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The repository root (three levels above this module's compiled folder `dist/src/lab/data`). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** The embedded subset shipped in `data/fashion-mnist-subset`. */
export const EMBEDDED_FASHION_MNIST_DIR = join(PACKAGE_ROOT, 'data', 'fashion-mnist-subset');

/** Class names, by label. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;

/** An image classification set in memory: `images` is `[n, height, width, 1]` row-major, values in [0, 1]. */
export interface ImageSet {
  images: Float32Array;
  labels: Int32Array;
  n: number;
  height: number;
  width: number;
  numClasses: number;
  /** Where it was read from. */
  source: string;
}

function findFile(dir: string, stem: string): string {
  for (const name of [stem, `${stem}.gz`]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new NormkitError('loadFashionMnist', 'dir', `a folder holding ${stem} or ${stem}.gz`, dir);
}

/**
 * Reads one split of Fashion-MNIST from IDX files in `dir` (`train-*` or `t10k-*`, optionally `.gz`), checking
 * magic numbers, sizes, that images and labels agree in count and that labels are in 0..9.
 * `limit` keeps the first `limit` examples.
 */
export function loadFashionMnist(dir: string, split: 'train' | 'test', limit?: number): ImageSet {
  const prefix = split === 'train' ? 'train' : 't10k';
  const imagePath = findFile(dir, `${prefix}-images-idx3-ubyte`);
  const labelPath = findFile(dir, `${prefix}-labels-idx1-ubyte`);
  const images = readIdxFile(imagePath, 3);
  const labels = readIdxFile(labelPath, 1);
  const [count, height, width] = images.dims;
  if (labels.dims[0] !== count) {
    throw new NormkitError(`IDX file ${labelPath}`, 'size', `${count} labels, one per image in ${imagePath}`, labels.dims[0]);
  }
  const n = limit === undefined ? count : Math.min(limit, count);
  const pixels = new Float32Array(n * height * width);
  for (let i = 0; i < pixels.length; i++) pixels[i] = images.data[i] / 255;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = labels.data[i];
    if (label > 9) throw new NormkitError(`IDX file ${labelPath}`, `label ${i}`, 'a class in 0..9', label);
    out[i] = label;
  }
  return { images: pixels, labels: out, n, height, width, numClasses: 10, source: dir };
}

/** The folder to read: the user's, else the embedded subset (`preferFull` picks the Debian set when installed). */
export function resolveFashionMnistDir(userDir: string | undefined, preferFull: boolean): string {
  if (userDir !== undefined) return userDir;
  if (preferFull && existsSync(join(DEBIAN_FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'))) return DEBIAN_FASHION_MNIST_DIR;
  return EMBEDDED_FASHION_MNIST_DIR;
}

/** A new ImageSet holding the examples at `indices`, in that order. */
export function subsetImages(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const size = set.height * set.width;
  const images = new Float32Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    images.set(set.images.subarray(i * size, (i + 1) * size), k * size);
    labels[k] = set.labels[i];
  }
  return { ...set, images, labels, n: indices.length };
}

/**
 * Downsamples images by averaging `factor x factor` blocks (28 -> 14 with factor 2): the quick suite trains on
 * 14x14 images to stay within its time budget on two CPU cores.
 */
export function poolImages(set: ImageSet, factor: number): ImageSet {
  if (factor === 1) return set;
  const h = Math.floor(set.height / factor);
  const w = Math.floor(set.width / factor);
  const out = new Float32Array(set.n * h * w);
  const inv = 1 / (factor * factor);
  for (let n = 0; n < set.n; n++) {
    const base = n * set.height * set.width;
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        let s = 0;
        for (let a = 0; a < factor; a++) {
          for (let b = 0; b < factor; b++) s += set.images[base + (i * factor + a) * set.width + j * factor + b];
        }
        out[n * h * w + i * w + j] = s * inv;
      }
    }
  }
  return { ...set, images: out, height: h, width: w };
}
