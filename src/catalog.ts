/**
 * Lookup by name over every method of the package: {@link createNorm}, {@link listNorms} and
 * {@link registerAllNorms}.
 *
 * Each method registers itself (registry entry, Keras class name) when its module loads. Node loads them all with
 * `normkit`; a bundler keeps only the modules an app uses (the package declares its `sideEffects`), so this
 * module references every registering module: an app that looks methods up by name keeps them all, and one that
 * imports `layerNorm` alone keeps just that.
 */
import * as registry from './core/registry.js';
import type { NormInfo } from './core/registry.js';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as methodsAdaB2N from './methods/adab2n/layer.js';
import * as methodsAlphaBN from './methods/alpha-bn/layer.js';
import * as methodsBatchChannelNorm from './methods/batch-channel-norm/layer.js';
import * as methodsBatchNorm from './methods/batch-norm/layer.js';
import * as methodsCRMSNorm from './methods/crms-norm/layer.js';
import * as methodsDeepNorm from './methods/deepnorm/index.js';
import * as methodsDynamicTanh from './methods/dynamic-tanh/layer.js';
import * as methodsEvoNorm from './methods/evonorm/layer.js';
import * as methodsFilterResponseNorm from './methods/filter-response-norm/layer.js';
import * as methodsFixupSkipinit from './methods/fixup-skipinit/index.js';
import * as methodsGroupNorm from './methods/group-norm/layer.js';
import * as methodsIBN from './methods/ibn/layer.js';
import * as methodsInstanceNorm from './methods/instance-norm/layer.js';
import * as methodsLayerNorm from './methods/layer-norm/layer.js';
import * as methodsLRN from './methods/lrn/layer.js';
import * as methodsNAP from './methods/nap/layer.js';
import * as methodsNGPT from './methods/ngpt/index.js';
import * as methodsNormFormer from './methods/normformer/index.js';
import * as methodsOnlineNorm from './methods/online-norm/layer.js';
import * as methodsPeriLN from './methods/peri-ln/index.js';
import * as methodsPostLN from './methods/post-ln/index.js';
import * as methodsPowerNorm from './methods/power-norm/layer.js';
import * as methodsPreLN from './methods/pre-ln/index.js';
import * as methodsRegionNorm from './methods/region-norm/layer.js';
import * as methodsRMSNorm from './methods/rms-norm/layer.js';
import * as methodsScaleNorm from './methods/scale-norm/layer.js';
import * as methodsSelu from './methods/selu/index.js';
import * as methodsSpectralNorm from './methods/spectral-norm/layer.js';
import * as methodsUnifiedNorm from './methods/unified-norm/layer.js';
import * as methodsWeightCompander from './methods/weight-compander/layer.js';
import * as methodsWeightNorm from './methods/weight-norm/layer.js';
import * as methodsWeightStandardization from './methods/weight-standardization/layer.js';
import * as modelsNFResNet from './models/nf-resnet.js';
import * as optimizersAdamP from './optimizers/adamp.js';
import * as optimizersAGC from './optimizers/agc.js';
import * as optimizersConda from './optimizers/conda.js';
import * as optimizersSGDP from './optimizers/sgdp.js';
import * as surgeryLNRemoval from './surgery/ln-removal.js';
import * as surgeryPreLNToPreRMS from './surgery/pre-ln-to-pre-rms.js';

/** Every module that registers a method, a layer class or an optimizer class. */
const REGISTERING_MODULES: readonly object[] = [
  methodsAdaB2N,
  methodsAlphaBN,
  methodsBatchChannelNorm,
  methodsBatchNorm,
  methodsCRMSNorm,
  methodsDeepNorm,
  methodsDynamicTanh,
  methodsEvoNorm,
  methodsFilterResponseNorm,
  methodsFixupSkipinit,
  methodsGroupNorm,
  methodsIBN,
  methodsInstanceNorm,
  methodsLayerNorm,
  methodsLRN,
  methodsNAP,
  methodsNGPT,
  methodsNormFormer,
  methodsOnlineNorm,
  methodsPeriLN,
  methodsPostLN,
  methodsPowerNorm,
  methodsPreLN,
  methodsRegionNorm,
  methodsRMSNorm,
  methodsScaleNorm,
  methodsSelu,
  methodsSpectralNorm,
  methodsUnifiedNorm,
  methodsWeightCompander,
  methodsWeightNorm,
  methodsWeightStandardization,
  modelsNFResNet,
  optimizersAdamP,
  optimizersAGC,
  optimizersConda,
  optimizersSGDP,
  surgeryLNRemoval,
  surgeryPreLNToPreRMS,
];

/**
 * Makes sure every method, layer class and optimizer class of normkit is registered, and lists the methods.
 * Node needs no call; a bundled app that loads saved models whose normkit layers its code never names calls it
 * once before `tf.loadLayersModel`.
 *
 * @example
 * nk.registerAllNorms();
 * const model = await tf.loadLayersModel('model.json');
 */
export function registerAllNorms(): NormInfo[] {
  // A real use of every module, so that no bundler drops one.
  if (REGISTERING_MODULES.some((m) => typeof m !== 'object')) throw new Error('normkit: a method module failed to load');
  return registry.listNorms();
}

/**
 * A layer of the method `name` (registry name or alias) built from `config`; see {@link listNorms}.
 *
 * @example
 * const norm = nk.createNorm('group', { groups: 4 });
 */
export function createNorm(name: string, config: Record<string, unknown> = {}): tfl.layers.Layer {
  registerAllNorms();
  return registry.createNorm(name, config);
}

/**
 * Every registered method: name, kind, description, paper, layer class and docs page.
 *
 * @example
 * nk.listNorms().filter((e) => e.kind === 'activation').map((e) => e.name);
 */
export function listNorms(): NormInfo[] {
  return registerAllNorms();
}
