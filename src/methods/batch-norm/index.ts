export {
  batchNorm,
  batchNormComposite,
  batchNormTraining,
  normalizeWithStatistics,
  updateMovingStatistics,
  validateBatchNorm,
  valuesPerChannel,
  checkBatchHasSpread,
  type BatchNormArgs,
  type BatchNormOptions,
  type BatchNormResult,
} from './op.js';
export { BatchNormalization, setBatchNormTrainable, smallBatchGroups, type BatchNormalizationArgs, type OnSmallBatch } from './layer.js';
