export { scaleNorm, fixNorm, type ScaleNormOptions, type FixNormOptions } from './op.js';
export { ScaleNorm, FixNormEmbedding, type ScaleNormArgs, type FixNormEmbeddingArgs } from './layer.js';
