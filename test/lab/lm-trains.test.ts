import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as nk from '../../src/lab/index.js';
import { buildTransformerLM, useBackend } from '../../src/index.js';
import { lmOutcome, UNIGRAM_MARGIN } from '../../src/lab/experiments/common.js';
import { DYT_RECIPE } from '../../src/lab/experiments/language.js';
import type { TransformerLMConfig } from '../../src/models/transformer.js';

/** Unigram cross-entropy computed here from counts, independently of the lab's helper. */
function unigramByHand(train: Int32Array, valid: Int32Array, vocab: number): number {
  const counts = new Map<number, number>();
  for (const id of train) counts.set(id, (counts.get(id) ?? 0) + 1);
  const total = train.length + vocab;
  let nats = 0;
  for (const id of valid) nats += -Math.log(((counts.get(id) ?? 0) + 1) / total);
  return nats / valid.length;
}

// Every Transformer the lab trains, at a small fixed budget: each must leave the unigram plateau.
const VARIANTS: Array<[string, Omit<TransformerLMConfig, 'vocabSize' | 'seqLen' | 'dModel' | 'heads' | 'layers' | 'seed'>]> = [
  ['Post-LN (Xavier)', { norm: 'layer', placement: 'post', init: 'xavier' }],
  ['Pre-LN (Xavier)', { norm: 'layer', placement: 'pre', init: 'xavier' }],
  ['Peri-LN (Xavier)', { norm: 'layer', placement: 'peri', init: 'xavier' }],
  ['DeepNorm (Xavier)', { norm: 'layer', placement: 'deepnorm', init: 'xavier' }],
  ['Pre-LN (GPT-2 init)', { norm: 'layer', placement: 'pre' }],
  ['Pre-RMSNorm (GPT-2 init)', { norm: 'rms', placement: 'pre' }],
  ['Pre-DyT (its recipe)', { norm: 'dyt', placement: 'pre', ...DYT_RECIPE }],
];

describe('lab language models train', () => {
  let corpus: nk.CharCorpus;
  before(async () => {
    await useBackend('wasm');
    corpus = nk.loadCharCorpus();
  });

  it('the unigram cross-entropy matches a count by hand', () => {
    const u = nk.unigramCrossEntropy(corpus);
    assert.ok(Math.abs(u - unigramByHand(corpus.train, corpus.valid, corpus.vocab.length)) < 1e-9);
    const held = nk.heldOutWindows(corpus.valid, 16, 16).targets;
    assert.ok(Math.abs(nk.unigramCrossEntropy(corpus, held) - unigramByHand(corpus.train, held, corpus.vocab.length)) < 1e-9);
    assert.ok(u > 2.5 && u < 3.5, `${u}`);
  });

  it('outcomes: diverged, failed to train (on the unigram plateau), trained', () => {
    assert.equal(lmOutcome({ diverged: true, final: NaN }, 3), 'diverged');
    assert.equal(lmOutcome({ diverged: false, final: 3 - UNIGRAM_MARGIN / 2 }, 3), 'failed to train');
    assert.equal(lmOutcome({ diverged: false, final: 3.2 }, 3), 'failed to train');
    assert.equal(lmOutcome({ diverged: false, final: 2.5 }, 3), 'trained');
  });

  for (const [name, config] of VARIANTS) {
    it(`${name}: held-out loss below the unigram level within 150 steps, no leaked tensors`, async () => {
      const unigram = nk.unigramCrossEntropy(corpus, nk.heldOutWindows(corpus.valid, 16, 32).targets);
      const model = buildTransformerLM({ ...config, vocabSize: corpus.vocab.length, seqLen: 32, dModel: 32, heads: 2, layers: 2, seed: 7 });
      const optimizer = tf.train.adam(3e-3);
      const before = tf.memory().numTensors;
      const result = await nk.trainLanguageModel({
        forward: (ids, training) => model.apply(ids, { training }) as tf.Tensor3D,
        vars: nk.trainableVariables(model), vocabSize: corpus.vocab.length, trainIds: corpus.train, validIds: corpus.valid,
        steps: 150, batchSize: 16, length: 32, optimizer, seed: 1, evalEvery: 50, finalEvals: 1,
      });
      // Adam's moment slots are created on the first step; nothing else may stay behind.
      const slots = nk.trainableVariables(model).length * 2;
      assert.ok(tf.memory().numTensors - before <= slots + 2, `leaked ${tf.memory().numTensors - before - slots}`);
      optimizer.dispose();
      model.dispose();
      assert.equal(result.diverged, false);
      assert.ok(result.final < unigram - UNIGRAM_MARGIN, `${name}: held-out ${result.final.toFixed(3)} vs unigram ${unigram.toFixed(3)}`);
      assert.equal(lmOutcome(result, unigram), 'trained');
    });
  }
});
