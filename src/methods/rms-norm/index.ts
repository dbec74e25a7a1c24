export { rmsNorm, rmsNormComposite, type RMSNormOptions } from './op.js';
export { RMSNormalization, type RMSNormalizationArgs } from './layer.js';
