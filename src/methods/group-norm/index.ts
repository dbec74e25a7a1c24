export { groupNorm, groupNormComposite, type GroupNormOptions } from './op.js';
