export { crmsNorm, compressZeroMean, decompressZeroMean, type CRMSNormOptions } from './op.js';
export { CRMSNormalization, type CRMSNormalizationArgs } from './layer.js';
