export { alphaBatchNorm, type AlphaBatchNormOptions, type VarianceMixing } from './op.js';
export { AlphaBatchNormalization, toAlphaBatchNorm, type AlphaBatchNormalizationArgs, type ToAlphaBatchNormOptions } from './layer.js';
