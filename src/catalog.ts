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
import * as methodsAdab2n from './methods/adab2n/layer.js';
import * as methodsAlphaBn from './methods/alpha-bn/layer.js';
import * as methodsBatchChannelNorm from './methods/batch-channel-norm/layer.js';
import * as methodsBatchNorm from './methods/batch-norm/layer.js';
import * as methodsCrmsNorm from './methods/crms-norm/layer.js';
import * as methodsDeepnorm from './methods/deepnorm/index.js';
import * as methodsDynamicTanh from './methods/dynamic-tanh/layer.js';
import * as methodsEvonorm from './methods/evonorm/layer.js';
import * as methodsFilterResponseNorm from './methods/filter-response-norm/layer.js';
import * as methodsFixupSkipinit from './methods/fixup-skipinit/index.js';
import * as methodsGroupNorm from './methods/group-norm/layer.js';
import * as methodsIbn from './methods/ibn/layer.js';
import * as methodsInstanceNorm from './methods/instance-norm/layer.js';
import * as methodsNorm from './methods/layer-norm/layer.js';
import * as methodsLrn from './methods/lrn/layer.js';
import * as methodsNap from './methods/nap/layer.js';
import * as methodsNgpt from './methods/ngpt/index.js';
import * as methodsNormformer from './methods/normformer/index.js';
import * as methodsOnlineNorm from './methods/online-norm/layer.js';
import * as methodsPeriLn from './methods/peri-ln/index.js';
import * as methodsPostLn from './methods/post-ln/index.js';
import * as methodsPowerNorm from './methods/power-norm/layer.js';
import * as methodsPreLn from './methods/pre-ln/index.js';
import * as methodsRegionNorm from './methods/region-norm/layer.js';
import * as methodsRmsNorm from './methods/rms-norm/layer.js';
import * as methodsScaleNorm from './methods/scale-norm/layer.js';
import * as methodsSelu from './methods/selu/index.js';
import * as methodsSpectralNorm from './methods/spectral-norm/layer.js';
import * as methodsUnifiedNorm from './methods/unified-norm/layer.js';
import * as methodsWeightCompander from './methods/weight-compander/layer.js';
import * as methodsWeightNorm from './methods/weight-norm/layer.js';
import * as methodsWeightStandardization from './methods/weight-standardization/layer.js';
import * as modelsNfResnet from './models/nf-resnet.js';
import * as optimizersAdamp from './optimizers/adamp.js';
import * as optimizersAgc from './optimizers/agc.js';
import * as optimizersConda from './optimizers/conda.js';
import * as optimizersSgdp from './optimizers/sgdp.js';
import * as surgeryLnRemoval from './surgery/ln-removal.js';
import * as surgeryPreLnToPreRms from './surgery/pre-ln-to-pre-rms.js';

/** Every module that registers a method, a layer class or an optimizer class. */
const REGISTERING_MODULES: readonly object[] = [
  methodsAdab2n,
  methodsAlphaBn,
  methodsBatchChannelNorm,
  methodsBatchNorm,
  methodsCrmsNorm,
  methodsDeepnorm,
  methodsDynamicTanh,
  methodsEvonorm,
  methodsFilterResponseNorm,
  methodsFixupSkipinit,
  methodsGroupNorm,
  methodsIbn,
  methodsInstanceNorm,
  methodsNorm,
  methodsLrn,
  methodsNap,
  methodsNgpt,
  methodsNormformer,
  methodsOnlineNorm,
  methodsPeriLn,
  methodsPostLn,
  methodsPowerNorm,
  methodsPreLn,
  methodsRegionNorm,
  methodsRmsNorm,
  methodsScaleNorm,
  methodsSelu,
  methodsSpectralNorm,
  methodsUnifiedNorm,
  methodsWeightCompander,
  methodsWeightNorm,
  methodsWeightStandardization,
  modelsNfResnet,
  optimizersAdamp,
  optimizersAgc,
  optimizersConda,
  optimizersSgdp,
  surgeryLnRemoval,
  surgeryPreLnToPreRms,
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
