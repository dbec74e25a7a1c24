export { localResponseNorm, type LocalResponseNormOptions, type LRNConvention } from './op.js';
export { LocalResponseNormalization, type LocalResponseNormalizationArgs } from './layer.js';
