export { unifiedNorm, unifiedWindows, type UnifiedNormOptions, type UnifiedNormResult, type UnifiedNormDeviceResult, type UnifiedNormBackwardState } from './op.js';
export { UnifiedNormalization, type UnifiedNormalizationArgs } from './layer.js';
