export { ibnA, ibnB, type IBNAOptions, type IBNAResult, type IBNBOptions } from './op.js';
export { InstanceBatchNormalization, ResidualInstanceNormalization, type InstanceBatchNormalizationArgs, type ResidualInstanceNormalizationArgs } from './layer.js';
