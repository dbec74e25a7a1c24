export {
  applyChannelAffine,
  batchNorm,
  batchNormComposite,
  batchNormDefaults,
  batchNormTraining,
  normalizeWithStatistics,
  updateMovingStatistics,
  validateBatchNorm,
  valuesPerChannel,
  checkBatchHasSpread,
  BATCH_NORM_CONVENTIONS,
  type BatchNormArgs,
  type BatchNormConvention,
  type BatchNormOptions,
  type BatchNormResult,
} from './op.js';
export { BatchNormalization, setBatchNormTrainable, smallBatchGroups, type BatchNormalizationArgs, type OnSmallBatch } from './layer.js';
