export { rmsNorm, rmsNormComposite, type RmsNormOptions } from './op.js';
export { RMSNormalization, type RMSNormalizationArgs } from './layer.js';
