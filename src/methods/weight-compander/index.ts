export { WeightCompander, weightCompander, compand, type WeightCompanderArgs } from './layer.js';
