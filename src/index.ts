/**
 * normkit: every deep-learning normalization method for TensorFlow.js.
 *
 * The public API, and nothing else; platform-neutral (browsers and Node). Importing normkit registers its layers
 * and optimizers for (de)serialization and its kernels under tfjs's backend names, and does nothing else: it
 * imports no backend and leaves the default backend alone. Bundlers keep only what an app uses (`sideEffects`);
 * looking methods up by name (createNorm, listNorms, registerAllNorms) keeps them all. Node-only parts live behind subpaths: `normkit/node`
 * (this API plus the file-system IO handler) and `normkit/lab` (the lab, its data and report).
 */
export { NormkitError } from './core/errors.js';
export { useBackend, SUPPORTED_BACKENDS } from './core/backend.js';
export { simdReady as ready } from './kernels/simd.js';
// Kernels the wasm backend lacks (or gets wrong) for training: see src/kernels/wasm-gaps.
import './kernels/wasm-gaps/register.js';
export { setFusedKernels, fusedKernelsEnabled } from './core/dispatch.js';
export { CONVENTIONS, CONVENTION_DEFAULTS, conventionDefaults, TORCH_FLOAT32_EPS, type Convention, type ConventionDefaults } from './core/conventions.js';
export { registerNorm, type NormEntry, type NormInfo, type NormKind } from './core/registry.js';
export { createNorm, listNorms, registerAllNorms } from './catalog.js';

// Standard normalizations
export * from './methods/layer-norm/index.js';
export * from './methods/rms-norm/index.js';
export * from './methods/group-norm/index.js';
export * from './methods/instance-norm/index.js';
export * from './methods/batch-norm/index.js';

// Other activation normalizations
export * from './methods/power-norm/index.js';
export * from './methods/unified-norm/index.js';
export * from './methods/crms-norm/index.js';
export * from './methods/batch-channel-norm/index.js';
export * from './methods/evonorm/index.js';
export * from './methods/filter-response-norm/index.js';
export * from './methods/dynamic-tanh/index.js';
export * from './methods/scale-norm/index.js';
export * from './methods/online-norm/index.js';
export * from './methods/region-norm/index.js';
export * from './methods/lrn/index.js';
export * from './methods/ibn/index.js';

// Test-time and continual adaptation
export * from './methods/alpha-bn/index.js';
export * from './methods/adab2n/index.js';

// Weight reparametrizations
export * from './methods/weight-norm/index.js';
export * from './methods/spectral-norm/index.js';
export * from './methods/weight-standardization/index.js';
export * from './methods/weight-compander/index.js';
export * from './methods/nap/index.js';
export { kernelLayoutOf, kernelLayoutsByVariable, defaultFanInAxes, type KernelLayout } from './core/kernel-layout.js';

// Optimizers and gradient clipping
export * from './optimizers/index.js';

// Architectures and normalization-free training
export * from './models/transformer-layers.js';
export * from './models/transformer.js';
export * from './methods/deepnorm/index.js';
export * from './methods/ngpt/index.js';
export * from './methods/post-ln/index.js';
export * from './methods/pre-ln/index.js';
export * from './methods/peri-ln/index.js';
export * from './methods/normformer/index.js';
export * from './methods/fixup-skipinit/index.js';
export * from './methods/selu/index.js';
export * from './models/nf-resnet.js';
export * from './models/cnn.js';

// Model tools
export * from './surgery/index.js';
export * from './surgery/pre-ln-to-pre-rms.js';
export * from './surgery/diagnose.js';
export * from './surgery/ln-removal.js';
