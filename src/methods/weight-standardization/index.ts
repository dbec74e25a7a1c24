export {
  WeightStandardization,
  ScaledWeightStandardization,
  type WeightStandardizationArgs,
  type ScaledWeightStandardizationArgs,
} from './layer.js';
