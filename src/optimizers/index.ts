export { SlotOptimizer, type VariableGradients, type NamedTensor } from './slot-optimizer.js';
export { projectScaleInvariant, type ProjectionHyperparameters, type ProjectionOptions } from './projection.js';
export { type AdamHyperparameters } from './adam-moments.js';
export { AdamP, type AdamPOptions } from './adamp.js';
export { SGDP, type SGDPOptions } from './sgdp.js';
export { adaptiveClipGradient, adaptiveClipGradients, AdaptiveGradientClipping, withAGC, type AGCOptions } from './agc.js';
export { Conda, type CondaOptions } from './conda.js';
