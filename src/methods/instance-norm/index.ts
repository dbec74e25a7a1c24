export { instanceNorm, instanceNormComposite, type InstanceNormOptions } from './op.js';
export { InstanceNormalization, type InstanceNormalizationArgs } from './layer.js';
