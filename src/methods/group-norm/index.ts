export { groupNorm, groupNormComposite, type GroupNormOptions } from './op.js';
export { GroupNormalization, type GroupNormalizationArgs } from './layer.js';
