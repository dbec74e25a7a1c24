export { ibnA, ibnB, type IbnAOptions, type IbnAResult, type IbnBOptions } from './op.js';
export { InstanceBatchNormalization, ResidualInstanceNormalization, type InstanceBatchNormalizationArgs, type ResidualInstanceNormalizationArgs } from './layer.js';
