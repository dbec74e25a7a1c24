/**
 * The character-level language-modelling corpus: the Book of Genesis, King James Version (public domain), shipped
 * in `data/kjv-genesis.txt` (see data/README.md), encoded as character ids.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NormkitError } from '../../core/errors.js';
import { PACKAGE_ROOT } from './fashion-mnist.js';

/** The shipped corpus. */
export const DEFAULT_TEXT_PATH = join(PACKAGE_ROOT, 'data', 'kjv-genesis.txt');

/** A corpus as ids over a sorted vocabulary, split into a training head and a held-out tail. */
export interface CharCorpus {
  vocab: string[];
  train: Int32Array;
  valid: Int32Array;
  source: string;
}

/**
 * Reads a UTF-8 text file and encodes it by character. The last `validFraction` of the text is held out.
 * Throws naming the file when it is missing or too short to hold a few training windows.
 */
export function loadCharCorpus(path: string = DEFAULT_TEXT_PATH, validFraction = 0.1): CharCorpus {
  if (!existsSync(path)) throw new NormkitError('loadCharCorpus', 'path', 'an existing UTF-8 text file', path);
  const text = readFileSync(path, 'utf8');
  if (text.length < 1000) throw new NormkitError(`text file ${path}`, 'length', 'at least 1000 characters', text.length);
  const vocab = [...new Set(text)].sort();
  const index = new Map(vocab.map((c, i) => [c, i]));
  const ids = Int32Array.from(text, (c) => index.get(c) as number);
  const cut = Math.floor(ids.length * (1 - validFraction));
  return { vocab, train: ids.subarray(0, cut), valid: ids.subarray(cut), source: path };
}

/**
 * Draws `batch` random windows of `length + 1` ids from `ids` with a seeded generator: inputs are the first
 * `length` ids of each window, targets the next-character ids (shifted by one).
 */
export function sampleWindows(ids: Int32Array, batch: number, length: number, random: () => number): { inputs: Int32Array; targets: Int32Array } {
  const inputs = new Int32Array(batch * length);
  const targets = new Int32Array(batch * length);
  for (let b = 0; b < batch; b++) {
    const start = Math.floor(random() * (ids.length - length - 1));
    inputs.set(ids.subarray(start, start + length), b * length);
    targets.set(ids.subarray(start + 1, start + length + 1), b * length);
  }
  return { inputs, targets };
}

/**
 * The unigram cross-entropy (nats per character) of the held-out text under the training text's character
 * frequencies (add-one smoothed): -(1/N) sum_t log p_train(c_t), over `targets` (default: all held-out text; the
 * lab uses the targets of its held-out evaluation windows, so both numbers see the same characters). A language model that predicts no better than
 * this has learned nothing beyond letter frequencies: the "unigram plateau" of a model that failed to train.
 */
export function unigramCrossEntropy(corpus: Pick<CharCorpus, 'train' | 'valid' | 'vocab'>, targets: ArrayLike<number> = corpus.valid): number {
  const counts = new Float64Array(corpus.vocab.length).fill(1);
  for (const id of corpus.train) counts[id]++;
  const total = counts.reduce((a, b) => a + b, 0);
  let sum = 0;
  for (let i = 0; i < targets.length; i++) sum -= Math.log(counts[targets[i]] / total);
  return sum / targets.length;
}
