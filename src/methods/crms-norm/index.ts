export { crmsNorm, compressZeroMean, decompressZeroMean, type CrmsNormOptions } from './op.js';
export { CRMSNormalization, type CRMSNormalizationArgs } from './layer.js';
