export { onlineNorm, type OnlineNormOptions, type OnlineNormResult, type OnlineNormState, type OnlineNormControl, type OnlineNormEcm } from './op.js';
export { OnlineNormalization, type OnlineNormalizationArgs } from './layer.js';
