export { batchChannelNorm, type BatchChannelNormOptions, type BatchChannelNormResult } from './op.js';
export { BatchChannelNormalization, type BatchChannelNormalizationArgs } from './layer.js';
