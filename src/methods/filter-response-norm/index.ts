export { filterResponseNorm, type FilterResponseNormOptions } from './op.js';
export { FilterResponseNormalization, type FilterResponseNormalizationArgs } from './layer.js';
