export { evoNormB0, evoNormS0, type EvoNormB0Options, type EvoNormB0Result, type EvoNormS0Options } from './op.js';
export { EvoNormB0, EvoNormS0, type EvoNormB0Args, type EvoNormS0Args } from './layer.js';
