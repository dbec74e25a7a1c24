export { rmsNorm, rmsNormComposite, type RmsNormOptions } from './op.js';
export { RMSNormalization, TORCH_FLOAT32_EPS, type RMSNormalizationArgs } from './layer.js';
