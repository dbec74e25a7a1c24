export { foldBatchNorm, findFoldableBatchNorms, batchNormParameters, isBatchNormLayer, type BatchNormParameters, type FoldablePair } from './fold-batch-norm.js';
export { recalibrateBatchNorm, type RecalibrateOptions, type RecalibratedLayer } from './recalibrate.js';
export { fromTorchStateDict, torchNormArgs, TORCH_LOADABLE_CLASSES, type FromTorchOptions, type TorchNormKind, type TorchNormModuleArgs } from './from-torch.js';
