import { registerNorm } from '../../core/registry.js';

export { L2Normalize, NGPTResidual, unitNormalize, type L2NormalizeArgs, type NGPTResidualArgs } from './layers.js';
export { declareNGPTMatrices, ngptMatrices, ngptNormalizeWeights, ngptWeightNormalizer, type NGPTMatrix } from './normalize-weights.js';
export { ngptPlacement } from './placement.js';

registerNorm({
  name: 'ngpt',
  aliases: ['normalized-transformer'],
  kind: 'architecture',
  description: 'Normalized Transformer: unit-norm hidden states and weights, residual updates as normalized interpolation with learned eigen learning rates (buildTransformerLM placement "ngpt").',
  paper: 'Loshchilov, Hsieh, Sun & Ginsburg, "nGPT: Normalized Transformer with Representation Learning on the Hypersphere", arXiv 2410.01131, 2024',
  doc: 'docs/ngpt.md',
});
