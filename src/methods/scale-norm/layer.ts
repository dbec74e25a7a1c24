/**
 * ScaleNorm layer and FixNormEmbedding (an embedding whose rows are l2-normalized), over {@link scaleNorm}
 * and {@link fixNorm}.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkInteger, checkPositive, FLOAT32_MAX } from '../../core/checks.js';
import { NormkitError } from '../../core/errors.js';
import { firstInputShape, NormkitLayer, singleInput } from '../../core/norm-layer.js';
import { registerNorm } from '../../core/registry.js';
import { registerLayerClass, resolveInitializer, serializeObject } from '../../core/serialization.js';
import { fixNorm, scaleNorm } from './op.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;
type LayerVariable = tfl.LayerVariable;

/** Arguments of {@link ScaleNorm}. */
export interface ScaleNormArgs extends LayerArgs {
  /** Norm clamp (default 1e-5). */
  epsilon?: number;
  /** Initial g (default null: sqrt(d) of the input's last axis, the paper's init). */
  gInitValue?: number | null;
}

/** ScaleNorm on the last axis: `g * x / max(||x||_2, eps)` with one learned scalar g (weight `g`, shape [1]). */
export class ScaleNorm extends NormkitLayer {
  static className = 'ScaleNorm';
  static override argKeys: readonly string[] = ['epsilon', 'gInitValue'];
  readonly epsilon: number;
  readonly gInitValue: number | null;
  private g: LayerVariable | null = null;

  constructor(args: ScaleNormArgs = {}) {
    super(args);
    this.epsilon = args.epsilon ?? 1e-5;
    checkPositive('ScaleNorm', 'epsilon', this.epsilon);
    this.gInitValue = args.gInitValue ?? null;
    if (this.gInitValue !== null && (typeof this.gInitValue !== 'number' || !(Math.abs(this.gInitValue) <= FLOAT32_MAX))) {
      throw new NormkitError('ScaleNorm', 'gInitValue', 'a finite number or null (sqrt(d))', this.gInitValue);
    }
    this.supportsMasking = true;
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = firstInputShape(inputShape);
    const d = shape[shape.length - 1];
    if (d == null) throw new NormkitError('ScaleNorm', 'inputShape', 'a known last-axis size', shape);
    const init = this.gInitValue ?? Math.sqrt(d);
    this.g = this.addWeight('g', [1], 'float32', tfl.initializers.constant({ value: init }), undefined, true);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => scaleNorm(singleInput(inputs), { g: (this.g as LayerVariable).read(), epsilon: this.epsilon }));
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon, gInitValue: this.gInitValue };
  }
}

/** Largest embedding table accepted (values): 2^30 float32 values are 4 GiB, beyond what tfjs allocates. */
export const MAX_TABLE_SIZE = 2 ** 30;

/** Arguments of {@link FixNormEmbedding}. */
export interface FixNormEmbeddingArgs extends LayerArgs {
  /** Vocabulary size V. */
  inputDim: number;
  /** Embedding width d. */
  outputDim: number;
  /** Multiplies the unit rows after lookup (default null: sqrt(d), as the reference code). */
  scale?: number | null;
  /** Norm clamp (default 1e-12). */
  epsilon?: number;
  /** Table initializer (default uniform in [-0.01, 0.01], the reference's init with FixNorm). */
  embeddingsInitializer?: unknown;
}

/**
 * FixNorm word embedding: `scale * E_hat[ids]` with `E_hat = fixNorm(E)` (each row of the [V, d] table
 * l2-normalized), scale = sqrt(d) by default. {@link FixNormEmbedding.normalizedEmbeddings} gives E_hat for a
 * tied output projection (logits = h E_hat^T). Input: token ids (any shape), output: ids.shape + [d].
 */
export class FixNormEmbedding extends NormkitLayer {
  static className = 'FixNormEmbedding';
  /** Token ids: int32 (or float32 holding integers). */
  static override anyInputDType = true;
  static override argKeys: readonly string[] = ['inputDim', 'outputDim', 'scale', 'epsilon', 'embeddingsInitializer'];
  readonly inputDim: number;
  readonly outputDim: number;
  readonly scale: number | null;
  readonly epsilon: number;
  private readonly embeddingsInitializer;
  private embeddings: LayerVariable | null = null;

  constructor(args: FixNormEmbeddingArgs) {
    super(args);
    const where = 'FixNormEmbedding';
    if (args === undefined || args === null) throw new NormkitError(where, 'args', 'an object with inputDim and outputDim', args);
    checkInteger(where, 'inputDim', args.inputDim, 1, MAX_TABLE_SIZE);
    checkInteger(where, 'outputDim', args.outputDim, 1, MAX_TABLE_SIZE);
    if (args.inputDim * args.outputDim > MAX_TABLE_SIZE) {
      throw new NormkitError(where, 'inputDim', `a table of at most ${MAX_TABLE_SIZE} values with outputDim ${args.outputDim}`, args.inputDim);
    }
    this.inputDim = args.inputDim;
    this.outputDim = args.outputDim;
    this.scale = args.scale ?? null;
    if (this.scale !== null && (typeof this.scale !== 'number' || !(Math.abs(this.scale) <= FLOAT32_MAX))) {
      throw new NormkitError(where, 'scale', 'a finite number or null (sqrt(outputDim))', this.scale);
    }
    this.epsilon = args.epsilon ?? 1e-12;
    checkPositive(where, 'epsilon', this.epsilon);
    this.embeddingsInitializer = resolveInitializer(where, 'embeddingsInitializer', args.embeddingsInitializer ?? tfl.initializers.randomUniform({ minval: -0.01, maxval: 0.01 }), 'zeros');
  }

  override build(): void {
    this.embeddings = this.addWeight('embeddings', [this.inputDim, this.outputDim], 'float32', this.embeddingsInitializer, undefined, true);
    this.built = true;
  }

  /** The row-normalized table E_hat [V, d] (a new tensor, differentiable in the embeddings). */
  normalizedEmbeddings(): tf.Tensor {
    if (!this.embeddings) throw new NormkitError('FixNormEmbedding', 'layer', 'built (call it or build it first)', 'an unbuilt layer');
    return fixNorm(this.embeddings.read(), { epsilon: this.epsilon });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const ids = tf.cast(singleInput(inputs), 'int32');
      const table = fixNorm((this.embeddings as LayerVariable).read(), { epsilon: this.epsilon, scale: this.scale ?? Math.sqrt(this.outputDim) });
      return tf.reshape(tf.gather(table, tf.reshape(ids, [-1])), [...ids.shape, this.outputDim]);
    });
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    const shape = firstInputShape(inputShape);
    return [...shape, this.outputDim];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(), inputDim: this.inputDim, outputDim: this.outputDim, scale: this.scale, epsilon: this.epsilon,
      embeddingsInitializer: serializeObject(this.embeddingsInitializer) as unknown as tf.serialization.ConfigDictValue,
    };
  }
}

registerLayerClass(ScaleNorm);
registerLayerClass(FixNormEmbedding);

const TEARS = 'Nguyen & Salazar, "Transformers without Tears: Improving the Normalization of Self-Attention", IWSLT 2019 (arXiv 1910.05895)';

registerNorm({
  name: 'scale',
  aliases: ['scalenorm', 'ScaleNorm'],
  kind: 'activation',
  description: 'Scales each vector to norm g: g * x / max(||x||, eps), one learned scalar g (init sqrt(d)).',
  paper: TEARS,
  layerClass: 'ScaleNorm',
  create: (config) => new ScaleNorm(config as ScaleNormArgs),
  doc: 'docs/scale-norm.md',
});

registerNorm({
  name: 'fix',
  aliases: ['fixnorm', 'FixNormEmbedding'],
  kind: 'weight',
  description: 'l2-normalizes each word-embedding row (FixNorm); the embedding layer scales lookups by sqrt(d).',
  paper: TEARS,
  layerClass: 'FixNormEmbedding',
  create: (config) => new FixNormEmbedding(config as unknown as FixNormEmbeddingArgs),
  doc: 'docs/scale-norm.md',
});
