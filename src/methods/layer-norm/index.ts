export { layerNorm, type LayerNormOptions } from './op.js';
export { LayerNormalization, type LayerNormalizationArgs } from './layer.js';
