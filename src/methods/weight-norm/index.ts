export { WeightNormalization, weightNorm, type WeightNormalizationArgs } from './layer.js';
