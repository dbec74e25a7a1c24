export { localResponseNorm, type LocalResponseNormOptions, type LrnConvention } from './op.js';
export { LocalResponseNormalization, type LocalResponseNormalizationArgs } from './layer.js';
