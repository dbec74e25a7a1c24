export { foldBatchNorm, findFoldableBatchNorms, batchNormParameters, isBatchNormLayer, type BatchNormParameters, type FoldablePair } from './fold-batch-norm.js';
export { recalibrateBatchNorm, type RecalibrateOptions, type RecalibratedLayer } from './recalibrate.js';
