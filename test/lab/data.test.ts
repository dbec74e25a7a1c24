import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as nk from '../../src/lab/index.js';

/** IDX bytes built by hand (independent of encodeIdx): magic 00 00 08 rank, big-endian sizes, data. */
function handIdx(dims: number[], data: number[]): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(data)]);
}

describe('IDX files', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'normkit-idx-'));
  });

  it('reads a good file, plain and gzip-compressed', () => {
    const data = Array.from({ length: 2 * 3 * 2 }, (_, i) => (i * 37) % 256);
    writeFileSync(join(dir, 'a.idx'), handIdx([2, 3, 2], data));
    writeFileSync(join(dir, 'a.idx.gz'), gzipSync(handIdx([2, 3, 2], data)));
    for (const name of ['a.idx', 'a.idx.gz']) {
      const idx = nk.readIdxFile(join(dir, name), 3);
      assert.deepEqual(idx.dims, [2, 3, 2]);
      assert.deepEqual([...idx.data], data);
    }
  });

  it('encodeIdx writes what a hand-built header says', () => {
    const data = Uint8Array.from([1, 2, 3, 4, 5, 6]);
    assert.deepEqual(Buffer.from(nk.encodeIdx([3, 2], data)), handIdx([3, 2], [...data]));
  });

  it('rejects a bad magic number, naming the file', () => {
    const bytes = handIdx([2], [1, 2]);
    bytes[2] = 0x0d; // float32 type: not an unsigned-byte file
    const path = join(dir, 'bad-magic.idx');
    writeFileSync(path, bytes);
    assert.throws(() => nk.readIdxFile(path), (e: Error) => e instanceof nk.NormkitError && e.message.includes(path) && e.message.includes('magic number'));
  });

  it('rejects a truncated file, naming the file and the sizes', () => {
    const path = join(dir, 'truncated.idx');
    writeFileSync(path, handIdx([4, 2, 2], Array.from({ length: 16 }, (_, i) => i)).subarray(0, 4 + 12 + 10));
    assert.throws(() => nk.readIdxFile(path), (e: Error) => e instanceof nk.NormkitError && e.message.includes(path) && e.message.includes('truncated') && e.message.includes('16 data bytes'));
    const header = join(dir, 'short-header.idx');
    writeFileSync(header, handIdx([4, 2, 2], []).subarray(0, 9));
    assert.throws(() => nk.readIdxFile(header), /truncated/);
  });

  it('rejects a damaged gzip stream and a wrong rank', () => {
    const path = join(dir, 'damaged.idx.gz');
    writeFileSync(path, gzipSync(handIdx([2], [1, 2])).subarray(0, 15));
    assert.throws(() => nk.readIdxFile(path), (e: Error) => e instanceof nk.NormkitError && e.message.includes(path) && e.message.includes('gzip'));
    writeFileSync(join(dir, 'labels.idx'), handIdx([2], [1, 2]));
    assert.throws(() => nk.readIdxFile(join(dir, 'labels.idx'), 3), /rank/);
    assert.throws(() => nk.readIdxFile(join(dir, 'missing.idx')), /existing IDX file/);
  });

  it('loadFashionMnist checks that labels match images and are classes 0..9', () => {
    const d = mkdtempSync(join(tmpdir(), 'normkit-fm-'));
    writeFileSync(join(d, 't10k-images-idx3-ubyte'), handIdx([2, 2, 2], [0, 255, 0, 255, 10, 20, 30, 40]));
    writeFileSync(join(d, 't10k-labels-idx1-ubyte'), handIdx([3], [1, 2, 3]));
    assert.throws(() => nk.loadFashionMnist(d, 'test'), /2 labels/);
    writeFileSync(join(d, 't10k-labels-idx1-ubyte'), handIdx([2], [1, 12]));
    assert.throws(() => nk.loadFashionMnist(d, 'test'), /class in 0\.\.9/);
    writeFileSync(join(d, 't10k-labels-idx1-ubyte'), handIdx([2], [1, 9]));
    const set = nk.loadFashionMnist(d, 'test');
    assert.deepEqual([...set.images], [0, 1, 0, 1, 10 / 255, 20 / 255, 30 / 255, 40 / 255].map(Math.fround));
    assert.deepEqual([...set.labels], [1, 9]);
    assert.throws(() => nk.loadFashionMnist(d, 'train'), /train-images-idx3-ubyte/);
  });

  it('the embedded subset is 3,000 + 1,000 balanced 28x28 images', () => {
    const train = nk.loadFashionMnist(nk.EMBEDDED_FASHION_MNIST_DIR, 'train');
    const test = nk.loadFashionMnist(nk.EMBEDDED_FASHION_MNIST_DIR, 'test');
    assert.equal(train.n, 3000);
    assert.equal(test.n, 1000);
    assert.equal(train.height, 28);
    const counts = new Array(10).fill(0);
    for (const l of train.labels) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(300));
    assert.ok(readFileSync(join(nk.EMBEDDED_FASHION_MNIST_DIR, 'LICENSE'), 'utf8').includes('Zalando'));
  });
});

describe('image transforms', () => {
  const set: nk.ImageSet = {
    images: Float32Array.from({ length: 2 * 4 * 4 }, (_, i) => (i % 16) / 15), labels: Int32Array.from([3, 4]),
    n: 2, height: 4, width: 4, numClasses: 10, source: 'test',
  };

  it('poolImages averages 2x2 blocks', () => {
    const pooled = nk.poolImages(set, 2);
    assert.deepEqual([pooled.height, pooled.width], [2, 2]);
    // Top-left block of image 0: pixels 0, 1, 4, 5 (over 15).
    assert.ok(Math.abs(pooled.images[0] - (0 + 1 + 4 + 5) / 4 / 15) < 1e-7);
    assert.ok(Math.abs(pooled.images[3] - (10 + 11 + 14 + 15) / 4 / 15) < 1e-7);
  });

  it('corruptions are seeded, stay in range and change the images', () => {
    for (const kind of nk.CORRUPTIONS) {
      const a = nk.corruptImages(set, kind, 3, 7);
      const b = nk.corruptImages(set, kind, 3, 7);
      assert.deepEqual([...a.images], [...b.images], kind);
      assert.ok(a.images.every((v) => v >= 0 && v <= 1), kind);
      assert.ok(a.images.some((v, i) => Math.abs(v - set.images[i]) > 1e-3), kind);
    }
    // Contrast keeps each image's mean (x - m) * c + m.
    const c = nk.corruptImages(set, 'contrast', 5, 0);
    const mean = (arr: Float32Array) => arr.subarray(0, 16).reduce((s, v) => s + v, 0) / 16;
    assert.ok(Math.abs(mean(c.images) - mean(set.images)) < 1e-6);
    assert.throws(() => nk.corruptImages(set, 'fog' as nk.Corruption, 1, 0), /'noise', 'blur', 'contrast'/);
    assert.throws(() => nk.corruptImages(set, 'noise', 6, 0), /1\.\.5/);
  });

  it('the char corpus encodes and round-trips', () => {
    const corpus = nk.loadCharCorpus();
    assert.ok(corpus.vocab.length > 30 && corpus.vocab.length < 100);
    const text = [...corpus.train.subarray(0, 16)].map((i) => corpus.vocab[i]).join('');
    assert.equal(text, 'In the beginning');
    const { inputs, targets } = nk.sampleWindows(corpus.train, 2, 8, nk.seededRandom(1));
    assert.deepEqual([...inputs.subarray(1, 8)], [...targets.subarray(0, 7)]);
  });
});
