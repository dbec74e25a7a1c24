export { powerNorm, POWER_GROUP_EPSILON, type PowerNormOptions, type PowerNormResult } from './op.js';
export { PowerNormalization, type PowerNormalizationArgs } from './layer.js';
